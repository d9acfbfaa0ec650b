//! The cost of one server-side verification, for the load benchmark
//! (`just bench`, part d): one argon2id hash with the given parameters
//! (default t=8, m=64 MiB, p=1) through [`pow::Hasher`] on a memory block that
//! is allocated once and reused, exactly as the server's verifier does; and,
//! with `--c-cli`, the same hash by the C reference implementation's CLI,
//! timed in the same run with the runs interleaved (C, Rust, C, Rust, ...) so
//! that a busy machine slows both alike.
//!
//! ```text
//! cargo run --release -p powgate --example verify_cost -- --runs 15 --c-cli argon2
//! ```
//!
//! The password is the nonce whose 8 big-endian bytes spell `password` and the
//! salt is `somesalt16bytes!`, so the Rust hash must equal the raw output of
//! `echo -n password | argon2 somesalt16bytes! -id -t 8 -k 65536 -p 1 -l 32 -r`
//! (`-r` prints the raw hash only; without it the CLI also verifies, hashing
//! twice). A mismatch is an error: both sides provably do the same work.
//!
//! Each run is timed twice: wall clock, and CPU time (the thread's own for
//! Rust, from `/proc/thread-self/schedstat`; the child's user + system time
//! for C, from `/proc/self/stat`, in 10 ms ticks), because on a machine
//! shared with compilers the wall clock mostly measures the scheduler. The C
//! figure includes starting a process and faulting in a fresh 64 MiB block,
//! which a one-shot CLI cannot avoid; `c_startup_ms` (the CLI with t=1,
//! m=8 KiB) and `fresh_block_median_ms` (Rust allocating a block per hash)
//! show how much that is.
//!
//! Prints one JSON object on stdout.

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::Parser;
use pow::{Argon2Params, Hasher};

const SALT: [u8; 16] = *b"somesalt16bytes!";
const PASSWORD: [u8; 8] = *b"password";
const NONCE: u64 = u64::from_be_bytes(PASSWORD);
/// Kernel clock ticks per second for `/proc/*/stat` times (USER_HZ), 100 on
/// every Linux architecture that matters here.
const USER_HZ: f64 = 100.0;

/// Time one argon2id verification as the server performs it.
#[derive(Debug, Parser)]
struct Args {
    /// Timed hashes on the reused block (and as many C runs).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Timed hashes with a freshly allocated block each (0 to skip).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1000))]
    fresh_runs: u32,
    /// The C reference CLI (Debian package `argon2`) to compare with.
    #[arg(long)]
    c_cli: Option<String>,
    #[arg(long, default_value_t = Argon2Params::DEFAULT_TIME_COST)]
    t_cost: u32,
    #[arg(long, default_value_t = Argon2Params::DEFAULT_MEMORY_KIB)]
    m_cost_kib: u32,
    #[arg(long, default_value_t = Argon2Params::DEFAULT_PARALLELISM)]
    parallelism: u32,
}

/// Wall-clock and CPU milliseconds of one run.
#[derive(Debug, Default)]
struct Samples {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Samples {
    fn summary(&mut self) -> serde_json::Value {
        serde_json::json!({
            "wall_median_ms": median(&mut self.wall),
            "cpu_median_ms": median(&mut self.cpu),
            "wall_ms": self.wall,
            "cpu_ms": self.cpu,
        })
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// CPU time of the calling thread in milliseconds.
#[allow(clippy::cast_precision_loss)]
fn thread_cpu_ms() -> Result<f64, String> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|e| format!("/proc/thread-self/schedstat: {e}"))?;
    let ns: u64 = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("unreadable /proc/thread-self/schedstat")?;
    Ok(ns as f64 / 1e6)
}

/// User + system time of this process's waited-for children, in milliseconds.
fn children_cpu_ms() -> Result<f64, String> {
    let s =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // Fields after the parenthesised command name; cutime and cstime are
    // fields 16 and 17 of the whole line, so 13 and 14 here.
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, String> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| "unreadable /proc/self/stat".to_owned())
    };
    Ok((tick(13)? + tick(14)?) * 1000.0 / USER_HZ)
}

