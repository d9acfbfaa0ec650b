//! The cost of one server-side verification, for the load benchmark
//! (`just bench`, part d): one argon2id hash with the given parameters
//! (default t=8, m=64 MiB, p=1) through [`pow::Hasher`] on a memory block that
//! is allocated once and reused, exactly as the server's verifier does.
//!
//! ```text
//! cargo run --release -p powgate --example verify_cost -- --runs 15
//! ```
//!
//! The password is the nonce whose 8 big-endian bytes spell `password` and the
//! salt is `somesalt16bytes!`, so the hash printed equals the raw output of
//! the C reference CLI for
//! `echo -n password | argon2 somesalt16bytes! -id -t 8 -k 65536 -p 1 -l 32 -r`;
//! the benchmark script checks that, so both sides provably did the same work.
//!
//! Prints one JSON object on stdout: the median and minimum of `--runs`
//! timed hashes on the reused block (after one untimed warm-up hash, which
//! pays the block's page faults), and for reference the median when every
//! hash allocates a fresh block, as a one-shot CLI must.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use pow::{Argon2Params, Hasher};

const SALT: [u8; 16] = *b"somesalt16bytes!";
const NONCE: u64 = u64::from_be_bytes(*b"password");

/// Time one argon2id verification as the server performs it.
#[derive(Debug, Parser)]
struct Args {
    /// Timed hashes on the reused block.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Timed hashes with a freshly allocated block each (0 to skip).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    fresh_runs: u32,
    #[arg(long, default_value_t = Argon2Params::DEFAULT_TIME_COST)]
    t_cost: u32,
    #[arg(long, default_value_t = Argon2Params::DEFAULT_MEMORY_KIB)]
    m_cost_kib: u32,
    #[arg(long, default_value_t = Argon2Params::DEFAULT_PARALLELISM)]
    parallelism: u32,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

fn run(args: &Args) -> Result<serde_json::Value, String> {
    let params = Argon2Params::new(args.t_cost, args.m_cost_kib, args.parallelism, 32)
        .map_err(|e| format!("invalid parameters: {e}"))?;
    let mut hasher = Hasher::new(params).map_err(|e| e.to_string())?;
    let mut out = [0u8; 32];
    hasher
        .hash_into(&SALT, NONCE, &mut out)
        .map_err(|e| e.to_string())?;
    let mut reused = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        hasher
            .hash_into(&SALT, NONCE, &mut out)
            .map_err(|e| e.to_string())?;
        reused.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(hasher);
    let mut fresh = Vec::new();
    for _ in 0..args.fresh_runs {
        let t = Instant::now();
        let mut h = Hasher::new(params).map_err(|e| e.to_string())?;
        h.hash_into(&SALT, NONCE, &mut out)
            .map_err(|e| e.to_string())?;
        drop(h);
        fresh.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let min = reused.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(serde_json::json!({
        "t_cost": args.t_cost,
        "m_cost_kib": args.m_cost_kib,
        "parallelism": args.parallelism,
        "runs": args.runs,
        "reused_block_median_ms": median(&mut reused),
        "reused_block_min_ms": min,
        "reused_block_samples_ms": reused,
        "fresh_block_median_ms": if fresh.is_empty() { serde_json::Value::Null } else { median(&mut fresh).into() },
        "hash_hex": hex::encode(out),
    }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("verify_cost: {e}");
            ExitCode::FAILURE
        }
    }
}
