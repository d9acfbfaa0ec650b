//! Adaptive difficulty through the real server (issue 15 items 2–4): the
//! difficulty `/api/challenge` signs follows the client's network score
//! and the pressure, decays back, can be pinned, and is explained by
//! `/api/admin/difficulty`.

mod common;

use common::{TestApp, answer, wrong_nonce};
use pow::wire::ChallengeResponse;

const KEY: &str = "test-admin-key-0123456789";
/// The test configuration's base difficulty.
const BASE: u64 = 4;
/// The default half-life, 30 minutes.
const HALF_LIFE_SECS: i64 = 30 * 60;

/// A server with adaptive difficulty on (the tests' configuration pins it)
/// and the live `settings` given.
fn app_with(settings: &[(&str, u64)]) -> TestApp {
    let settings: Vec<(String, u64)> = settings.iter().map(|(k, v)| ((*k).into(), *v)).collect();
    TestApp::spawn_with(move |c| {
        c.admin_key = Some(KEY.into());
        c.set_live("difficulty_pinned", 0);
        for (name, value) in settings {
            c.set_live(&name, value);
        }
    })
}

/// The difficulty the challenge signs, checked against what the response
/// says: the verifier trusts only the signed one.
fn signed_difficulty(app: &TestApp, ch: &ChallengeResponse) -> u64 {
    let claims = pow::challenge::verify(&app.state.challenge_key, &ch.challenge).unwrap();
    assert_eq!(claims.difficulty.get(), ch.difficulty);
    ch.difficulty
}

/// `n` challenges from `n` addresses of `net` (`192.0.2` for
/// 192.0.2.10, .11, …), each answered wrongly: one failure per address, so
/// each reaches the /24 in full (one address alone brings its network at
/// most half a step).
fn fail(app: &TestApp, net: &str, n: usize) {
    for i in 0..n {
        let ip = format!("{net}.{}", 10 + i);
        let ch = app.new_challenge(&ip);
        let mut bad = answer(&ch);
        bad.nonce = wrong_nonce(&ch);
        let (status, body, _) = app.submit(&ip, &bad);
        assert_eq!(body["error"], "wrong_answer", "{status}: {body}");
    }
}

fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[test]
fn a_network_that_fails_many_challenges_is_quoted_more_then_decays_back_to_base() {
    let app = app_with(&[("pressure_difficulty_max", 1)]);
    // 16 wrong answers: 16 × (1 unsolved issue + 2) = 48 on the address
    // and on its /24, three steps: ×8.
    fail(&app, "192.0.2", 16);
    let neighbour = app.new_challenge("192.0.2.99");
    let clean = app.new_challenge("198.51.100.1");
    assert_eq!(signed_difficulty(&app, &clean), BASE);
    assert_eq!(signed_difficulty(&app, &neighbour), BASE * 8);
    // The multiplied challenge is one the verifier accepts.
    let (status, body, _) = app.submit("192.0.2.99", &answer(&neighbour));
    assert_eq!(status, 200, "{body}");
    // Three half-lives later the /24 is back at the base.
    app.clock.advance(3 * HALF_LIFE_SECS);
    assert_eq!(
        signed_difficulty(&app, &app.new_challenge("192.0.2.99")),
        BASE
    );
    // While it failed, its own challenges rose a step per 16 points (3 per
    // failure): six at ×1, five at ×2, five at ×4; then the neighbour's ×8
    // and two at ×1.
    let text = app.metrics();
    for (le, count) in [("1", 8), ("2", 13), ("4", 18), ("8", 19)] {
        let line = format!("powgate_challenge_network_multiplier_bucket{{le=\"{le}\"}} {count}");
        assert!(text.contains(&line), "{line} in {text}");
    }
}

#[test]
fn pinning_the_difficulty_turns_both_multipliers_off() {
    let app = app_with(&[("pressure_baseline_per_minute", 1)]);
    fail(&app, "192.0.2", 16);
    assert!(signed_difficulty(&app, &app.new_challenge("192.0.2.11")) > BASE);
    let (status, body) = app.admin_call(
        KEY,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty_pinned": 1 })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        signed_difficulty(&app, &app.new_challenge("192.0.2.11")),
        BASE
    );
    assert_eq!(metric(&app, "powgate_pressure_multiplier"), 1.0);
}

