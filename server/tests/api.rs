//! The challenge → solve → token → verify cycle through the real HTTP
//! server, with a real SQLite file.

mod common;

use common::{TestApp, answer, take_turn, wrong_nonce};
use pow::wire::{ChallengeResponse, SolveRequest};
use serde_json::json;

const IP: &str = "198.51.100.7";

#[test]
fn challenge_carries_the_documented_fields() {
    let app = TestApp::spawn();
    let (status, v) = app.challenge_as(IP, serde_json::json!({}));
    assert_eq!(status, 200);
    for key in [
        "challenge",
        "salt",
        "argon2",
        "difficulty",
        "target",
        "expires_at",
        "purpose",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["difficulty"], 4);
    assert_eq!(v["purpose"], "new");
    assert_eq!(v["argon2"]["m_cost"], 64);
    assert_eq!(
        v["target"].as_str().unwrap(),
        hex::encode(pow::Difficulty::new(4).unwrap().target())
    );
    let expires = v["expires_at"].as_i64().unwrap();
    assert_eq!(expires - app.state.now(), 30 * 60);
}

#[test]
fn solve_issues_a_token_that_verify_accepts() {
    let app = TestApp::spawn();
    let ch = app.new_challenge(IP);
    let (status, body, cookies) = app.submit(IP, &answer(&ch));
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 36);
    assert_eq!(body["refreshed"], false);
    assert_eq!(
        body["expires_at"].as_i64().unwrap() - app.state.now(),
        24 * 3600
    );
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("powgate_token="))
        .expect("cookie set");
    assert!(cookie.contains(&format!("powgate_token={token}")));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "not https: {cookie}");

    let (s, b, _) = app.verify(Some(token), IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (200, "valid"));
    let (s, b, _) = app.verify(None, IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (401, "missing"));
    let (s, b, _) = app.verify(Some("5b1c4a3e-0000-4000-8000-000000000000"), IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (401, "unknown"));
    let (s, b, _) = app.verify(Some("zzzzzzzz-zzzz-4zzz-8zzz-zzzzzzzzzzzz"), IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (401, "malformed"));
    let (s, b, _) = app.verify(Some("not-a-powgate-token"), IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (401, "missing"));

    // The cookie works as well as the bearer header.
    let mut r = app
        .agent()
        .get(&app.url("/verify-token"))
        .header("X-Real-IP", IP)
        .header("Cookie", &format!("other=1; powgate_token={token}"))
        .call()
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
}

/// The page sends its `?redir=` with the answer and goes where the server
/// says: the server's one redirect rule (`redirect.rs`) decides, so an open
/// redirect cannot come back through the page. Whatever it refuses comes
/// back as null: stay on the page.
#[test]
fn solve_returns_only_a_server_checked_redirect_and_null_for_hostile_ones() {
    let app = TestApp::spawn_with(|c| {
        c.redirect_domains = powgate::config::StringList::List(vec![".example.org".into()]);
    });
    let own = format!("http://{}/after", app.addr);
    let redirect_for = |redir: Option<&str>| {
        let ch = app.new_challenge(IP);
        let req = SolveRequest {
            redir: redir.map(str::to_owned),
            ..answer(&ch)
        };
        let (status, body, _) = app.submit(IP, &req);
        assert_eq!(status, 200, "{redir:?}: {body}");
        body["redirect"].clone()
    };
    for hostile in [
        "//evil.example",
        "//evil.example/path",
        "https://evil.example",
        "https://evil.example/?x=https://app.example.org/",
        "https://app.example.org@evil.example/",
        "/\\evil.example",
        "/\tevil.example",
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "evil.example",
        "",
    ] {
        assert_eq!(redirect_for(Some(hostile)), json!(null), "{hostile:?}");
    }
    assert_eq!(redirect_for(None), json!(null));
    for safe in [
        "/docs?page=2#top",
        "https://app.example.org/x",
        "https://example.org",
        own.as_str(),
    ] {
        assert_eq!(redirect_for(Some(safe)), json!(safe), "{safe:?}");
    }
}

