//! A stepped solver: it hashes nonces `start, start + stride, …` in bounded
//! steps, so a caller can report progress, pause, or stop between steps.
//! N parallel workers use starts `0..N` with stride N and never overlap.

use crate::params::{Argon2Params, Difficulty};
use crate::verify::{HashError, meets_target};

/// The argon2id the solver hashes with. In the browser (wasm32) it is this
/// crate's own [`crate::argon2id`], whose compression is hand-vectorised
/// for wasm SIMD in the SIMD build. Natively it is the `argon2` crate
/// behind [`crate::verify::Hasher`]: the code the server verifies with, and
/// what the native benchmark measures.
#[cfg(target_arch = "wasm32")]
type Engine = crate::argon2id::Argon2id;
#[cfg(not(target_arch = "wasm32"))]
type Engine = crate::verify::Hasher;

/// argon2id(password = nonce as 8 big-endian bytes, salt) into `out`.
fn hash_nonce(
    engine: &mut Engine,
    salt: &[u8; 16],
    nonce: u64,
    out: &mut [u8],
) -> Result<(), HashError> {
    #[cfg(target_arch = "wasm32")]
    return engine.hash_into(&crate::challenge::password(nonce), salt, out);
    #[cfg(not(target_arch = "wasm32"))]
    return engine.hash_into(salt, nonce, out);
}

/// The result of one [`Solver::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No solution yet; `hashes` is this solver's running total.
    Progress { hashes: u64 },
    /// `nonce` wins; `hashes` counts it too.
    Found { nonce: u64, hashes: u64 },
    /// Every nonce of this stride has been tried (only with absurd strides).
    Exhausted { hashes: u64 },
}

/// One worker's share of the search.
#[derive(Debug)]
pub struct Solver {
    engine: Engine,
    salt: [u8; 16],
    target: [u8; 32],
    next_nonce: Option<u64>,
    stride: u64,
    hashes: u64,
    out: Vec<u8>,
}

impl Solver {
    /// Prepares a solver and allocates its memory block once.
    ///
    /// # Errors
    /// [`HashError::OutOfMemory`] when the block cannot be allocated;
    /// [`HashError::Params`] when `stride` is 0.
    pub fn new(
        params: Argon2Params,
        salt: [u8; 16],
        difficulty: Difficulty,
        start: u64,
        stride: u64,
    ) -> Result<Self, HashError> {
        if stride == 0 {
            return Err(HashError::Params);
        }
        Ok(Self {
            engine: Engine::new(params)?,
            salt,
            target: difficulty.target(),
            next_nonce: Some(start),
            stride,
            hashes: 0,
            out: vec![0; params.hash_length() as usize],
        })
    }

    /// Hashes at most `max_hashes` nonces, stopping at the first solution.
    ///
    /// # Errors
    /// Only if argon2 refuses its own validated parameters.
    pub fn step(&mut self, max_hashes: u64) -> Result<Step, HashError> {
        for _ in 0..max_hashes {
            let Some(nonce) = self.next_nonce else {
                return Ok(Step::Exhausted {
                    hashes: self.hashes,
                });
            };
            self.next_nonce = nonce.checked_add(self.stride);
            hash_nonce(&mut self.engine, &self.salt, nonce, &mut self.out)?;
            self.hashes += 1;
            if meets_target(&self.out, &self.target) {
                return Ok(Step::Found {
                    nonce,
                    hashes: self.hashes,
                });
            }
        }
        Ok(Step::Progress {
            hashes: self.hashes,
        })
    }

    /// Hashes tried so far.
    pub fn hashes(&self) -> u64 {
        self.hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_stride_is_an_error() {
        let p = Argon2Params::new(1, 8, 1, 32).unwrap();
        assert!(Solver::new(p, [0; 16], Difficulty::MIN, 0, 0).is_err());
    }

    #[test]
    fn difficulty_one_wins_on_the_first_nonce() {
        let p = Argon2Params::new(1, 8, 1, 32).unwrap();
        let mut s = Solver::new(p, [0; 16], Difficulty::MIN, 5, 3).unwrap();
        assert_eq!(
            s.step(10).unwrap(),
            Step::Found {
                nonce: 5,
                hashes: 1
            }
        );
    }

    #[test]
    fn strided_workers_partition_the_nonces() {
        // With an unreachable target both workers run the full step, and
        // the union of what they tried must be exactly 0..2n.
        let p = Argon2Params::new(1, 8, 1, 32).unwrap();
        let d = Difficulty::MAX;
        let mut a = Solver::new(p, [1; 16], d, 0, 2).unwrap();
        let mut b = Solver::new(p, [1; 16], d, 1, 2).unwrap();
        assert_eq!(a.step(4).unwrap(), Step::Progress { hashes: 4 });
        assert_eq!(b.step(4).unwrap(), Step::Progress { hashes: 4 });
        assert_eq!(a.next_nonce, Some(8));
        assert_eq!(b.next_nonce, Some(9));
    }
}
