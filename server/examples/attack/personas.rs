//! The attack simulator's personas, run at the same time against one live
//! powgate. `examples/attack.rs` drives them from flags; `tests/attack.rs`
//! includes this file with `#[path]` and drives them on a test server, so
//! the test runs exactly the code the benchmark runs.
//!
//! - **visitor**: solves honestly at a browser's pace (native hashing, then
//!   a sleep to the configured hashes per second), submits and retries the
//!   same submission on 429/503 (`busy`, `queued`) while its challenge is
//!   valid, as the page does, then uses its token on `/verify-token`.
//! - **botnet**: the same honest visit from many addresses at a low rate,
//!   several members interleaved on each thread so that hundreds of members
//!   do not need hundreds of argon2 memory blocks.
//! - **flooder**: a fresh challenge and a random nonce, as fast as allowed.
//! - **scraper**: solves at full native speed on K threads and hammers
//!   `/verify-token` with every token it has, rotating its addresses and
//!   dropping an address once the token is refused there.
//! - **replayer**: resubmits a spent solution, shares one token across many
//!   addresses, and submits one solution 100 times at once.
//!
//! CPU is each persona's threads' own CPU time (`/proc/thread-self`), not
//! wall time, so a sleeping visitor costs what its hashing costs.
//!
//! Addresses travel in the trusted client-IP header and come from the
//! benchmark range 198.18.0.0/15 (RFC 2544) and the documentation range
//! 2001:db8::/32 (RFC 3849) only; the plan is in [`address`].

// The test uses part of this module; its `pub` is the interface to the
// example and the test, not an export.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pow::wire::{ChallengeRequest, ChallengeResponse, ErrorBody, SolveRequest, Telemetry};
use pow::{Difficulty, HashError, Hasher, meets_target};

use crate::support::Rng;

/// The live powgate and the run's bounds, shared by every persona thread.
pub struct Target {
    base: String,
    ip_header: String,
    deadline: Instant,
    max_requests: u64,
    sent: AtomicU64,
    stop: AtomicBool,
}

