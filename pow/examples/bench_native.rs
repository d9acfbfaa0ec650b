//! Single-thread throughput of the native solver with the default argon2id
//! parameters, for comparison with the wasm solver in a browser worker
//! (`just bench-solver` runs both and prints the ratio).
//!
//! ```text
//! cargo run --release -p powgate-pow --example bench_native -- --seconds 20
//! ```
//!
//! The difficulty is [`Difficulty::MAX`], so a solution is as good as
//! impossible and the solver hashes for the whole measurement. The first
//! hashes (at least one, and at least `--warmup` seconds) are discarded:
//! they pay for the page faults of the freshly allocated 64 MiB block.
//!
//! Besides the human-readable text it prints `key=value` lines, one per
//! figure, for scripts; `native_single_thread_hps` is the headline.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pow::{Argon2Params, Difficulty, HashError, Solver, Step};

/// The salt the wasm benchmark uses too, so both hash the same inputs.
const SALT: [u8; 16] = *b"powgate-bench-01";

#[derive(Debug)]
struct Args {
    seconds: f64,
    warmup: f64,
}

const USAGE: &str = "usage: bench_native [--seconds N] [--warmup N]
  --seconds N   measure for N seconds (default 20)
  --warmup N    hash for N seconds first, not counted (default 2; at least one hash)";

/// Parses `--name value` and `--name=value`; std only, to keep `pow` light.
fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        seconds: 20.0,
        warmup: 2.0,
    };
    while let Some(arg) = raw.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        let slot = match name.as_str() {
            "--seconds" => &mut args.seconds,
            "--warmup" => &mut args.warmup,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = inline
            .or_else(|| raw.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        *slot = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{name} wants a number of seconds, got {value:?}"))?;
    }
    if args.seconds <= 0.0 {
        return Err("--seconds must be more than 0".into());
    }
    Ok(args)
}

/// Hashes one nonce and returns how long it took.
fn one_hash(solver: &mut Solver) -> Result<Duration, HashError> {
    let t = Instant::now();
    // At 1/10^9 per hash a win does not happen in a benchmark's lifetime;
    // if it does, the hash was still done and still counts. Stride 1 from 0
    // cannot run out of nonces either.
    if let Step::Found { nonce, .. } = solver.step(1)? {
        eprintln!("(nonce {nonce} happened to win; carrying on)");
    }
    Ok(t.elapsed())
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or_default()
}

fn run(args: &Args) -> Result<(), HashError> {
    let params = Argon2Params::DEFAULT;
    println!(
        "native solver, one thread: argon2id t={} m={} KiB p={} len={}; warm-up {:.1} s, measuring {:.1} s",
        params.t_cost(),
        params.m_cost_kib(),
        params.parallelism(),
        params.hash_length(),
        args.warmup,
        args.seconds,
    );
    let mut solver = Solver::new(params, SALT, Difficulty::MAX, 0, 1)?;

    let warmup = Duration::from_secs_f64(args.warmup);
    let started = Instant::now();
    let mut warm_hashes = 0u32;
    while warm_hashes == 0 || started.elapsed() < warmup {
        one_hash(&mut solver)?;
        warm_hashes += 1;
    }

    // Measured from one hash boundary to another, so no partial hash is
    // counted or left out.
    let measure = Duration::from_secs_f64(args.seconds);
    let mut times = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < measure {
        times.push(one_hash(&mut solver)?);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let hashes = times.len();
    #[allow(clippy::cast_precision_loss)] // a few thousand hashes at most
    let hps = hashes as f64 / elapsed;
    let median_ms = median(&mut times).as_secs_f64() * 1e3;

    println!(
        "{hashes} hashes in {elapsed:.2} s (after {warm_hashes} warm-up): {hps:.3} hashes/s, median {median_ms:.1} ms per hash"
    );
    println!("native_single_thread_hps={hps:.4}");
    println!("native_hashes={hashes}");
    println!("native_seconds={elapsed:.4}");
    println!("native_median_ms={median_ms:.3}");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("bench_native: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_native: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[&str]) -> Result<Args, String> {
        parse_args(s.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn both_flag_forms_parse() {
        let a = parse(&["--seconds", "3.5", "--warmup=0"]).unwrap();
        assert!((a.seconds - 3.5).abs() < f64::EPSILON);
        assert!(a.warmup.abs() < f64::EPSILON);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--seconds", "0"]).is_err());
        assert!(parse(&["--seconds", "-1"]).is_err());
        assert!(parse(&["--seconds"]).is_err());
        assert!(parse(&["--warmup", "soon"]).is_err());
        assert!(parse(&["--fast"]).is_err());
    }
}
