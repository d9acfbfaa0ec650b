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

/// The status of an admin request with `credential` (`Bearer <key>` or
/// the session cookie) from an address of its own each time, so the
/// refusals of a key not yet taken never add up to the guessing limit.
fn admin_status(app: &TestApp, credential: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let ip = format!("10.{}.{}.1", n % 250, n / 250 % 250);
    let req = app
        .agent()
        .get(&app.url("/api/admin/stats"))
        .header("X-Real-IP", &ip);
    let req = match credential.strip_prefix("session=") {
        Some(id) => req.header("Cookie", &format!("powgate_admin={id}")),
        None => req.header("Authorization", &format!("Bearer {credential}")),
    };
    req.call().unwrap().status().as_u16()
}

/// A session opened on `app` with `key`: the cookie's value.
fn log_in(app: &TestApp, key: &str) -> String {
    let r = app
        .agent()
        .post(&app.url("/api/admin/login"))
        .send_json(serde_json::json!({ "key": key }))
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    let id = cookie
        .strip_prefix("powgate_admin=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    format!("session={id}")
}

/// `powgate admin-key reset` (the function the command runs) while A and
/// B run on the database, with no `POW_ADMIN_KEY`: both take the new key
/// within a second and refuse the old one, and the sessions the old key
/// opened are closed. They used to keep the key they had started with until
/// restarted, so a leaked key went on working after its reset.
#[test]
fn an_admin_key_reset_reaches_every_running_instance_within_a_second() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let a = instance(&db, |c| c.admin_key = None);
    let b = instance(&db, |c| c.admin_key = None);
    let config = common::test_config(PathBuf::from(db.plain_url()))
        .validate()
        .unwrap();
    let reset = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(powgate::admin_auth::reset_stored_key(&config, 0))
            .unwrap()
    };
    let old = reset();
    for app in [&a, &b] {
        let took = within(Duration::from_secs(1), || admin_status(app, &old) == 200);
        assert!(took.is_some(), "an instance kept the key it started with");
    }
    let sessions = [log_in(&a, &old), log_in(&b, &old)];
    let new = reset();
    for app in [&a, &b] {
        let took = within(Duration::from_secs(1), || admin_status(app, &new) == 200);
        assert!(
            took.is_some(),
            "an instance still refuses the new key after 1 s"
        );
        eprintln!("the reset key was taken in {took:?} (polled every 20 ms)");
        assert_eq!(admin_status(app, &old), 401, "the old key still works");
    }
    for (app, session) in [&a, &b].into_iter().zip(&sessions) {
        assert_eq!(admin_status(app, session), 401, "the old key's session");
    }
}