impl Target {
    /// `base` must already have passed the loopback check.
    pub fn new(base: &str, ip_header: &str, seconds: f64, max_requests: u64) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            ip_header: ip_header.to_owned(),
            deadline: Instant::now() + Duration::from_secs_f64(seconds),
            max_requests,
            sent: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// True once time or the request budget is up, or the run was ended.
    pub fn stopped(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        if Instant::now() >= self.deadline {
            self.stop.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn end(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Claims one request from the budget; false once the run is over.
    fn take(&self) -> bool {
        if self.stopped() {
            return false;
        }
        if self.sent.fetch_add(1, Ordering::Relaxed) >= self.max_requests {
            self.end();
            return false;
        }
        true
    }

    pub fn requests(&self) -> u64 {
        self.sent.load(Ordering::Relaxed).min(self.max_requests)
    }

    /// Sleeps until `until` or the end of the run, whichever is first; false
    /// when the run ended.
    fn sleep_until(&self, until: Instant) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}

/// Which personas run, and how big each is. A count of 0 leaves it out.
#[derive(Debug, Clone)]
pub struct Plan {
    pub visitors: usize,
    /// Hashes per second of each visitor; 0 is full native speed.
    pub visitor_rate: f64,
    /// Visits per visitor; 0 repeats them until the run ends.
    pub visits: u32,
    /// `/verify-token` requests a visitor makes with each token.
    pub visitor_uses: u32,
    pub botnet: usize,
    pub botnet_threads: usize,
    pub botnet_rate: f64,
    pub flood_threads: usize,
    pub flood_shape: FloodShape,
    pub flood_addresses: usize,
    /// Garbage submissions per second for all flood threads; 0 is as fast
    /// as they go.
    pub flood_rate: f64,
    /// Whether the flood pays for each garbage nonce's admission ticket
    /// (a ticket that passes, so the nonce reaches argon2) or sends a random
    /// one, which powgate refuses with one SHA-256.
    pub flood_pays_tickets: bool,
    pub scraper_threads: usize,
    pub scraper_addresses: usize,
    pub scraper_hammer_threads: usize,
    pub replayer: bool,
    /// Addresses the replayer's shared token is tried from.
    pub replayer_addresses: usize,
    /// Concurrent submissions of the one solution in the double submit.
    pub double_submit: usize,
    /// The server's `token_max_ips`, to count the shared token's passes
    /// beyond it.
    pub token_max_ips: u64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            visitors: 0,
            visitor_rate: 3.7,
            visits: 0,
            visitor_uses: 5,
            botnet: 0,
            botnet_threads: 4,
            botnet_rate: 1.0,
            flood_threads: 0,
            flood_shape: FloodShape::Concentrated,
            flood_addresses: 4000,
            flood_rate: 0.0,
            flood_pays_tickets: true,
            scraper_threads: 0,
            scraper_addresses: 4,
            scraper_hammer_threads: 2,
            replayer: false,
            replayer_addresses: 50,
            double_submit: 100,
            token_max_ips: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodShape {
    /// One IPv6 /48 and one IPv4 /16.
    Concentrated,
    /// Every address in a network of its own (IPv4 /24 and IPv6 /48).
    Scattered,
}

/// The address plan: each persona has its own networks, so one persona's
/// reputation or limits never fall on another's addresses.
pub mod address {
    use super::FloodShape;
    use crate::support::Rng;

    /// Visitor `i`: one address in an IPv4 /24 of its own (198.19.128.0/17)
    /// for the first 128, then one in an IPv6 /48 of its own.
    pub fn visitor(i: usize) -> String {
        if i < 128 {
            format!("198.19.{}.10", 128 + i)
        } else {
            format!("2001:db8:{:x}::10", 0x4000 + i)
        }
    }

    /// Botnet member `i`: an IPv6 /48 of its own, like hosts in many
    /// residential networks.
    pub fn botnet(i: usize) -> String {
        format!("2001:db8:{:x}::b07", 0x1000 + (i % 0x3000))
    }

    /// Scraper address `i`: an IPv4 /24 of its own in 198.19.0.0/18.
    pub fn scraper(i: usize) -> String {
        format!("198.19.{}.7", i % 64)
    }

    /// The replayer's address for its own solves.
    pub const REPLAYER: &str = "198.19.100.1";

    /// Address `i` the replayer shares its token from: a /64 of its own in
    /// 2001:db8:5e9::/48 (a token counts IPv6 addresses by /64).
    pub fn replayer_share(i: usize) -> String {
        format!("2001:db8:5e9:{:x}::1", i % 0x1_0000)
    }

    /// Flood address number `k` (of `count`). Concentrated: alternately a
    /// random address in 2001:db8:bad::/48 and in 198.18.0.0/16.
    /// Scattered: a fixed address per `k`, each in a network of its own:
    /// the 256 IPv4 /24s of 198.18.0.0/16 first, then IPv6 /48s of
    /// 2001:db8:8000::/33 (the benchmark ranges hold only 512 IPv4 /24s,
    /// fewer than the 4000 networks a scattered flood needs).
    pub fn flood(shape: FloodShape, k: usize, rng: &mut Rng) -> String {
        match shape {
            FloodShape::Concentrated if k.is_multiple_of(2) => {
                let r = rng.next();
                format!(
                    "2001:db8:bad:{:x}:{:x}:{:x}:{:x}:{:x}",
                    r & 0xffff,
                    (r >> 16) & 0xffff,
                    (r >> 32) & 0xffff,
                    (r >> 48) & 0xffff,
                    rng.next() & 0xffff
                )
            }
            FloodShape::Concentrated => {
                let r = rng.next();
                format!("198.18.{}.{}", r & 0xff, (r >> 8) & 0xff)
            }
            // The 256 /24s of 198.18.0.0/16 (198.19.0.0/16 holds the other
            // personas), then IPv6 /48s: the reserved ranges hold no 4000
            // IPv4 /24s, and to powgate a /48 is a network of its own just
            // as a /24 is (its own budgets, its own reputation).
            FloodShape::Scattered if k < 256 => format!("198.18.{k}.{}", 1 + (k * 7) % 254),
            FloodShape::Scattered => format!("2001:db8:{:x}::1", 0x8000 + (k - 256) % 0x8000),
        }
    }
}

/// What one persona got and spent.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Tokens obtained.
    pub tokens: u64,
    /// `/verify-token` answers 200.
    pub passed: u64,
    /// `/verify-token` answers other than 200.
    pub refused: u64,
    /// CPU time of all the persona's threads, solving and HTTP.
    pub cpu_seconds: f64,
    /// CPU time of the threads that hash (all of it for visitors and the
    /// botnet, the solver threads of the scraper, none for the flooder).
    pub solver_cpu_seconds: f64,
    /// Argon2 hashes computed.
    pub hashes: u64,
    /// The highest difficulty of the challenges solved.
    pub difficulty: u64,
    /// Answers of `/api/solve`, by status and error code.
    pub solve_answers: BTreeMap<String, u64>,
    /// Visits that ended with a token, or without one, and visits the end
    /// of the run cut short (neither success nor failure).
    pub visits_ok: u64,
    pub visits_failed: u64,
    pub visits_cut: u64,
    /// Time from asking for a challenge to holding a token, per visit.
    pub time_to_token: Vec<f64>,
    /// Replayer: tokens beyond the honest ones (should stay 0).
    pub extra_tokens: u64,
    /// Replayer: addresses from which the one shared token passed.
    pub shared_token_addresses_passed: u64,
    /// Replayer: tokens from the concurrent double submit (should be 1).
    pub double_submit_tokens: Option<u64>,
}

impl Tally {
    fn merge(&mut self, o: Self) {
        self.tokens += o.tokens;
        self.passed += o.passed;
        self.refused += o.refused;
        self.cpu_seconds += o.cpu_seconds;
        self.solver_cpu_seconds += o.solver_cpu_seconds;
        self.hashes += o.hashes;
        self.difficulty = self.difficulty.max(o.difficulty);
        for (k, v) in o.solve_answers {
            *self.solve_answers.entry(k).or_default() += v;
        }
        self.visits_ok += o.visits_ok;
        self.visits_failed += o.visits_failed;
        self.visits_cut += o.visits_cut;
        self.time_to_token.extend(o.time_to_token);
        self.extra_tokens += o.extra_tokens;
        self.shared_token_addresses_passed += o.shared_token_addresses_passed;
        if o.double_submit_tokens.is_some() {
            self.double_submit_tokens = o.double_submit_tokens;
        }
    }

    /// Share of finished visits that got a token; `None` with none finished.
    #[allow(clippy::cast_precision_loss)]
    pub fn success_rate(&self) -> Option<f64> {
        let finished = self.visits_ok + self.visits_failed;
        (finished > 0).then(|| self.visits_ok as f64 / finished as f64)
    }

    /// The `p`-quantile (0..=1) of the time to token, nearest rank.
    pub fn time_to_token_quantile(&self, p: f64) -> Option<f64> {
        let mut v = self.time_to_token.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }

    /// Attacker CPU-seconds per 1000 requests that passed.
    #[allow(clippy::cast_precision_loss)]
    pub fn cpu_per_1000_passed(&self) -> Option<f64> {
        (self.passed > 0).then(|| self.cpu_seconds * 1000.0 / self.passed as f64)
    }

    /// Tokens per hour of solver CPU, as won in this run.
    #[allow(clippy::cast_precision_loss)]
    pub fn tokens_per_core_hour(&self) -> Option<f64> {
        (self.solver_cpu_seconds > 0.0)
            .then(|| self.tokens as f64 * 3600.0 / self.solver_cpu_seconds)
    }

    /// Tokens per hour of solver CPU on average: the measured CPU per hash
    /// times the difficulty (expected hashes per token). A short run at a
    /// high difficulty may win no token at all, but it measures this.
    #[allow(clippy::cast_precision_loss)]
    pub fn tokens_per_core_hour_expected(&self) -> Option<f64> {
        (self.solver_cpu_seconds > 0.0 && self.difficulty > 0)
            .then(|| 3600.0 * self.hashes as f64 / self.solver_cpu_seconds / self.difficulty as f64)
    }

    fn answer(&mut self, status: u16, code: &str) {
        *self
            .solve_answers
            .entry(format!("{status} {code}"))
            .or_default() += 1;
    }
}

/// CPU seconds the calling thread has used: the scheduler's nanosecond
/// count, or the tick count where schedstat is missing.
pub fn thread_cpu_seconds() -> f64 {
    #[allow(clippy::cast_precision_loss)]
    if let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat")
        && let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
    {
        return ns as f64 / 1e9;
    }
    // utime and stime, fields 14 and 15, after the parenthesised name.
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            #[allow(clippy::cast_precision_loss)]
            (f.len() == 2).then(|| (f[0] + f[1]) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Runs `f` and adds the CPU it took on this thread to `tally`.
fn measured<T>(tally: &mut Tally, solver: bool, f: impl FnOnce(&mut Tally) -> T) -> T {
    let before = thread_cpu_seconds();
    let out = f(tally);
    let spent = thread_cpu_seconds() - before;
    tally.cpu_seconds += spent;
    if solver {
        tally.solver_cpu_seconds += spent;
    }
    out
}

// --- HTTP ----------------------------------------------------------------------

/// The one place a solution becomes a `/api/solve` body, for every persona
/// (the flood's garbage too: a flooder that skipped the admission ticket
/// would be refused for nothing, so it pays for one).
fn solution(ch: &ChallengeResponse, nonce: u64, telemetry: Option<Telemetry>) -> SolveRequest {
    solution_with(ch, nonce, telemetry, true)
}

/// [`solution`], with the admission ticket paid for or left out.
fn solution_with(
    ch: &ChallengeResponse,
    nonce: u64,
    telemetry: Option<Telemetry>,
    pay_ticket: bool,
) -> SolveRequest {
    SolveRequest {
        challenge: ch.challenge.clone(),
        nonce,
        refresh_token: None,
        telemetry,
        ticket: if pay_ticket {
            salt(ch).map(|s| pow::ticket::solve(&s, ch.ticket_bits))
        } else {
            None
        },
        redir: None,
    }
}

/// The challenge's salt, as the solver and the ticket need it.
fn salt(ch: &ChallengeResponse) -> Option<[u8; 16]> {
    hex::decode(&ch.salt).ok()?.try_into().ok()
}

/// How a token travels to `/verify-token`.
#[derive(Debug, Clone, Copy)]
enum Credential {
    Cookie,
    Bearer,
}

/// An answer that is not what was hoped for.
struct Refusal {
    /// 0 for a transport error.
    status: u16,
    code: String,
    retry_after: Option<u64>,
}

impl Refusal {
    /// What the page does on these: retry the same request shortly.
    fn is_retryable(&self) -> bool {
        matches!(self.status, 429 | 503) || self.status == 0
    }

    fn pause(&self) -> Duration {
        self.retry_after
            .map_or(Duration::from_millis(250), |s| {
                Duration::from_secs(s.clamp(0, 2))
            })
            .max(Duration::from_millis(50))
    }
}

struct Client<'a> {
    agent: ureq::Agent,
    target: &'a Target,
}

type Resp = ureq::http::Response<ureq::Body>;

impl<'a> Client<'a> {
    fn new(target: &'a Target) -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            target,
        }
    }

    fn post<T: serde::Serialize>(
        &self,
        path: &str,
        ip: &str,
        body: &T,
    ) -> Option<Result<Resp, Refusal>> {
        if !self.target.take() {
            return None;
        }
        Some(
            self.agent
                .post(format!("{}{path}", self.target.base))
                .header(self.target.ip_header.as_str(), ip)
                .send_json(body)
                .map_err(|_| Refusal {
                    status: 0,
                    code: "transport".into(),
                    retry_after: None,
                }),
        )
    }

    /// `None` when the run is over.
    fn challenge(&self, ip: &str) -> Option<Result<ChallengeResponse, Refusal>> {
        let resp = self.post("/api/challenge", ip, &ChallengeRequest::default())?;
        Some(resp.and_then(|mut r| {
            if r.status() == 200 {
                r.body_mut().read_json().map_err(|_| Refusal {
                    status: 200,
                    code: "unreadable".into(),
                    retry_after: None,
                })
            } else {
                Err(refusal(&mut r))
            }
        }))
    }

    /// One submission; the token on 200.
    fn solve_once(&self, ip: &str, req: &SolveRequest) -> Option<Result<String, Refusal>> {
        let resp = self.post("/api/solve", ip, req)?;
        Some(resp.and_then(|mut r| {
            if r.status() == 200 {
                r.body_mut()
                    .read_json::<pow::wire::SolveResponse>()
                    .map(|s| s.token)
                    .map_err(|_| Refusal {
                        status: 200,
                        code: "unreadable".into(),
                        retry_after: None,
                    })
            } else {
                Err(refusal(&mut r))
            }
        }))
    }

    /// Submits until a final answer, retrying the same submission on
    /// 429/503 as the page does, while `valid_until` allows. Every answer
    /// is counted in `tally`. `None` when the run ended first.
    fn solve(
        &self,
        ip: &str,
        req: &SolveRequest,
        valid_until: Instant,
        tally: &mut Tally,
    ) -> Option<Result<String, Refusal>> {
        loop {
            let answer = self.solve_once(ip, req)?;
            match &answer {
                Ok(_) => tally.answer(200, "token"),
                Err(r) => tally.answer(r.status, &r.code),
            }
            match answer {
                Err(r) if r.is_retryable() => {
                    let next = Instant::now() + r.pause();
                    if next >= valid_until {
                        return Some(Err(Refusal {
                            status: 410,
                            code: "expired_while_waiting".into(),
                            retry_after: None,
                        }));
                    }
                    if !self.target.sleep_until(next) {
                        return None;
                    }
                }
                other => return Some(other),
            }
        }
    }

    /// `/verify-token` with `token`; `None` when the run is over.
    fn verify(&self, ip: &str, token: &str, how: Credential) -> Option<u16> {
        if !self.target.take() {
            return None;
        }
        let req = self
            .agent
            .get(format!("{}/verify-token", self.target.base))
            .header(self.target.ip_header.as_str(), ip)
            .header("X-Original-URI", "/");
        let req = match how {
            Credential::Cookie => req.header("Cookie", format!("powgate_token={token}")),
            Credential::Bearer => req.header("Authorization", format!("Bearer {token}")),
        };
        Some(match req.call() {
            Ok(mut r) => {
                let _ = r.body_mut().read_to_string();
                r.status().as_u16()
            }
            Err(_) => 0,
        })
    }
}

fn refusal(r: &mut Resp) -> Refusal {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let code = r
        .body_mut()
        .read_json::<ErrorBody>()
        .map_or_else(|_| "unknown".into(), |e| e.error);
    Refusal {
        status,
        code,
        retry_after,
    }
}

/// When a challenge stops being worth solving, on this machine's clock: its
/// lifetime as the server states it, from when it arrived.
fn valid_until(ch: &ChallengeResponse, arrived: Instant) -> Instant {
    let life = u64::try_from(ch.expires_at.saturating_sub(ch.issued_at)).unwrap_or(0);
    arrived + Duration::from_secs(life)
}

// --- honest solvers: visitors, botnet, scraper --------------------------------------

/// One member's visit in progress.
struct Visit {
    started: Instant,
    challenge: ChallengeResponse,
    salt: [u8; 16],
    target: [u8; 32],
    valid_until: Instant,
    next_nonce: u64,
    /// When this member may hash again, at its pace.
    due: Instant,
    solving_since: Instant,
    hashes: u64,
}

/// Members solving honestly on one thread, interleaved by their pace.
struct Crowd<'a> {
    client: Client<'a>,
    hasher: Option<Hasher>,
    out: Vec<u8>,
    /// Seconds between two hashes of one member; 0 at full speed.
    pace: f64,
}

/// What a member does with a token.
enum Use<'a> {
    /// A visitor browsing: this many `/verify-token` requests, cookie.
    Browse(u32),
    /// The scraper: hand it to the hammer threads.
    Pool(&'a TokenPool),
}

impl<'a> Crowd<'a> {
    fn new(target: &'a Target, rate: f64) -> Self {
        Self {
            client: Client::new(target),
            hasher: None,
            out: Vec::new(),
            pace: if rate > 0.0 { 1.0 / rate } else { 0.0 },
        }
    }

    /// Asks for a challenge, retrying busy answers; `Err(())` counts a
    /// failed visit, `Ok(None)` means the run ended.
    fn start_visit(&self, ip: &str, tally: &mut Tally) -> Result<Option<Visit>, ()> {
        let started = Instant::now();
        loop {
            let Some(answer) = self.client.challenge(ip) else {
                return Ok(None);
            };
            match answer {
                Ok(challenge) => {
                    let (Some(salt), Ok(d)) =
                        (salt(&challenge), Difficulty::new(challenge.difficulty))
                    else {
                        tally.answer(200, "bad_challenge");
                        return Err(());
                    };
                    let now = Instant::now();
                    tally.difficulty = tally.difficulty.max(d.get());
                    return Ok(Some(Visit {
                        started,
                        valid_until: valid_until(&challenge, now),
                        salt,
                        target: d.target(),
                        challenge,
                        next_nonce: 0,
                        due: now,
                        solving_since: now,
                        hashes: 0,
                    }));
                }
                Err(r) if r.is_retryable() => {
                    if !self.client.target.sleep_until(Instant::now() + r.pause()) {
                        return Ok(None);
                    }
                }
                Err(r) => {
                    tally.answer(r.status, &format!("challenge_{}", r.code));
                    return Err(());
                }
            }
        }
    }

    /// Hashes the visit's next nonce; the nonce when it wins.
    ///
    /// # Errors
    /// The argon2 memory block for the challenge's parameters cannot be had.
    fn hash_one(&mut self, v: &mut Visit, tally: &mut Tally) -> Result<Option<u64>, HashError> {
        let params = v.challenge.argon2;
        let hasher = match &mut self.hasher {
            Some(h) if h.params() == params => h,
            slot => {
                self.out = vec![0; params.hash_length() as usize];
                slot.insert(Hasher::new(params)?)
            }
        };
        let nonce = v.next_nonce;
        let out = &mut self.out;
        measured(tally, true, |_| hasher.hash_into(&v.salt, nonce, out))?;
        v.next_nonce += 1;
        v.hashes += 1;
        tally.hashes += 1;
        v.due += Duration::from_secs_f64(self.pace);
        Ok(meets_target(&self.out, &v.target).then_some(nonce))
    }

    /// Submits the visit's winning nonce and uses the token; records the
    /// visit's outcome.
    fn finish(&self, ip: &str, v: &Visit, nonce: u64, after: &Use<'_>, tally: &mut Tally) {
        let telemetry = Telemetry {
            hashes: Some(v.hashes),
            elapsed_ms: u64::try_from(v.solving_since.elapsed().as_millis()).ok(),
            workers: Some(1),
            class: None,
        };
        let req = solution(&v.challenge, nonce, Some(telemetry));
        match measured(tally, false, |t| {
            self.client.solve(ip, &req, v.valid_until, t)
        }) {
            None => tally.visits_cut += 1,
            Some(Err(_)) => tally.visits_failed += 1,
            Some(Ok(token)) => {
                tally.tokens += 1;
                tally.visits_ok += 1;
                tally.time_to_token.push(v.started.elapsed().as_secs_f64());
                match after {
                    Use::Browse(n) => {
                        for _ in 0..*n {
                            match measured(tally, false, |_| {
                                self.client.verify(ip, &token, Credential::Cookie)
                            }) {
                                Some(200) => tally.passed += 1,
                                Some(_) => tally.refused += 1,
                                None => break,
                            }
                        }
                    }
                    Use::Pool(pool) => pool.add(token),
                }
            }
        }
    }

    /// Runs `members` (addresses) on this thread until each made `visits`
    /// (0: until the run ends).
    fn run(mut self, members: &[String], visits: u32, after: &Use<'_>) -> Tally {
        let mut tally = Tally::default();
        let target = self.client.target;
        let mut active: Vec<(usize, Visit)> = Vec::new();
        let mut done = vec![0u32; members.len()];
        let mut idle: Vec<usize> = (0..members.len()).collect();
        loop {
            // Members without a visit start one, unless they made theirs.
            idle.retain(|&i| {
                if visits > 0 && done[i] >= visits {
                    return false;
                }
                match measured(&mut tally, false, |t| self.start_visit(&members[i], t)) {
                    Ok(Some(v)) => {
                        active.push((i, v));
                        false
                    }
                    Ok(None) => true,
                    Err(()) => {
                        tally.visits_failed += 1;
                        done[i] += 1;
                        visits == 0 || done[i] < visits
                    }
                }
            });
            if target.stopped() || active.is_empty() && idle.is_empty() {
                break;
            }
            let Some(k) = (0..active.len()).min_by_key(|&k| active[k].1.due) else {
                continue;
            };
            if !target.sleep_until(active[k].1.due) {
                break;
            }
            let (i, v) = &mut active[k];
            let i = *i;
            if Instant::now() >= v.valid_until {
                tally.answer(0, "challenge_expired_while_solving");
                tally.visits_failed += 1;
                active.swap_remove(k);
                done[i] += 1;
                idle.push(i);
                continue;
            }
            match self.hash_one(v, &mut tally) {
                Ok(None) => {}
                Ok(Some(nonce)) => {
                    let (i, v) = active.swap_remove(k);
                    self.finish(&members[i], &v, nonce, after, &mut tally);
                    done[i] += 1;
                    idle.push(i);
                }
                Err(_) => {
                    tally.answer(0, "solver_out_of_memory");
                    tally.visits_failed += 1;
                    active.swap_remove(k);
                    done[i] += 1;
                    idle.push(i);
                }
            }
        }
        tally.visits_cut += active.len() as u64;
        tally
    }
}

/// The scraper's tokens, each with the addresses it still passes from.
struct TokenPool {
    tokens: Mutex<Vec<(String, Vec<usize>)>>,
    addresses: usize,
    next: AtomicUsize,
}

impl TokenPool {
    fn add(&self, token: String) {
        let lanes = (0..self.addresses.max(1)).collect();
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((token, lanes));
    }

    /// The next (token, address) to use, round-robin.
    fn pick(&self) -> Option<(String, usize)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.is_empty() {
            return None;
        }
        let (token, lanes) = &tokens[n % tokens.len()];
        Some((token.clone(), lanes[(n / tokens.len()) % lanes.len()]))
    }

    /// The token was refused at `lane`: stop using it there, and drop it
    /// once it passes nowhere.
    fn refused(&self, token: &str, lane: usize) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pos) = tokens.iter().position(|(t, _)| t == token) {
            tokens[pos].1.retain(|&l| l != lane);
            if tokens[pos].1.is_empty() {
                tokens.swap_remove(pos);
            }
        }
    }
}

