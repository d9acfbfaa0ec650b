//! The BlaMka compression G with wasm `simd128` intrinsics: two 64-bit
//! words per 128-bit vector, so a 1 KiB block is 64 vectors and the
//! permutation P works on eight vectors at a time.
//!
//! Layout. P sees sixteen words w0..w15 as a 4x4 matrix with rows
//! (w0..w3), (w4..w7), (w8..w11), (w12..w15). Held as vectors
//! a0 = (w0, w1), a1 = (w2, w3), b0 = (w4, w5), … d1 = (w14, w15), the
//! column step of P is the quarter-round on (a0, b0, c0, d0) and on
//! (a1, b1, c1, d1), two columns per vector, four in all. For
//! the diagonal step rows b, c and d are rotated by one, two and three
//! words ([`diagonalize`]), the same quarter-rounds run, and the rotation is
//! undone.
//!
//! In a block, row r of the row-wise pass is vectors 8r..8r+8, and column c
//! of the column-wise pass (word pairs 2c, 2c + 1 of every row) is vectors
//! c, c + 8, …, c + 56, so both passes are the same permutation on
//! different vectors.
//!
//! The code is shaped by what V8 makes of it, since that is what runs
//! (Chromium 156 on a Zen 3 core: about 450 ns a block when the blocks are
//! in cache, about 650 ns in a 64 MiB memory; the `argon2` crate natively,
//! with AVX2, takes 360 and 610):
//! - wasm has no "multiply the low halves of 64-bit lanes" (x86's pmuludq),
//!   only extmul of 32-bit lanes 0-1 or 2-3, which V8 turns into two
//!   unpacks and a pmuludq. So [`blamka2`] gathers the low halves of two
//!   vectors into one with a single shuffle and multiplies both halves of
//!   it. When this was first written LLVM folded gather and extmul into an
//!   `i64x2.mul` of masked words, which V8 expands into eight instructions,
//!   and a pavgb had to hide the gather from it; the LLVM of Rust 1.95
//!   leaves them alone, so the pavgb (one more step on every chain) is
//!   gone. Should `i64x2.mul` ever show up in the disassembly of `compress`
//!   (`wasm-objdump -d`), the folding is back.
//! - A quarter-round is a chain of dependent steps, each waiting about ten
//!   cycles on shuffle, multiply and rotation, and V8 keeps the order of the
//!   wasm code. So [`permute2`] runs two independent permutations side by
//!   side, a step of one then the same step of the other, and the core has
//!   a second chain to work on while the first waits. That spills a few
//!   vectors (16 of state, 16 xmm registers), which costs less than the
//!   waiting it saves: about 8% in cache.
//! - Rotations use pshufd/pshuflw-style shuffles or shifts, never an
//!   arbitrary byte shuffle, whose mask V8 rebuilds from immediates every
//!   time.
//! - The state between the row and the column pass lives in a scratch
//!   block in linear memory: as 64 wasm locals it would be spilled by V8's
//!   register allocator around every use, and as a local array it would be
//!   zeroed or copied on every call.
//! - The reference block is a random one of 64 MiB, mostly in no cache,
//!   and wasm has no prefetch. So [`touch`] first reads a word of each of
//!   its sixteen cache lines: the misses (and the TLB miss) are then under
//!   way together, instead of one or two at a time as the rows come up.
//!   About 10% of a hash with 64 MiB.
//!
//! Every operation except loading and storing is a safe intrinsic. The
//! whole crate is compiled with `simd128` in this build, so there is no
//! run-time feature check to get wrong: an engine without SIMD refuses the
//! module when compiling it, and the page loads the scalar build instead.

// v128 loads and stores take raw pointers, and a read whose value is unused
// has to be volatile to stay. They are confined to `load`, `store` and
// `touch` below, each with the reason it is sound.
#![allow(unsafe_code)]

use core::arch::wasm32::{
    i16x8_shuffle, i32x4_shuffle, i64x2_add, i64x2_shl, i64x2_shuffle, u64x2_extmul_high_u32x4,
    u64x2_extmul_low_u32x4, u64x2_shr, u64x2_splat, v128, v128_load, v128_or, v128_store, v128_xor,
};

use super::Block;