#[test]
fn a_burst_of_challenges_raises_the_pressure_and_it_falls_after_30_seconds() {
    let app = app_with(&[
        ("pressure_baseline_per_minute", 1),
        ("network_difficulty_max", 1),
    ]);
    assert_eq!(metric(&app, "powgate_pressure_multiplier"), 1.0);
    // Two challenges in the window: 4 per minute against 1, ×4.
    for n in 0..2 {
        app.new_challenge(&format!("198.51.{n}.1"));
    }
    let surge = app.new_challenge("203.0.113.5");
    assert_eq!(signed_difficulty(&app, &surge), BASE * 4);
    // Three in the window now: 6 per minute, still ×4.
    assert_eq!(metric(&app, "powgate_pressure_multiplier"), 4.0);
    assert_eq!(metric(&app, "powgate_pressure_challenges_per_minute"), 6.0);
    assert_eq!(metric(&app, "powgate_pressure_baseline_per_minute"), 1.0);
    app.clock.advance(30);
    assert_eq!(metric(&app, "powgate_pressure_multiplier"), 1.0);
    let calm = app.new_challenge("203.0.113.6");
    assert_eq!(signed_difficulty(&app, &calm), BASE);
    // The challenge issued at ×4 is still good once the pressure fell.
    let (status, body, _) = app.submit("203.0.113.5", &answer(&surge));
    assert_eq!(status, 200, "{body}");
}

