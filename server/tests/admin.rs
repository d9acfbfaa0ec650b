//! Admin API, sessions, CSRF and metrics through the real server.

mod common;

use common::TestApp;

const KEY: &str = "test-admin-key-0123456789";
const IP: &str = "198.51.100.20";

fn app() -> TestApp {
    TestApp::spawn_with(|c| c.admin_key = Some(KEY.into()))
}

fn bearer(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    app.admin_call(KEY, method, path, body)
}

/// Logs in and returns the session cookie pair `powgate_admin=…`.
fn login(app: &TestApp) -> String {
    let resp = app
        .agent()
        .post(&app.url("/api/admin/login"))
        .header("Origin", &format!("http://{}", app.addr))
        .send_json(serde_json::json!({ "key": KEY }))
        .unwrap();
    assert_eq!(resp.status(), 204);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/api/admin"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// The three ways a key can be presented.
#[derive(Debug, Clone, Copy)]
enum KeyPath {
    Login,
    Bearer,
    SessionProbe,
}

/// Presents `key` from client `ip` on `path`; returns the status, the
/// `Retry-After` and whether the key was accepted.
fn present_key(app: &TestApp, path: KeyPath, ip: &str, key: &str) -> (u16, Option<u64>, bool) {
    let agent = app.agent();
    let auth = format!("Bearer {key}");
    let mut r = match path {
        KeyPath::Login => agent
            .post(&app.url("/api/admin/login"))
            .header("X-Real-IP", ip)
            .send_json(serde_json::json!({ "key": key })),
        KeyPath::Bearer => agent
            .get(&app.url("/api/admin/settings"))
            .header("X-Real-IP", ip)
            .header("Authorization", &auth)
            .call(),
        KeyPath::SessionProbe => agent
            .get(&app.url("/api/admin/session"))
            .header("X-Real-IP", ip)
            .header("Authorization", &auth)
            .call(),
    }
    .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
    let accepted = match path {
        KeyPath::Login => status == 204,
        KeyPath::Bearer => status == 200,
        KeyPath::SessionProbe => status == 200 && body["authenticated"] == true,
    };
    (status, retry, accepted)
}

const KEY_PATHS: [KeyPath; 3] = [KeyPath::Login, KeyPath::Bearer, KeyPath::SessionProbe];

/// Issue 12: the session probe was an unlimited oracle for the key, and the
/// Bearer check let the right key through while wrong ones got 429.
#[test]
fn admin_key_guessing_is_limited_on_every_path_even_for_the_right_key() {
    let app = app();
    for i in 0..16 {
        let (status, _, accepted) =
            present_key(&app, KEY_PATHS[i % 3], IP, "wrong-guess-wrong-guess");
        assert!(!accepted && status != 500, "guess {i}: {status}");
    }
    let mut waits = Vec::new();
    for path in KEY_PATHS {
        let (status, retry, _) = present_key(&app, path, IP, KEY);
        assert_eq!(
            status, 429,
            "{path:?}: the right key waits like a wrong one"
        );
        waits.push(retry.expect("Retry-After"));
    }
    let wait = *waits.iter().max().unwrap();
    assert!(waits.iter().all(|w| *w == wait && *w > 1), "{waits:?}");
    app.clock.advance(i64::try_from(wait).unwrap() - 1);
    for path in KEY_PATHS {
        assert_eq!(
            present_key(&app, path, IP, KEY).0,
            429,
            "{path:?} too early"
        );
    }
    app.clock.advance(1);
    for path in KEY_PATHS {
        let (status, _, accepted) = present_key(&app, path, IP, KEY);
        assert!(accepted, "{path:?} after the window: {status}");
    }
    let refused = app
        .metrics()
        .lines()
        .find(|l| l.starts_with("powgate_limited_total{limit=\"admin_auth\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse::<f64>().unwrap());
    assert!(refused >= 11.0 + 6.0, "refusals are counted: {refused}");
}

/// Whoever holds an IPv6 /48 (or an IPv4 /24) has thousands of addresses,
/// each with its own per-address budget; the network's budget bounds them
/// together.
#[test]
fn a_network_rotating_its_addresses_is_limited_as_one() {
    let app = app();
    for (member, fresh, outside) in [
        (
            (|i: usize| format!("2001:db8:1:{i:x}::1")) as fn(usize) -> String,
            "2001:db8:1:ffff::1",
            "2001:db8:2::1",
        ),
        (
            |i: usize| format!("203.0.113.{i}"),
            "203.0.113.250",
            "203.0.114.1",
        ),
    ] {
        // One guess per address: each address stays far inside its budget.
        for i in 0..20 {
            let (status, _, _) = present_key(&app, KEY_PATHS[i % 3], &member(i), "wrong-guess-x");
            assert_ne!(status, 429, "guess {i} from {}", member(i));
        }
        let (status, retry, _) = present_key(&app, KeyPath::Bearer, fresh, KEY);
        assert_eq!(status, 429, "a fresh address of the same network");
        assert!(retry.is_some());
        assert!(
            present_key(&app, KeyPath::Bearer, outside, KEY).2,
            "another network is unaffected"
        );
    }
}

#[test]
fn admin_api_without_auth_or_with_a_wrong_key_is_401() {
    let app = app();
    for path in [
        "/api/admin/settings",
        "/api/admin/stats",
        "/api/admin/tokens",
    ] {
        let r = app.agent().get(&app.url(path)).call().unwrap();
        assert_eq!(r.status(), 401, "{path} without auth");
        let r = app
            .agent()
            .get(&app.url(path))
            .header("Authorization", "Bearer wrong-key-wrong-key")
            .call()
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong key");
    }
    let r = app
        .agent()
        .patch(&app.url("/api/admin/settings"))
        .send_json(serde_json::json!({"difficulty": 5}))
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .agent()
        .get(&app.url("/api/admin/settings"))
        .header("Cookie", "powgate_admin=forged-session-id")
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, body) = bearer(&app, "GET", "/api/admin/session", None);
    assert_eq!(
        (status, &body["authenticated"]),
        (200, &serde_json::json!(true))
    );
    let mut r = app
        .agent()
        .get(&app.url("/api/admin/session"))
        .call()
        .unwrap();
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["authenticated"], false);
}

/// An admin page behind HTTP Basic at the proxy: the browser sends the
/// Basic header on every call. It must neither hide the session nor count
/// as a wrong key, or the operator is locked out after five calls.
#[test]
fn http_basic_in_front_of_the_admin_page_does_not_lock_the_operator_out() {
    let app = app();
    let session = login(&app);
    for _ in 0..12 {
        let r = app
            .agent()
            .get(&app.url("/api/admin/settings"))
            .header("Authorization", "Basic b3BlcmF0b3I6cGFzc3dvcmQ=")
            .header("Cookie", &session)
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (status, _) = bearer(&app, "GET", "/api/admin/settings", None);
    assert_eq!(status, 200, "no failure was counted");
}

#[test]
fn failed_logins_are_rate_limited_per_address() {
    let app = app();
    let attempt = |ip: &str, key: &str| {
        app.agent()
            .post(&app.url("/api/admin/login"))
            .header("X-Real-IP", ip)
            .send_json(serde_json::json!({ "key": key }))
            .unwrap()
    };
    let statuses: Vec<u16> = (0..8)
        .map(|_| attempt(IP, "guess-guess-guess").status().as_u16())
        .collect();
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = attempt(IP, KEY);
    assert_eq!(r.status(), 429, "even the right key waits out the limit");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        attempt("198.51.100.21", KEY).status(),
        204,
        "another address is unaffected"
    );
}

#[test]
fn cross_origin_state_changes_with_the_session_cookie_are_refused() {
    let app = app();
    let cookie = login(&app);
    let own = format!("http://{}", app.addr);
    let patch = |origin: Option<&str>, site: Option<&str>| {
        let mut r = app
            .agent()
            .patch(&app.url("/api/admin/settings"))
            .header("Cookie", &cookie);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        if let Some(s) = site {
            r = r.header("Sec-Fetch-Site", s);
        }
        r.send_json(serde_json::json!({ "difficulty": 7 }))
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(patch(Some("https://evil.example"), None), 403);
    assert_eq!(patch(Some(&own), Some("cross-site")), 403);
    assert_eq!(
        patch(None, None),
        403,
        "no Origin on a cookie-authenticated change"
    );
    assert_eq!(patch(Some(&own), Some("same-origin")), 200);
    // Reading with the cookie needs no Origin.
    let r = app
        .agent()
        .get(&app.url("/api/admin/settings"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A login form posted from another site is refused too.
    let r = app
        .agent()
        .post(&app.url("/api/admin/login"))
        .header("Origin", "https://evil.example")
        .send_json(serde_json::json!({ "key": KEY }))
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// `X-Forwarded-Host` names this site's host only when a trusted proxy sent
/// it: from anyone else it would let a request vouch for its own Origin.
#[test]
fn x_forwarded_host_counts_for_the_origin_check_only_from_a_trusted_proxy() {
    let login_via = |app: &TestApp| {
        app.agent()
            .post(&app.url("/api/admin/login"))
            .header("Origin", "https://evil.example")
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "https")
            .send_json(serde_json::json!({ "key": KEY }))
            .unwrap()
            .status()
            .as_u16()
    };
    // The default configuration trusts loopback, where the test client is.
    assert_eq!(login_via(&app()), 204);
    let untrusting = TestApp::spawn_with(|c| {
        c.admin_key = Some(KEY.into());
        c.trusted_proxies = powgate::config::StringList::List(vec![]);
    });
    assert_eq!(login_via(&untrusting), 403);
}

/// An origin is scheme, host and port: a page on `http://host` (which a
/// network attacker can write) must not act on `https://host`, nor the
/// other way round.
#[test]
fn an_origin_with_another_scheme_is_cross_origin() {
    let app = app();
    let cookie = login(&app);
    let patch = |origin: &str| {
        app.agent()
            .patch(&app.url("/api/admin/settings"))
            .header("Cookie", &cookie)
            .header("Origin", origin)
            .send_json(serde_json::json!({ "token_hours": 3 }))
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(patch(&format!("https://{}", app.addr)), 403);
    assert_eq!(patch(&format!("http://{}", app.addr)), 200);
    let login_from = |origin: &str, proto: Option<&str>| {
        let mut r = app
            .agent()
            .post(&app.url("/api/admin/login"))
            .header("Origin", origin);
        if let Some(p) = proto {
            r = r.header("X-Forwarded-Proto", p);
        }
        r.send_json(serde_json::json!({ "key": KEY }))
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(login_from(&format!("https://{}", app.addr), None), 403);
    // Behind a trusted proxy that terminated TLS, https is the site's own.
    assert_eq!(
        login_from(&format!("https://{}", app.addr), Some("https")),
        204
    );
    assert_eq!(
        login_from(&format!("http://{}", app.addr), Some("https")),
        403
    );
}

/// The admin session is scoped to the admin API, and logging out clears
/// it at that same path (a `Path=/` deletion would leave it in place).
#[test]
fn the_admin_session_cookie_stays_on_the_admin_api_path_and_logout_clears_it_there() {
    let app = TestApp::spawn_with(|c| {
        c.admin_key = Some(KEY.into());
        c.public_url = Some("https://example.com/.powgate".into());
    });
    let r = app
        .agent()
        .post(&app.url("/api/admin/login"))
        .header("Origin", "https://example.com")
        .send_json(serde_json::json!({ "key": KEY }))
        .unwrap();
    assert_eq!(r.status(), 204);
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(set.contains("Path=/.powgate/api/admin"), "{set}");
    assert!(set.contains("Secure") && !set.contains("Path=/;"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let r = app
        .agent()
        .post(&app.url("/api/admin/logout"))
        .header("Origin", "https://example.com")
        .header("Cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cleared.starts_with("powgate_admin=;")
            && cleared.contains("Max-Age=0")
            && cleared.contains("Path=/.powgate/api/admin"),
        "{cleared}"
    );
    let mut r = app
        .agent()
        .get(&app.url("/api/admin/session"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(body["authenticated"], false, "the session is closed");
}

/// The admin routes share the body limit of the public API, and so answer
/// an oversized body before reading it whole.
#[test]
fn an_oversized_admin_body_is_413_json() {
    let app = app();
    let big = format!(
        "{{\"token_hours\": 1, \"pad\": \"{}\"}}",
        "a".repeat(20_000)
    );
    let mut r = app
        .agent()
        .patch(&app.url("/api/admin/settings"))
        .header("Authorization", &format!("Bearer {KEY}"))
        .header("Content-Type", "application/json")
        .send(big.as_str())
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(v["error"], "too_large");
}

#[test]
fn difficulty_change_applies_to_the_next_challenge_and_survives_restart() {
    let app = app();
    assert_eq!(app.new_challenge(IP).difficulty, 4);
    let (status, body) = bearer(
        &app,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty": "high" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["difficulty"], 1900);
    assert_eq!(body["difficulty_preset"], "high");
    assert_eq!(body["overridden"], serde_json::json!(["difficulty"]));
    assert_eq!(app.new_challenge(IP).difficulty, 1900);
    let (status, _) = bearer(
        &app,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty": 37, "token_hours": 5 })),
    );
    assert_eq!(status, 200);
    assert_eq!(app.new_challenge(IP).difficulty, 37);

    let app = app.restart();
    assert_eq!(
        app.new_challenge(IP).difficulty,
        37,
        "the stored value wins over the configured 4"
    );
    let token = app.obtain_token(IP);
    let (_, b, _) = app.verify(Some(&token), IP);
    assert_eq!(b["status"], "valid");
    let rec_expiry: i64 = app.sql_number("SELECT expires_at - created_at FROM tokens");
    assert_eq!(rec_expiry, 5 * 3600, "token_hours was changed live too");

    let (status, body) = bearer(&app, "DELETE", "/api/admin/settings", None);
    assert_eq!(status, 200);
    assert_eq!(body["settings"]["difficulty"], 4);
    assert_eq!(app.new_challenge(IP).difficulty, 4);
}

#[test]
fn invalid_settings_get_400_naming_the_field_and_range() {
    let app = app();
    let cases = [
        (
            serde_json::json!({ "difficulty": 0 }),
            "difficulty",
            "1..=1000000000",
        ),
        (
            serde_json::json!({ "difficulty": "insane" }),
            "difficulty",
            "low, medium",
        ),
        (
            serde_json::json!({ "difficulty": -3 }),
            "difficulty",
            "1..=",
        ),
        (
            serde_json::json!({ "difficulty": 2.5 }),
            "difficulty",
            "1..=",
        ),
        (
            serde_json::json!({ "challenge_timeout": 0 }),
            "challenge_timeout",
            "1..=1440",
        ),
        (
            serde_json::json!({ "token_max_ips": "two" }),
            "token_max_ips",
            "1..=1000",
        ),
        (
            serde_json::json!({ "max_tokens_per_ip": 100_001 }),
            "max_tokens_per_ip",
            "0..=100000",
        ),
    ];
    for (body, field, range) in cases {
        let (status, resp) = bearer(&app, "PATCH", "/api/admin/settings", Some(body.clone()));
        assert_eq!(status, 400, "{body}");
        assert_eq!(resp["field"], field, "{resp}");
        assert!(resp["message"].as_str().unwrap().contains(range), "{resp}");
    }
    let (status, resp) = bearer(
        &app,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficultee": 5 })),
    );
    assert_eq!(status, 400, "{resp}");
    // Nothing was changed by the refused requests.
    assert_eq!(app.new_challenge(IP).difficulty, 4);
}

#[test]
fn tokens_are_listed_by_id_and_can_be_revoked_by_it_or_expired() {
    let app = app();
    let first = app.obtain_token(IP);
    let second = app.obtain_token("198.51.100.30");
    assert_eq!(app.verify(Some(&first), IP).0, 200);
    let (status, list) = bearer(&app, "GET", "/api/admin/tokens?page=1&per_page=1", None);
    assert_eq!(status, 200);
    assert_eq!(list["total"], 2);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    let (_, list) = bearer(&app, "GET", "/api/admin/tokens", None);
    let text = list.to_string();
    assert!(
        !text.contains(&first) && !text.contains(&second),
        "the list never shows a token"
    );
    let row = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ips"] == serde_json::json!([IP]))
        .unwrap();
    assert_eq!(row["status"], "active");
    let id = row["id"].as_i64().expect("the id is the token's number");

    let (status, body) = bearer(
        &app,
        "POST",
        &format!("/api/admin/tokens/{id}/revoke"),
        None,
    );
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)));
    let (status, body) = bearer(
        &app,
        "POST",
        &format!("/api/admin/tokens/{id}/revoke"),
        None,
    );
    assert_eq!(
        (status, body["revoked"].as_u64()),
        (200, Some(0)),
        "a second click finds it revoked already"
    );
    let (s, b, _) = app.verify(Some(&first), IP);
    assert_eq!(
        (s, b["status"].as_str().unwrap()),
        (403, "revoked"),
        "revocation is immediate despite the cache"
    );
    let (status, body) = bearer(&app, "POST", "/api/admin/tokens/999999/revoke", None);
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    assert!(
        body["message"].as_str().unwrap().contains("999999"),
        "{body}"
    );
    // A hash prefix, the id of old, is refused rather than matched.
    for bad in ["0a1b2c3d4e5f", "0", "-1", "nonumber"] {
        let (status, body) = bearer(
            &app,
            "POST",
            &format!("/api/admin/tokens/{bad}/revoke"),
            None,
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }

    assert_eq!(app.verify(Some(&second), "198.51.100.30").0, 200);
    let (status, body) = bearer(&app, "POST", "/api/admin/tokens/expire-all", None);
    assert_eq!((status, body["expired"].as_u64()), (200, Some(1)));
    let (s, b, _) = app.verify(Some(&second), "198.51.100.30");
    assert_eq!(
        (s, b["status"].as_str().unwrap(), b["refreshable"].as_bool()),
        (401, "expired", Some(true))
    );
}

#[test]
fn stats_count_challenges_and_solves() {
    let app = app();
    app.obtain_token(IP);
    app.new_challenge(IP);
    let bad = serde_json::json!({"challenge": "x.y", "nonce": 1});
    let r = app
        .agent()
        .post(&app.url("/api/solve"))
        .send_json(bad)
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, s) = bearer(&app, "GET", "/api/admin/stats", None);
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["challenges"]["issued"]["hour"], 2);
    assert_eq!(s["challenges"]["solved"]["day"], 1);
    assert_eq!(s["challenges"]["failed"]["hour"], 1);
    assert_eq!(s["active_tokens"], 1);
    assert_eq!(s["timeline"]["buckets"].as_array().unwrap().len(), 24);
    let classes = s["device_classes"].as_array().unwrap();
    assert_eq!(classes.len(), 3);
    assert!(classes.iter().all(|c| c["source"] == "reference"));
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn metrics_move_after_a_solve() {
    let app = app();
    let scrape = || app.metrics();
    let before = scrape();
    assert!(before.contains("# TYPE powgate_verify_token_duration_seconds histogram"));
    let token = app.obtain_token(IP);
    app.verify(Some(&token), IP);
    app.verify(None, IP);
    let after = scrape();
    for (name, delta) in [
        ("powgate_challenges_issued_total{purpose=\"new\"}", 1.0),
        (
            "powgate_solutions_total{reason=\"ok\",result=\"accepted\"}",
            1.0,
        ),
        ("powgate_tokens_total{event=\"issued\"}", 1.0),
        ("powgate_verify_decisions_total{outcome=\"valid\"}", 1.0),
        ("powgate_verify_decisions_total{outcome=\"missing\"}", 1.0),
        ("powgate_argon2_verify_seconds_count", 1.0),
        ("powgate_verify_token_duration_seconds_count", 2.0),
    ] {
        assert_eq!(
            metric(&after, name) - metric(&before, name),
            delta,
            "{name}\n{after}"
        );
    }
    assert_eq!(metric(&after, "powgate_active_tokens "), 1.0);
    assert_eq!(metric(&after, "powgate_difficulty "), 4.0);
    assert!(
        after
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.starts_with("powgate_"))
    );
}

#[test]
fn metrics_can_move_to_their_own_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|c| c.metrics_listen = Some(format!("127.0.0.1:{port}")));
    assert_eq!(
        app.agent()
            .get(&app.url("/metrics"))
            .call()
            .unwrap()
            .status(),
        404
    );
    let mut r = None;
    for _ in 0..50 {
        if let Ok(resp) = app
            .agent()
            .get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
        {
            r = Some(resp);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut r = r.expect("metrics listener answers");
    assert_eq!(r.status(), 200);
    assert!(
        r.body_mut()
            .read_to_string()
            .unwrap()
            .contains("powgate_difficulty")
    );
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Token fixation: a form on another site posts the attacker's token to
/// `/api/token` from the victim's browser, which would set the victim's
/// cookie to it and add the victim's address to the attacker's token.
#[test]
fn a_cross_site_token_paste_sets_no_cookie_and_adds_no_address() {
    let app = app();
    let attacker = "203.0.113.66";
    let token = app.obtain_token(attacker);
    let paste = |origin: Option<&str>, site: Option<&str>| {
        let mut r = no_redirects()
            .post(&app.url("/api/token"))
            .header("X-Real-IP", IP);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        if let Some(s) = site {
            r = r.header("Sec-Fetch-Site", s);
        }
        let mut r = r
            .send_form([("token", token.as_str()), ("redir", "/")])
            .unwrap();
        let cookie = r.headers().get("set-cookie").is_some();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
        (status, cookie, body)
    };
    let addresses =
        || -> i64 { app.sql_number("SELECT coalesce(sum(json_array_length(ips)), 0) FROM tokens") };
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (Some("https://evil.example"), Some("cross-site")),
        (None, Some("cross-site")),
        (Some("null"), None),
    ] {
        let (status, cookie, body) = paste(origin, site);
        assert_eq!((status, cookie), (403, false), "{origin:?} {site:?}");
        assert_eq!(body["error"], "forbidden", "{body}");
        assert_eq!(addresses(), 1, "the victim's address was not added");
    }
    // The site's own form, and a client that is not a browser, still work.
    let own = format!("http://{}", app.addr);
    assert_eq!(paste(Some(&own), Some("same-origin")).0, 303);
    assert_eq!(paste(None, None).0, 303);
    assert_eq!(addresses(), 2);
}

/// Expire-all leaves every token refreshable at half price; a bulk revoke
/// leaves none.
#[test]
fn revoking_all_tokens_leaves_none_refreshable() {
    let app = app();
    let (a, b) = ("198.51.100.31", "198.51.100.32");
    let (ta, tb) = (app.obtain_token(a), app.obtain_token(b));
    let before = app.metrics();
    assert_eq!(
        bearer(&app, "POST", "/api/admin/tokens/expire-all", None).0,
        200
    );
    let (status, body) = bearer(
        &app,
        "POST",
        "/api/admin/tokens/revoke",
        Some(serde_json::json!({ "all": true })),
    );
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)), "{body}");
    for (token, ip) in [(&ta, a), (&tb, b)] {
        let (s, v, _) = app.verify(Some(token), ip);
        assert_eq!((s, v["status"].as_str()), (403, Some("revoked")));
        let (s, v) = app.challenge_as(ip, serde_json::json!({ "refresh_token": token }));
        assert_eq!(s, 403, "no refresh challenge for a revoked token: {v}");
    }
    let after = app.metrics();
    let revoked = "powgate_tokens_total{event=\"revoked\"}";
    assert_eq!(metric(&after, revoked) - metric(&before, revoked), 2.0);
    let (_, body) = bearer(
        &app,
        "POST",
        "/api/admin/tokens/revoke",
        Some(serde_json::json!({ "all": true })),
    );
    assert_eq!(
        body["revoked"], 0,
        "already revoked ones are not counted again"
    );
}

#[test]
fn revoking_a_network_takes_every_token_used_from_it() {
    let app = app();
    let inside = "2001:db8:1:2::5";
    let t_inside = app.obtain_token(inside);
    // Issued elsewhere, then used from inside the network.
    let t_roamed = app.obtain_token("198.51.100.40");
    assert_eq!(app.verify(Some(&t_roamed), "2001:db8:1:9::1").0, 200);
    let t_v4 = app.obtain_token("203.0.113.7");
    let t_outside = app.obtain_token("2001:db8:2::1");

    let revoke = |net: &str| {
        bearer(
            &app,
            "POST",
            "/api/admin/tokens/revoke",
            Some(serde_json::json!({ "network": net })),
        )
    };
    let (status, body) = revoke("2001:db8:1::/48");
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)), "{body}");
    let (status, body) = revoke("203.0.113.0/24");
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)), "{body}");

    // Once expired, only the token outside both networks may be refreshed.
    let hours = i64::from(app.state.settings.get().token_hours);
    app.clock.advance(hours * 3600 + 1);
    for (token, ip) in [
        (&t_inside, inside),
        (&t_roamed, "198.51.100.40"),
        (&t_v4, "203.0.113.7"),
    ] {
        let (s, v) = app.challenge_as(ip, serde_json::json!({ "refresh_token": token }));
        assert_eq!(s, 403, "{ip}: {v}");
    }
    let (s, v) = app.challenge_as(
        "2001:db8:2::1",
        serde_json::json!({ "refresh_token": t_outside }),
    );
    assert_eq!((s, v["purpose"].as_str()), (200, Some("refresh")), "{v}");

    for bad in ["2001:db8::/129", "banana", "203.0.113.7", ""] {
        let (status, body) = revoke(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["field"], "network");
        assert!(body["message"].as_str().unwrap().contains("CIDR"), "{body}");
    }
    for body in [
        serde_json::json!({}),
        serde_json::json!({ "all": false }),
        serde_json::json!({ "all": true, "network": "2001:db8::/48" }),
        serde_json::json!({ "everything": true }),
    ] {
        let (status, resp) = bearer(&app, "POST", "/api/admin/tokens/revoke", Some(body.clone()));
        assert_eq!(status, 400, "{body}: {resp}");
    }
}

