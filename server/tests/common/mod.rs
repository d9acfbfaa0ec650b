//! `TestApp`: a real powgate on a loopback socket and a real SQLite file in a
//! temporary directory, with a manual clock and tiny argon2 parameters set
//! through configuration.

// Each test binary includes this module and uses part of it; its `pub` is
// the interface to them, not an export of the test crate.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pow::wire::{ChallengeResponse, SolveRequest};
use pow::{Difficulty, Solver, Step};
use powgate::clock::ManualClock;
use powgate::config::RawConfig;
use powgate::state::AppState;
use tokio::sync::oneshot;

pub mod postgres;

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub raw: RawConfig,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    // Kept last so the directory outlives the server.
    pub dir: Arc<tempfile::TempDir>,
}

/// The live per-network rate budgets, off in tests unless a test sets one.
pub const NETWORK_BUDGETS: [&str; 6] = [
    "challenges_per_minute_per_24",
    "challenges_per_minute_per_56",
    "challenges_per_minute_per_48",
    "solutions_per_minute_per_24",
    "solutions_per_minute_per_56",
    "solutions_per_minute_per_48",
];

/// Small enough that a test solves in milliseconds.
pub fn test_config(db: PathBuf) -> RawConfig {
    let mut c = RawConfig {
        listen: "127.0.0.1:0".into(),
        database: db,
        ..RawConfig::default()
    };
    c.set_live("difficulty_level", 4);
    // Rate limits are tested on their own; elsewhere they would only make
    // tests that solve many challenges from one address flaky.
    c.rate_challenges_per_minute = 0;
    c.rate_solutions_per_minute = 0;
    c.wrong_answer_backoff_secs = 0;
    for per_network in NETWORK_BUDGETS {
        c.set_live(per_network, 0);
    }
    // Likewise the request budgets per token (tests/budget.rs).
    c.set_live("token_requests_per_minute", 0);
    c.set_live("token_requests_total", 0);
    // Adaptive difficulty likewise (tests/adaptive.rs): tests that solve
    // many challenges from one address expect the base difficulty.
    c.set_live("difficulty_pinned", 1);
    c.argon2.time_cost = 1;
    c.argon2.memory_kb = 64;
    c
}

impl TestApp {
    pub fn spawn() -> Self {
        Self::spawn_with(|_| {})
    }

    pub fn spawn_with(f: impl FnOnce(&mut RawConfig)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut raw = test_config(dir.path().join("powgate.db"));
        f(&mut raw);
        Self::start(raw, dir, Arc::new(ManualClock::new()))
    }

    fn start(raw: RawConfig, dir: Arc<tempfile::TempDir>, clock: Arc<ManualClock>) -> Self {
        let config = raw.clone().validate().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let app_clock = clock.clone();
        // The state is built on the server's runtime, which runs any task
        // it starts (following a shared store's changes).
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let st = AppState::new(config, app_clock).await.unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx
                    .send((listener.local_addr().unwrap(), st.clone()))
                    .unwrap();
                powgate::server::serve(st, listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        let (addr, state) = addr_rx.recv().unwrap();
        Self {
            addr,
            state,
            clock,
            raw,
            shutdown: Some(tx),
            thread: Some(thread),
            dir,
        }
    }

    /// Stops this server and starts a new one on the same database file,
    /// as a process restart would, keeping the clock.
    pub fn restart(mut self) -> Self {
        self.stop();
        let (raw, dir, clock) = (self.raw.clone(), self.dir.clone(), self.clock.clone());
        drop(self);
        Self::start(raw, dir, clock)
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// One number from the database file, read on a connection of the
    /// test's own: the server's pool belongs to its stores.
    pub fn sql_number(&self, sql: &str) -> i64 {
        rusqlite::Connection::open(&self.raw.database)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// An admin API call with `Authorization: Bearer key`: status and JSON
    /// body (`null` when there is none).
    pub fn admin_call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let agent = self.agent();
        let url = self.url(path);
        let auth = format!("Bearer {key}");
        let mut resp = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
            ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            ("PATCH", Some(b)) => agent
                .patch(&url)
                .header("Authorization", &auth)
                .send_json(b),
            ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
            other => panic!("{other:?}"),
        }
        .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            resp.body_mut()
                .read_json()
                .unwrap_or(serde_json::Value::Null),
        )
    }

