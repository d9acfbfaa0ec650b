//! The solver's own argon2id (version 0x13), whose block compression is
//! hand-vectorised for wasm SIMD.
//!
//! Why it exists: the browser solver is what a visitor waits on. The
//! `argon2` crate compiled to wasm32 runs at about 0.6x its native speed,
//! and letting the compiler vectorise it for `simd128` makes it slower, so
//! the compression that dominates the cost is written here with explicit
//! 128-bit vector operations. Only the solver uses this module; the server
//! keeps verifying with the `argon2` crate, so a bug here can only produce a
//! solution that fails verification, never a wrong acceptance.
//!
//! The computation, after RFC 9106 §3:
//! 1. H0 = BLAKE2b-512 over the parameters, password, salt, secret and
//!    associated data, each length-prefixed (`blake2` crate).
//! 2. The first two blocks of every lane are H'(1024 bytes) of H0, the block
//!    index and the lane (`blake2b_long`).
//! 3. `t` passes over the memory, each in four slices; in every slice each
//!    lane fills one segment. A lane only reads other lanes' blocks from
//!    slices that are already finished, so filling the lanes one after the
//!    other gives exactly the result of filling them in parallel.
//! 4. A block is G(previous block, reference block), XORed into the old
//!    block from the second pass on. argon2id picks the reference from a
//!    pseudo-random address stream in the first half of the first pass and
//!    from the previous block's first word everywhere else.
//! 5. The tag is H' over the XOR of every lane's last block.
//!
//! G itself is the only part that changes between builds: `simd128.rs` when
//! compiled for wasm32 with `-C target-feature=+simd128`, `portable.rs`
//! everywhere else (the scalar wasm build, and natively where the tests
//! check it against the `argon2` crate). [`COMPRESSION`] names the one
//! compiled in.

use blake2::digest::{Digest, Update, VariableOutput};
use blake2::{Blake2b512, Blake2bVar};

use crate::params::Argon2Params;
use crate::verify::HashError;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable::compress;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd128::compress;

/// Which compression this build uses: `"simd128"` or `"portable"`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub const COMPRESSION: &str = "simd128";
/// Which compression this build uses: `"simd128"` or `"portable"`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub const COMPRESSION: &str = "portable";

/// The argon2 type code of argon2id, hashed into H0 and the address blocks.
const ARGON2ID: u32 = 2;
/// Argon2 version 1.3.
const VERSION: u32 = 0x13;
/// Slices per pass (the RFC's `SL`).
const SYNC_POINTS: u32 = 4;
/// Pseudo-random references one address block provides.
const ADDRESSES_PER_BLOCK: u32 = 128;
/// Salts shorter than this are refused, as RFC 9106 and the `argon2` crate do.
pub const MIN_SALT_LEN: usize = 8;

/// One 1 KiB argon2 memory block: 128 little-endian 64-bit words.
/// Aligned to a cache line, as the blocks are read and written whole.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Block(pub(crate) [u64; Block::WORDS]);

impl Block {
    pub(crate) const WORDS: usize = 128;
    pub(crate) const BYTES: usize = 1024;
    pub(crate) const ZERO: Self = Self([0; Self::WORDS]);

    fn from_le_bytes(bytes: &[u8; Self::BYTES]) -> Self {
        let mut b = Self::ZERO;
        let (chunks, _) = bytes.as_chunks::<8>();
        for (w, c) in b.0.iter_mut().zip(chunks) {
            *w = u64::from_le_bytes(*c);
        }
        b
    }

    fn le_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        let (chunks, _) = out.as_chunks_mut::<8>();
        for (c, w) in chunks.iter_mut().zip(self.0) {
            *c = w.to_le_bytes();
        }
        out
    }
}

/// The low half of a 64-bit word; dropping the high half is the point.
#[allow(clippy::cast_possible_truncation)]
const fn lo32(x: u64) -> u32 {
    x as u32
}

