//! Single-thread throughput of the native solver with the default argon2id
//! parameters, for comparison with the wasm solver in a browser worker
//! (`just bench-solver` runs both and prints the ratio).
//!
//! The native solver is the `argon2` crate (AVX2 where the CPU has it) on
//! `pow::Hasher`'s memory, which asks Linux for transparent huge pages: a
//! harder baseline than the crate on ordinary pages, by about 30 % on a
//! Zen 3 machine. A browser cannot ask for them.
//!
//! ```text
//! cargo run --release -p powgate-pow --example bench_native -- --seconds 20
//! cargo run --release -p powgate-pow --example bench_native -- --threads 2
//! ```
//!
//! The difficulty is [`Difficulty::MAX`], so a solution is as good as
//! impossible and the solver hashes for the whole measurement. The first
//! hashes (at least one, and at least `--warmup` seconds) are discarded:
//! they pay for the page faults of the freshly allocated 64 MiB block.
//!
//! `--threads N` runs N solvers at once, each on its own thread with its own
//! memory and its own stride of nonces, over one shared interval, as the
//! browser benchmark runs N workers: what the machine itself does with N
//! concurrent hashes (shared L3 cache and memory bandwidth, fewer idle
//! cores), without a browser.
//!
//! `--small-pages` turns transparent huge pages off for the process
//! (`prctl(PR_SET_THP_DISABLE)`) before any memory is allocated: the
//! native solver on the 4 KiB pages a browser's wasm memory gets, which
//! separates what the page size costs from what the engine costs. Each run
//! reports the huge-page memory it really held (`AnonHugePages` of
//! /proc/self/smaps_rollup), so neither regime is assumed.
//!
//! `--portable` hashes with this crate's own argon2id instead
//! (`pow::argon2id`, natively its portable compression): the very code the
//! scalar wasm build runs, on ordinary pages, so the scalar wasm rate
//! divided by this one is what each engine's compiler costs, with the
//! algorithm, vector width and page size all equal.
//!
//! Besides the human-readable text it prints `key=value` lines, one per
//! figure, for scripts. `native_single_thread_hps` is the headline, printed
//! with one thread only; `native_per_thread_hps` is there for any count.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use pow::argon2id::Argon2id;
use pow::{Argon2Params, Difficulty, HashError, Solver, Step};

/// The salt the wasm benchmark uses too, so both hash the same inputs.
const SALT: [u8; 16] = *b"powgate-bench-01";

#[derive(Debug)]
struct Args {
    seconds: f64,
    warmup: f64,
    threads: u32,
    small_pages: bool,
    portable: bool,
}

/// More threads than this is a typing error, not a benchmark (each needs
/// 64 MiB).
const MAX_THREADS: u32 = 64;

const USAGE: &str = "usage: bench_native [--seconds N] [--warmup N] [--threads N] [--small-pages] [--portable]
  --seconds N     measure for N seconds (default 20)
  --warmup N      hash for N seconds first, not counted (default 2; at least one hash)
  --threads N     hash on N threads at once, each with its own memory (default 1)
  --small-pages   no transparent huge pages (Linux), as a browser's wasm memory
  --portable      this crate's portable argon2id (the scalar wasm build's code), not the argon2 crate";

/// Parses `--name value` and `--name=value`; std only, to keep `pow` light.
fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        seconds: 20.0,
        warmup: 2.0,
        threads: 1,
        small_pages: false,
        portable: false,
    };
    while let Some(arg) = raw.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        if matches!(name.as_str(), "-h" | "--help") {
            return Err(String::new());
        }
        if name == "--small-pages" && inline.is_none() {
            args.small_pages = true;
            continue;
        }
        if name == "--portable" && inline.is_none() {
            args.portable = true;
            continue;
        }
        if !matches!(name.as_str(), "--seconds" | "--warmup" | "--threads") {
            return Err(format!("unknown argument {name:?}"));
        }
        let value = inline
            .or_else(|| raw.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        if name == "--threads" {
            args.threads = value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_THREADS).contains(n))
                .ok_or_else(|| {
                    format!("--threads wants a whole number from 1 to {MAX_THREADS}, got {value:?}")
                })?;
            continue;
        }
        let seconds = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{name} wants a number of seconds, got {value:?}"))?;
        if name == "--seconds" {
            args.seconds = seconds;
        } else {
            args.warmup = seconds;
        }
    }
    if args.seconds <= 0.0 {
        return Err("--seconds must be more than 0".into());
    }
    Ok(args)
}

