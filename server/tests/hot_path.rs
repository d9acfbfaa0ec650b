//! What the routes owe every client whichever middleware they pass: the JSON
//! API headers, JSON refusals, and the request time bound. `/verify-token`
//! and `/healthz` skip the middleware of the other routes (routes/mod.rs),
//! so these tests drive both groups.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestApp;

const IP: &str = "198.51.100.60";

/// Asserts both JSON API headers on one answer; `what` names it.
fn assert_api_headers(what: &str, r: &ureq::http::Response<ureq::Body>) {
    let h = r.headers();
    assert_eq!(
        h.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{what}: {h:?}"
    );
    assert_eq!(
        h.get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff"),
        "{what}: {h:?}"
    );
}

/// An attacker's pass found JSON API answers without `Cache-Control:
/// no-store` (a shared cache or the browser history could keep a challenge,
/// a token or a refusal) and without `X-Content-Type-Options: nosniff`.
#[test]
fn json_api_answers_are_neither_stored_nor_sniffed() {
    let app = TestApp::spawn();
    let agent = app.agent();

    let r = agent
        .post(&app.url("/api/challenge"))
        .header("X-Real-IP", IP)
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_api_headers("challenge", &r);

    let r = agent.get(&app.url("/api/config")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_api_headers("page config", &r);

    let r = agent
        .post(&app.url("/api/solve"))
        .header("Content-Type", "application/json")
        .send("{")
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_api_headers("refused solution", &r);

    let r = agent.delete(&app.url("/api/challenge")).call().unwrap();
    assert_eq!(r.status(), 405);
    assert_api_headers("wrong method", &r);

    let r = agent.get(&app.url("/verify-token")).call().unwrap();
    assert_eq!(r.status(), 401);
    assert_api_headers("verify-token without a token", &r);

    let token = app.obtain_token(IP);
    let r = agent
        .get(&app.url("/verify-token"))
        .header("X-Real-IP", IP)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_api_headers("verify-token with a valid token", &r);
}

/// `/verify-token` and `/healthz` no longer pass the plain-text rewriter;
/// their refusals must be JSON by themselves, and the rewriter must still
/// serve the other routes.
#[test]
fn refusals_are_json_on_both_sides_of_the_hot_path_split() {
    let app = TestApp::spawn();
    let agent = app.agent();
    let mut cases = vec![
        (
            "POST /healthz",
            agent.post(&app.url("/healthz")).send_empty(),
        ),
        // A form route sent JSON: axum's Form rejects it in plain text.
        (
            "POST /api/token as JSON",
            agent
                .post(&app.url("/api/token"))
                .header("Content-Type", "application/json")
                .send("{}"),
        ),
    ];
    for (what, r) in cases.drain(..) {
        let mut r = r.unwrap();
        assert!(r.status().is_client_error(), "{what}: {}", r.status());
        let v: serde_json::Value = r
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{what}: {v}"
        );
    }
}

/// A client that sends its headers and then trickles (or withholds) the
/// body must be cut off by `request_timeout_secs`, not hold the connection:
/// the time bound moved off the hot path, so it is pinned here where
/// bodies are read.
#[test]
fn withheld_request_body_is_cut_off_with_408() {
    let app = TestApp::spawn_with(|c| c.request_timeout_secs = 1);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.write_all(
        b"POST /api/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"challenge\"",
    )
    .unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = [0u8; 512];
    let n = s.read(&mut got).unwrap_or(0);
    let answer = String::from_utf8_lossy(&got[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("\"error\":\"timeout\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        app.metrics()
            .contains("powgate_limited_total{limit=\"request_timeout\"} 1")
    );
}
