//! The solver's argon2id checked against the `argon2` crate inside a real
//! wasm engine. Built for `wasm32-unknown-unknown` twice, with and without
//! `-C target-feature=+simd128`, and driven from Node by
//! `pow/tests/wasm/crosscheck.test.mjs`, which builds it too:
//!
//! ```text
//! node --test pow/tests/wasm/
//! ```
//!
//! The exports take and return plain integers, so no wasm-bindgen is
//! involved: the runner instantiates the module with no imports at all.
//! Every check returns the number of mismatches and leaves a description of
//! the first one in [`report_ptr`]/[`report_len`]. Natively this builds to
//! an unused library (so `cargo test` and clippy see it) and does nothing.

// `#[unsafe(no_mangle)]` is what exports a function to the wasm host; there
// is no unsafe block here.
#![allow(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::fmt::Write as _;
use std::sync::Mutex;

use pow::argon2id::{Argon2id, COMPRESSION};
use pow::{Argon2Params, Difficulty, Hasher, Solver, Step, meets_target};

/// The description of the last failure, read by the runner.
static REPORT: Mutex<String> = Mutex::new(String::new());

fn report(message: &str) {
    if let Ok(mut r) = REPORT.lock() {
        message.clone_into(&mut r);
    }
}

/// Address of the report's UTF-8 bytes in linear memory.
#[unsafe(no_mangle)]
pub extern "C" fn report_ptr() -> *const u8 {
    REPORT.lock().map_or(core::ptr::null(), |r| r.as_ptr())
}

/// Length of the report in bytes.
#[unsafe(no_mangle)]
pub extern "C" fn report_len() -> u32 {
    REPORT
        .lock()
        .map_or(0, |r| u32::try_from(r.len()).unwrap_or(0))
}

/// 1 when this build compresses with the simd128 code, 0 for the portable.
#[unsafe(no_mangle)]
pub extern "C" fn uses_simd128() -> u32 {
    u32::from(COMPRESSION == "simd128")
}

/// What the `argon2` crate says for the same inputs.
fn reference(
    params: Argon2Params,
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
) -> Result<Vec<u8>, argon2::Error> {
    let p = argon2::ParamsBuilder::new()
        .m_cost(params.m_cost_kib())
        .t_cost(params.t_cost())
        .p_cost(params.parallelism())
        .output_len(params.hash_length() as usize)
        .data(argon2::AssociatedData::new(ad)?)
        .build()?;
    let mut blocks = vec![argon2::Block::default(); p.block_count()];
    let a = argon2::Argon2::new_with_secret(
        secret,
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        p,
    )?;
    let mut out = vec![0u8; params.hash_length() as usize];
    a.hash_password_into_with_memory(password, salt, &mut out, &mut blocks)?;
    Ok(out)
}

