//! The challenge as signed data, and the exact bytes that get hashed.
//!
//! A challenge travels as `base64url(claims) "." base64url(HMAC-SHA256(key, claims))`
//! (no padding). The claims are a fixed 83-byte big-endian layout, see
//! [`ChallengeClaims::to_bytes`]. Clients treat the string as opaque; they
//! get the salt, parameters and target separately in the JSON response.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::params::{Argon2Params, Difficulty, ParamsError};

/// Format version written as the first claims byte. Version 2 added the
/// ticket bits; a version-1 challenge is refused with "request a new
/// challenge" rather than accepted without a ticket.
pub const CHALLENGE_VERSION: u8 = 2;
/// Length of the encoded claims.
pub const CLAIMS_LEN: usize = 83;
/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Longest challenge string a server ever produces; anything longer is
/// refused before decoding.
pub const MAX_ENCODED_LEN: usize = 111 + 1 + 43;

type HmacSha256 = Hmac<Sha256>;

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Solving yields a new token.
    New,
    /// Solving extends the existing token with this database id.
    Refresh { token_id: i64 },
}

/// The signed content of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeClaims {
    /// Random, unique per challenge: the single-use key and the argon2 salt.
    pub id: [u8; 16],
    pub purpose: Purpose,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; the challenge is refused from this instant on.
    pub expires_at: i64,
    /// The difficulty in force when the challenge was issued.
    pub difficulty: Difficulty,
    pub params: Argon2Params,
    /// The client's address key: an IPv4 address as IPv4-mapped IPv6, or an
    /// IPv6 /64 with the interface half zeroed.
    pub ip_key: [u8; 16],
    /// Leading zero bits the admission ticket must have (see
    /// [`crate::ticket`]); 0 when the server asks for none.
    pub ticket_bits: u8,
}

/// Why a challenge string was refused. Signature problems are deliberately
/// not told apart from format problems beyond what an honest client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("challenge is too long")]
    TooLong,
    #[error("challenge is not in the form payload.signature")]
    Malformed,
    #[error("challenge signature does not match")]
    BadSignature,
    #[error("challenge version {0} is not supported")]
    Version(u8),
    #[error("challenge carries invalid parameters: {0}")]
    Params(ParamsError),
}

impl ChallengeClaims {
    /// The claims as signed bytes:
    ///
    /// | offset | size | field |
    /// |---|---|---|
    /// | 0 | 1 | version (2) |
    /// | 1 | 1 | purpose: 0 new, 1 refresh |
    /// | 2 | 16 | id (argon2 salt) |
    /// | 18 | 8 | issued_at, i64 |
    /// | 26 | 8 | expires_at, i64 |
    /// | 34 | 8 | difficulty, u64 |
    /// | 42 | 4 | t_cost |
    /// | 46 | 4 | m_cost KiB |
    /// | 50 | 4 | parallelism |
    /// | 54 | 4 | hash length |
    /// | 58 | 16 | ip key |
    /// | 74 | 8 | refresh token id, i64 (0 for new) |
    /// | 82 | 1 | ticket bits, 0..=32 |
    pub fn to_bytes(&self) -> [u8; CLAIMS_LEN] {
        let mut b = [0u8; CLAIMS_LEN];
        b[0] = CHALLENGE_VERSION;
        let (purpose, token_id) = match self.purpose {
            Purpose::New => (0u8, 0i64),
            Purpose::Refresh { token_id } => (1u8, token_id),
        };
        b[1] = purpose;
        b[2..18].copy_from_slice(&self.id);
        b[18..26].copy_from_slice(&self.issued_at.to_be_bytes());
        b[26..34].copy_from_slice(&self.expires_at.to_be_bytes());
        b[34..42].copy_from_slice(&self.difficulty.get().to_be_bytes());
        b[42..46].copy_from_slice(&self.params.t_cost().to_be_bytes());
        b[46..50].copy_from_slice(&self.params.m_cost_kib().to_be_bytes());
        b[50..54].copy_from_slice(&self.params.parallelism().to_be_bytes());
        b[54..58].copy_from_slice(&self.params.hash_length().to_be_bytes());
        b[58..74].copy_from_slice(&self.ip_key);
        b[74..82].copy_from_slice(&token_id.to_be_bytes());
        b[82] = self.ticket_bits;
        b
    }

