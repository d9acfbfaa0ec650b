//! A flood of bogus solutions, for the load benchmark (`just bench`, part b).
//!
//! Each thread repeats: pick a random client address, ask
//! `POST /api/challenge` for a fresh, validly signed challenge on its behalf,
//! and submit it at once to `POST /api/solve` with a random nonce, which is
//! wrong unless the server's difficulty is tiny. The address travels in the
//! client-IP header (`X-Real-IP` by default), which powgate believes because
//! the flood comes from loopback, a trusted proxy. So the per-address rate
//! limits and the wrong-answer back-off hardly ever bind, and what does bind
//! is the verification line: submissions wait for a turn (up to 10 s) and
//! are then verified, or answered 503 `queued`, so the flood keeps
//! verification saturated with as many submissions as it has threads.
//!
//! Each submission carries a random, almost surely wrong admission ticket,
//! which costs the flood nothing and is refused with 400 `bad_ticket` before
//! argon2 runs, unless the server asks for none (`POW_TICKET_BITS=0`).
//! `--valid-tickets` pays for a real ticket per submission instead (about
//! one argon2 hash of SHA-256 each), the flood a ticket cannot stop.
//!
//! ```text
//! cargo run --release -p powgate --example flood -- --url http://127.0.0.1:8080 --seconds 20
//! ```
//!
//! Safety rails: only loopback URLs are accepted, and the run stops by
//! itself after `--seconds` or `--max-requests`, whichever comes first. The
//! client addresses are drawn from 198.18.0.0/15, the range RFC 2544 sets
//! aside for benchmarks; they only ever appear inside a header.
//!
//! Prints one JSON object on stdout (requests per second by endpoint and
//! status; status 0 counts transport errors) and a short table on stderr.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use pow::wire::{ChallengeRequest, ChallengeResponse, SolveRequest};

#[path = "support/mod.rs"]
mod support;
use support::{Rng, is_loopback_url};

/// Flood a local powgate with wrong solutions to fresh challenges.
#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the powgate under test; must be on loopback.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Client threads, each with its own keep-alive connection.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Stop after this many requests in all (challenges plus solutions).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    max_requests: u64,
    /// Header that carries the client address to a trusted proxy's server.
    #[arg(long, default_value = "X-Real-IP")]
    ip_header: String,
    /// Compute the challenge's admission ticket for each submission rather
    /// than send a bogus one.
    #[arg(long)]
    valid_tickets: bool,
}

/// Counts keyed by (endpoint, HTTP status); status 0 is a transport error.
type Counts = BTreeMap<(&'static str, u16), u64>;

struct Shared {
    base: String,
    ip_header: String,
    valid_tickets: bool,
    deadline: Instant,
    max_requests: u64,
    sent: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Claims one request from the budget; false once time or count is up.
    fn take(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        if self.sent.fetch_add(1, Ordering::Relaxed) >= self.max_requests {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

fn post<T: serde::Serialize>(
    agent: &ureq::Agent,
    shared: &Shared,
    path: &str,
    ip: &str,
    body: &T,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    agent
        .post(format!("{}{path}", shared.base))
        .header(shared.ip_header.as_str(), ip)
        .send_json(body)
}

fn flood_thread(shared: &Shared) -> Counts {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut rng = Rng::seeded();
    let mut counts = Counts::new();
    while shared.take() {
        let ip = rng.bench_ip();
        let challenge = match post(
            &agent,
            shared,
            "/api/challenge",
            &ip,
            &ChallengeRequest::default(),
        ) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                *counts.entry(("challenge", status)).or_default() += 1;
                if status == 200 {
                    resp.body_mut().read_json::<ChallengeResponse>().ok()
                } else {
                    // Drain the body so the connection can be reused.
                    let _ = resp.body_mut().read_to_string();
                    None
                }
            }
            Err(_) => {
                *counts.entry(("challenge", 0)).or_default() += 1;
                None
            }
        };
        let Some(challenge) = challenge else {
            continue;
        };
        if !shared.take() {
            break;
        }
        let ticket = if shared.valid_tickets {
            paid_ticket(&challenge)
        } else {
            rng.next()
        };
        let req = SolveRequest {
            challenge: challenge.challenge,
            nonce: rng.next(),
            ticket: Some(ticket),
            refresh_token: None,
            telemetry: None,
            redir: None,
        };
        let status = match post(&agent, shared, "/api/solve", &ip, &req) {
            Ok(mut resp) => {
                let _ = resp.body_mut().read_to_string();
                resp.status().as_u16()
            }
            Err(_) => 0,
        };
        *counts.entry(("solve", status)).or_default() += 1;
    }
    counts
}

/// The admission ticket `ch` asks for, paid for in SHA-256 work; 0 (any
/// ticket will do) when the salt is unreadable or no ticket is asked for.
fn paid_ticket(ch: &ChallengeResponse) -> u64 {
    let salt: Option<[u8; 16]> = hex::decode(&ch.salt).ok().and_then(|v| v.try_into().ok());
    salt.map_or(0, |salt| pow::ticket::solve(&salt, ch.ticket_bits))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !is_loopback_url(&args.url) {
        eprintln!(
            "flood: {} is not a loopback http:// URL; this tool only floods a powgate on this machine",
            args.url
        );
        return ExitCode::FAILURE;
    }
    let shared = Shared {
        base: args.url.trim_end_matches('/').to_owned(),
        ip_header: args.ip_header.clone(),
        valid_tickets: args.valid_tickets,
        deadline: Instant::now() + Duration::from_secs(args.seconds),
        max_requests: args.max_requests,
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let started = Instant::now();
    let mut total = Counts::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|_| s.spawn(|| flood_thread(&shared)))
            .collect();
        for h in handles {
            // A panicking thread loses its counts; the others still report.
            if let Ok(counts) = h.join() {
                for (k, v) in counts {
                    *total.entry(k).or_default() += v;
                }
            }
        }
    });
    let secs = started.elapsed().as_secs_f64();
    report(&args, &total, secs);
    ExitCode::SUCCESS
}

#[allow(clippy::cast_precision_loss)]
fn report(args: &Args, total: &Counts, secs: f64) {
    let requests: u64 = total.values().sum();
    let mut by_status = serde_json::Map::new();
    eprintln!(
        "flood: {requests} requests in {secs:.1} s from {} threads",
        args.threads
    );
    eprintln!(
        "  {:<10} {:>6} {:>9} {:>9}",
        "endpoint", "status", "count", "req/s"
    );
    for ((endpoint, status), count) in total {
        let rate = *count as f64 / secs;
        eprintln!("  {endpoint:<10} {status:>6} {count:>9} {rate:>9.1}");
        by_status.insert(
            format!("{endpoint} {status}"),
            serde_json::json!({ "count": count, "per_second": rate }),
        );
    }
    let out = serde_json::json!({
        "url": args.url,
        "threads": args.threads,
        "seconds": secs,
        "requests": requests,
        "requests_per_second": requests as f64 / secs,
        "by_status": by_status,
    });
    println!("{out}");
}