fn hammer(target: &Target, pool: &TokenPool) -> Tally {
    let mut tally = Tally::default();
    let client = Client::new(target);
    let before = thread_cpu_seconds();
    while !target.stopped() {
        let Some((token, lane)) = pool.pick() else {
            target.sleep_until(Instant::now() + Duration::from_millis(20));
            continue;
        };
        match client.verify(&address::scraper(lane), &token, Credential::Bearer) {
            Some(200) => tally.passed += 1,
            Some(_) => {
                tally.refused += 1;
                pool.refused(&token, lane);
            }
            None => break,
        }
    }
    tally.cpu_seconds += thread_cpu_seconds() - before;
    tally
}

// --- flooder ------------------------------------------------------------------------

fn flood_thread(target: &Target, plan: &Plan, index: usize) -> Tally {
    let mut tally = Tally::default();
    let client = Client::new(target);
    let mut rng = Rng::seeded();
    let before = thread_cpu_seconds();
    // Each thread walks its own residue class of the address numbers.
    let mut k = index;
    let pace = if plan.flood_rate > 0.0 {
        Duration::from_secs_f64(plan.flood_threads as f64 / plan.flood_rate)
    } else {
        Duration::ZERO
    };
    let mut next = Instant::now();
    while !target.stopped() {
        // Paced per attempt, a refused challenge included, so the offered
        // rate holds whatever powgate answers.
        if !pace.is_zero() {
            if !target.sleep_until(next) {
                break;
            }
            next += pace;
        }
        let ip = address::flood(plan.flood_shape, k % plan.flood_addresses.max(1), &mut rng);
        k += plan.flood_threads.max(1);
        let Some(answer) = client.challenge(&ip) else {
            break;
        };
        let ch = match answer {
            Ok(ch) => ch,
            Err(r) => {
                tally.answer(r.status, &format!("challenge_{}", r.code));
                continue;
            }
        };
        let mut req = solution_with(&ch, rng.next(), None, plan.flood_pays_tickets);
        if !plan.flood_pays_tickets && ch.ticket_bits > 0 {
            req.ticket = Some(rng.next());
        }
        match client.solve_once(&ip, &req) {
            None => break,
            Some(Ok(_)) => {
                // A random nonce that happens to meet a small difficulty.
                tally.answer(200, "token");
                tally.tokens += 1;
            }
            Some(Err(r)) => tally.answer(r.status, &r.code),
        }
    }
    tally.cpu_seconds += thread_cpu_seconds() - before;
    tally
}