/// A length as the 32-bit little-endian prefix argon2 hashes in front of
/// every variable-length input.
fn le32_len(bytes: &[u8]) -> Result<[u8; 4], HashError> {
    u32::try_from(bytes.len())
        .map(u32::to_le_bytes)
        .map_err(|_| HashError::Params)
}

/// H' of RFC 9106 §3.3: a hash of any output length built from BLAKE2b.
/// Fills `out` with H'^(out.len())(inputs concatenated).
///
/// # Errors
/// [`HashError::Params`] for an empty `out` or one of 2^32 bytes or more.
pub(crate) fn blake2b_long(inputs: &[&[u8]], out: &mut [u8]) -> Result<(), HashError> {
    let len = le32_len(out)?;
    if out.len() <= 64 {
        let mut h = Blake2bVar::new(out.len()).map_err(|_| HashError::Params)?;
        h.update(&len);
        for input in inputs {
            h.update(input);
        }
        return h.finalize_variable(out).map_err(|_| HashError::Params);
    }
    // V1 = H^64(T || X); every V_i gives its first 32 bytes and the next is
    // V_(i+1) = H^64(V_i), until 64 bytes or fewer are left; the last hash
    // has exactly that length and is used whole.
    let mut h = Blake2b512::new();
    Digest::update(&mut h, len);
    for input in inputs {
        Digest::update(&mut h, input);
    }
    let mut v = h.finalize();
    let mut rest = out;
    loop {
        let (head, tail) = rest.split_at_mut(32);
        head.copy_from_slice(&v[..32]);
        rest = tail;
        if rest.len() <= 64 {
            break;
        }
        v = Blake2b512::digest(v);
    }
    let mut h = Blake2bVar::new(rest.len()).map_err(|_| HashError::Params)?;
    h.update(&v);
    h.finalize_variable(rest).map_err(|_| HashError::Params)
}

/// An argon2id instance with its memory, allocated once and reused for every
/// hash.
pub struct Argon2id {
    params: Argon2Params,
    blocks: Vec<Block>,
    /// The compression's working state, kept here so no call has to set
    /// up 1 KiB of its own.
    scratch: Box<Block>,
    lanes: u32,
    /// Blocks per segment; a lane has `SYNC_POINTS` segments.
    segment_len: u32,
}

impl core::fmt::Debug for Argon2id {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Argon2id")
            .field("params", &self.params)
            .field("compression", &COMPRESSION)
            .finish_non_exhaustive()
    }
}

impl Argon2id {
    /// Allocates the memory for `params`: m KiB rounded down to a multiple
    /// of 4 x parallelism, as argon2 does.
    ///
    /// # Errors
    /// [`HashError::OutOfMemory`] when the memory cannot be allocated (a
    /// wasm worker on a small phone) instead of aborting.
    pub fn new(params: Argon2Params) -> Result<Self, HashError> {
        let lanes = params.parallelism();
        // Argon2Params guarantees m >= 8 x lanes, so a segment has at
        // least two blocks and every reference area below is non-empty.
        let segment_len = params.m_cost_kib() / (SYNC_POINTS * lanes);
        let count = (segment_len * SYNC_POINTS * lanes) as usize;
        let mut blocks = Vec::new();
        blocks
            .try_reserve_exact(count)
            .map_err(|_| HashError::OutOfMemory(count))?;
        blocks.resize(count, Block::ZERO);
        Ok(Self {
            params,
            blocks,
            scratch: Box::new(Block::ZERO),
            lanes,
            segment_len,
        })
    }

    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// argon2id(password, salt) into `out`, which must be `hash_length`
    /// bytes long. No secret, no associated data: what the protocol hashes.
    ///
    /// # Errors
    /// [`HashError::Params`] when `out` has the wrong length, the salt is
    /// shorter than [`MIN_SALT_LEN`] or an input is 4 GiB or longer.
    pub fn hash_into(
        &mut self,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        self.hash_keyed_into(password, salt, &[], &[], out)
    }

