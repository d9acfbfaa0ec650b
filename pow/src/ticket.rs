//! The admission ticket: a hashcash stamp solved alongside the argon2 nonce,
//! so that a garbage submission is no longer free to send: it costs a
//! browser about one argon2 hash, a native sender with SHA instructions
//! about a third of the verification it buys, and a GPU far less (SHA-256
//! is not memory-hard). The rest of the defence is the server's fair
//! verification line.
//!
//! Without it a sender pays nothing for a random nonce and powgate pays one
//! argon2id hash to refuse it. The ticket is checked first, with one SHA-256
//! (microseconds), and only a submission that carries a valid one gets
//! anywhere near argon2. It is bound to the challenge id, and a challenge is
//! single-use, so one ticket buys exactly one submission.
//!
//! ```text
//! digest = SHA-256( "powgate-ticket-v1" (17 bytes)
//!                 ‖ the 16-byte challenge id
//!                 ‖ the ticket as 8 bytes, unsigned big-endian )
//! ```
//! The ticket is valid when `digest` starts with at least `bits` zero bits.

use sha2::{Digest, Sha256};

use crate::params::Argon2Params;

/// Separates ticket digests from every other SHA-256 in the protocol.
pub const DOMAIN_TAG: &[u8] = b"powgate-ticket-v1";

/// The most bits a ticket can be asked for: 2^32 SHA-256 is already far
/// past any argon2 hash a browser can afford.
pub const MAX_BITS: u8 = 32;

/// The SHA-256 of one ticket candidate.
fn digest(salt: &[u8; 16], ticket: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_TAG);
    h.update(salt);
    h.update(ticket.to_be_bytes());
    h.finalize().into()
}

/// Leading zero bits of a digest.
fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut zeros = 0;
    for byte in digest {
        zeros += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    zeros
}

/// True when `ticket` admits a submission for the challenge with id `salt`
/// at `bits`. `bits = 0` admits every ticket.
pub fn check(salt: &[u8; 16], ticket: u64, bits: u8) -> bool {
    bits == 0 || leading_zero_bits(&digest(salt, ticket)) >= u32::from(bits)
}

/// The first ticket from 0 that [`check`] accepts. Takes 2^`bits` digests on
/// average; `bits` above [`MAX_BITS`] is treated as [`MAX_BITS`], so the
/// search always ends (a 32-bit run over 2^64 tickets cannot come up empty
/// in practice).
pub fn solve(salt: &[u8; 16], bits: u8) -> u64 {
    let bits = bits.min(MAX_BITS);
    (0..=u64::MAX)
        .find(|t| check(salt, *t, bits))
        .unwrap_or(u64::MAX)
}

/// How many SHA-256 digests of a ticket are charged for one 1 KiB argon2
/// block, sized so that a *browser's* ticket costs about one argon2 hash
/// and so adds under 1 % to a visitor's work at `low` (200 hashes). In V8,
/// with the wasm SIMD build, a digest costs about 0.28 µs and an argon2 hash
/// at the defaults 0.44 s, which is 0.84 µs for each of its 524 288 blocks:
/// a ratio of 3. The defaults then give 21 bits, about 0.6 s in a worker of
/// its own beside the search (0.6–0.7 % of the work at `low`).
///
/// A native sender pays less for the same bits: with the SHA extensions
/// (x86-64, `sha2` 0.10) a digest costs 0.055 µs, so its ticket costs about
/// 0.12 s against the 0.33–0.44 s powgate spends verifying the submission.
/// The ticket therefore does not make garbage cost as much as it costs
/// powgate; it makes it cost a solver's CPU rather than nothing, and the
/// fair verification queue (server `reputation`/`verifier`) deals with what
/// is paid for.
pub const DIGESTS_PER_BLOCK: u64 = 3;

/// The ticket bits whose expected cost (2^bits digests) is about one argon2
/// hash at `params`: argon2 processes m × t blocks of 1 KiB, each worth
/// [`DIGESTS_PER_BLOCK`] digests, so bits = round(log2(m × t × 3)),
/// clamped to `0..=MAX_BITS`. The defaults (t=8, 64 MiB) give 21; the tiny
/// parameters of the tests (t=1, 64 KiB) give 8.
pub fn bits_for(params: Argon2Params) -> u8 {
    let digests = u64::from(params.m_cost_kib())
        .saturating_mul(u64::from(params.t_cost()))
        .saturating_mul(DIGESTS_PER_BLOCK);
    // round(log2(x)): the highest set bit, plus one when the next bit is set
    // (x ≥ 1.5 × 2^k rounds up, the geometric midpoint would be 1.41).
    let high = 63 - digests.max(1).leading_zeros();
    let round_up = high > 0 && digests & (1 << (high - 1)) != 0;
    let bits = high + u32::from(round_up);
    u8::try_from(bits.min(u32::from(MAX_BITS))).unwrap_or(MAX_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [7; 16];

    /// Pins the exact bytes hashed: a change here breaks every client.
    #[test]
    fn known_answer_vector() {
        assert_eq!(
            hex::encode(digest(&SALT, 0x0102_0304_0506_0708)),
            "c621cee1a55fabbcae7497f8224da0fe4834587f260b9737baad41efb58b387c"
        );
        assert_eq!(solve(&SALT, 12), KAT_TICKET_12);
    }

    /// Computed independently (Python hashlib) from the layout above.
    const KAT_TICKET_12: u64 = 3569;

    #[test]
    fn solve_finds_a_ticket_that_checks_and_none_before_it() {
        for bits in [0u8, 1, 4, 9] {
            let t = solve(&SALT, bits);
            assert!(check(&SALT, t, bits), "bits {bits}");
            assert!((0..t).all(|earlier| !check(&SALT, earlier, bits)));
        }
    }

    #[test]
    fn zero_bits_admit_anything() {
        assert!(check(&SALT, 12345, 0));
        assert_eq!(solve(&SALT, 0), 0);
    }

    #[test]
    fn a_ticket_is_bound_to_its_challenge() {
        let t = solve(&SALT, 16);
        assert!(check(&SALT, t, 16));
        assert!(!check(&[8; 16], t, 16));
    }

    #[test]
    fn leading_zero_bits_span_bytes() {
        let mut d = [0xFF; 32];
        assert_eq!(leading_zero_bits(&d), 0);
        d[0] = 0;
        d[1] = 0x10;
        assert_eq!(leading_zero_bits(&d), 11);
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }

    #[test]
    fn bits_for_tracks_the_argon2_cost() {
        assert_eq!(bits_for(Argon2Params::DEFAULT), 21);
        let tiny = Argon2Params::new(1, 64, 1, 32).unwrap();
        assert_eq!(bits_for(tiny), 8);
        let cheap = Argon2Params::new(1, 32 * 1024, 1, 32).unwrap();
        assert_eq!(bits_for(cheap), 17);
        let huge = Argon2Params::new(64, 4 * 1024 * 1024, 1, 32).unwrap();
        // The largest parameters allowed: 2^6 × 2^22 blocks × 3 digests.
        assert_eq!(bits_for(huge), 30);
    }
}
