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
        token_max_ips: 2,
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
        let app = TestApp::spawn_with(|c| c.set_live("token_max_ips", max_ips));
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
    // One verification thread, so the flood and the visitors contend for it.
    let app = TestApp::spawn_with(|c| {
        c.set_live("difficulty_level", 50);
        c.verify_permits = Some(1);
    });
    for shape in [FloodShape::Concentrated, FloodShape::Scattered] {
        let penalised_before = app.turns_by_bucket().1;
        let plan = Plan {
            visitors: 3,
            visitor_rate: 0.0,
            visits: 3,
            visitor_uses: 2,
            flood_threads: 2,
            flood_shape: shape,
            // One address per flood thread, each in a network of its own
            // in the scattered shape, so every flood thread's second
            // submission comes from an address that already sent garbage.
            flood_addresses: 2,
            ..Plan::default()
        };
        let outcome = personas::run(&target(&app), &plan);
        // The defence at work, not only its outcome: the flood's networks
        // were penalised, so some of its submissions waited in worse
        // buckets (without reputation every turn is in bucket 0).
        assert!(
            app.turns_by_bucket().1 > penalised_before,
            "{shape:?}: no turn in a penalised bucket"
        );
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

/// The simulator reads the per-verdict verification counter when the server
/// has it, and otherwise the argon2 histogram, so "verification CPU spent on
/// garbage" is reported against servers with or without the counter.
#[test]
fn verification_seconds_are_read_per_verdict_or_from_the_argon2_histogram() {
    use personas::VerifySeconds;
    let histogram_only = "# TYPE powgate_argon2_verify_seconds histogram\n\
        powgate_argon2_verify_seconds_bucket{le=\"+Inf\"} 7\n\
        powgate_argon2_verify_seconds_sum 2.5\n\
        powgate_argon2_verify_seconds_count 7\n";
    let v = VerifySeconds::parse(histogram_only);
    assert!(!v.by_verdict);
    assert!(
        (v.total - 2.5).abs() < 1e-9 && (v.count - 7.0).abs() < 1e-9,
        "{v:?}"
    );

    let by_verdict = format!(
        "{histogram_only}powgate_verify_seconds_total{{verdict=\"valid\"}} 0.5\n\
         powgate_verify_seconds_total{{verdict=\"wrong\"}} 2\n"
    );
    let v = VerifySeconds::parse(&by_verdict);
    assert!(v.by_verdict);
    assert!(
        (v.wrong - 2.0).abs() < 1e-9 && (v.valid - 0.5).abs() < 1e-9,
        "{v:?}"
    );
    assert!((v.total - 2.5).abs() < 1e-9, "{v:?}");
}

/// A live server's /metrics parses, and a garbage flood shows up as
/// verification seconds.
#[test]
fn a_garbage_flood_is_counted_in_the_servers_verification_seconds() {
    let app = TestApp::spawn_with(|c| c.set_live("difficulty_level", 1_000_000));
    let before = personas::VerifySeconds::scrape(&app.url("/metrics")).expect("metrics");
    let plan = Plan {
        flood_threads: 1,
        ..Plan::default()
    };
    let outcome = personas::run(&Target::new(&app.url(""), "X-Real-IP", 60.0, 40), &plan);
    let after = personas::VerifySeconds::scrape(&app.url("/metrics")).expect("metrics");
    let spent = after.since(before);
    let garbage = outcome["flooder"]
        .solve_answers
        .get("403 wrong_answer")
        .copied()
        .unwrap_or(0);
    assert!(garbage > 0, "{:?}", outcome["flooder"]);
    assert!(spent.count >= 1.0 && spent.total > 0.0, "{spent:?}");
}

/// Every simulated address is in 198.18.0.0/15 or 2001:db8::/32, and the
/// scattered flood's 4000 addresses share no IPv4 /24 or IPv6 /48, so
/// network limits alone cannot tell them apart.
#[test]
fn simulated_addresses_stay_in_reserved_ranges_and_the_scattered_flood_shares_no_network() {
    use personas::address;
    use std::collections::HashSet;
    use std::net::IpAddr;
    let bench: ipnet::IpNet = "198.18.0.0/15".parse().unwrap();
    let docs: ipnet::IpNet = "2001:db8::/32".parse().unwrap();
    let network = |ip: IpAddr| -> ipnet::IpNet {
        match ip {
            IpAddr::V4(_) => ipnet::IpNet::new(ip, 24).unwrap().trunc(),
            IpAddr::V6(_) => ipnet::IpNet::new(ip, 48).unwrap().trunc(),
        }
    };
    let mut rng = support::Rng(7);
    let mut scattered = HashSet::new();
    let mut all: Vec<String> = Vec::new();
    for k in 0..4000 {
        let ip = address::flood(FloodShape::Scattered, k, &mut rng);
        let parsed: IpAddr = ip.parse().unwrap();
        assert!(scattered.insert(network(parsed)), "{ip} shares a network");
        all.push(ip);
        all.push(address::flood(FloodShape::Concentrated, k, &mut rng));
    }
    all.extend((0..300).map(address::visitor));
    all.extend((0..300).map(address::botnet));
    all.extend((0..64).map(address::scraper));
    all.extend((0..300).map(address::replayer_share));
    all.push(address::REPLAYER.into());
    for ip in &all {
        let parsed: IpAddr = ip.parse().unwrap_or_else(|_| panic!("{ip}"));
        assert!(bench.contains(&parsed) || docs.contains(&parsed), "{ip}");
    }
    // The visitors never share a network with the flood.
    for i in 0..300 {
        let v = network(address::visitor(i).parse().unwrap());
        assert!(!scattered.contains(&v), "visitor {i} in a flood network");
    }
}
