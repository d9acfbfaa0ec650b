//! `pow::challenge::verify` must never panic, and whatever it accepts must
//! be exactly what `ChallengeClaims::sign` produces for the decoded claims.
//!
//! Random strings almost never carry a valid HMAC, so each input is used
//! twice: as a challenge string as it stands (the path every forged or
//! garbled challenge takes), and as claims bytes that this target signs with
//! the key itself, so the parser behind the signature check is fuzzed too.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use pow::ChallengeClaims;
use pow::challenge::{MAX_ENCODED_LEN, verify};
use sha2::Sha256;

const KEY: &[u8] = b"powgate-fuzz-challenge-key-0123456789";

/// `payload.tag` as the server encodes it, for any payload bytes.
fn signed(payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("HMAC takes any key length");
    mac.update(payload);
    let tag = mac.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Anything that verifies round-trips: signing the claims gives back the very
/// string, and that string verifies to the same claims.
fn check_round_trip(encoded: &str, claims: &ChallengeClaims) {
    assert!(encoded.len() <= MAX_ENCODED_LEN);
    assert_eq!(claims.sign(KEY), encoded, "sign(verify(s)) != s");
    assert_eq!(verify(KEY, &claims.sign(KEY)).as_ref(), Ok(claims));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(claims) = verify(KEY, s) {
            check_round_trip(s, &claims);
        }
    }

    let forged = signed(data);
    match verify(KEY, &forged) {
        Ok(claims) => {
            check_round_trip(&forged, &claims);
            assert_eq!(claims.to_bytes().as_slice(), data);
        }
        // A correctly signed payload is refused only for its content: the
        // length cap, or exactly what the claims parser says.
        Err(e) if forged.len() > MAX_ENCODED_LEN => {
            assert_eq!(e, pow::ChallengeError::TooLong);
        }
        Err(e) => assert_eq!(Err(e), ChallengeClaims::from_bytes(data)),
    }
});