/// Vector `k` of a block: words 2k and 2k + 1.
#[inline(always)]
fn load(block: &Block, k: usize) -> v128 {
    let words = &block.0[2 * k..2 * k + 2];
    // SAFETY: `words` is a reference to two words, so it points to 16
    // readable bytes; v128.load has no alignment requirement.
    unsafe { v128_load(words.as_ptr().cast::<v128>()) }
}

/// Sets vector `k` of a block: words 2k and 2k + 1.
#[inline(always)]
fn store(block: &mut Block, k: usize, v: v128) {
    let words = &mut block.0[2 * k..2 * k + 2];
    // SAFETY: `words` is a unique reference to two words, so it points to 16
    // writable bytes nothing else accesses meanwhile; v128.store has no
    // alignment requirement.
    unsafe { v128_store(words.as_mut_ptr().cast::<v128>(), v) }
}

/// Reads the first word of each of the block's sixteen cache lines (a block
/// is 64-byte aligned), so that the misses start all at once: what a
/// prefetch would do, which wasm lacks. The values are not used.
#[inline(always)]
fn touch(block: &Block) {
    let (lines, _) = block.0.as_chunks::<8>();
    for line in lines {
        // SAFETY: `line[0]` is a reference to a word, so reading it is sound;
        // the read is volatile only so that the compiler keeps it although
        // its value is unused.
        unsafe { core::ptr::read_volatile(&line[0]) };
    }
}

/// BlaMka's x + y + 2 * lo32(x) * lo32(y) per 64-bit lane, for two pairs at
/// once: the low halves of x0 and x1 (32-bit lanes 0 and 2 of each) are
/// gathered into one vector, those of y0 and y1 into another, and the two
/// extmuls multiply lanes 0-1 and 2-3 of those.
#[inline(always)]
fn blamka2(x0: v128, y0: v128, x1: v128, y1: v128) -> (v128, v128) {
    let xs = i32x4_shuffle::<0, 2, 4, 6>(x0, x1);
    let ys = i32x4_shuffle::<0, 2, 4, 6>(y0, y1);
    let p0 = u64x2_extmul_low_u32x4(xs, ys);
    let p1 = u64x2_extmul_high_u32x4(xs, ys);
    (
        i64x2_add(i64x2_add(x0, y0), i64x2_add(p0, p0)),
        i64x2_add(i64x2_add(x1, y1), i64x2_add(p1, p1)),
    )
}

/// Swapping the 32-bit halves: one pshufd.
#[inline(always)]
fn rotr32(x: v128) -> v128 {
    i32x4_shuffle::<1, 0, 3, 2>(x, x)
}

#[inline(always)]
fn rotr24(x: v128) -> v128 {
    v128_or(u64x2_shr(x, 24), i64x2_shl(x, 40))
}

/// Rotating the 16-bit lanes of each word: pshuflw and pshufhw.
#[inline(always)]
fn rotr16(x: v128) -> v128 {
    i16x8_shuffle::<1, 2, 3, 0, 5, 6, 7, 4>(x, x)
}

/// A right rotation by 63 is a left rotation by one: x + x, plus the top bit
/// brought round to the bottom.
#[inline(always)]
fn rotr63(x: v128) -> v128 {
    v128_xor(u64x2_shr(x, 63), i64x2_add(x, x))
}

/// One step of the quarter-round GB on both halves of group `s`:
/// x += y + 2 lo(x) lo(y), then z = (z ^ x) >>> r, where x, y, z are rows
/// a, b, c or d, given by the index of their first vector.
macro_rules! step {
    ($s:ident, $x:literal, $y:literal, $z:literal, $rot:ident) => {
        ($s[$x], $s[$x + 1]) = blamka2($s[$x], $s[$y], $s[$x + 1], $s[$y + 1]);
        $s[$z] = $rot(v128_xor($s[$z], $s[$x]));
        $s[$z + 1] = $rot(v128_xor($s[$z + 1], $s[$x + 1]));
    };
}

