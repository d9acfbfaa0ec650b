//! Live settings and challenge acceptance (issue 12): concurrent admin
//! changes, stockpiled and forged challenges, and poisoned telemetry.

mod common;

use common::{TestApp, answer, solve, ticket};
use pow::wire::{ChallengeResponse, ReportedClass, SolveRequest, Telemetry};
use pow::{Argon2Params, ChallengeClaims, Difficulty, Purpose};
use powgate::client_ip::IpKey;

const KEY: &str = "test-admin-key-0123456789";
const IP: &str = "198.51.100.30";
/// The default `challenge_grace_secs`.
const GRACE: i64 = 120;

fn app() -> TestApp {
    TestApp::spawn_with(|c| c.admin_key = Some(KEY.into()))
}

fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    app.admin_call(KEY, method, path, body)
}

fn raise_difficulty(app: &TestApp, d: u64) {
    let (status, body) = admin(
        app,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty": d })),
    );
    assert_eq!(status, 200, "{body}");
}

/// POST /api/challenge as `ip`; status, `Retry-After` and body.
fn ask_challenge(app: &TestApp, ip: &str) -> (u16, Option<u64>, serde_json::Value) {
    let mut r = app
        .agent()
        .post(&app.url("/api/challenge"))
        .header("X-Real-IP", ip)
        .send_json(serde_json::json!({}))
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        r.status().as_u16(),
        retry,
        r.body_mut().read_json().unwrap(),
    )
}

fn argon2_runs(app: &TestApp) -> u64 {
    app.state.metrics.argon2_seconds.get_sample_count()
}

/// Claims as this server would issue them to `ip` now.
fn claims_for(app: &TestApp, ip: &str) -> ChallengeClaims {
    let now = app.state.now();
    ChallengeClaims {
        id: rand_id(),
        purpose: Purpose::New,
        issued_at: now,
        expires_at: now + 1800,
        difficulty: app.state.settings.get().difficulty,
        params: app.state.config.argon2,
        ip_key: IpKey::of(ip.parse().unwrap()).to_bytes(),
        ticket_bits: app.state.config.ticket_bits,
    }
}

fn rand_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).unwrap();
    id
}