/// Runs the C CLI once on `PASSWORD`; returns its raw hash (hex) and its
/// wall and CPU milliseconds.
fn c_hash(cli: &str, t: u32, m: u32, p: u32) -> Result<(String, f64, f64), String> {
    let cpu0 = children_cpu_ms()?;
    let started = Instant::now();
    let mut child = Command::new(cli)
        .arg(std::str::from_utf8(&SALT).map_err(|e| e.to_string())?)
        .args(["-id", "-t", &t.to_string(), "-k", &m.to_string()])
        .args(["-p", &p.to_string(), "-l", "32", "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cli}: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(&PASSWORD)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let cpu = children_cpu_ms()? - cpu0;
    if !out.status.success() {
        return Err(format!("{cli} failed: {}", out.status));
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        wall,
        cpu,
    ))
}

fn run(args: &Args) -> Result<serde_json::Value, String> {
    let (t, m, p) = (args.t_cost, args.m_cost_kib, args.parallelism);
    let params = Argon2Params::new(t, m, p, 32).map_err(|e| format!("invalid parameters: {e}"))?;
    let mut hasher = Hasher::new(params).map_err(|e| e.to_string())?;
    let mut out = [0u8; 32];
    // Untimed warm-up: page faults of the new block, cold caches, and the
    // C binary's first load from disk.
    hasher
        .hash_into(&SALT, NONCE, &mut out)
        .map_err(|e| e.to_string())?;
    let rust_hex = hex::encode(out);
    if let Some(cli) = &args.c_cli {
        let (c_hex, _, _) = c_hash(cli, t, m, p)?;
        if c_hex != rust_hex {
            return Err(format!("hash mismatch: Rust {rust_hex}, C {c_hex}"));
        }
    }

    let (mut rust, mut c) = (Samples::default(), Samples::default());
    for _ in 0..args.runs {
        if let Some(cli) = &args.c_cli {
            let (_, wall, cpu) = c_hash(cli, t, m, p)?;
            c.wall.push(wall);
            c.cpu.push(cpu);
        }
        let (wall0, cpu0) = (Instant::now(), thread_cpu_ms()?);
        hasher
            .hash_into(&SALT, NONCE, &mut out)
            .map_err(|e| e.to_string())?;
        rust.cpu.push(thread_cpu_ms()? - cpu0);
        rust.wall.push(wall0.elapsed().as_secs_f64() * 1000.0);
    }
    drop(hasher);

    let mut fresh = Vec::new();
    for _ in 0..args.fresh_runs {
        let started = Instant::now();
        let mut h = Hasher::new(params).map_err(|e| e.to_string())?;
        h.hash_into(&SALT, NONCE, &mut out)
            .map_err(|e| e.to_string())?;
        drop(h);
        fresh.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut startup = Vec::new();
    if let Some(cli) = &args.c_cli {
        for _ in 0..5 {
            startup.push(c_hash(cli, 1, 8, 1)?.1);
        }
    }

    let mut v = serde_json::json!({
        "params": { "t_cost": t, "m_cost_kib": m, "parallelism": p, "hash_length": 32 },
        "runs": args.runs,
        "hash_hex": rust_hex,
        "rust_reused_block": rust.summary(),
        "rust_fresh_block_median_ms": if fresh.is_empty() { serde_json::Value::Null } else { median(&mut fresh).into() },
    });
    if args.c_cli.is_some() {
        let rust_wall = median(&mut rust.wall);
        let rust_cpu = median(&mut rust.cpu);
        let c_summary = c.summary();
        v["c_cli"] = c_summary;
        v["c_cli_hash_matches"] = true.into();
        v["c_startup_ms"] = median(&mut startup).into();
        v["ratio_rust_over_c_wall"] = (rust_wall / median(&mut c.wall)).into();
        v["ratio_rust_over_c_cpu"] = (rust_cpu / median(&mut c.cpu)).into();
    }
    Ok(v)
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
