//! The attack simulator: personas attacking one live powgate at the same
//! time, and what each of them gets for what it spends (issue 14).
//!
//! ```text
//! cargo run --release -p powgate --example attack -- --url http://127.0.0.1:8080 \
//!     --visitors 4 --visitor-rate 3.7 --flood-threads 16 --flood-shape scattered --seconds 60
//! ```
//!
//! Personas (see `attack/personas.rs`), each left out at 0:
//! - `--visitors N`: real visitors solving at `--visitor-rate` hashes/s;
//! - `--botnet N`: many addresses solving honestly at `--botnet-rate`;
//! - `--flood-threads T`: garbage solutions to fresh challenges, shaped
//!   `concentrated` (one IPv6 /48 and one IPv4 /16) or `scattered` (each of
//!   `--flood-addresses` in a network of its own);
//! - `--scraper-threads K`: full-speed native solving, every token used as
//!   much as powgate allows from up to `--scraper-addresses` addresses;
//! - `--replayer`: replays, a shared token, a 100-way double submit.
//!
//! Safety rails, as in `flood`: only loopback URLs are accepted, the run
//! stops by itself after `--seconds` or `--max-requests`, and the client
//! addresses, from 198.18.0.0/15 and 2001:db8::/32, only ever appear inside
//! the trusted client-IP header.
//!
//! Prints one JSON object on stdout and a table on stderr. The server's
//! argon2 verification seconds during the run come from its `/metrics`
//! (`--metrics-url`, by default the URL's own `/metrics`).

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};

#[path = "support/mod.rs"]
mod support;

#[path = "attack/personas.rs"]
mod personas;

use personas::{FloodShape, Outcome, Plan, Tally, Target, VerifySeconds};
use support::is_loopback_url;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    Concentrated,
    Scattered,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Tickets {
    /// Solve each ticket (about one argon2 hash of SHA-256 work).
    Paid,
    /// Send a random ticket.
    Bogus,
}

/// Attack a local powgate with several personas at once and report what
/// each one got for its CPU.
#[derive(Debug, Parser)]
#[allow(clippy::struct_excessive_bools)]
struct Args {
    /// Base URL of the powgate under test; must be on loopback.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Where the server's Prometheus metrics are; default URL/metrics.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Header that carries the client address to a trusted proxy's server.
    #[arg(long, default_value = "X-Real-IP")]
    ip_header: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Stop after this many requests in all.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    max_requests: u64,

    /// Real visitors, each on its own thread and address.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    visitors: u16,
    /// A visitor's hashes per second (a phone at the defaults: 3.7); 0 for
    /// full native speed.
    #[arg(long, default_value_t = 3.7)]
    visitor_rate: f64,
    /// Visits per visitor, after which the run may end; 0 repeats visits
    /// until the run ends.
    #[arg(long, default_value_t = 0)]
    visits: u32,
    /// `/verify-token` requests a visitor (or botnet member) makes with each token.
    #[arg(long, default_value_t = 5)]
    visitor_uses: u32,

    /// Botnet members, each with an address of its own.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=12_288))]
    botnet: u32,
    /// Threads the botnet's members are interleaved on (one argon2 block each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    botnet_threads: u16,
    /// A botnet member's hashes per second.
    #[arg(long, default_value_t = 1.0)]
    botnet_rate: f64,

    /// Flood threads sending garbage solutions; 0 for no flood.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    flood_threads: u16,
    #[arg(long, value_enum, default_value_t = Shape::Concentrated)]
    flood_shape: Shape,
    /// Distinct flood addresses for the scattered shape.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..=32_768))]
    flood_addresses: u32,
    /// Garbage submissions per second for all flood threads; 0 is as fast
    /// as the threads go.
    #[arg(long, default_value_t = 0.0)]
    flood_rate: f64,
    /// Whether the flood pays for each garbage nonce's admission ticket, so
    /// that it reaches argon2, or sends a random ticket, which powgate
    /// refuses with one SHA-256.
    #[arg(long, value_enum, default_value_t = Tickets::Paid)]
    flood_tickets: Tickets,

    /// Scraper solver threads (cores) at full native speed; 0 for none.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    scraper_threads: u16,
    /// Addresses the scraper solves from and uses its tokens from.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    scraper_addresses: u16,
    /// Threads using the scraper's tokens on `/verify-token`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    scraper_hammer_threads: u16,

    /// Run the replayer: replays, a shared token, a concurrent double submit.
    #[arg(long)]
    replayer: bool,
    /// Addresses the replayer's shared token is tried from.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    replayer_addresses: u16,
    /// Concurrent submissions of one solution in the double submit.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=500))]
    double_submit: u16,
    /// The server's token_max_ips, to count the shared token's passes beyond it.
    #[arg(long, default_value_t = 2)]
    token_max_ips: u64,
}

