//! User tokens: a random UUIDv4 handed to the client once, and its SHA-256,
//! which is all the database ever holds.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A token as the client holds it. `Debug` is redacted so it cannot end up in
/// a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(Uuid);

/// SHA-256 of the token's 16 bytes: the database key and the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashedToken(pub(crate) [u8; 32]);

/// Why a presented token string is not a token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("token must be a 36-character UUID")]
    Length,
    #[error("token is not a version-4 UUID")]
    Syntax,
}

impl PlainToken {
    /// A fresh token from the operating system's CSPRNG (uuid's v4 uses getrandom).
    pub(crate) fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a presented token.
    ///
    /// # Errors
    /// [`TokenFormatError`] for anything but a hyphenated UUIDv4.
    pub fn parse(s: &str) -> Result<Self, TokenFormatError> {
        if s.len() != 36 {
            return Err(TokenFormatError::Length);
        }
        let u = Uuid::try_parse(s).map_err(|_| TokenFormatError::Syntax)?;
        if u.get_version_num() != 4 {
            return Err(TokenFormatError::Syntax);
        }
        Ok(Self(u))
    }

    /// Whether `s` is laid out like a token, valid or not: 36 characters
    /// with hyphens exactly where a hyphenated UUID has them. Such a
    /// credential claims to be powgate's, as opposed to another scheme's
    /// (a JWT, an API key), which never has this layout.
    pub(crate) fn has_token_shape(s: &str) -> bool {
        s.len() == 36
            && s.bytes()
                .enumerate()
                .all(|(i, b)| (b == b'-') == matches!(i, 8 | 13 | 18 | 23))
    }

    pub fn hashed(&self) -> HashedToken {
        HashedToken(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The string the client keeps. Only the response to a solve calls this.
    pub fn expose(&self) -> String {
        self.0.hyphenated().to_string()
    }
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainToken(***)")
    }
}

impl HashedToken {
    /// A short public identifier (first 6 bytes of the hash, hex) for the
    /// admin list and logs; it reveals nothing usable about the token.
    pub(crate) fn short_id(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_junk() {
        let t = PlainToken::generate();
        let s = t.expose();
        assert_eq!(PlainToken::parse(&s).unwrap().hashed(), t.hashed());
        assert_eq!(
            PlainToken::parse(&s.to_uppercase()).unwrap().hashed(),
            t.hashed()
        );
        assert_eq!(PlainToken::parse("abc"), Err(TokenFormatError::Length));
        assert_eq!(
            PlainToken::parse("00000000-0000-1000-8000-000000000000"),
            Err(TokenFormatError::Syntax)
        );
        assert!(!format!("{t:?}").contains(&s));
    }

    #[test]
    fn token_shape_is_the_uuid_layout_valid_or_not() {
        for s in [
            PlainToken::generate().expose().as_str(),
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        ] {
            assert!(PlainToken::has_token_shape(s), "{s}");
        }
        for s in [
            "short",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "6ba7b8109dad11d180b400c04fd430c8----",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c80",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c-",
        ] {
            assert!(!PlainToken::has_token_shape(s), "{s}");
        }
    }
}
