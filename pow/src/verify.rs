//! Hashing one nonce, and deciding whether the hash wins.

use argon2::{Algorithm, Argon2, Block, Version};

use crate::challenge::{ChallengeClaims, password};
use crate::params::Argon2Params;

/// Why hashing could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("could not allocate {0} KiB for argon2")]
    OutOfMemory(usize),
    #[error("argon2 rejected the parameters")]
    Params,
}

/// True when the hash's leading 256 bits, read big-endian, are ≤ `target`.
pub fn meets_target(hash: &[u8], target: &[u8; 32]) -> bool {
    // Byte slices compare lexicographically, which for equal lengths is the
    // big-endian numeric order.
    hash.get(..32).is_some_and(|lead| lead <= &target[..])
}

/// One argon2id context with its memory block, allocated once and reused for
/// every hash: 64 MiB per hash would otherwise dominate the cost.
pub struct Hasher {
    argon2: Argon2<'static>,
    blocks: Vec<Block>,
    params: Argon2Params,
}

impl core::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.params)
            .finish()
    }
}

impl Hasher {
    /// Allocates the memory block for `params`.
    ///
    /// # Errors
    /// [`HashError::OutOfMemory`] when the block cannot be allocated (a wasm
    /// worker on a small phone), instead of aborting.
    pub fn new(params: Argon2Params) -> Result<Self, HashError> {
        let p = params.to_argon2().map_err(|_| HashError::Params)?;
        let n = p.block_count();
        let mut blocks = Vec::new();
        blocks
            .try_reserve_exact(n)
            .map_err(|_| HashError::OutOfMemory(n))?;
        // Before the first write, which is when the kernel picks the pages.
        crate::huge_pages::advise(blocks.spare_capacity_mut());
        blocks.resize(n, Block::default());
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, p),
            blocks,
            params,
        })
    }

    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// argon2id(password = nonce as 8 big-endian bytes, salt = challenge id)
    /// into `out`, which must be `hash_length` bytes long.
    ///
    /// # Errors
    /// [`HashError::Params`] when `out` has the wrong length.
    pub fn hash_into(
        &mut self,
        salt: &[u8; 16],
        nonce: u64,
        out: &mut [u8],
    ) -> Result<(), HashError> {
        self.argon2
            .hash_password_into_with_memory(&password(nonce), salt, out, &mut self.blocks)
            .map_err(|_| HashError::Params)
    }

    /// Hashes `nonce` for `claims` and checks it against the claims'
    /// difficulty. Reallocates only if the claims carry other parameters than
    /// this hasher was built for.
    ///
    /// # Errors
    /// [`HashError`] when memory for different parameters cannot be had.
    pub fn verify(&mut self, claims: &ChallengeClaims, nonce: u64) -> Result<bool, HashError> {
        if claims.params != self.params {
            *self = Self::new(claims.params)?;
        }
        let mut out = [0u8; Argon2Params::MAX_HASH_LENGTH as usize];
        let out = &mut out[..claims.params.hash_length() as usize];
        self.hash_into(&claims.id, nonce, out)?;
        Ok(meets_target(out, &claims.difficulty.target()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_comparison_is_big_endian() {
        let mut target = [0u8; 32];
        target[0] = 0x10;
        let mut h = [0u8; 32];
        h[0] = 0x10;
        assert!(meets_target(&h, &target));
        h[31] = 1;
        assert!(!meets_target(&h, &target));
        h = [0xFF; 32];
        h[0] = 0x0F;
        assert!(meets_target(&h, &target));
        assert!(!meets_target(&h[..31], &target));
    }
}
