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
pub struct HashedToken(pub [u8; 32]);

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
    pub fn generate() -> Self {
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
    pub fn short_id(&self) -> String {
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
}