    /// The general form of [`Argon2id::hash_into`], with a secret key K and
    /// associated data X. The protocol uses neither; this is here so the
    /// RFC 9106 test vector, which does, can check the whole construction.
    ///
    /// # Errors
    /// As for [`Argon2id::hash_into`].
    pub fn hash_keyed_into(
        &mut self,
        password: &[u8],
        salt: &[u8],
        secret: &[u8],
        associated_data: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        if out.len() != self.params.hash_length() as usize || salt.len() < MIN_SALT_LEN {
            return Err(HashError::Params);
        }
        let h0 = self.h0(password, salt, secret, associated_data)?;
        self.init_lanes(&h0)?;
        for pass in 0..self.params.t_cost() {
            for slice in 0..SYNC_POINTS {
                for lane in 0..self.lanes {
                    self.fill_segment(pass, slice, lane);
                }
            }
        }
        self.finish(out)
    }

    fn lane_len(&self) -> u32 {
        self.segment_len * SYNC_POINTS
    }

    /// Step 1: H0, the 64-byte digest of every input and parameter.
    fn h0(
        &self,
        password: &[u8],
        salt: &[u8],
        secret: &[u8],
        associated_data: &[u8],
    ) -> Result<[u8; 64], HashError> {
        let p = &self.params;
        let mut h = Blake2b512::new();
        for word in [
            p.parallelism(),
            p.hash_length(),
            p.m_cost_kib(),
            p.t_cost(),
            VERSION,
            ARGON2ID,
        ] {
            Digest::update(&mut h, word.to_le_bytes());
        }
        for input in [password, salt, secret, associated_data] {
            Digest::update(&mut h, le32_len(input)?);
            Digest::update(&mut h, input);
        }
        Ok(h.finalize().into())
    }

    /// Step 2: blocks 0 and 1 of every lane.
    fn init_lanes(&mut self, h0: &[u8; 64]) -> Result<(), HashError> {
        let lane_len = self.lane_len() as usize;
        let mut bytes = [0u8; Block::BYTES];
        for lane in 0..self.lanes {
            for column in 0..2u32 {
                blake2b_long(
                    &[h0, &column.to_le_bytes(), &lane.to_le_bytes()],
                    &mut bytes,
                )?;
                self.blocks[lane as usize * lane_len + column as usize] =
                    Block::from_le_bytes(&bytes);
            }
        }
        Ok(())
    }

    /// Steps 3 and 4 for one segment.
    fn fill_segment(&mut self, pass: u32, slice: u32, lane: u32) {
        let lane_len = self.lane_len();
        // argon2id: data-independent addressing in the first half of the
        // first pass, data-dependent everywhere else.
        let data_independent = pass == 0 && slice < SYNC_POINTS / 2;
        let mut input = Block::ZERO;
        let mut addresses = Block::ZERO;
        if data_independent {
            input.0[..6].copy_from_slice(&[
                pass.into(),
                lane.into(),
                slice.into(),
                self.blocks.len() as u64,
                self.params.t_cost().into(),
                ARGON2ID.into(),
            ]);
        }
        // The first two blocks of a lane were set from H0.
        let first = if pass == 0 && slice == 0 { 2 } else { 0 };
        let lane_start = lane as usize * lane_len as usize;
        for index in first..self.segment_len {
            let column = slice * self.segment_len + index;
            let cur = lane_start + column as usize;
            // The previous block in the lane; for column 0 (only from the
            // second pass on) the lane's last block.
            let prev = if column == 0 {
                lane_start + lane_len as usize - 1
            } else {
                cur - 1
            };
            let pseudo_rand = if data_independent {
                if index == first || index % ADDRESSES_PER_BLOCK == 0 {
                    next_addresses(&mut addresses, &mut input, &mut self.scratch);
                }
                addresses.0[(index % ADDRESSES_PER_BLOCK) as usize]
            } else {
                self.blocks[prev].0[0]
            };
            let ref_lane = if (pass == 0 && slice == 0) || self.lanes == 1 {
                // (One lane needs no division, which wasm pays dearly for.)
                lane
            } else {
                lo32(pseudo_rand >> 32) % self.lanes
            };
            let ref_column =
                self.reference_column(pass, slice, index, ref_lane == lane, lo32(pseudo_rand));
            let reference = ref_lane as usize * lane_len as usize + ref_column as usize;
            fill_block(
                &mut self.blocks,
                cur,
                prev,
                reference,
                pass > 0,
                &mut self.scratch,
            );
        }
    }