/// Issue 13, item 3: the admin form is drawn from `specs`, and `ranges`,
/// `settings` and `configured` must all come from that same table, or the
/// form would offer a value the PATCH refuses (or miss a setting).
#[test]
fn settings_answer_ranges_and_values_come_from_the_table_the_form_is_drawn_from() {
    let app = app();
    let (status, body) = bearer(&app, "GET", "/api/admin/settings", None);
    assert_eq!(status, 200, "{body}");
    let specs = body["specs"].as_array().expect("specs is a list");
    assert!(!specs.is_empty());
    let names: Vec<&str> = specs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for key in ["settings", "configured", "ranges"] {
        let mut keys: Vec<&str> = body[key]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = names.clone();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "{key} lists exactly the table's settings");
    }
    for spec in specs {
        let name = spec["name"].as_str().unwrap();
        let (min, max) = (spec["min"].as_u64().unwrap(), spec["max"].as_u64().unwrap());
        assert_eq!(
            body["ranges"][name],
            serde_json::json!([min, max]),
            "{name}"
        );
        assert!(!spec["label"].as_str().unwrap().is_empty(), "{name}");
        assert!(!spec["description"].as_str().unwrap().is_empty(), "{name}");
        assert!(spec["unit"].is_string(), "{name}");
        // The table's range is the one PATCH enforces.
        for (value, ok) in [(min, true), (max, true), (max + 1, false)] {
            let (status, body) = bearer(
                &app,
                "PATCH",
                "/api/admin/settings",
                Some(serde_json::json!({ name: value })),
            );
            assert_eq!(status == 200, ok, "{name}={value}: {body}");
        }
    }
    let (status, _) = bearer(&app, "DELETE", "/api/admin/settings", None);
    assert_eq!(status, 200);
}

