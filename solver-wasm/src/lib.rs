//! The browser solver: a thin wasm-bindgen layer over [`pow::Solver`] and
//! the admission ticket ([`ticket`]).
//!
//! server/build.rs compiles it twice: with `-C target-feature=+simd128`, so
//! pow's argon2id uses its hand-vectorised compression, and without, for
//! browsers that lack wasm SIMD.
//!
//! One [`Solver`] lives in each Web Worker. It allocates its argon2 memory
//! block once, in the constructor, and reuses it for every hash. Nothing here
//! panics: bad parameters and a failed allocation come back as `JsError`, so
//! the page can drop the worker and carry on with fewer.
//!
//! Numbers cross the boundary as `f64` because JavaScript numbers are; every
//! one is checked to be a whole number within range before use.

use pow::{Argon2Params, Difficulty, Step};
use wasm_bindgen::prelude::*;

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn whole(name: &str, v: f64) -> Result<u64, JsError> {
    if v.is_finite() && (0.0..=MAX_SAFE_INTEGER).contains(&v) && v.fract() == 0.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(v as u64)
    } else {
        Err(JsError::new(&format!(
            "{name} must be a whole number between 0 and 2^53-1, got {v}"
        )))
    }
}

fn salt_from_hex(s: &str) -> Result<[u8; 16], JsError> {
    let bytes = s.as_bytes();
    if bytes.len() != 32 {
        return Err(JsError::new("salt must be 32 hex digits"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(JsError::new("salt must be hex")),
    };
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

/// Which argon2id compression this build of the solver runs: `"simd128"`
/// for the SIMD build, `"portable"` for the scalar fallback. The server
/// embeds both builds and the page picks one at load time; this lets a
/// test, a benchmark or someone at the console check which one loaded.
#[wasm_bindgen]
pub fn compression() -> String {
    pow::argon2id::COMPRESSION.to_owned()
}

/// The admission ticket for the challenge with this salt (32 hex digits):
/// the first ticket whose SHA-256 has `bits` leading zero bits (see
/// `pow::ticket`). About one argon2 hash of work, so the page runs it in a
/// worker like the search.
///
/// # Errors
/// A `JsError` for a malformed salt, `bits` above 32, or (never in practice)
/// a ticket too large for a JavaScript number.
#[wasm_bindgen]
pub fn ticket(salt_hex: &str, bits: u32) -> Result<f64, JsError> {
    let bits = u8::try_from(bits)
        .ok()
        .filter(|b| *b <= pow::ticket::MAX_BITS)
        .ok_or_else(|| JsError::new(&format!("ticket bits must be 0..=32, got {bits}")))?;
    let t = pow::ticket::solve(&salt_from_hex(salt_hex)?, bits);
    let t = as_f64(t);
    if t > MAX_SAFE_INTEGER {
        return Err(JsError::new("the ticket does not fit a JavaScript number"));
    }
    Ok(t)
}

/// One worker's share of the nonce search.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Solver {
    inner: pow::Solver,
}

/// What one [`Solver::step`] achieved.
#[wasm_bindgen]
#[derive(Debug, Clone, Copy)]
pub struct StepResult {
    found: bool,
    nonce: f64,
    hashes: f64,
}

#[wasm_bindgen]
impl StepResult {
    /// True when `nonce` solves the challenge.
    #[wasm_bindgen(getter)]
    pub fn found(&self) -> bool {
        self.found
    }
    /// The winning nonce (meaningful only when `found`).
    #[wasm_bindgen(getter)]
    pub fn nonce(&self) -> f64 {
        self.nonce
    }
    /// Hashes this solver has tried in total.
    #[wasm_bindgen(getter)]
    pub fn hashes(&self) -> f64 {
        self.hashes
    }
}

#[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
fn as_f64(v: u64) -> f64 {
    v as f64
}

#[wasm_bindgen]
impl Solver {
    /// Validates the challenge parameters and allocates `m_cost` KiB.
    ///
    /// # Errors
    /// A `JsError` naming the bad parameter, or saying the memory could not
    /// be allocated.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        t_cost: u32,
        m_cost: u32,
        parallelism: u32,
        hash_length: u32,
        salt_hex: &str,
        difficulty: f64,
        start: f64,
        stride: f64,
    ) -> Result<Solver, JsError> {
        let params = Argon2Params::new(t_cost, m_cost, parallelism, hash_length)?;
        let difficulty = Difficulty::new(whole("difficulty", difficulty)?)?;
        let stride = whole("stride", stride)?;
        if stride == 0 {
            return Err(JsError::new("stride must be at least 1"));
        }
        let inner = pow::Solver::new(
            params,
            salt_from_hex(salt_hex)?,
            difficulty,
            whole("start", start)?,
            stride,
        )?;
        Ok(Self { inner })
    }

    /// Hashes at most `max_hashes` nonces, stopping early on a solution.
    ///
    /// # Errors
    /// Only if argon2 refuses parameters it accepted before.
    pub fn step(&mut self, max_hashes: u32) -> Result<StepResult, JsError> {
        Ok(match self.inner.step(u64::from(max_hashes))? {
            Step::Found { nonce, hashes } => StepResult {
                found: true,
                nonce: as_f64(nonce),
                hashes: as_f64(hashes),
            },
            Step::Progress { hashes } | Step::Exhausted { hashes } => StepResult {
                found: false,
                nonce: 0.0,
                hashes: as_f64(hashes),
            },
        })
    }

    /// Hashes tried so far.
    #[wasm_bindgen(getter)]
    pub fn hashes(&self) -> f64 {
        as_f64(self.inner.hashes())
    }
}