    /// The column of the reference block (RFC 9106 §3.4.1.2): J1 picks,
    /// with a bias towards recent blocks, one of the blocks this position
    /// may read.
    fn reference_column(&self, pass: u32, slice: u32, index: u32, same_lane: bool, j1: u32) -> u32 {
        let seg = self.segment_len;
        let lane_len = self.lane_len();
        // Blocks already finished: in the first pass the slices before this
        // one, later the whole lane but this segment. The same lane adds the
        // blocks of this segment before the previous one; another lane
        // loses its last finished block while this segment is at index 0,
        // as that block may still be being written.
        let finished = if pass == 0 {
            slice * seg
        } else {
            lane_len - seg
        };
        let area = if same_lane {
            finished + index - 1
        } else {
            finished - u32::from(index == 0)
        };
        let x = (u64::from(j1) * u64::from(j1)) >> 32;
        let y = lo32((u64::from(area) * x) >> 32);
        let relative = area - 1 - y;
        // The area starts right after this segment (it wraps around the lane).
        let start = if pass == 0 || slice == SYNC_POINTS - 1 {
            0
        } else {
            (slice + 1) * seg
        };
        // start + relative < 2 x lane_len, so "mod lane_len" is at most one
        // subtraction (cheaper than a division).
        let column = start + relative;
        if column >= lane_len {
            column - lane_len
        } else {
            column
        }
    }

    /// Step 5: the tag from the XOR of the lanes' last blocks.
    fn finish(&self, out: &mut [u8]) -> Result<(), HashError> {
        let lane_len = self.lane_len() as usize;
        let mut last = self.blocks[lane_len - 1];
        for lane in 1..self.lanes as usize {
            let other = &self.blocks[lane * lane_len + lane_len - 1];
            for (w, o) in last.0.iter_mut().zip(other.0) {
                *w ^= o;
            }
        }
        blake2b_long(&[&last.le_bytes()], out)
    }
}

/// The next 128 pseudo-random references: G(0, G(0, input)) after
/// counting the input block up.
fn next_addresses(addresses: &mut Block, input: &mut Block, scratch: &mut Block) {
    input.0[6] += 1;
    let mut tmp = Block::ZERO;
    compress::<false>(&mut tmp, &Block::ZERO, input, scratch);
    compress::<false>(addresses, &Block::ZERO, &tmp, scratch);
}

/// blocks[cur] = G(blocks[prev], blocks[reference]), XORed into the old
/// value when `xor` is set. Neither `prev` nor `reference` is ever `cur`: the
/// reference area of a position excludes the position itself.
fn fill_block(
    blocks: &mut [Block],
    cur: usize,
    prev: usize,
    reference: usize,
    xor: bool,
    scratch: &mut Block,
) {
    let (before, rest) = blocks.split_at_mut(cur);
    let Some((dst, after)) = rest.split_first_mut() else {
        return;
    };
    let prev = if prev < cur {
        &before[prev]
    } else {
        &after[prev - cur - 1]
    };
    let reference = if reference < cur {
        &before[reference]
    } else {
        &after[reference - cur - 1]
    };
    // Two copies of the compression, so the choice is not made again for
    // every vector.
    if xor {
        compress::<true>(dst, prev, reference, scratch);
    } else {
        compress::<false>(dst, prev, reference, scratch);
    }
}

#[cfg(test)]
mod tests;