impl Args {
    fn plan(&self) -> Plan {
        Plan {
            visitors: self.visitors.into(),
            visitor_rate: self.visitor_rate.max(0.0),
            visits: self.visits,
            visitor_uses: self.visitor_uses,
            botnet: self.botnet as usize,
            botnet_threads: self.botnet_threads.into(),
            botnet_rate: self.botnet_rate.max(0.0),
            flood_threads: self.flood_threads.into(),
            flood_shape: match self.flood_shape {
                Shape::Concentrated => FloodShape::Concentrated,
                Shape::Scattered => FloodShape::Scattered,
            },
            flood_addresses: self.flood_addresses as usize,
            flood_rate: self.flood_rate.max(0.0),
            flood_pays_tickets: matches!(self.flood_tickets, Tickets::Paid),
            scraper_threads: self.scraper_threads.into(),
            scraper_addresses: self.scraper_addresses.into(),
            scraper_hammer_threads: self.scraper_hammer_threads.into(),
            replayer: self.replayer,
            replayer_addresses: self.replayer_addresses.into(),
            double_submit: self.double_submit.into(),
            token_max_ips: self.token_max_ips,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !is_loopback_url(&args.url) {
        eprintln!(
            "attack: {} is not a loopback http:// URL; this tool only attacks a powgate on this machine",
            args.url
        );
        return ExitCode::FAILURE;
    }
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        eprintln!("attack: --seconds must be in (0, 3600]");
        return ExitCode::FAILURE;
    }
    let metrics_url = args
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("{}/metrics", args.url.trim_end_matches('/')));
    if !is_loopback_url(&metrics_url) {
        eprintln!("attack: --metrics-url {metrics_url} is not a loopback http:// URL");
        return ExitCode::FAILURE;
    }
    let plan = args.plan();
    let target = Target::new(&args.url, &args.ip_header, args.seconds, args.max_requests);
    let before = VerifySeconds::scrape(&metrics_url);
    let started = Instant::now();
    let outcome = personas::run(&target, &plan);
    let secs = started.elapsed().as_secs_f64();
    let server = before
        .zip(VerifySeconds::scrape(&metrics_url))
        .map(|(b, a)| a.since(b));
    report(&args, &plan, &outcome, server, secs, target.requests());
    ExitCode::SUCCESS
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

fn persona_json(t: &Tally, plan: &Plan) -> serde_json::Value {
    let mut v = serde_json::json!({
        "tokens": t.tokens,
        "passed": t.passed,
        "refused": t.refused,
        "cpu_seconds": t.cpu_seconds,
        "solver_cpu_seconds": t.solver_cpu_seconds,
        "cpu_seconds_per_1000_passed": t.cpu_per_1000_passed(),
        "tokens_per_core_hour": t.tokens_per_core_hour(),
        "tokens_per_core_hour_expected": t.tokens_per_core_hour_expected(),
        "difficulty": t.difficulty,
        "hashes": t.hashes,
        "solve_answers": t.solve_answers,
        "visits": { "ok": t.visits_ok, "failed": t.visits_failed, "cut_by_end_of_run": t.visits_cut },
        "success_rate": t.success_rate(),
        "time_to_token_p50": t.time_to_token_quantile(0.5),
        "time_to_token_p95": t.time_to_token_quantile(0.95),
    });
    if t.double_submit_tokens.is_some() || t.shared_token_addresses_passed > 0 || plan.replayer {
        v["extra_tokens"] = t.extra_tokens.into();
        v["shared_token_addresses_passed"] = t.shared_token_addresses_passed.into();
        v["shared_token_passes_beyond_max_ips"] = t
            .shared_token_addresses_passed
            .saturating_sub(plan.token_max_ips)
            .into();
        v["double_submit_tokens"] = t.double_submit_tokens.into();
    }
    v
}

fn report(
    args: &Args,
    plan: &Plan,
    outcome: &Outcome,
    server: Option<VerifySeconds>,
    secs: f64,
    requests: u64,
) {
    eprintln!(
        "attack: {requests} requests in {secs:.1} s against {}",
        args.url
    );
    eprintln!(
        "  {:<9} {:>7} {:>9} {:>8} {:>10} {:>12} {:>8} {:>8} {:>8}",
        "persona",
        "tokens",
        "passed",
        "cpu s",
        "cpu/1000",
        "tok/core-h",
        "ok rate",
        "ttt p50",
        "ttt p95"
    );
    eprintln!("  (ttt: time to token, s; cpu/1000: attacker CPU-seconds per 1000 requests passed)");
    let mut personas = serde_json::Map::new();
    for (name, t) in outcome {
        eprintln!(
            "  {name:<9} {:>7} {:>9} {:>8.2} {:>10} {:>12} {:>8} {:>8} {:>8}",
            t.tokens,
            t.passed,
            t.cpu_seconds,
            opt(t.cpu_per_1000_passed()),
            t.tokens_per_core_hour()
                .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
            opt(t.success_rate()),
            opt(t.time_to_token_quantile(0.5)),
            opt(t.time_to_token_quantile(0.95)),
        );
        personas.insert((*name).into(), persona_json(t, plan));
    }
    if let Some(r) = outcome.get("replayer") {
        eprintln!(
            "  replayer: {} extra tokens, shared token passed from {} addresses (max_ips {}), double submit gave {} tokens",
            r.extra_tokens,
            r.shared_token_addresses_passed,
            plan.token_max_ips,
            r.double_submit_tokens
                .map_or_else(|| "-".into(), |n| n.to_string()),
        );
    }
    if let Some(s) = server {
        if s.by_verdict {
            eprintln!(
                "  server argon2 verification: {:.2} s on wrong answers, {:.2} s on valid ones",
                s.wrong, s.valid
            );
        } else {
            eprintln!("  server argon2 verification: {:.2} s in all", s.total);
        }
    } else {
        eprintln!("  server metrics: unavailable");
    }
    let out = serde_json::json!({
        "url": args.url,
        "seconds": secs,
        "requests": requests,
        "plan": format!("{plan:?}"),
        "personas": personas,
        "server_verify_seconds": server.map(|s| serde_json::json!({
            "valid": s.by_verdict.then_some(s.valid),
            "wrong": s.by_verdict.then_some(s.wrong),
            "total": s.total,
            "verifications": s.count,
            "source": if s.by_verdict { "powgate_verify_seconds_total" } else { "powgate_argon2_verify_seconds_sum" },
        })),
    });
    println!("{out}");
}