/// Another instance stopped in the middle of a transaction that holds a
/// token's row (frozen, or cut off from the network): a new address for
/// that token needs the row, so it waits, but at most `lock_timeout` (2 s),
/// then gets 503 `store_unavailable`, instead of hanging until TCP gives up
/// on the stalled session, hours later. Once the row is free, it passes.
#[test]
fn a_token_row_held_by_a_stalled_instance_costs_a_503_not_a_hang() {
    let Some(db) = TestDatabase::create_blocking() else {
        return;
    };
    let app = instance(&db, |_| {});
    let token = app.obtain_token("203.0.113.1");
    // Its connection is driven by this runtime's threads while the test
    // waits on powgate.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stalled = rt.block_on(db.client());
    rt.block_on(stalled.batch_execute("BEGIN; SELECT 1 FROM tokens FOR UPDATE"))
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let asked = Instant::now();
    let mut r = agent
        .get(&app.url("/verify-token"))
        .header("X-Real-IP", "198.51.100.7")
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("an answer, not a hang");
    let waited = asked.elapsed();
    let retry = r.headers().get("retry-after").cloned();
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert_eq!(
        (r.status().as_u16(), body["status"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(retry.is_some());
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    eprintln!("the new address waited {waited:?} for the held row");
    rt.block_on(stalled.batch_execute("ROLLBACK")).unwrap();
    assert_eq!(app.verify(Some(&token), "198.51.100.7").0, 200);
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

/// A powgate process, the shipped binary, on a PostgreSQL URL: what an
/// operator runs, with its own runtime, pool, listener and caches, and
/// nothing of the test's in its address space.
struct Process {
    child: std::process::Child,
    port: u16,
    /// Every line it has written to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Its working directory.
    _dir: tempfile::TempDir,
}

/// What an HTTP answer says that the restart test looks at.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: serde_json::Value,
    retry_after: Option<String>,
}

impl Answer {
    /// 503 `store_unavailable` (in `error` or, from `/verify-token`,
    /// `status`) with a `Retry-After`: the documented "wait" of an outage.
    fn is_store_unavailable(&self) -> bool {
        let said = self.body["error"]
            .as_str()
            .or_else(|| self.body["status"].as_str());
        self.status == 503 && said == Some("store_unavailable") && self.retry_after.is_some()
    }
}

impl Process {
    fn start(database: &str) -> Self {
        use std::io::BufRead as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_powgate"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("POW_LISTEN", format!("127.0.0.1:{port}"))
            .env("POW_DATABASE", database)
            .env("POW_ADMIN_KEY", KEY)
            .env("ARGON2_TIME_COST", "1")
            .env("ARGON2_MEMORY_KB", "64")
            .env("POW_DIFFICULTY_LEVEL", "4")
            .env("POW_DIFFICULTY_PINNED", "1")
            .env("POW_RATE_CHALLENGES_PER_MINUTE", "0")
            .env("POW_RATE_SOLUTIONS_PER_MINUTE", "0")
            .env("POW_WRONG_ANSWER_BACKOFF_SECS", "0")
            .env("POW_TOKEN_REQUESTS_PER_MINUTE", "0")
            .env("POW_TOKEN_REQUESTS_TOTAL", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for budget in common::NETWORK_BUDGETS {
            cmd.env(format!("POW_{}", budget.to_uppercase()), "0");
        }
        let mut child = cmd.spawn().expect("start powgate");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("powgate listening") {
                    let _ = tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("powgate did not start");
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A client that sees every status as an answer, and gives up on a
    /// request that hangs: a hang is a failure too.
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into()
    }

    fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut r = r.unwrap();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status: r.status().as_u16(),
            body: r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
            retry_after,
        }
    }

    fn verify(&self, token: &str, ip: &str) -> Answer {
        Self::answer(
            Self::agent()
                .get(&self.url("/verify-token"))
                .header("X-Real-IP", ip)
                .header("Authorization", &format!("Bearer {token}"))
                .call(),
        )
    }

    fn challenge(&self, ip: &str) -> pow::wire::ChallengeResponse {
        let a = Self::answer(
            Self::agent()
                .post(&self.url("/api/challenge"))
                .header("X-Real-IP", ip)
                .send_json(serde_json::json!({})),
        );
        assert_eq!(a.status, 200, "{a:?}");
        serde_json::from_value(a.body).unwrap()
    }

    fn solve(&self, ip: &str, answer: &pow::wire::SolveRequest) -> Answer {
        Self::answer(
            Self::agent()
                .post(&self.url("/api/solve"))
                .header("X-Real-IP", ip)
                .send_json(answer),
        )
    }

    /// A new token for `ip`; panics unless it is issued.
    fn obtain(&self, ip: &str) -> String {
        let a = self.solve(ip, &common::answer(&self.challenge(ip)));
        assert_eq!(a.status, 200, "{a:?}");
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// Finds `token` through the admin API and revokes it by its id.
    fn revoke(&self, token: &str) -> Answer {
        let auth = format!("Bearer {KEY}");
        let found = Self::answer(
            Self::agent()
                .post(&self.url("/api/admin/tokens/find"))
                .header("Authorization", &auth)
                .send_json(serde_json::json!({ "token": token })),
        );
        if found.status != 200 {
            return found;
        }
        let id = found.body["token"]["id"].as_i64().unwrap();
        Self::answer(
            Self::agent()
                .post(&self.url(&format!("/api/admin/tokens/{id}/revoke")))
                .header("Authorization", &auth)
                .send_empty(),
        )
    }

    fn text(&self, path: &str) -> String {
        Self::agent()
            .get(&self.url(path))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// A metric's value (the first series of that name).
    fn metric(&self, name: &str) -> f64 {
        let metrics = self.text("/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .parse()
            .unwrap()
    }

    /// Listening again after at least `resyncs` lost listening
    /// connections, and its store reachable.
    fn recovered(&self, resyncs: u32) -> bool {
        self.text("/healthz") == "ok\nstore: reachable\n"
            && self.metric("powgate_store_listening") == 1.0
            && self.metric("powgate_store_resyncs_total") >= f64::from(resyncs)
    }

    /// Still running, and it never panicked.
    fn assert_unharmed(&mut self, name: &str) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "{name} exited: {:?}",
            self.log.lock().unwrap()
        );
        let log = self.log.lock().unwrap();
        assert!(
            !log.iter().any(|l| l.contains("panicked")),
            "{name} panicked: {log:?}"
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load saw: every answer outside what a restart may bring is a
/// failure, counted with the rest.
#[derive(Debug, Default)]
struct Seen {
    /// Tokens issued (200) during the load, and the address each was
    /// issued to.
    issued: Vec<(String, String)>,
    /// 503 `store_unavailable` with `Retry-After`, by kind of request.
    waits: std::collections::BTreeMap<&'static str, usize>,
    passed: usize,
    failures: Vec<String>,
}

/// The load on two processes: solves on each, `/verify-token` with tokens
/// both have cached (these pass, or wait out a re-read), and with random
/// tokens, which neither has (unknown, or wait). A 500, a hang, a pass of a
/// random token or a wait without `Retry-After` is a failure.
fn run_load(
    instances: [&Process; 2],
    known: &[(String, String)],
    stop: &std::sync::atomic::AtomicBool,
    seen: &std::sync::Mutex<Seen>,
) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let next_ip = AtomicU32::new(0);
    let record = |kind: &'static str, a: &Answer, ok: &[u16]| {
        let mut seen = seen.lock().unwrap();
        if a.is_store_unavailable() {
            *seen.waits.entry(kind).or_default() += 1;
        } else if ok.contains(&a.status) {
            seen.passed += 1;
        } else {
            seen.failures.push(format!("{kind}: {a:?}"));
        }
    };
    std::thread::scope(|s| {
        for (n, app) in instances.into_iter().enumerate() {
            let (next_ip, record) = (&next_ip, &record);
            // Solves, each from an address of its own so the per-address
            // token cap evicts none of them.
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next_ip.fetch_add(1, Ordering::SeqCst);
                    // A /24 each, so no network's open challenges pile up
                    // while solutions wait out the outage.
                    let ip = format!("10.{}.{}.1", i % 250 + 1, i / 250 % 250 + 1);
                    let a = app.solve(&ip, &common::answer(&app.challenge(&ip)));
                    record("solve", &a, &[200]);
                    if a.status == 200 {
                        let token = a.body["token"].as_str().unwrap().to_owned();
                        seen.lock().unwrap().issued.push((token, ip));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for (token, ip) in known {
                        record("cached verify", &app.verify(token, ip), &[200]);
                    }
                    let random = uuid::Uuid::new_v4().to_string();
                    record(
                        "unknown verify",
                        &app.verify(&random, &format!("192.0.2.{n}")),
                        &[401],
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
    });
}

/// PostgreSQL itself restarted, twice, under load from two powgate
/// processes (solves, `/verify-token` for cached, uncached and unknown
/// tokens, admin revocations), on a cluster of the test's own:
/// - `pg_ctl restart -m fast` in the middle of the load: no 500, no hang,
///   no panic, and both recover by themselves;
/// - `pg_ctl stop -m fast`, held long enough to look: cached tokens pass on
///   both, uncached ones and solutions get 503 `store_unavailable` with
///   `Retry-After`, `/healthz` says unreachable; then `pg_ctl start`, and
///   both are back within a bound without a restart of their own.
///
/// Afterwards every token issued, before or during the load, passes on
/// both (none lost), each solution refused during the outage earns its
/// token (its challenge stayed unspent), and both listen again: a
/// revocation on A right after recovery reaches B's cache within a second.
#[test]
fn postgres_restarted_under_load_loses_no_token_and_both_processes_recover_by_themselves() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(cluster) = common::postgres::PrivateCluster::start() else {
        return;
    };
    let started = Instant::now();
    let url = cluster.database("powgate_restart");
    let mut a = Process::start(&url);
    let mut b = Process::start(&url);
    let both = [&a, &b];

    // Tokens each instance has in memory: issued on one, read on both.
    let known: Vec<(String, String)> = (0..6)
        .map(|i| {
            let ip = format!("198.51.100.{}", i + 1);
            (both[i % 2].obtain(&ip), ip)
        })
        .collect();
    // A few rounds: a read that races a flush passes but is not cached.
    let cache_known = || {
        for _ in 0..3 {
            for app in both {
                for (token, ip) in &known {
                    let read = within(Duration::from_secs(10), || {
                        app.verify(token, ip).status == 200
                    });
                    assert!(read.is_some(), "{token} does not pass");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    cache_known();
    // Tokens neither has read, kept for the outage.
    let unread: Vec<(String, String)> = (0..4)
        .map(|i| {
            let ip = format!("203.0.113.{}", i + 1);
            (both[i % 2].obtain(&ip), ip)
        })
        .collect();
    // Revoked under load, one on each instance; the other refuses it.
    let doomed: Vec<(String, String)> = (0..3)
        .map(|i| {
            let ip = format!("198.51.100.{}", i + 101);
            let token = a.obtain(&ip);
            assert_eq!(b.verify(&token, &ip).status, 200);
            (token, ip)
        })
        .collect();

    let stop = AtomicBool::new(false);
    let seen = std::sync::Mutex::new(Seen::default());
    let (restart_took, outage_checked, recovery) = std::thread::scope(|s| {
        let load = s.spawn(|| run_load(both, &known, &stop, &seen));
        std::thread::sleep(Duration::from_millis(500));
        let (token, ip) = &doomed[0];
        assert_eq!(a.revoke(token).status, 200);
        assert!(
            within(Duration::from_secs(1), || b.verify(token, ip).status == 403).is_some(),
            "B missed a revocation made on A under load"
        );

        // 1. A real restart, with no pause to look in.
        let restart = Instant::now();
        cluster.pg_ctl(&["restart", "-m", "fast"]);
        let restart_took = restart.elapsed();
        for app in both {
            assert!(
                within(Duration::from_secs(15), || app.recovered(1)).is_some(),
                "no recovery after the restart: {}",
                app.text("/metrics")
            );
        }

        // 2. Down long enough to check what each request gets meanwhile.
        // (After the resync that flushed the caches, which follows the
        // counter by a moment.)
        std::thread::sleep(Duration::from_millis(200));
        cache_known();
        cluster.pg_ctl(&["stop", "-m", "fast"]);
        let down = Instant::now();
        for app in both {
            assert!(
                within(Duration::from_secs(5), || app.text("/healthz")
                    == "ok\nstore: unreachable\n")
                .is_some(),
                "{}",
                app.text("/healthz")
            );
        }
        for app in both {
            for (token, ip) in &known {
                let v = app.verify(token, ip);
                assert_eq!(v.status, 200, "a cached token during the outage: {v:?}");
            }
            for (token, ip) in &unread {
                let v = app.verify(token, ip);
                assert!(v.is_store_unavailable(), "an uncached token: {v:?}");
            }
        }
        let refused: Vec<(&Process, String, pow::wire::SolveRequest)> = (0..4)
            .map(|i| {
                let app = both[i % 2];
                let ip = format!("203.0.113.{}", i + 101);
                let answer = common::answer(&app.challenge(&ip));
                let s = app.solve(&ip, &answer);
                assert!(
                    s.is_store_unavailable(),
                    "a solution during the outage: {s:?}"
                );
                (app, ip, answer)
            })
            .collect();
        let outage_checked = down.elapsed();
        cluster.pg_ctl(&["start"]);
        let up = Instant::now();
        for app in both {
            assert!(
                within(Duration::from_secs(15), || app.recovered(2)).is_some(),
                "no recovery after PostgreSQL came back: {}",
                app.text("/metrics")
            );
        }
        let recovery = up.elapsed();

        // Listening again: a revocation on A reaches B's cache at once.
        let (token, ip) = &doomed[1];
        assert!(within(Duration::from_secs(5), || b.verify(token, ip).status == 200).is_some());
        assert_eq!(a.revoke(token).status, 200);
        let reached = within(Duration::from_secs(1), || b.verify(token, ip).status == 403);
        assert!(
            reached.is_some(),
            "B missed a revocation made on A after recovery"
        );
        // And the other way round.
        let (token, ip) = &doomed[2];
        assert!(within(Duration::from_secs(5), || a.verify(token, ip).status == 200).is_some());
        assert_eq!(b.revoke(token).status, 200);
        assert!(within(Duration::from_secs(1), || a.verify(token, ip).status == 403).is_some());

        // Each solution refused during the outage counts now.
        for (app, ip, answer) in &refused {
            let s = app.solve(ip, answer);
            assert_eq!(s.status, 200, "{s:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap();
        (restart_took, outage_checked, recovery)
    });

    let seen = seen.into_inner().unwrap();
    assert!(seen.failures.is_empty(), "{:#?}", seen.failures);
    assert!(!seen.issued.is_empty(), "the load issued no token");
    // No token lost: every one issued before or during the load passes on
    // both, and every revoked one is refused on both.
    for app in both {
        for (token, ip) in known.iter().chain(&unread).chain(&seen.issued) {
            let v = app.verify(token, ip);
            assert_eq!(v.status, 200, "{token} from {ip}: {v:?}");
        }
        for (token, ip) in &doomed {
            assert_eq!(app.verify(token, ip).status, 403);
        }
    }
    a.assert_unharmed("A");
    b.assert_unharmed("B");
    eprintln!(
        "pg_ctl restart took {restart_took:?}; outage checks {outage_checked:?}; \
         both recovered {recovery:?} after pg_ctl start; load: {} issued, {} answers as expected, \
         waits {:?}; whole test {:?}",
        seen.issued.len(),
        seen.passed,
        seen.waits,
        started.elapsed()
    );
}
