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
//! c, c + 8, …, c + 56, so both passes are the same [`permute`] on
//! different vectors.
//!
//! The code is shaped by what V8 makes of it, since that is what runs:
//! - wasm has no "multiply the low halves of 64-bit lanes" (x86's pmuludq),
//!   only extmul of 32-bit lanes 0-1 or 2-3, so [`blamka2`] gathers the low
//!   halves of two vectors into one with a single shuffle and multiplies
//!   both halves of it;
//! - rotations use pshufd/pshuflw-style shuffles or shifts, never an
//!   arbitrary byte shuffle, whose mask V8 rebuilds from immediates every
//!   time;
//! - the state between the row and the column pass lives in a scratch
//!   block in linear memory: as 64 wasm locals it would be spilled by V8's
//!   register allocator around every use, and as a local array it would be
//!   zeroed or copied on every call.
//!
//! Every operation except loading and storing is a safe intrinsic. The
//! whole crate is compiled with `simd128` in this build, so there is no
//! run-time feature check to get wrong: an engine without SIMD refuses the
//! module when compiling it, and the page loads the scalar build instead.

// v128 loads and stores take raw pointers. They are confined to `load` and
// `store` below, each with the reason it is sound.
#![allow(unsafe_code)]

use core::arch::wasm32::{
    i16x8_shuffle, i32x4_shuffle, i64x2_add, i64x2_shl, i64x2_shuffle, u8x16_avgr,
    u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_shr, v128, v128_load, v128_or,
    v128_store, v128_xor,
};

use super::Block;

#[inline(always)]
fn load(words: &[u64; 2]) -> v128 {
    // SAFETY: `words` is a reference, so it points to 16 readable bytes;
    // v128.load has no alignment requirement.
    unsafe { v128_load(words.as_ptr().cast::<v128>()) }
}

#[inline(always)]
fn store(words: &mut [u64; 2], v: v128) {
    // SAFETY: `words` is a unique reference, so it points to 16 writable
    // bytes nothing else accesses meanwhile; v128.store has no alignment
    // requirement.
    unsafe { v128_store(words.as_mut_ptr().cast::<v128>(), v) }
}

/// x itself, through an instruction LLVM cannot see through (one pavgb in
/// V8). Without it LLVM recognises the gather in [`blamka2`] as "the low
/// halves", folds gather and extmul into a 64-bit multiply of masked
/// words, and V8 expands that i64x2.mul into three multiplies and five
/// more instructions.
#[inline(always)]
fn opaque(x: v128) -> v128 {
    u8x16_avgr(x, x)
}

/// BlaMka's x + y + 2 * lo32(x) * lo32(y) per 64-bit lane, for two pairs at
/// once: the low halves of x0 and x1 (32-bit lanes 0 and 2 of each) are
/// gathered into one vector, those of y0 and y1 into another, and the two
/// extmuls multiply lanes 0-1 and 2-3 of those.
#[inline(always)]
fn blamka2(x0: v128, y0: v128, x1: v128, y1: v128) -> (v128, v128) {
    let xs = opaque(i32x4_shuffle::<0, 2, 4, 6>(x0, x1));
    let ys = opaque(i32x4_shuffle::<0, 2, 4, 6>(y0, y1));
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
/// (a1, b1, c1, d1) of `v` (rows a, b, c, d start at vectors 0, 2, 4, 6).
#[inline(always)]
fn quarter(v: &mut [v128; 8]) {
    step!(v, 0, 2, 6, rotr32);
    step!(v, 4, 6, 2, rotr24);
    step!(v, 0, 2, 6, rotr16);
    step!(v, 4, 6, 2, rotr63);
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

/// P on sixteen words held as (a0, a1, b0, b1, c0, c1, d0, d1).
#[inline(always)]
fn permute(v: &mut [v128; 8]) {
    quarter(v);
    diagonalize(v);
    quarter(v);
    undiagonalize(v);
}

/// A row of R = prev ^ reference after P, given the row's eight vectors in
/// each block. R itself goes to dst on the way (XORed into it when `XOR`).
#[inline(always)]
fn permuted_row<const XOR: bool>(
    dst: &mut [[u64; 2]],
    prev: &[[u64; 2]],
    reference: &[[u64; 2]],
) -> [v128; 8] {
    let mut v: [v128; 8] = core::array::from_fn(|k| {
        let r = v128_xor(load(&prev[k]), load(&reference[k]));
        let d = if XOR { v128_xor(r, load(&dst[k])) } else { r };
        store(&mut dst[k], d);
        r
    });
    permute(&mut v);
    v
}

/// dst = G(prev, reference), or dst ^= G(prev, reference) when `XOR`, as
/// `portable::compress` defines it. `scratch` holds the state between the
/// row and the column pass; its contents do not matter.
///
/// R = prev ^ reference is written to dst as the rows are loaded (XORed
/// into it when `XOR`), so it need not be kept: the column pass XORs its
/// results into dst, leaving (old dst ^) R ^ P(R). Loading and writing
/// happen in the permuting loops, so each block is walked once or twice,
/// not four times. Being generic over `XOR` spares a test per vector.
pub(super) fn compress<const XOR: bool>(
    dst: &mut Block,
    prev: &Block,
    reference: &Block,
    scratch: &mut Block,
) {
    let (prev, _) = prev.0.as_chunks::<16>();
    let (reference, _) = reference.0.as_chunks::<16>();
    let (dst_rows, _) = dst.0.as_chunks_mut::<16>();
    let (q, _) = scratch.0.as_chunks_mut::<16>();
    for (((q, d), p), r) in q.iter_mut().zip(dst_rows).zip(prev).zip(reference) {
        let (d, _) = d.as_chunks_mut::<2>();
        let v = permuted_row::<XOR>(d, p.as_chunks::<2>().0, r.as_chunks::<2>().0);
        let (q, _) = q.as_chunks_mut::<2>();
        for (q, x) in q.iter_mut().zip(v) {
            store(q, x);
        }
    }
    let (q, _) = scratch.0.as_chunks::<2>();
    let (dst, _) = dst.0.as_chunks_mut::<2>();
    for column in 0..8 {
        let (q, dst) = (&q[column..], &mut dst[column..]);
        let mut v: [v128; 8] = core::array::from_fn(|k| load(&q[8 * k]));
        permute(&mut v);
        for (k, x) in v.into_iter().enumerate() {
            let d = v128_xor(load(&dst[8 * k]), x);
            store(&mut dst[8 * k], d);
        }
    }
}
