//! The BlaMka compression G in plain 64-bit arithmetic: the scalar wasm
//! build's, and the one the native tests hold against the `argon2` crate.

use super::Block;

/// BlaMka's multiply-add: x + y + 2 * lo32(x) * lo32(y), modulo 2^64.
#[inline(always)]
fn blamka(x: u64, y: u64) -> u64 {
    let product = (x & 0xFFFF_FFFF) * (y & 0xFFFF_FFFF);
    x.wrapping_add(y).wrapping_add(product.wrapping_mul(2))
}

/// The quarter-round GB of RFC 9106 §3.6 on words a, b, c, d of `v`.
#[inline(always)]
fn quarter(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize) {
    v[a] = blamka(v[a], v[b]);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = blamka(v[c], v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = blamka(v[a], v[b]);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = blamka(v[c], v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

/// The permutation P on sixteen words seen as a 4x4 matrix: its columns,
/// then its diagonals.
#[inline(always)]
fn permute(v: &mut [u64; 16]) {
    quarter(v, 0, 4, 8, 12);
    quarter(v, 1, 5, 9, 13);
    quarter(v, 2, 6, 10, 14);
    quarter(v, 3, 7, 11, 15);
    quarter(v, 0, 5, 10, 15);
    quarter(v, 1, 6, 11, 12);
    quarter(v, 2, 7, 8, 13);
    quarter(v, 3, 4, 9, 14);
}

/// dst = G(prev, reference), or dst ^= G(prev, reference) when `XOR`. G(X, Y) = P(R) ^ R with R = X ^ Y, where P permutes the
/// eight rows of sixteen words, then the eight columns of word pairs.
/// `scratch` holds the working state; its contents do not matter.
pub(super) fn compress<const XOR: bool>(
    dst: &mut Block,
    prev: &Block,
    reference: &Block,
    scratch: &mut Block,
) {
    let q = &mut scratch.0;
    for (((q, d), p), r) in q.iter_mut().zip(&mut dst.0).zip(prev.0).zip(reference.0) {
        // R goes to dst right away (XORed into it when asked), so it need
        // not be kept: dst ^= P(R) at the end leaves (old dst ^) R ^ P(R).
        *q = p ^ r;
        *d = if XOR { *d ^ *q } else { *q };
    }
    let (rows, _) = q.as_chunks_mut::<16>();
    for row in rows {
        permute(row);
    }
    for column in 0..8 {
        // Column j is the word pairs (2j, 2j + 1) of every row.
        let mut v = [0u64; 16];
        for k in 0..8 {
            v[2 * k] = q[16 * k + 2 * column];
            v[2 * k + 1] = q[16 * k + 2 * column + 1];
        }
        permute(&mut v);
        for k in 0..8 {
            q[16 * k + 2 * column] = v[2 * k];
            q[16 * k + 2 * column + 1] = v[2 * k + 1];
        }
    }
    for (d, q) in dst.0.iter_mut().zip(q.iter()) {
        *d ^= q;
    }
}