#[test]
fn only_the_database_hash_of_a_token_is_stored() {
    let app = TestApp::spawn();
    let token = app.obtain_token(IP);
    let bytes = std::fs::read(app.dir.path().join("powgate.db")).unwrap();
    let wal = std::fs::read(app.dir.path().join("powgate.db-wal")).unwrap_or_default();
    let uuid = uuid::Uuid::parse_str(&token).unwrap();
    for hay in [&bytes, &wal] {
        assert!(!hay.windows(36).any(|w| w == token.as_bytes()));
        assert!(!hay.windows(16).any(|w| w == uuid.as_bytes()));
    }
}

#[test]
fn a_third_address_is_refused_when_max_ips_is_two() {
    let app = TestApp::spawn();
    let token = app.obtain_token("203.0.113.1");
    assert_eq!(app.verify(Some(&token), "203.0.113.1").0, 200);
    assert_eq!(app.verify(Some(&token), "203.0.113.2").0, 200);
    let (s, b, _) = app.verify(Some(&token), "203.0.113.3");
    assert_eq!((s, b["status"].as_str().unwrap()), (403, "ip_limit"));
    // Known addresses keep working, and an IPv6 /64 counts as one address.
    assert_eq!(app.verify(Some(&token), "203.0.113.2").0, 200);
    let app6 = TestApp::spawn();
    let t6 = app6.obtain_token("2001:db8:1:1::1");
    assert_eq!(app6.verify(Some(&t6), "2001:db8:1:1::ffff").0, 200);
    assert_eq!(app6.verify(Some(&t6), "2001:db8:1:2::1").0, 200);
    assert_eq!(app6.verify(Some(&t6), "2001:db8:1:3::1").0, 403);
}

#[test]
fn tokens_and_address_limits_survive_a_restart() {
    let app = TestApp::spawn();
    let token = app.obtain_token("203.0.113.1");
    assert_eq!(app.verify(Some(&token), "203.0.113.2").0, 200);
    let open = app.new_challenge(IP);
    let app = app.restart();
    assert_eq!(app.verify(Some(&token), "203.0.113.1").0, 200);
    assert_eq!(
        app.verify(Some(&token), "203.0.113.3").0,
        403,
        "the limit must hold after a restart"
    );
    // The generated challenge key was stored, so an open challenge still works.
    let (status, body, _) = app.submit(IP, &answer(&open));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn tampered_challenge_is_refused_before_any_work() {
    let app = TestApp::spawn();
    let ch = app.new_challenge(IP);
    let mut req = answer(&ch);
    let mut bytes = req.challenge.clone().into_bytes();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    req.challenge = String::from_utf8(bytes).unwrap();
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_request");
    assert!(body["message"].as_str().unwrap().contains("signature"));
}

#[test]
fn expired_challenge_gets_410() {
    let app = TestApp::spawn();
    let ch = app.new_challenge(IP);
    app.clock.advance(30 * 60);
    let (status, body, _) = app.submit(IP, &answer(&ch));
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "expired");
}

#[test]
fn replayed_solution_gets_409() {
    let app = TestApp::spawn();
    let ch = app.new_challenge(IP);
    let req = answer(&ch);
    assert_eq!(app.submit(IP, &req).0, 200);
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "already_spent");
}

#[test]
fn challenge_from_another_address_gets_403() {
    let app = TestApp::spawn();
    let ch = app.new_challenge(IP);
    let (status, body, _) = app.submit("198.51.100.8", &answer(&ch));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "wrong_ip");
    // The same /64 is the same client for IPv6.
    let ch = app.new_challenge("2001:db8::1");
    assert_eq!(app.submit("2001:db8::2", &answer(&ch)).0, 200);
}

#[test]
fn wrong_nonce_gets_403_and_burns_the_challenge() {
    let app = TestApp::spawn();
    let ch = app.new_challenge(IP);
    let mut req = answer(&ch);
    req.nonce = wrong_nonce(&ch);
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "wrong_answer");
    assert_eq!(
        app.submit(IP, &answer(&ch)).0,
        409,
        "one attempt per challenge"
    );
}

#[test]
fn concurrent_double_submit_yields_exactly_one_token() {
    let app = TestApp::spawn();
    for _round in 0..5 {
        let ch = app.new_challenge(IP);
        let req = answer(&ch);
        let barrier = std::sync::Barrier::new(8);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        app.submit(IP, &req).0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            7,
            "{statuses:?}"
        );
    }
    let tokens: i64 = app.sql_number("SELECT count(*) FROM tokens");
    assert_eq!(tokens, 5);
}