// --- replayer -----------------------------------------------------------------------

/// A fresh challenge solved at full speed: the request, and when the
/// challenge stops being valid.
fn honest_solution(
    client: &Client<'_>,
    ip: &str,
    tally: &mut Tally,
) -> Option<(SolveRequest, Instant)> {
    let crowd = Crowd {
        client: Client::new(client.target),
        hasher: None,
        out: Vec::new(),
        pace: 0.0,
    };
    let mut crowd = crowd;
    let mut v = crowd.start_visit(ip, tally).ok()??;
    loop {
        if client.target.stopped() {
            return None;
        }
        if let Some(nonce) = crowd.hash_one(&mut v, tally).ok()? {
            return Some((solution(&v.challenge, nonce, None), v.valid_until));
        }
    }
}

fn replayer(target: &Target, plan: &Plan) -> Tally {
    let mut tally = Tally::default();
    let before = thread_cpu_seconds();
    let client = Client::new(target);
    let ip = address::REPLAYER;

    // 1. An honest token, then the same solution again, from its own
    // address and from others: every replay must be refused.
    if let Some((req, until)) = honest_solution(&client, ip, &mut tally)
        && let Some(Ok(token)) = client.solve(ip, &req, until, &mut tally)
    {
        tally.tokens += 1;
        for i in 0..10 {
            let from = if i % 2 == 0 {
                ip.to_owned()
            } else {
                address::replayer_share(1000 + i)
            };
            if let Some(Ok(_)) = client.solve(&from, &req, until, &mut tally) {
                tally.extra_tokens += 1;
            }
        }
        // 2. The one token shared across many addresses.
        for i in 0..plan.replayer_addresses {
            let from = address::replayer_share(i);
            let mut passed = false;
            for _ in 0..2 {
                match client.verify(&from, &token, Credential::Cookie) {
                    Some(200) => {
                        tally.passed += 1;
                        passed = true;
                    }
                    Some(_) => tally.refused += 1,
                    None => break,
                }
            }
            tally.shared_token_addresses_passed += u64::from(passed);
        }
    }

    // 3. One solution submitted by many at the same instant.
    if plan.double_submit > 0
        && let Some((req, until)) = honest_solution(&client, ip, &mut tally)
    {
        let gate = Barrier::new(plan.double_submit);
        let tokens = AtomicU64::new(0);
        let answers = Mutex::new(Tally::default());
        std::thread::scope(|s| {
            for _ in 0..plan.double_submit {
                s.spawn(|| {
                    let client = Client::new(target);
                    let mut mine = Tally::default();
                    gate.wait();
                    if let Some(Ok(_)) = client.solve(ip, &req, until, &mut mine) {
                        tokens.fetch_add(1, Ordering::Relaxed);
                    }
                    answers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .merge(mine);
                });
            }
        });
        let tokens = tokens.into_inner();
        tally.merge(answers.into_inner().unwrap_or_else(PoisonError::into_inner));
        tally.tokens += tokens;
        tally.extra_tokens += tokens.saturating_sub(1);
        tally.double_submit_tokens = Some(tokens);
    }
    tally.cpu_seconds += thread_cpu_seconds() - before;
    tally
}

