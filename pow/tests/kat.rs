//! Known answers that pin the construction: if any of these change, every
//! deployed solver would disagree with the server.

use pow::{Argon2Params, Hasher};

/// The values below were produced with the C reference implementation
/// (Debian's `argon2` CLI), independently of this crate:
/// `printf 12345678 | argon2 powgatesalt12345 -id -t T -k M -p P -l 32 -r`.
/// The password is nonce 0x3132333435363738 as big-endian bytes, i.e. the
/// ASCII text "12345678"; the salt is the ASCII text "powgatesalt12345".
#[test]
fn hash_matches_the_c_reference_implementation() {
    let nonce = u64::from_be_bytes(*b"12345678");
    let salt = *b"powgatesalt12345";
    for (t, m, p, expected) in KAT {
        let params = Argon2Params::new(*t, *m, *p, 32).unwrap();
        let mut h = Hasher::new(params).unwrap();
        let mut out = [0u8; 32];
        h.hash_into(&salt, nonce, &mut out).unwrap();
        assert_eq!(hex::encode(out), *expected, "t={t} m={m} p={p}");
        // Reusing the memory block must not change the answer.
        h.hash_into(&salt, nonce, &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            *expected,
            "second hash, t={t} m={m} p={p}"
        );
    }
}

const KAT: &[(u32, u32, u32, &str)] = &[
    (
        1,
        8,
        1,
        "31313071f9c2703f6f7cf74ab4485b9013b2a0fecae5665704af37f51d4d3389",
    ),
    (
        3,
        64,
        1,
        "3f0a214e89f801adf8b0e485c38be56460a1e98adf9b61da4fef3cb42b9bdbd3",
    ),
    (
        2,
        100,
        2,
        "febaf94bd9117608c866a7ace965a946e29449199bb163aa6910650b44119502",
    ),
];