/// What a client gets for `claims`, so the shared solver can solve them.
fn as_response(app: &TestApp, claims: &ChallengeClaims) -> ChallengeResponse {
    serde_json::from_value(serde_json::json!({
        "challenge": claims.sign(&app.state.challenge_key),
        "purpose": "new",
        "salt": hex::encode(claims.id),
        "argon2": claims.params,
        "difficulty": claims.difficulty.get(),
        "target": hex::encode(claims.difficulty.target()),
        "issued_at": claims.issued_at,
        "expires_at": claims.expires_at,
        "ticket_bits": claims.ticket_bits,
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------
// Item 2: concurrent PATCHes, item 4: negative difficulty.

#[test]
fn concurrent_patches_of_different_fields_all_survive() {
    let app = app();
    let fields = [
        "difficulty",
        "challenge_timeout",
        "token_hours",
        "token_max_ips",
        "max_tokens_per_ip",
    ];
    let mut last = 0;
    for round in 0..20 {
        let value = 10 + round;
        std::thread::scope(|s| {
            for field in fields {
                let app = &app;
                s.spawn(move || {
                    let (status, body) = admin(
                        app,
                        "PATCH",
                        "/api/admin/settings",
                        Some(serde_json::json!({ field: value })),
                    );
                    assert_eq!(status, 200, "{body}");
                });
            }
        });
        let (_, view) = admin(&app, "GET", "/api/admin/settings", None);
        for field in fields {
            assert_eq!(
                view["settings"][field], value,
                "round {round}: {field} lost"
            );
        }
        last = value;
    }
    let app = app.restart();
    let (_, view) = admin(&app, "GET", "/api/admin/settings", None);
    for field in fields {
        assert_eq!(view["settings"][field], last, "{field} after a restart");
    }
}

#[test]
fn patch_with_a_negative_difficulty_reports_what_was_sent() {
    let app = app();
    let (status, body) = admin(
        &app,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty": -7 })),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("-7 is out of range"), "{message}");
}

// ---------------------------------------------------------------------------
// Stockpiles: bounded per address and network, and dead after a raise.

/// Submits each of `reqs` and checks it is refused with 410 and a message
/// containing `says`, before any argon2 run.
fn refused_without_hashing(app: &TestApp, reqs: &[SolveRequest], says: &str) {
    let runs = argon2_runs(app);
    for req in reqs {
        let (status, body, _) = app.submit(IP, req);
        assert_eq!(status, 410, "{body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    assert_eq!(argon2_runs(app), runs, "refused before any argon2 work");
}

/// A submission of `claims`, signed with the server's own key.
fn signed(app: &TestApp, claims: &ChallengeClaims, nonce: u64) -> SolveRequest {
    SolveRequest {
        challenge: claims.sign(&app.state.challenge_key),
        nonce,
        ticket: Some(pow::ticket::solve(&claims.id, claims.ticket_bits)),
        refresh_token: None,
        telemetry: None,
        redir: None,
    }
}

#[test]
fn stockpiled_challenges_are_refused_after_a_raise_once_the_grace_is_over() {
    let app = app();
    let stockpile: Vec<SolveRequest> = (0..5).map(|_| answer(&app.new_challenge(IP))).collect();
    raise_difficulty(&app, 64);
    app.clock.advance(GRACE + 1);
    refused_without_hashing(&app, &stockpile, "request a new challenge");
    let fresh = app.new_challenge(IP);
    assert_eq!(fresh.difficulty, 64);
    assert_eq!(app.submit(IP, &answer(&fresh)).0, 200);
}

#[test]
fn a_challenge_issued_before_a_raise_is_accepted_within_the_grace() {
    let app = app();
    let mid_solve = answer(&app.new_challenge(IP));
    raise_difficulty(&app, 64);
    app.clock.advance(GRACE - 10);
    let (status, body, _) = app.submit(IP, &mid_solve);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn one_address_cannot_stockpile_more_than_its_open_challenge_bound() {
    let app = TestApp::spawn_with(|c| {
        c.max_open_challenges_per_ip = 3;
        c.max_open_challenges_per_network = 100;
    });
    let held: Vec<ChallengeResponse> = (0..3).map(|_| app.new_challenge(IP)).collect();
    let (status, retry, body) = ask_challenge(&app, IP);
    assert_eq!(status, 429, "{body}");
    let retry = retry.expect("Retry-After");
    assert!((1..=1800).contains(&retry), "{retry}");
    assert!(
        app.metrics()
            .contains(r#"powgate_limited_total{limit="open_challenges_per_ip"} 1"#)
    );
    assert_eq!(
        ask_challenge(&app, "198.51.100.31").0,
        200,
        "another address"
    );

    // Spending one frees its slot.
    assert_eq!(app.submit(IP, &answer(&held[0])).0, 200);
    assert_eq!(ask_challenge(&app, IP).0, 200);
    assert_eq!(ask_challenge(&app, IP).0, 429);

    // So does expiry.
    app.clock.advance(30 * 60);
    assert_eq!(ask_challenge(&app, IP).0, 200);
}

#[test]
fn one_network_cannot_stockpile_through_many_addresses() {
    let app = TestApp::spawn_with(|c| {
        c.max_open_challenges_per_ip = 100;
        c.max_open_challenges_per_network = 4;
    });
    for i in 1..=4 {
        assert_eq!(ask_challenge(&app, &format!("203.0.113.{i}")).0, 200);
    }
    let (status, retry, body) = ask_challenge(&app, "203.0.113.5");
    assert_eq!((status, retry.is_some()), (429, true), "{body}");
    assert!(
        app.metrics()
            .contains(r#"powgate_limited_total{limit="open_challenges_per_network"} 1"#)
    );
    assert_eq!(ask_challenge(&app, "203.0.114.5").0, 200, "another /24");

    // IPv6: four /64s of one /48 share its bound.
    for i in 1..=4 {
        assert_eq!(ask_challenge(&app, &format!("2001:db8:7:{i}::1")).0, 200);
    }
    assert_eq!(ask_challenge(&app, "2001:db8:7:5::1").0, 429);
    assert_eq!(ask_challenge(&app, "2001:db8:8::1").0, 200, "another /48");
}

// ---------------------------------------------------------------------------
// Forged claims: a leaked key must not mint cheap challenges.

#[test]
fn a_validly_signed_challenge_with_other_argon2_params_is_refused_without_hashing() {
    let app = app();
    let mut claims = claims_for(&app, IP);
    claims.params = Argon2Params::new(1, 8, 1, 32).unwrap();
    assert_ne!(claims.params, app.state.config.argon2);
    let ch = as_response(&app, &claims);
    let req = SolveRequest {
        challenge: ch.challenge.clone(),
        nonce: solve(&ch),
        ticket: ticket(&ch),
        refresh_token: None,
        telemetry: None,
        redir: None,
    };
    refused_without_hashing(&app, &[req], "argon2 parameters");
}

#[test]
fn a_validly_signed_challenge_below_the_difficulty_floor_is_refused_without_hashing() {
    let app = app();
    let mut claims = claims_for(&app, IP);
    // Difficulty 1: every nonce wins.
    claims.difficulty = Difficulty::new(1).unwrap();
    refused_without_hashing(&app, &[signed(&app, &claims, 0)], "request a new challenge");

    // A refresh needs half the difficulty, not less.
    let mut refresh = claims_for(&app, IP);
    refresh.purpose = Purpose::Refresh { token_id: 1 };
    refresh.difficulty = Difficulty::new(1).unwrap();
    assert_eq!(app.submit(IP, &signed(&app, &refresh, 0)).0, 410);
}

// ---------------------------------------------------------------------------
// Telemetry: a few lying clients must not steer the admin's estimates.

const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
];

fn solve_reporting(app: &TestApp, user_agent: &str, telemetry: Telemetry) {
    solve_reporting_from(app, IP, user_agent, telemetry);
}

fn solve_reporting_from(app: &TestApp, ip: &str, user_agent: &str, telemetry: Telemetry) {
    solve_reporting_json(
        app,
        ip,
        user_agent,
        serde_json::to_value(telemetry).unwrap(),
    );
}

/// Solves with `telemetry` as raw JSON, for what `Telemetry` cannot spell.
fn solve_reporting_json(app: &TestApp, ip: &str, user_agent: &str, telemetry: serde_json::Value) {
    let ch = app.new_challenge(ip);
    let mut req = serde_json::to_value(answer(&ch)).unwrap();
    req["telemetry"] = telemetry;
    let mut r = app
        .agent()
        .post(&app.url("/api/solve"))
        .header("X-Real-IP", ip)
        .header("User-Agent", user_agent)
        .send_json(&req)
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
}

fn device_classes(app: &TestApp) -> serde_json::Value {
    let (status, stats) = admin(app, "GET", "/api/admin/stats", None);
    assert_eq!(status, 200, "{stats}");
    stats
}

#[test]
fn poisoned_telemetry_leaves_the_estimates_at_the_reference() {
    let app = app();
    for ua in USER_AGENTS {
        for _ in 0..5 {
            for t in [
                Telemetry {
                    hashes: Some(u64::MAX),
                    elapsed_ms: Some(1_000),
                    workers: Some(2),
                    class: None,
                },
                Telemetry {
                    hashes: Some(4),
                    elapsed_ms: Some(u64::MAX),
                    workers: Some(2),
                    class: None,
                },
                // Too slow: one hash in a second is far below any phone at
                // these parameters, a lie to make the page look slow.
                Telemetry {
                    hashes: Some(1),
                    elapsed_ms: Some(1_000),
                    workers: Some(2),
                    class: None,
                },
            ] {
                solve_reporting(&app, ua, t);
            }
        }
    }
    let stats = device_classes(&app);
    assert_eq!(stats["solve_time"]["samples"], 0, "{stats}");
    for class in stats["device_classes"].as_array().unwrap() {
        assert_eq!(class["source"], "reference", "{class}");
        assert_eq!(class["exceeds_timeout"], false, "{class}");
    }
    assert!(
        app.metrics()
            .contains("powgate_client_solve_seconds_count 0")
    );
}

#[test]
fn honest_telemetry_still_replaces_the_reference() {
    let app = app();
    // 200 hashes in 100 ms: plausible at the tests' tiny argon2 parameters.
    // Five networks, since each counts once in the estimates.
    for n in 0..5 {
        solve_reporting_from(
            &app,
            &format!("198.51.{n}.30"),
            USER_AGENTS[0],
            Telemetry {
                hashes: Some(200),
                elapsed_ms: Some(100),
                workers: Some(1),
                class: Some(ReportedClass::Desktop),
            },
        );
    }
    let stats = device_classes(&app);
    let desktop = &stats["device_classes"][0];
    assert_eq!(desktop["class"], "desktop", "{stats}");
    assert_eq!(desktop["source"], "measured", "{desktop}");
    assert_eq!(desktop["hash_rate"], 2000.0, "{desktop}");
    assert_eq!(stats["solve_time"]["samples"], 5);
}

/// Issue 13: an Android browser without "Chrome" in its User-Agent is a
/// phone to the page but "Safari / iOS" to the server's User-Agent rule, so
/// its solves landed in the wrong class. The class the page reports wins; a
/// name the server does not know is no browser class (issue 19).
#[test]
fn reported_device_class_wins_and_an_unknown_one_is_other() {
    let app = app();
    let android_webview = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Mobile Safari/537.36";
    let honest = |class: &str| serde_json::json!({ "hashes": 200, "elapsed_ms": 100, "workers": 1, "class": class });
    solve_reporting_json(&app, "198.51.1.30", android_webview, honest("phone"));
    solve_reporting_json(&app, "198.51.2.30", USER_AGENTS[0], honest("toaster"));
    let stats = device_classes(&app);
    let samples = |class: &str| {
        stats["device_classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["class"] == class)
            .unwrap()["samples"]
            .clone()
    };
    assert_eq!(samples("phone"), 1, "{stats}");
    assert_eq!(samples("safari_ios"), 0, "{stats}");
    assert_eq!(samples("desktop"), 0, "{stats}");
    assert_eq!(stats["other_clients"]["samples"], 1, "{stats}");
}

/// Issue 19: `powgate solve` (User-Agent `ureq/…`, no class in its
/// telemetry) counted as a desktop, so one CLI solve moved the desktop
/// estimate from 166 to 623 H/s, and a bot farm would make the operator
/// underestimate what visitors wait. Non-browser solves, even ones that
/// claim a browser class, are counted apart and move no browser estimate,
/// nor the phone rate adaptive difficulty reads, nor the visitors' times.
#[test]
fn cli_solves_do_not_move_the_desktop_or_phone_estimates() {
    let app = app();
    let before = device_classes(&app);
    for n in 0..6 {
        for (ua, class) in [
            ("ureq/3.1.2", None),
            ("curl/8.5.0", Some(ReportedClass::Desktop)),
            ("python-requests/2.31", Some(ReportedClass::Phone)),
        ] {
            solve_reporting_from(
                &app,
                &format!("198.51.{n}.30"),
                ua,
                Telemetry {
                    hashes: Some(200),
                    elapsed_ms: Some(100),
                    workers: Some(8),
                    class,
                },
            );
        }
    }
    let after = device_classes(&app);
    assert_eq!(after["device_classes"], before["device_classes"], "{after}");
    assert_eq!(after["solve_time"]["samples"], 0, "{after}");
    let other = &after["other_clients"];
    assert_eq!(other["source"], "measured", "{other}");
    assert_eq!(other["samples"], 6, "{other}");
    assert_eq!(other["hash_rate"], 2000.0, "{other}");
}

#[test]
fn one_network_cannot_supply_the_measured_rate_alone() {
    let app = app();
    for _ in 0..8 {
        solve_reporting(
            &app,
            USER_AGENTS[0],
            Telemetry {
                hashes: Some(200),
                elapsed_ms: Some(100),
                workers: Some(1),
                class: Some(ReportedClass::Desktop),
            },
        );
    }
    let stats = device_classes(&app);
    assert_eq!(stats["device_classes"][0]["source"], "reference", "{stats}");
}