// --- the run ------------------------------------------------------------------------

/// Every persona's tally, by name, after one run.
pub type Outcome = BTreeMap<&'static str, Tally>;

/// Runs the plan's personas at the same time until the target's time or
/// request budget is up, or, when visitors make a fixed number of visits or
/// the replayer runs, until those finite personas are done.
pub fn run(target: &Target, plan: &Plan) -> Outcome {
    let visitors: Vec<String> = (0..plan.visitors).map(address::visitor).collect();
    let botnet: Vec<String> = (0..plan.botnet).map(address::botnet).collect();
    let pool = TokenPool {
        tokens: Mutex::new(Vec::new()),
        addresses: plan.scraper_addresses,
        next: AtomicUsize::new(0),
    };
    let finite = (if plan.visits > 0 { plan.visitors } else { 0 }) + usize::from(plan.replayer);
    let finite_left = AtomicUsize::new(finite);
    // Ends the run once the last finite persona thread is done.
    let finished = || {
        if finite_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            target.end();
        }
    };
    let mut outcome = Outcome::new();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for ip in &visitors {
            let finished = &finished;
            handles.push((
                "visitor",
                s.spawn(move || {
                    let t = Crowd::new(target, plan.visitor_rate).run(
                        std::slice::from_ref(ip),
                        plan.visits,
                        &Use::Browse(plan.visitor_uses),
                    );
                    if plan.visits > 0 {
                        finished();
                    }
                    t
                }),
            ));
        }
        let threads = plan.botnet_threads.clamp(1, botnet.len().max(1));
        for t in 0..threads.min(botnet.len()) {
            let members: Vec<String> = botnet.iter().skip(t).step_by(threads).cloned().collect();
            handles.push((
                "botnet",
                s.spawn(move || {
                    Crowd::new(target, plan.botnet_rate).run(
                        &members,
                        0,
                        &Use::Browse(plan.visitor_uses),
                    )
                }),
            ));
        }
        for i in 0..plan.flood_threads {
            handles.push(("flooder", s.spawn(move || flood_thread(target, plan, i))));
        }
        for i in 0..plan.scraper_threads {
            let pool = &pool;
            let members = vec![address::scraper(i % plan.scraper_addresses.max(1))];
            handles.push((
                "scraper",
                s.spawn(move || Crowd::new(target, 0.0).run(&members, 0, &Use::Pool(pool))),
            ));
        }
        if plan.scraper_threads > 0 {
            for _ in 0..plan.scraper_hammer_threads {
                let pool = &pool;
                handles.push(("scraper", s.spawn(move || hammer(target, pool))));
            }
        }
        if plan.replayer {
            let finished = &finished;
            handles.push((
                "replayer",
                s.spawn(move || {
                    let t = replayer(target, plan);
                    finished();
                    t
                }),
            ));
        }
        for (name, h) in handles {
            // A panicking thread loses its tally; the others still report.
            if let Ok(t) = h.join() {
                outcome.entry(name).or_default().merge(t);
            }
        }
    });
    outcome
}