/// Ours for the same inputs, with a fresh instance.
fn ours(
    params: Argon2Params,
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
) -> Result<Vec<u8>, pow::HashError> {
    let mut a = Argon2id::new(params)?;
    let mut out = vec![0u8; params.hash_length() as usize];
    a.hash_keyed_into(password, salt, secret, ad, &mut out)?;
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// RFC 9106 §5.3, argon2id with secret and associated data: 0 when both the
/// published tag and the `argon2` crate agree with ours.
#[unsafe(no_mangle)]
pub extern "C" fn rfc9106() -> u32 {
    const TAG: &str = "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659";
    let Ok(params) = Argon2Params::new(3, 32, 4, 32) else {
        report("the RFC parameters were refused");
        return 1;
    };
    let inputs = (&[1u8; 32], &[2u8; 16], &[3u8; 8], &[4u8; 12]);
    let ours = ours(params, inputs.0, inputs.1, inputs.2, inputs.3);
    let theirs = reference(params, inputs.0, inputs.1, inputs.2, inputs.3);
    match (ours, theirs) {
        (Ok(o), Ok(t)) if hex(&o) == TAG && o == t => 0,
        (o, t) => {
            report(&format!(
                "RFC 9106 vector: ours {:?}, argon2 crate {:?}, expected {TAG}",
                o.map(|o| hex(&o)),
                t.map(|t| hex(&t)),
            ));
            1
        }
    }
}

/// The stepped solver (which in wasm32 hashes with [`Argon2id`]) against
/// the verifier (the `argon2` crate): for a few salts at difficulty 6, the
/// first nonce the solver reports must be the first one the verifier
/// accepts. Returns the number of disagreements.
#[unsafe(no_mangle)]
pub extern "C" fn solver_agrees_with_verifier() -> u32 {
    let (Ok(params), Ok(difficulty)) = (Argon2Params::new(2, 64, 1, 32), Difficulty::new(6)) else {
        report("solver check: parameters refused");
        return 1;
    };
    let mut failures = 0;
    for salt in 0..8u8 {
        let salt = [salt; 16];
        let found = Solver::new(params, salt, difficulty, 0, 1).and_then(|mut s| s.step(1000));
        let Ok(Step::Found { nonce, .. }) = found else {
            report(&format!("solver check: salt {salt:?}: {found:?}"));
            failures += 1;
            continue;
        };
        let Ok(mut verifier) = Hasher::new(params) else {
            report("solver check: verifier refused the parameters");
            return failures + 1;
        };
        let target = difficulty.target();
        let mut out = [0u8; 32];
        let first = (0..=nonce).find(|&n| {
            verifier.hash_into(&salt, n, &mut out).is_ok() && meets_target(&out, &target)
        });
        if first != Some(nonce) {
            report(&format!(
                "solver check: salt {salt:?}: the solver found {nonce}, the verifier's first is {first:?}"
            ));
            failures += 1;
        }
    }
    failures
}

/// splitmix64, seeded by the runner.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> u32 {
        u32::try_from(self.next() % u64::from(n)).unwrap_or(0)
    }
    fn bytes(&mut self, min_len: u32, max_len: u32) -> Vec<u8> {
        let len = min_len + self.below(max_len - min_len + 1);
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// `cases` random (password, salt, t, m, p, length) combinations against
/// the `argon2` crate: t = 1 in every fourth, several lanes in every third,
/// memory sizes of any value (so mostly no power of two and often not a
/// multiple of 4 x p), and a secret and associated data in every seventh.
/// Returns the number of mismatches.
#[unsafe(no_mangle)]
pub extern "C" fn crosscheck(seed: u64, cases: u32) -> u32 {
    let mut rng = Rng(seed);
    let mut failures = 0;
    for case in 0..cases {
        let t = if case % 4 == 0 { 1 } else { 1 + rng.below(4) };
        let p = if case % 3 == 0 { 2 + rng.below(3) } else { 1 };
        let m = 8 * p + rng.below(if case % 10 == 0 { 1500 } else { 300 });
        let len = 32 + rng.below(33);
        let password = rng.bytes(0, 40);
        let salt = rng.bytes(8, 32);
        let (secret, ad) = if case % 7 == 0 {
            (rng.bytes(0, 32), rng.bytes(0, 32))
        } else {
            (Vec::new(), Vec::new())
        };
        let Ok(params) = Argon2Params::new(t, m, p, len) else {
            report(&format!("case {case}: t={t} m={m} p={p} len={len} refused"));
            failures += 1;
            continue;
        };
        let o = ours(params, &password, &salt, &secret, &ad);
        let r = reference(params, &password, &salt, &secret, &ad);
        if !matches!((&o, &r), (Ok(o), Ok(r)) if o == r) {
            if failures == 0 {
                report(&format!(
                    "case {case} of seed {seed}: t={t} m={m} p={p} len={len} password={} salt={} secret={} ad={}: ours {:?}, argon2 crate {:?}",
                    hex(&password),
                    hex(&salt),
                    hex(&secret),
                    hex(&ad),
                    o.map(|o| hex(&o)),
                    r.map(|r| hex(&r)),
                ));
            }
            failures += 1;
        }
    }
    failures
}

/// The instance [`hash_nonces`] keeps between calls, as a solver worker
/// keeps its memory.
static INSTANCE: Mutex<Option<Argon2id>> = Mutex::new(None);

/// Hashes nonces `first..first + count` with t, m KiB, p = 1, the way a
/// solver worker does: on one instance, allocated on the first call (or
/// when the parameters change) and reused. For the runner to time, and to
/// measure the memory a worker needs. Returns 0 on success.
#[unsafe(no_mangle)]
pub extern "C" fn hash_nonces(t: u32, m: u32, first: u32, count: u32) -> u32 {
    let Ok(params) = Argon2Params::new(t, m, 1, 32) else {
        report("hash_nonces: parameters refused");
        return 1;
    };
    let Ok(mut instance) = INSTANCE.lock() else {
        report("hash_nonces: poisoned lock");
        return 1;
    };
    if instance.as_ref().is_none_or(|a| a.params() != params) {
        // Free the old memory before asking for the new.
        *instance = None;
        match Argon2id::new(params) {
            Ok(a) => *instance = Some(a),
            Err(e) => {
                report(&format!("hash_nonces: {e}"));
                return 1;
            }
        }
    }
    let Some(a) = instance.as_mut() else {
        return 1;
    };
    let mut out = [0u8; 32];
    for nonce in u64::from(first)..u64::from(first) + u64::from(count) {
        if let Err(e) = a.hash_into(
            &pow::challenge::password(nonce),
            b"powgate-bench-01",
            &mut out,
        ) {
            report(&format!("hash_nonces: {e}"));
            return 1;
        }
    }
    0
}

/// The admission ticket for the challenge id `[salt_byte; 16]` at `bits`, as
/// the page's solver computes it in wasm; the runner checks it with Node's
/// own SHA-256.
#[unsafe(no_mangle)]
pub extern "C" fn ticket_solve(salt_byte: u32, bits: u32) -> u64 {
    let salt = [salt_byte.to_le_bytes()[0]; 16];
    pow::ticket::solve(&salt, u8::try_from(bits).unwrap_or(u8::MAX))
}

/// 1 when `ticket` admits a submission for `[salt_byte; 16]` at `bits`.
#[unsafe(no_mangle)]
pub extern "C" fn ticket_check(salt_byte: u32, ticket: u64, bits: u32) -> u32 {
    let salt = [salt_byte.to_le_bytes()[0]; 16];
    u32::from(pow::ticket::check(
        &salt,
        ticket,
        u8::try_from(bits).unwrap_or(u8::MAX),
    ))
}
