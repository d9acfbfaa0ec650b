//! Replays the committed corpus of malformed requests (`corpus/malformed.json`,
//! made by `corpus/generate.py`) over raw TCP, so no client library tidies
//! the bytes first. Every request must get a 4xx answer with a JSON
//! `{error, message}` body; never a 5xx, a hang, or a dead server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{TestApp, solve, ticket};
use pow::{Argon2Params, ChallengeClaims, Difficulty, Purpose};
use serde::Deserialize;

const ADMIN_KEY: &str = "corpus-admin-key-0123456789";

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    method: String,
    path: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    expect: Option<u16>,
}

struct Reply {
    status: u16,
    body: String,
}

/// One request over a fresh connection; `Connection: close` makes the
/// server end it, so reading to the end collects the whole answer.
fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        app.addr
    )
    .into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: ").as_bytes());
        req.extend_from_slice(v.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    // A server that refuses early may close before the whole body is sent.
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Reply { status, body }
}

/// Live values for the corpus placeholders, fresh for every case.
fn fill(app: &TestApp, template: &str) -> String {
    let mut out = template.to_owned();
    let ip = "127.0.0.1";
    if out.contains("{{CHALLENGE") || out.contains("{{NONCE") {
        let ch = app.new_challenge(ip);
        let nonce = solve(&ch);
        let (payload, _) = ch.challenge.split_once('.').unwrap();
        let mut forged = ch.challenge.clone().into_bytes();
        forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
        let spent = app.new_challenge(ip);
        let spent_nonce = solve(&spent);
        let spent_ticket = ticket(&spent);
        let req = pow::wire::SolveRequest {
            challenge: spent.challenge.clone(),
            nonce: spent_nonce,
            ticket: spent_ticket,
            refresh_token: None,
            telemetry: None,
            redir: None,
        };
        assert_eq!(app.submit(ip, &req).0, 200);
        let now = app.state.now();
        let expired = ChallengeClaims {
            id: [9; 16],
            purpose: Purpose::New,
            issued_at: now - 3600,
            expires_at: now - 1,
            difficulty: Difficulty::new(4).unwrap(),
            params: Argon2Params::new(1, 64, 1, 32).unwrap(),
            ip_key: powgate::client_ip::IpKey::of(ip.parse().unwrap()).to_bytes(),
            ticket_bits: 0,
        }
        .sign(&app.state.challenge_key);
        let other = app.new_challenge("203.0.113.99");
        out = out
            .replace("{{CHALLENGE_FORGED}}", &String::from_utf8(forged).unwrap())
            .replace("{{CHALLENGE_TRUNCATED}}", &ch.challenge[..60])
            .replace("{{CHALLENGE_PAYLOAD}}", payload)
            .replace("{{CHALLENGE_EXPIRED}}", &expired)
            .replace("{{CHALLENGE_SPENT}}", &spent.challenge)
            .replace("{{NONCE_SPENT}}", &spent_nonce.to_string())
            .replace("{{TICKET_SPENT}}", &spent_ticket.unwrap_or(0).to_string())
            .replace("{{CHALLENGE_OTHER_IP}}", &other.challenge)
            .replace("{{CHALLENGE}}", &ch.challenge)
            .replace("{{NONCE}}", &nonce.to_string());
    }
    out.replace("{{LONG_200}}", &"A".repeat(200))
        .replace(
            "{{OVERSIZED}}",
            &format!(
                "{{\"challenge\": \"{}\", \"nonce\": 1}}",
                "x".repeat(100_000)
            ),
        )
        .replace("{{ADMIN_KEY}}", ADMIN_KEY)
}

#[test]
fn every_malformed_request_gets_a_4xx_json_answer() {
    let cases: Vec<Case> = serde_json::from_str(include_str!("corpus/malformed.json")).unwrap();
    assert!(cases.len() >= 80, "the corpus shrank to {}", cases.len());
    let app = TestApp::spawn_with(|c| c.admin_key = Some(ADMIN_KEY.into()));
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let headers: Vec<(String, String)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(&app, v)))
            .collect();
        let body = case
            .body
            .as_deref()
            .map(|b| fill(&app, b))
            .unwrap_or_default();
        let path = fill(&app, &case.path);
        let reply = send(&app, &case.method, &path, &headers, body.as_bytes());
        let json: Option<serde_json::Value> = serde_json::from_str(&reply.body).ok();
        let json_ok = json.as_ref().is_some_and(|v| {
            v["error"].is_string() && v["message"].is_string() || v["status"].is_string()
        });
        let status_ok =
            (400..500).contains(&reply.status) && case.expect.is_none_or(|e| e == reply.status);
        if !(status_ok && json_ok) {
            failures.push(format!(
                "{}: {} {} -> {} {}",
                case.name,
                case.method,
                case.path,
                reply.status,
                reply.body.chars().take(200).collect::<String>()
            ));
        }
        if i % 10 == 0 {
            assert_eq!(
                send(&app, "GET", "/healthz", &[], b"").status,
                200,
                "server died after {}",
                case.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(send(&app, "GET", "/healthz", &[], b"").status, 200);
}