// --- the server's side --------------------------------------------------------------

/// Server-side argon2 verification seconds, from `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VerifySeconds {
    pub valid: f64,
    pub wrong: f64,
    /// All verifications; the sum of the argon2 histogram when the
    /// per-verdict counter is missing.
    pub total: f64,
    /// Verifications, from the argon2 histogram's count.
    pub count: f64,
    /// Whether the per-verdict counter was there.
    pub by_verdict: bool,
}

impl VerifySeconds {
    /// Reads `powgate_verify_seconds_total{verdict=…}` when the server
    /// has it, else `powgate_argon2_verify_seconds_sum`.
    pub fn parse(metrics: &str) -> Self {
        let mut out = Self::default();
        let mut histogram_sum = 0.0;
        for line in metrics.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if name.starts_with("powgate_verify_seconds_total") {
                out.by_verdict = true;
                if name.contains("verdict=\"valid\"") {
                    out.valid += value;
                } else if name.contains("verdict=\"wrong\"") {
                    out.wrong += value;
                }
                out.total += value;
            } else if name == "powgate_argon2_verify_seconds_sum" {
                histogram_sum = value;
            } else if name == "powgate_argon2_verify_seconds_count" {
                out.count = value;
            }
        }
        if !out.by_verdict {
            out.total = histogram_sum;
        }
        out
    }

    /// Fetches and parses `url`; `None` when it cannot be read.
    pub fn scrape(url: &str) -> Option<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let text = agent
            .get(url)
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        Some(Self::parse(&text))
    }

    pub fn since(self, before: Self) -> Self {
        Self {
            valid: self.valid - before.valid,
            wrong: self.wrong - before.wrong,
            total: self.total - before.total,
            count: self.count - before.count,
            by_verdict: self.by_verdict,
        }
    }
}