    /// POST /api/challenge as client `ip` (via X-Real-IP from loopback, a trusted proxy).
    pub fn challenge_as(&self, ip: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut r = self
            .agent()
            .post(&self.url("/api/challenge"))
            .header("X-Real-IP", ip)
            .send_json(body)
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_json().unwrap())
    }

    pub fn new_challenge(&self, ip: &str) -> ChallengeResponse {
        let (status, v) = self.challenge_as(ip, serde_json::json!({}));
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub fn submit(&self, ip: &str, req: &SolveRequest) -> (u16, serde_json::Value, Vec<String>) {
        let mut r = self
            .agent()
            .post(&self.url("/api/solve"))
            .header("X-Real-IP", ip)
            .send_json(req)
            .unwrap();
        let status = r.status().as_u16();
        let cookies = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        (status, r.body_mut().read_json().unwrap(), cookies)
    }

    /// Solves and submits; returns the token.
    pub fn obtain_token(&self, ip: &str) -> String {
        let ch = self.new_challenge(ip);
        let (status, body, _) = self.submit(ip, &answer(&ch));
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        self.agent()
            .get(&self.url("/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// Verification turns granted so far, from /metrics: (in bucket 0, in
    /// every worse bucket together).
    pub fn turns_by_bucket(&self) -> (f64, f64) {
        let (mut clean, mut penalised) = (0.0, 0.0);
        for line in self.metrics().lines() {
            let Some(rest) = line.strip_prefix("powgate_verify_turns_total{") else {
                continue;
            };
            let n: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
            if rest.starts_with("bucket=\"0\"") {
                clean += n;
            } else {
                penalised += n;
            }
        }
        (clean, penalised)
    }

    /// GET /verify-token with a bearer token from `ip`; returns status and body.
    pub fn verify(
        &self,
        token: Option<&str>,
        ip: &str,
    ) -> (u16, serde_json::Value, Option<String>) {
        let mut req = self
            .agent()
            .get(&self.url("/verify-token"))
            .header("X-Real-IP", ip);
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.call().unwrap();
        let status = r.status().as_u16();
        let refreshable = r
            .headers()
            .get("x-powgate-refreshable")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, r.body_mut().read_json().unwrap(), refreshable)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A correct submission for `ch`.
pub fn answer(ch: &ChallengeResponse) -> SolveRequest {
    SolveRequest {
        challenge: ch.challenge.clone(),
        nonce: solve(ch),
        ticket: ticket(ch),
        refresh_token: None,
        telemetry: None,
        redir: None,
    }
}

/// Finds a winning nonce for `ch` with the shared solver.
pub fn solve(ch: &ChallengeResponse) -> u64 {
    let salt: [u8; 16] = hex::decode(&ch.salt).unwrap().try_into().unwrap();
    let mut s = Solver::new(
        ch.argon2,
        salt,
        Difficulty::new(ch.difficulty).unwrap(),
        0,
        1,
    )
    .unwrap();
    loop {
        if let Step::Found { nonce, .. } = s.step(1000).unwrap() {
            return nonce;
        }
    }
}

/// The challenge id of `ch`, the salt of its argon2 hashes and its ticket.
pub fn salt(ch: &ChallengeResponse) -> [u8; 16] {
    hex::decode(&ch.salt).unwrap().try_into().unwrap()
}

/// The admission ticket `ch` asks for, computed as every client does.
pub fn ticket(ch: &ChallengeResponse) -> Option<u64> {
    Some(pow::ticket::solve(&salt(ch), ch.ticket_bits))
}

/// A ticket that does not admit a submission for `ch` (the first one: a
/// ticket picked at random passes with probability 2^-bits).
pub fn wrong_ticket(ch: &ChallengeResponse) -> u64 {
    (0..)
        .find(|t| !pow::ticket::check(&salt(ch), *t, ch.ticket_bits))
        .unwrap()
}

/// A nonce that does not solve `ch`.
pub fn wrong_nonce(ch: &ChallengeResponse) -> u64 {
    let salt = salt(ch);
    let mut h = pow::Hasher::new(ch.argon2).unwrap();
    let target: [u8; 32] = hex::decode(&ch.target).unwrap().try_into().unwrap();
    let mut out = vec![0u8; ch.argon2.hash_length() as usize];
    (0..)
        .find(|n| {
            h.hash_into(&salt, *n, &mut out).unwrap();
            !pow::meets_target(&out, &target)
        })
        .unwrap()
}

/// Waits (up to `max_wait`) for a verification turn as the test itself,
/// in reputation `bucket`, for a made-up challenge `id`: with
/// `verify_permits = 1`, the turn it returns holds the only verification
/// thread until it is dropped.
pub fn take_turn(
    app: &TestApp,
    bucket: u8,
    id: u8,
    max_wait: std::time::Duration,
) -> Result<powgate::verifier::Turn, powgate::verifier::Queued> {
    let place = powgate::verifier::Place {
        id: [id; 16],
        expires_at: i64::MAX,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(
            app.state
                .verifier
                .turn(bucket, place, app.state.now(), max_wait),
        )
}

/// Polls until `n` submissions wait for a verification turn.
pub fn until_waiting(app: &TestApp, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.state.verifier.waiting() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} waiting, expected {n}",
            app.state.verifier.waiting()
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
