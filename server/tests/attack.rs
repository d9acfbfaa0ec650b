//! The attack simulator's personas (`examples/attack`) against a test
//! server with tiny argon2 parameters, asserting what the defence must
//! hold, never timings: replays and a concurrent double submit buy no extra
//! token, a shared token passes from at most `token_max_ips` addresses, and
//! every real visitor gets through a small garbage flood.
//!
//! The personas are included from the example's own file, so this runs the
//! code the benchmark (`scripts/bench-attack.sh`) runs, not a copy.

mod common;

#[path = "../examples/support/mod.rs"]
mod support;

#[path = "../examples/attack/personas.rs"]
mod personas;

use common::TestApp;
use personas::{FloodShape, Plan, Target};
use powgate::config::DifficultyValue;

/// Long enough never to cut a run short on a slow machine; the finite
/// personas end each run well before.
const BOUND_SECS: f64 = 120.0;

fn target(app: &TestApp) -> Target {
    Target::new(&app.url(""), "X-Real-IP", BOUND_SECS, 1_000_000)
}

#[test]
fn replayed_and_double_submitted_solutions_buy_no_extra_token() {
    let app = TestApp::spawn();
    let plan = Plan {
        replayer: true,
        replayer_addresses: 20,
        double_submit: 100,
        token_max_ips: app.raw.token_max_ips,
        ..Plan::default()
    };
    let outcome = personas::run(&target(&app), &plan);
    let r = &outcome["replayer"];
    assert_eq!(r.double_submit_tokens, Some(1), "{r:?}");
    assert_eq!(r.extra_tokens, 0, "{r:?}");
    // The honest token and the double submit's one: no more, no fewer.
    assert_eq!(r.tokens, 2, "{r:?}");
}

#[test]
fn a_token_shared_across_many_addresses_passes_from_at_most_token_max_ips() {
    for max_ips in [1, 3] {
        let app = TestApp::spawn_with(|c| c.token_max_ips = max_ips);
        let plan = Plan {
            replayer: true,
            replayer_addresses: 30,
            double_submit: 0,
            token_max_ips: max_ips,
            ..Plan::default()
        };
        let outcome = personas::run(&target(&app), &plan);
        let r = &outcome["replayer"];
        // The solving address may hold one of the token's places, so at
        // least max_ips - 1 sharing addresses get through, and never more
        // than max_ips.
        assert!(
            r.shared_token_addresses_passed <= max_ips
                && r.shared_token_addresses_passed + 1 >= max_ips,
            "max_ips {max_ips}: {r:?}"
        );
        assert!(r.refused > 0, "the other addresses were refused: {r:?}");
    }
}

#[test]
fn every_visitor_gets_a_token_during_a_small_garbage_flood() {
    // A difficulty at which a random nonce is almost never right, so the
    // flood is garbage; tiny argon2 keeps the visitors' honest solves fast.
    let app = TestApp::spawn_with(|c| c.difficulty_level = DifficultyValue::Number(50));
    for shape in [FloodShape::Concentrated, FloodShape::Scattered] {
        let plan = Plan {
            visitors: 3,
            visitor_rate: 0.0,
            visits: 3,
            visitor_uses: 2,
            flood_threads: 2,
            flood_shape: shape,
            flood_addresses: 500,
            ..Plan::default()
        };
        let outcome = personas::run(&target(&app), &plan);
        let v = &outcome["visitor"];
        assert_eq!(v.visits_ok, 9, "{shape:?}: {v:?}");
        assert_eq!(v.success_rate(), Some(1.0), "{shape:?}: {v:?}");
        assert_eq!(v.passed, 18, "each token works: {v:?}");
        let f = &outcome["flooder"];
        let garbage: u64 = f
            .solve_answers
            .iter()
            .filter(|(k, _)| k.starts_with("403"))
            .map(|(_, n)| n)
            .sum();
        assert!(garbage > 0, "the flood reached verification: {f:?}");
    }
}