    /// Parses claims bytes. Does not check the signature; see [`verify`].
    ///
    /// # Errors
    /// [`ChallengeError::Version`] on an unknown version (checked first, so
    /// an older, shorter layout is named as such),
    /// [`ChallengeError::Malformed`] on a wrong length, purpose byte or
    /// ticket bits, and
    /// [`ChallengeError::Params`] when a parameter is out of range.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ChallengeError> {
        match b.first() {
            Some(&CHALLENGE_VERSION) => {}
            Some(&other) => return Err(ChallengeError::Version(other)),
            None => return Err(ChallengeError::Malformed),
        }
        let b: &[u8; CLAIMS_LEN] = b.try_into().map_err(|_| ChallengeError::Malformed)?;
        if b[82] > crate::ticket::MAX_BITS {
            return Err(ChallengeError::Malformed);
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let i64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        let token_id = i64_at(74);
        let purpose = match (b[1], token_id) {
            (0, 0) => Purpose::New,
            (1, id) if id > 0 => Purpose::Refresh { token_id: id },
            _ => return Err(ChallengeError::Malformed),
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[2..18]);
        let mut ip_key = [0u8; 16];
        ip_key.copy_from_slice(&b[58..74]);
        let difficulty = u64::from_be_bytes(
            b[34..42]
                .try_into()
                .map_err(|_| ChallengeError::Malformed)?,
        );
        Ok(Self {
            id,
            purpose,
            issued_at: i64_at(18),
            expires_at: i64_at(26),
            difficulty: Difficulty::new(difficulty).map_err(ChallengeError::Params)?,
            params: Argon2Params::new(u32_at(42), u32_at(46), u32_at(50), u32_at(54))
                .map_err(ChallengeError::Params)?,
            ip_key,
            ticket_bits: b[82],
        })
    }

    /// Signs the claims into the opaque challenge string.
    pub fn sign(&self, key: &[u8]) -> String {
        let claims = self.to_bytes();
        let tag = mac(key, &claims);
        let mut s = URL_SAFE_NO_PAD.encode(claims);
        s.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut s);
        s
    }
}

fn mac(key: &[u8], claims: &[u8]) -> [u8; MAC_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(claims);
    m.finalize().into_bytes().into()
}

/// Checks a challenge string's signature (in constant time) and decodes it.
/// Expiry, IP and spending are the caller's business.
///
/// # Errors
/// See [`ChallengeError`]; a bad signature is reported before any field is
/// interpreted, so forged claims never reach the parser.
pub fn verify(key: &[u8], encoded: &str) -> Result<ChallengeClaims, ChallengeError> {
    if encoded.len() > MAX_ENCODED_LEN {
        return Err(ChallengeError::TooLong);
    }
    let (payload, tag) = encoded.split_once('.').ok_or(ChallengeError::Malformed)?;
    let claims = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ChallengeError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| ChallengeError::Malformed)?;
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| ChallengeError::Malformed)?;
    m.update(&claims);
    // verify_slice compares in constant time.
    m.verify_slice(&tag)
        .map_err(|_| ChallengeError::BadSignature)?;
    ChallengeClaims::from_bytes(&claims)
}

/// The argon2id password for `nonce`: the nonce as 8 big-endian bytes.
/// The salt is the challenge id.
pub const fn password(nonce: u64) -> [u8; 8] {
    nonce.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ChallengeClaims {
        ChallengeClaims {
            id: [7; 16],
            purpose: Purpose::Refresh { token_id: 42 },
            issued_at: 1_700_000_000,
            expires_at: 1_700_001_800,
            difficulty: Difficulty::MEDIUM,
            params: Argon2Params::DEFAULT,
            ip_key: [1; 16],
            ticket_bits: 22,
        }
    }

    #[test]
    fn round_trips_through_the_signed_string() {
        let s = claims().sign(b"key");
        assert!(s.len() <= MAX_ENCODED_LEN);
        assert_eq!(verify(b"key", &s), Ok(claims()));
    }

    #[test]
    fn wrong_key_or_tampered_payload_is_refused() {
        let s = claims().sign(b"key");
        assert_eq!(verify(b"other", &s), Err(ChallengeError::BadSignature));
        let mut bytes = s.into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let s = String::from_utf8(bytes).unwrap();
        assert_eq!(verify(b"key", &s), Err(ChallengeError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for s in ["", ".", "abc", "a.b", "!!!.???", "é.é"] {
            assert!(verify(b"key", s).is_err(), "{s}");
        }
        assert_eq!(
            verify(b"key", &"a".repeat(1000)),
            Err(ChallengeError::TooLong)
        );
    }

    #[test]
    fn claims_layout_is_pinned() {
        let b = claims().to_bytes();
        assert_eq!(
            hex::encode(b),
            "020107070707070707070707070707070707\
             000000006553f100000000006553f808\
             0000000000000384\
             00000008000100000000000100000020\
             01010101010101010101010101010101\
             000000000000002a\
             16"
        );
    }

    /// A challenge signed before tickets existed must not be accepted
    /// without one, and its holder must be told to fetch a new one.
    #[test]
    fn a_version_1_challenge_asks_for_a_new_one() {
        let mut old = claims().to_bytes()[..82].to_vec();
        old[0] = 1;
        let tag = mac(b"key", &old);
        let s = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&old),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(verify(b"key", &s), Err(ChallengeError::Version(1)));
    }

    /// The ticket bits are signed: raising or lowering them breaks the tag.
    #[test]
    fn tampered_ticket_bits_fail_the_signature() {
        let s = claims().sign(b"key");
        let (payload, tag) = s.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        bytes[82] = 0;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(verify(b"key", &forged), Err(ChallengeError::BadSignature));
    }
}