/// What one thread hashes with.
enum Hashing {
    /// The native solver: the `argon2` crate, on huge pages where offered.
    Solver(Solver),
    /// This crate's argon2id, as the scalar wasm build runs it.
    Portable {
        argon: Argon2id,
        nonce: u64,
        stride: u64,
        out: Vec<u8>,
    },
}

impl Hashing {
    fn new(portable: bool, index: u32, stride: u32) -> Result<Self, HashError> {
        let params = Argon2Params::DEFAULT;
        if !portable {
            let solver = Solver::new(params, SALT, Difficulty::MAX, index.into(), stride.into())?;
            return Ok(Self::Solver(solver));
        }
        Ok(Self::Portable {
            argon: Argon2id::new(params)?,
            nonce: index.into(),
            stride: stride.into(),
            out: vec![0; params.hash_length() as usize],
        })
    }

    /// Hashes one nonce and returns how long it took.
    fn one(&mut self) -> Result<Duration, HashError> {
        let t = Instant::now();
        match self {
            // At 1/10^9 per hash a win does not happen in a benchmark's
            // lifetime; if it does, the hash was still done and still
            // counts. Stride 1 from 0 cannot run out of nonces either.
            Self::Solver(solver) => {
                if let Step::Found { nonce, .. } = solver.step(1)? {
                    eprintln!("(nonce {nonce} happened to win; carrying on)");
                }
            }
            // The password as the protocol forms it: the nonce's 8
            // big-endian bytes.
            Self::Portable {
                argon,
                nonce,
                stride,
                out,
            } => {
                argon.hash_into(&nonce.to_be_bytes(), &SALT, out)?;
                *nonce += *stride;
            }
        }
        Ok(t.elapsed())
    }
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or_default()
}

/// What one thread did in the measured interval.
struct Measured {
    /// The process's huge-page memory after this thread's warm-up.
    huge_kib: Option<u64>,
    warm_hashes: u32,
    times: Vec<Duration>,
    seconds: f64,
}

