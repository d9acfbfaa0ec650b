//! Two powgate instances on one PostgreSQL act as one: what one issues,
//! spends, records, revokes or changes holds on the other, at once or
//! within a second (issue 17). Each instance is a whole server with its own
//! caches, runtime and pool, as two processes would be.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TestApp;
use common::postgres::TestDatabase;

const KEY: &str = "test-admin-key-0123456789abcdef0123";

/// An instance on `db`, with an admin key; `f` adjusts its configuration.
fn instance(db: &TestDatabase, f: impl Fn(&mut powgate::config::RawConfig)) -> TestApp {
    let url = db.plain_url();
    TestApp::spawn_with(|c| {
        c.database = PathBuf::from(&url);
        c.admin_key = Some(KEY.into());
        f(c);
    })
}

fn two_instances(
    f: impl Fn(&mut powgate::config::RawConfig),
) -> Option<(TestDatabase, TestApp, TestApp)> {
    let db = TestDatabase::create_blocking()?;
    let a = instance(&db, &f);
    let b = instance(&db, &f);
    Some((db, a, b))
}

/// Has `app` read `token` into its cache. A few times over: a read that
/// races the instance's first purge at start-up is not cached (the purge
/// bumps the cache's generation), and the tests below need it cached.
fn cache_on(app: &TestApp, token: &str) {
    for _ in 0..4 {
        assert_eq!(app.verify(Some(token), "203.0.113.1").0, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; how long it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_token_solved_on_one_instance_passes_verify_token_on_the_other() {
    let Some((_db, a, b)) = two_instances(|_| {}) else {
        return;
    };
    let token = a.obtain_token("203.0.113.1");
    let (status, body, _) = b.verify(Some(&token), "203.0.113.1");
    assert_eq!(status, 200, "{body}");
}

/// The challenge key is shared through the database, and the spend is one
/// insert on a primary key: 100 concurrent submissions of one solution,
/// half to each instance, make exactly one token.
#[test]
fn one_solution_sent_to_both_instances_100_times_at_once_yields_exactly_one_token() {
    let Some((db, a, b)) = two_instances(|_| {}) else {
        return;
    };
    let challenge = a.new_challenge("203.0.113.1");
    let answer = common::answer(&challenge);
    let statuses: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let (app, answer) = (if i % 2 == 0 { &a } else { &b }, &answer);
                s.spawn(move || {
                    let (status, body, _) = app.submit("203.0.113.1", answer);
                    (status, body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(won, 1, "{statuses:?}");
    for (status, body) in statuses.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (409, Some("already_spent")),
            "{body}"
        );
    }
    assert_eq!(db.number("SELECT count(*) FROM tokens"), 1);
}

/// POW_TOKEN_MAX_IPS=2 and 20 new addresses presented at once, half to
/// each instance: the issuer's address and exactly one other are recorded,
/// and every other address is refused.
#[test]
fn concurrent_new_addresses_on_both_instances_never_exceed_the_address_limit() {
    let Some((db, a, b)) = two_instances(|c| c.set_live("token_max_ips", 2)) else {
        return;
    };
    let token = a.obtain_token("198.51.100.1");
    // Cached on both, so both take the new-address path, not a cold read.
    assert_eq!(a.verify(Some(&token), "198.51.100.1").0, 200);
    assert_eq!(b.verify(Some(&token), "198.51.100.1").0, 200);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (app, token) = (if i % 2 == 0 { &a } else { &b }, &token);
                s.spawn(move || app.verify(Some(token), &format!("203.0.113.{}", i + 10)).0)
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
        statuses.iter().filter(|s| **s == 403).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(db.number("SELECT count(*) FROM token_ips"), 2);
}

/// B has the token in its cache; the revocation on A reaches it through
/// NOTIFY well within a second.
#[test]
fn a_revocation_on_one_instance_is_refused_by_the_other_within_a_second() {
    let Some((db, a, b)) = two_instances(|_| {}) else {
        return;
    };
    let token = a.obtain_token("203.0.113.1");
    cache_on(&b, &token);
    let id = db.number("SELECT id FROM tokens");
    let (status, body) = a.admin_call(KEY, "POST", &format!("/api/admin/tokens/{id}/revoke"), None);
    assert_eq!(status, 200, "{body}");
    let took = within(Duration::from_secs(1), || {
        b.verify(Some(&token), "203.0.113.1").0 == 403
    });
    assert!(
        took.is_some(),
        "B still accepts the revoked token after 1 s"
    );
    eprintln!("the revocation reached B's cache in {took:?} (polled every 20 ms)");
    // The notification's lag and the pool's state are in B's /metrics.
    let metrics = b.metrics();
    assert!(
        metrics.contains("powgate_store_notification_lag_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("powgate_store_pool_connections{state=\"size\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("powgate_store_listening 1"), "{metrics}");
}

/// Expire-all on A: B, which cached the token, refuses it at once too.
#[test]
fn expire_all_on_one_instance_reaches_the_others_cache() {
    let Some((_db, a, b)) = two_instances(|_| {}) else {
        return;
    };
    let token = a.obtain_token("203.0.113.1");
    cache_on(&b, &token);
    let (status, body) = a.admin_call(KEY, "POST", "/api/admin/tokens/expire-all", None);
    assert_eq!(status, 200, "{body}");
    let took = within(Duration::from_secs(1), || {
        b.verify(Some(&token), "203.0.113.1").0 == 401
    });
    assert!(
        took.is_some(),
        "B still accepts the expired token after 1 s"
    );
}

#[test]
fn a_difficulty_change_on_one_instance_reaches_the_others_next_challenge_within_a_second() {
    let Some((_db, a, b)) = two_instances(|_| {}) else {
        return;
    };
    assert_eq!(b.new_challenge("203.0.113.1").difficulty, 4);
    let (status, body) = a.admin_call(
        KEY,
        "PATCH",
        "/api/admin/settings",
        Some(serde_json::json!({ "difficulty": 37 })),
    );
    assert_eq!(status, 200, "{body}");
    let took = within(Duration::from_secs(1), || {
        b.new_challenge("203.0.113.1").difficulty == 37
    });
    assert!(
        took.is_some(),
        "B still quotes the old difficulty after 1 s"
    );
    eprintln!("the difficulty change reached B in {took:?} (polled every 20 ms)");
}

/// PostgreSQL does not replay what a listener missed. Here B misses a
/// revocation for certain (written behind powgate's back, so no NOTIFY at
/// all), and still accepts the cached token; then its listening connection
/// is killed, and once it listens again it flushes its caches, so the
/// token is refused without waiting for the cache's TTL.
#[test]
fn after_its_listening_connection_is_killed_an_instance_flushes_its_caches() {
    let Some((db, a, b)) = two_instances(|_| {}) else {
        return;
    };
    let token = a.obtain_token("203.0.113.1");
    cache_on(&b, &token);
    db.execute_blocking("UPDATE tokens SET revoked_at = 1");
    assert_eq!(
        b.verify(Some(&token), "203.0.113.1").0,
        200,
        "B missed the revocation and answers from its cache"
    );
    let killed = db.number(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = '{}' AND application_name = 'powgate listener'",
        db.name
    ));
    assert_eq!(killed, 2, "both instances listen");
    let took = within(Duration::from_secs(5), || {
        b.verify(Some(&token), "203.0.113.1").0 == 403
    });
    assert!(took.is_some(), "B kept its stale cache after reconnecting");
    assert!(
        b.metrics().contains("powgate_store_resyncs_total 1"),
        "{}",
        b.metrics()
    );
}

/// The TTL is the backstop for a notification lost without a lost
/// connection: a revocation written with no NOTIFY at all reaches B's
/// cache once its entry is older than `token_cache_secs`.
#[test]
fn a_change_never_announced_reaches_the_cache_once_its_entry_outlives_the_ttl() {
    let Some((db, a, b)) = two_instances(|c| c.token_cache_secs = 1) else {
        return;
    };
    let token = a.obtain_token("203.0.113.1");
    cache_on(&b, &token);
    db.execute_blocking("UPDATE tokens SET revoked_at = 1");
    let took = within(Duration::from_secs(3), || {
        b.verify(Some(&token), "203.0.113.1").0 == 403
    });
    assert!(took.is_some(), "B kept its cached record past the TTL");
}

/// GET /verify-token with a bearer token: status, body, `Retry-After`.
fn verify_with_retry_after(app: &TestApp, token: &str) -> (u16, serde_json::Value, Option<String>) {
    let mut r = app
        .agent()
        .get(&app.url("/verify-token"))
        .header("X-Real-IP", "203.0.113.1")
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        r.status().as_u16(),
        r.body_mut().read_json().unwrap(),
        retry,
    )
}

fn healthz(app: &TestApp) -> String {
    app.agent()
        .get(&app.url("/healthz"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// PostgreSQL goes away under an instance and comes back. Meanwhile a
/// token it has in memory still passes, even once its entry outlives the
/// cache's TTL (1 s here); one it has not is refused with 503
/// `store_unavailable` and `Retry-After`, as is a solution (whose challenge
/// stays unspent); `/healthz` says so. Afterwards everything works again
/// without a restart, the same solution included: no token is lost.
#[test]
fn while_postgres_is_unreachable_cached_tokens_pass_the_rest_wait_and_all_recovers() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let mut relay = common::postgres::Relay::to(&db.cluster);
    let url = relay.url(&db.plain_url());
    let app = TestApp::spawn_with(|c| {
        c.database = PathBuf::from(&url);
        c.token_cache_secs = 1;
    });
    let cached = app.obtain_token("203.0.113.1");
    assert_eq!(app.verify(Some(&cached), "203.0.113.1").0, 200);
    let uncached = app.obtain_token("203.0.113.1");
    let challenge = app.new_challenge("203.0.113.2");
    assert_eq!(healthz(&app), "ok\nstore: reachable\n");

    relay.cut();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(1500) {
        assert_eq!(app.verify(Some(&cached), "203.0.113.1").0, 200, "cached");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body, retry) = verify_with_retry_after(&app, &uncached);
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(retry.is_some());
    let (status, body, _) = app.submit("203.0.113.2", &common::answer(&challenge));
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(
        within(Duration::from_secs(3), || healthz(&app)
            .contains("store: unreachable"))
        .is_some(),
        "{}",
        healthz(&app)
    );

    relay.restore();
    let recovered = within(Duration::from_secs(10), || {
        app.verify(Some(&uncached), "203.0.113.1").0 == 200
    });
    assert!(recovered.is_some(), "no recovery without a restart");
    let (status, body, _) = app.submit("203.0.113.2", &common::answer(&challenge));
    assert_eq!(
        status, 200,
        "the solution refused during the outage counts now: {body}"
    );
    // The last answer is reused for a second.
    assert!(
        within(Duration::from_secs(3), || healthz(&app)
            == "ok\nstore: reachable\n")
        .is_some(),
        "{}",
        healthz(&app)
    );
}