/// Issue 19: the operator could find a token only by paging through the
/// list. A full token pasted into the search finds its row by its hash; it
/// travels in a POST body, so no access log gets it, and the answer never
/// contains it. An unknown token is a 404, a malformed one a 400, both JSON.
#[test]
fn a_full_token_finds_its_row_and_unknown_or_malformed_ones_do_not() {
    let app = app();
    let token = app.obtain_token(IP);
    let _other = app.obtain_token("198.51.100.30");
    let (status, body) = bearer(
        &app,
        "POST",
        "/api/admin/tokens/find",
        Some(serde_json::json!({ "token": format!("  {token}\n") })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["ips"], serde_json::json!([IP]), "{body}");
    assert_eq!(body["token"]["status"], "active");
    assert!(
        !body.to_string().contains(&token),
        "the answer never shows the token"
    );
    let (_, list) = bearer(&app, "GET", "/api/admin/tokens", None);
    let listed = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ips"] == serde_json::json!([IP]))
        .unwrap()
        .clone();
    assert_eq!(body["token"]["id"], listed["id"], "the row the list shows");

    let unknown = "0b0c3a8e-7d7b-4c1e-9a55-2f3b6c1d0e9f";
    let (status, body) = bearer(
        &app,
        "POST",
        "/api/admin/tokens/find",
        Some(serde_json::json!({ "token": unknown })),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    for bad in [
        serde_json::json!({ "token": "abc" }),
        serde_json::json!({ "token": 5 }),
        serde_json::json!({}),
    ] {
        let (status, body) = bearer(&app, "POST", "/api/admin/tokens/find", Some(bad));
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (status, _) = app.admin_call(
        "wrong-key-0123456789abc",
        "POST",
        "/api/admin/tokens/find",
        Some(serde_json::json!({ "token": token })),
    );
    assert_eq!(status, 401, "behind the admin key and its guessing limit");
}