/// One solver on the calling thread, on nonces `index`, `index + stride`, …:
/// warm-up until `measure_from`, then hashes until `measure_until`, timed
/// from one hash boundary to another, so no partial hash is counted or left
/// out (and at least one hash even if the warm-up overran the interval).
fn measure(
    portable: bool,
    index: u32,
    stride: u32,
    measure_from: Instant,
    measure_until: Instant,
) -> Result<Measured, HashError> {
    let mut hashing = Hashing::new(portable, index, stride)?;
    let mut warm_hashes = 0u32;
    while warm_hashes == 0 || Instant::now() < measure_from {
        hashing.one()?;
        warm_hashes += 1;
    }
    let huge_kib = anon_huge_pages_kib();
    let mut times = Vec::new();
    let t0 = Instant::now();
    while times.is_empty() || Instant::now() < measure_until {
        times.push(hashing.one()?);
    }
    Ok(Measured {
        huge_kib,
        warm_hashes,
        times,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The process's anonymous memory on huge pages now, in KiB (Linux), or
/// None where the kernel does not say.
fn anon_huge_pages_kib() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn run(args: &Args) -> Result<(), HashError> {
    if args.small_pages {
        // Before the solvers allocate: the flag applies to mappings the
        // kernel backs from now on.
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
            eprintln!("bench_native: cannot turn huge pages off: {e}");
        }
        #[cfg(not(target_os = "linux"))]
        eprintln!("bench_native: --small-pages changes nothing outside Linux");
    }
    let params = Argon2Params::DEFAULT;
    let threads = args.threads;
    println!(
        "native {}, {threads} thread{}: argon2id t={} m={} KiB p={} len={}; warm-up {:.1} s, measuring {:.1} s",
        if args.portable {
            "portable argon2id (pow::argon2id)"
        } else {
            "solver (argon2 crate)"
        },
        if threads == 1 { "" } else { "s at once" },
        params.t_cost(),
        params.m_cost_kib(),
        params.parallelism(),
        params.hash_length(),
        args.warmup,
        args.seconds,
    );
    // One interval for every thread, as the browser benchmark gives its
    // workers.
    let measure_from = Instant::now() + Duration::from_secs_f64(args.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(args.seconds);
    let results: Vec<Result<Measured, HashError>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let portable = args.portable;
                scope.spawn(move || measure(portable, i, threads, measure_from, measure_until))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });

    let mut total_hps = 0.0;
    let mut longest = 0.0f64;
    let mut all_times = Vec::new();
    let mut huge_kib: Option<u64> = None;
    for (i, r) in results.into_iter().enumerate() {
        let mut m = r?;
        huge_kib = huge_kib.max(m.huge_kib);
        let hashes = m.times.len();
        #[allow(clippy::cast_precision_loss)] // a few thousand hashes at most
        let hps = hashes as f64 / m.seconds;
        total_hps += hps;
        longest = longest.max(m.seconds);
        let median_ms = median(&mut m.times).as_secs_f64() * 1e3;
        let who = if threads == 1 {
            String::new()
        } else {
            format!("thread {i}: ")
        };
        println!(
            "{who}{hashes} hashes in {:.2} s (after {} warm-up): {hps:.3} hashes/s, median {median_ms:.1} ms per hash",
            m.seconds, m.warm_hashes,
        );
        all_times.append(&mut m.times);
    }
    let per_thread_hps = total_hps / f64::from(threads);
    let median_ms = median(&mut all_times).as_secs_f64() * 1e3;
    if threads > 1 {
        println!(
            "{threads} threads: {total_hps:.3} hashes/s in total, {per_thread_hps:.3} per thread, median {median_ms:.1} ms per hash"
        );
    } else {
        println!("native_single_thread_hps={per_thread_hps:.4}");
    }
    println!("native_threads={threads}");
    println!("native_per_thread_hps={per_thread_hps:.4}");
    println!("native_total_hps={total_hps:.4}");
    println!("native_hashes={}", all_times.len());
    println!("native_seconds={longest:.4}");
    println!("native_median_ms={median_ms:.3}");
    // -1: the kernel did not say.
    println!(
        "native_anon_huge_kib={}",
        huge_kib.map_or(-1, |k| i64::try_from(k).unwrap_or(i64::MAX))
    );
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
        let a = parse(&["--seconds", "3.5", "--warmup=0", "--threads=2"]).unwrap();
        assert!((a.seconds - 3.5).abs() < f64::EPSILON);
        assert!(a.warmup.abs() < f64::EPSILON);
        assert_eq!(a.threads, 2);
        assert_eq!(parse(&[]).unwrap().threads, 1);
        assert!(!parse(&[]).unwrap().small_pages);
        assert!(parse(&["--small-pages"]).unwrap().small_pages);
        assert!(parse(&["--portable"]).unwrap().portable);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--seconds", "0"]).is_err());
        assert!(parse(&["--seconds", "-1"]).is_err());
        assert!(parse(&["--seconds"]).is_err());
        assert!(parse(&["--warmup", "soon"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--threads", "0"]).is_err());
        assert!(parse(&["--threads", "1.5"]).is_err());
        assert!(parse(&["--threads", "65"]).is_err());
        assert!(parse(&["--small-pages=yes"]).is_err());
    }
}
