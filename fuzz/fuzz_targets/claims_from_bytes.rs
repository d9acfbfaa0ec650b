//! `pow::ChallengeClaims::from_bytes` must never panic on any bytes, and
//! whatever it accepts must encode back to the same bytes and survive a trip
//! through `sign` and `verify`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pow::ChallengeClaims;
use pow::challenge::{CLAIMS_LEN, verify};

const KEY: &[u8] = b"powgate-fuzz-claims-key-0123456789ab";

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = ChallengeClaims::from_bytes(data) else {
        return;
    };
    assert_eq!(data.len(), CLAIMS_LEN);
    assert_eq!(
        claims.to_bytes().as_slice(),
        data,
        "to_bytes(from_bytes(b)) != b"
    );
    let signed = claims.sign(KEY);
    assert_eq!(verify(KEY, &signed), Ok(claims));
    // Whatever parses also passes the constructors' validation again.
    assert!(claims.params.to_argon2().is_ok());
});