/// The quarter-round GB on the four columns (a0, b0, c0, d0) and
/// (a1, b1, c1, d1) of `v` (rows a, b, c, d start at vectors 0, 2, 4, 6),
/// and on those of `w`: each step on `v`, then the same on `w`.
#[inline(always)]
fn quarter2(v: &mut [v128; 8], w: &mut [v128; 8]) {
    step!(v, 0, 2, 6, rotr32);
    step!(w, 0, 2, 6, rotr32);
    step!(v, 4, 6, 2, rotr24);
    step!(w, 4, 6, 2, rotr24);
    step!(v, 0, 2, 6, rotr16);
    step!(w, 0, 2, 6, rotr16);
    step!(v, 4, 6, 2, rotr63);
    step!(w, 4, 6, 2, rotr63);
}

/// (x[1], y[0]): one palignr.
#[inline(always)]
fn straddle(x: v128, y: v128) -> v128 {
    i64x2_shuffle::<1, 2>(x, y)
}

/// Rotates row b left by one word, c by two and d by three, so that the
/// diagonals line up as columns.
#[inline(always)]
fn diagonalize(v: &mut [v128; 8]) {
    let [a0, a1, b0, b1, c0, c1, d0, d1] = *v;
    *v = [
        a0,
        a1,
        straddle(b0, b1),
        straddle(b1, b0),
        c1,
        c0,
        straddle(d1, d0),
        straddle(d0, d1),
    ];
}

/// The inverse of [`diagonalize`].
#[inline(always)]
fn undiagonalize(v: &mut [v128; 8]) {
    let [a0, a1, b0, b1, c0, c1, d0, d1] = *v;
    *v = [
        a0,
        a1,
        straddle(b1, b0),
        straddle(b0, b1),
        c1,
        c0,
        straddle(d0, d1),
        straddle(d1, d0),
    ];
}

/// P on each of two sets of sixteen words, both held as
/// (a0, a1, b0, b1, c0, c1, d0, d1), interleaved step by step.
#[inline(always)]
fn permute2(v: &mut [v128; 8], w: &mut [v128; 8]) {
    quarter2(v, w);
    diagonalize(v);
    diagonalize(w);
    quarter2(v, w);
    undiagonalize(v);
    undiagonalize(w);
}

/// dst = G(prev, reference), or dst ^= G(prev, reference) when `XOR`, as
/// `portable::compress` defines it. `scratch` holds the state between the
/// row and the column pass; its contents do not matter.
///
/// R = prev ^ reference is written to dst as the rows are loaded (XORed
/// into it when `XOR`), so it need not be kept: the column pass XORs its
/// results into dst, leaving (old dst ^) R ^ P(R). Loading and writing
/// happen in the permuting loops, so each block is walked once or twice,
/// not four times. Both passes take two rows or two columns at a time, for
/// [`permute2`]. Being generic over `XOR` spares a test per vector.
pub(super) fn compress<const XOR: bool>(
    dst: &mut Block,
    prev: &Block,
    reference: &Block,
    scratch: &mut Block,
) {
    touch(reference);
    // Rows 2i and 2i + 1: vectors 16i..16i + 8 and 16i + 8..16i + 16.
    for first in (0..64).step_by(16) {
        let (mut v, mut w) = ([u64x2_splat(0); 8], [u64x2_splat(0); 8]);
        for k in 0..8 {
            for (x, i) in [(&mut v[k], first + k), (&mut w[k], first + 8 + k)] {
                let r = v128_xor(load(prev, i), load(reference, i));
                let d = if XOR { v128_xor(r, load(dst, i)) } else { r };
                store(dst, i, d);
                *x = r;
            }
        }
        permute2(&mut v, &mut w);
        for k in 0..8 {
            store(scratch, first + k, v[k]);
            store(scratch, first + 8 + k, w[k]);
        }
    }
    // Columns c and c + 1: vectors c + 8k and c + 1 + 8k.
    for c in (0..8).step_by(2) {
        let mut v: [v128; 8] = core::array::from_fn(|k| load(scratch, c + 8 * k));
        let mut w: [v128; 8] = core::array::from_fn(|k| load(scratch, c + 1 + 8 * k));
        permute2(&mut v, &mut w);
        for (k, (x, y)) in v.into_iter().zip(w).enumerate() {
            let d = v128_xor(load(dst, c + 8 * k), x);
            store(dst, c + 8 * k, d);
            let d = v128_xor(load(dst, c + 1 + 8 * k), y);
            store(dst, c + 1 + 8 * k, d);
        }
    }
}