/// No turn on a verification thread is no reason to burn the challenge:
/// the client is told `queued` and resubmits the same answer.
#[test]
fn a_full_verification_line_answers_503_queued_without_burning_the_challenge() {
    let app = TestApp::spawn_with(|c| {
        c.verify_permits = Some(1);
        c.verify_queue = Some(0);
    });
    let ch = app.new_challenge(IP);
    let held = take_turn(&app, 0, 0xaa, std::time::Duration::ZERO).unwrap();
    let mut r = app
        .agent()
        .post(&app.url("/api/solve"))
        .header("X-Real-IP", IP)
        .send_json(answer(&ch))
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["error"], "queued");
    assert_eq!(body["ahead"], 0);
    drop(held);
    assert_eq!(
        app.submit(IP, &answer(&ch)).0,
        200,
        "the challenge was not spent by the 503"
    );
}

#[test]
fn expired_token_refreshes_at_half_difficulty_and_is_extended() {
    let app = TestApp::spawn_with(|c| c.set_live("difficulty_level", 9));
    let token = app.obtain_token(IP);
    app.clock.advance(24 * 3600);
    let (s, b, header) = app.verify(Some(&token), IP);
    assert_eq!(
        (s, b["status"].as_str().unwrap(), b["refreshable"].as_bool()),
        (401, "expired", Some(true))
    );
    assert_eq!(header.as_deref(), Some("true"));

    let (status, v) = app.challenge_as(IP, serde_json::json!({ "refresh_token": token }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["purpose"], "refresh");
    assert_eq!(v["difficulty"], 4, "floor(9 / 2)");
    let ch: ChallengeResponse = serde_json::from_value(v).unwrap();

    // A refresh challenge is useless without the token itself.
    let (status, _, _) = app.submit(IP, &answer(&ch));
    assert_eq!(status, 403);
    let ch: ChallengeResponse = serde_json::from_value(
        app.challenge_as(IP, serde_json::json!({ "refresh_token": token }))
            .1,
    )
    .unwrap();
    let mut req = answer(&ch);
    req.refresh_token = Some(token.clone());
    let (status, body, _) = app.submit(IP, &req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refreshed"], true);
    assert_eq!(body["token"], token.as_str());
    assert_eq!(
        body["expires_at"].as_i64().unwrap(),
        app.state.now() + 24 * 3600
    );
    assert_eq!(app.verify(Some(&token), IP).0, 200);

    // A valid token cannot be refreshed, and the cookie path works too.
    let (status, _) = app.challenge_as(IP, serde_json::json!({ "refresh_token": token }));
    assert_eq!(status, 400);
    app.clock.advance(24 * 3600 + 1);
    let mut r = app
        .agent()
        .post(&app.url("/api/challenge"))
        .header("X-Real-IP", IP)
        .header("Cookie", &format!("powgate_token={token}"))
        .send_empty()
        .unwrap();
    let v: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(v["purpose"], "refresh", "{v}");
}

#[test]
fn purge_deletes_tokens_past_the_refresh_window() {
    let app = TestApp::spawn();
    let token = app.obtain_token(IP);
    let kept = {
        app.clock.advance(3600);
        app.obtain_token(IP)
    };
    // First token: expired 24 h after issue, purged 48 h after that.
    app.clock.advance(23 * 3600 + 48 * 3600);
    let purged = app.state.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = rt.block_on(powgate::server::purge_once(&purged)).unwrap();
    assert_eq!(p.tokens, 1);
    assert!(p.challenges >= 2, "spent challenges are cleared too: {p:?}");
    let (s, b, _) = app.verify(Some(&token), IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (401, "unknown"));
    let (status, _) = app.challenge_as(IP, serde_json::json!({ "refresh_token": token }));
    assert_eq!(status, 404);
    let (s, b, _) = app.verify(Some(&kept), IP);
    assert_eq!(
        (s, b["status"].as_str().unwrap(), b["refreshable"].as_bool()),
        (401, "expired", Some(true))
    );
}

#[test]
fn max_tokens_per_ip_expires_the_oldest() {
    let app = TestApp::spawn_with(|c| c.set_live("max_tokens_per_ip", 2));
    let first = app.obtain_token(IP);
    app.clock.advance(1);
    let second = app.obtain_token(IP);
    assert_eq!(
        app.verify(Some(&first), IP).0,
        200,
        "warm the cache so eviction must invalidate it"
    );
    app.clock.advance(1);
    let third = app.obtain_token(IP);
    let (s, b, _) = app.verify(Some(&first), IP);
    assert_eq!((s, b["status"].as_str().unwrap()), (401, "expired"));
    assert_eq!(app.verify(Some(&second), IP).0, 200);
    assert_eq!(app.verify(Some(&third), IP).0, 200);
    // Another address is not affected.
    let other = app.obtain_token("198.51.100.99");
    assert_eq!(app.verify(Some(&other), "198.51.100.99").0, 200);
    assert_eq!(app.verify(Some(&second), IP).0, 200);
}

#[test]
fn bad_bodies_get_json_4xx() {
    let app = TestApp::spawn();
    let cases: &[(&str, u16)] = &[
        ("{", 400),
        ("[]", 400),
        ("{\"challenge\": 5, \"nonce\": 1}", 400),
        ("{\"challenge\": \"a.b\", \"nonce\": -1}", 400),
        (
            "{\"challenge\": \"a.b\", \"nonce\": 18446744073709551616}",
            400,
        ),
        ("{\"challenge\": \"a.b\", \"nonce\": 1}", 400),
        ("", 400),
    ];
    for (body, want) in cases {
        let mut r = app
            .agent()
            .post(&app.url("/api/solve"))
            .header("Content-Type", "application/json")
            .send(*body)
            .unwrap();
        assert_eq!(r.status().as_u16(), *want, "{body}");
        let v: serde_json::Value = r.body_mut().read_json().unwrap();
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let big = format!(
        "{{\"challenge\": \"{}\", \"nonce\": 1}}",
        "a".repeat(20_000)
    );
    let mut r = app
        .agent()
        .post(&app.url("/api/solve"))
        .send(big.as_str())
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(v["error"], "too_large");
}

#[test]
fn forwarded_address_is_ignored_from_untrusted_peers() {
    // With no trusted proxies, X-Real-IP is a client's claim and is ignored:
    // a challenge fetched "as" one address is bound to the real peer.
    let app =
        TestApp::spawn_with(|c| c.trusted_proxies = powgate::config::StringList::List(vec![]));
    let ch = app.new_challenge("203.0.113.50");
    let (status, body, _) = app.submit("203.0.113.51", &answer(&ch));
    assert_eq!(status, 200, "both requests come from 127.0.0.1: {body}");
}

/// Refreshes an expired `token` from `ip` through the API, as a browser
/// would: a refresh challenge for the token, solved and sent with it.
fn refresh(app: &TestApp, ip: &str, token: &str) {
    let (status, v) = app.challenge_as(ip, serde_json::json!({ "refresh_token": token }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["purpose"], "refresh", "{v}");
    let ch: ChallengeResponse = serde_json::from_value(v).unwrap();
    let mut req = answer(&ch);
    req.refresh_token = Some(token.to_owned());
    let (status, body, _) = app.submit(ip, &req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refreshed"], true);
}

/// The attacker's pass: with `POW_MAX_TOKENS_PER_IP` at 1, four solves and
/// three half-price refreshes of the evicted tokens left four valid tokens
/// for one address. A refresh counts against the cap like an issue, the
/// refreshed token being the newest.
#[test]
fn refreshing_evicted_tokens_does_not_bypass_max_tokens_per_ip() {
    for cap in [1usize, 2] {
        let app = TestApp::spawn_with(|c| c.set_live("max_tokens_per_ip", cap));
        let tokens: Vec<String> = (0..4)
            .map(|_| {
                app.clock.advance(1);
                app.obtain_token(IP)
            })
            .collect();
        let valid = |app: &TestApp| -> Vec<&str> {
            tokens
                .iter()
                .filter(|t| app.verify(Some(t), IP).0 == 200)
                .map(String::as_str)
                .collect()
        };
        assert_eq!(valid(&app).len(), cap, "cap {cap} after the solves");
        let evicted = &tokens[..4 - cap];
        for token in evicted {
            app.clock.advance(1);
            refresh(&app, IP, token);
        }
        let left = valid(&app);
        assert_eq!(left.len(), cap, "cap {cap}: {left:?} valid");
        let newest = evicted.last().unwrap();
        assert!(
            left.contains(&newest.as_str()),
            "the refreshed token survives"
        );
    }
}