/// A refresh costs half of what a new challenge would now: the pressure
/// applies to it too, and it is accepted.
#[test]
fn a_refresh_challenge_costs_half_the_multiplied_difficulty() {
    let app = app_with(&[
        ("pressure_baseline_per_minute", 1),
        ("network_difficulty_max", 1),
    ]);
    let ip = "203.0.113.7";
    let token = app.obtain_token(ip);
    app.clock.advance(24 * 3600);
    for n in 0..2 {
        app.new_challenge(&format!("198.51.{n}.1"));
    }
    let (status, v) = app.challenge_as(ip, serde_json::json!({ "refresh_token": token }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["purpose"], "refresh");
    let ch: ChallengeResponse = serde_json::from_value(v).unwrap();
    assert_eq!(signed_difficulty(&app, &ch), BASE * 4 / 2);
    let mut req = answer(&ch);
    req.refresh_token = Some(token);
    let (status, body, _) = app.submit(ip, &req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refreshed"], true);
}

#[test]
fn the_admin_difficulty_endpoint_explains_a_network() {
    let app = app_with(&[("pressure_difficulty_max", 1)]);
    fail(&app, "192.0.2", 16);
    let (status, v) = app.admin_call(KEY, "GET", "/api/admin/difficulty?ip=192.0.2.0/24", None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ip"], "192.0.2.0/24");
    assert_eq!(v["base"], BASE);
    assert_eq!(v["pinned"], false);
    assert_eq!(v["difficulty"], BASE * 8);
    assert_eq!(v["refresh_difficulty"], BASE * 4);
    let net = &v["network"];
    assert_eq!(net["decided_by"]["holder"], "192.0.2.0/24");
    assert_eq!(
        (net["k"].as_u64(), net["multiplier"].as_u64()),
        (Some(3), Some(8))
    );
    let score = net["decided_by"]["score"].as_f64().unwrap();
    assert!((47.0..=48.0).contains(&score), "{score}");
    assert_eq!(net["threshold"], 16.0);
    assert_eq!(net["half_life_minutes"], 30);
    assert_eq!(v["pressure"]["multiplier"], 1);
    // Only the challenges issued while the /24 was unpriced count in the
    // pressure: before each, 3 per earlier failure, below 16 for six.
    assert_eq!(v["pressure"]["challenges_last_30s"], 6);
    assert_eq!(v["phone_cap"]["source"], "reference");
    assert_eq!(v["holders"].as_array().unwrap().len(), 1);
    // An address in it: its own score and its /24's.
    let (_, v) = app.admin_call(KEY, "GET", "/api/admin/difficulty?ip=192.0.2.77", None);
    let holders: Vec<&str> = v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["holder"].as_str().unwrap())
        .collect();
    assert_eq!(holders, ["192.0.2.77", "192.0.2.0/24"]);
    assert_eq!(v["holders"][0]["score"], 0.0);
    assert_eq!(v["difficulty"], BASE * 8);
    // Nobody in particular: base and pressure.
    let (_, v) = app.admin_call(KEY, "GET", "/api/admin/difficulty", None);
    assert_eq!(
        (v["difficulty"].as_u64(), v["ip"].is_null()),
        (Some(BASE), true)
    );
    // Bad input is a 400 with the JSON error, and the route needs the key.
    for bad in ["?ip=banana", "?ip=10.0.0.0/8", "?nope=1"] {
        let (status, v) = app.admin_call(KEY, "GET", &format!("/api/admin/difficulty{bad}"), None);
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let (status, _) = app.admin_call("wrong-key", "GET", "/api/admin/difficulty", None);
    assert_eq!(status, 401);
}

/// The address limit is one of the events: a token shared beyond its
/// addresses raises the network of the address that was refused.
#[test]
fn address_limit_refusals_raise_the_refused_network() {
    let app = app_with(&[("pressure_difficulty_max", 1), ("token_max_ips", 1)]);
    let token = app.obtain_token("198.51.100.1");
    // 4 refusals × 4 = 16: one step for 192.0.2.0/24.
    for n in 0..4 {
        let (status, _, _) = app.verify(Some(&token), &format!("192.0.2.{n}"));
        assert_eq!(status, 403);
    }
    assert_eq!(
        signed_difficulty(&app, &app.new_challenge("192.0.2.200")),
        BASE * 2
    );
}

#[test]
fn metrics_count_the_networks_scored() {
    let app = app_with(&[]);
    assert_eq!(metric(&app, "powgate_networks_scored"), 0.0);
    app.new_challenge("192.0.2.1");
    app.new_challenge("2001:db8::1");
    // Each: the address and its /24 or /48.
    assert_eq!(metric(&app, "powgate_networks_scored"), 4.0);
}

/// A phone on its third network with a two-address token sends every
/// subresource of a page to the same `ip_limit` refusal: fifty refusals
/// counted fifty times priced its next challenge at the ceiling. One token
/// refused from one address counts once.
#[test]
fn a_token_refused_again_and_again_from_one_address_counts_once() {
    let app = app_with(&[("pressure_difficulty_max", 1), ("token_max_ips", 1)]);
    let token = app.obtain_token("198.51.100.1");
    for _ in 0..50 {
        let (status, _, _) = app.verify(Some(&token), "192.0.2.7");
        assert_eq!(status, 403);
    }
    assert_eq!(
        signed_difficulty(&app, &app.new_challenge("192.0.2.200")),
        BASE
    );
}

/// A token that uses up its lifetime budget feeds its network's score,
/// once, at the request that used it up: two exhausted tokens (2 × 8)
/// and their two mints (2 × 1) are a step. The refusals after it, fifty
/// here, add nothing; one exhausted token alone (8 + 1) is none.
#[test]
fn an_exhausted_budget_counts_once_against_its_network() {
    let app = app_with(&[("pressure_difficulty_max", 1), ("token_requests_total", 3)]);
    for n in 0..2 {
        if n == 1 {
            assert_eq!(
                signed_difficulty(&app, &app.new_challenge("192.0.2.201")),
                BASE
            );
        }
        let ip = format!("192.0.2.{n}");
        let token = app.obtain_token(&ip);
        for _ in 0..3 {
            assert_eq!(app.verify(Some(&token), &ip).0, 200);
        }
        for _ in 0..25 {
            let (status, body, _) = app.verify(Some(&token), &ip);
            assert_eq!((status, body["status"].as_str()), (401, Some("exhausted")));
        }
    }
    assert_eq!(
        signed_difficulty(&app, &app.new_challenge("192.0.2.200")),
        BASE * 2
    );
}

/// One address sending wrong answers without end priced everyone behind
/// its carrier-grade NAT or office /24 at the ceiling. Its own address
/// still is; its network only as far as half a step.
#[test]
fn one_address_failing_without_end_does_not_price_its_network() {
    let app = app_with(&[("pressure_difficulty_max", 1)]);
    let ip = "192.0.2.10";
    for _ in 0..40 {
        let ch = app.new_challenge(ip);
        let mut bad = answer(&ch);
        bad.nonce = wrong_nonce(&ch);
        app.submit(ip, &bad);
    }
    assert_eq!(signed_difficulty(&app, &app.new_challenge(ip)), BASE * 16);
    assert_eq!(
        signed_difficulty(&app, &app.new_challenge("192.0.2.11")),
        BASE
    );
}
