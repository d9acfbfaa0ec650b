//! Secrets: a string that never shows itself in `Debug` or `Display`, so a
//! secret cannot leak into a log line by accident, and the one place new
//! keys and session ids are drawn from the operating system's CSPRNG.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; call sites are easy to audit by this name.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// 32 bytes from the operating system's CSPRNG.
pub(crate) fn random_key() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    // The OS generator failing is unrecoverable for a security tool.
    getrandom::fill(&mut k).expect("the operating system's random generator failed");
    k
}

/// A new random key or session id: 32 bytes, base64url.
pub(crate) fn generate_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
