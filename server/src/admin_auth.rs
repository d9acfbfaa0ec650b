//! Who may use the admin page and API.
//!
//! - The admin key is `POW_ADMIN_KEY`, or one generated at first start of
//!   which only the SHA-256 is stored; either way the server keeps only the
//!   hash and compares hashes in constant time.
//! - Logging in with the key opens a session (cookie `powgate_admin`,
//!   HttpOnly, SameSite=Strict, Secure over https). Sessions live in memory,
//!   so a restart logs everyone out.
//! - Login attempts are rate-limited per client address.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::client_ip::IpKey;
use crate::config::Config;
use crate::db::{self, Db};

/// How long an admin session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// Name of the stored key hash in the `secrets` table.
const KEY_HASH: &str = "admin_key_hash";
/// Login attempts per address: a burst of 5, then one every 12 s.
const ATTEMPTS_PER_MINUTE: u32 = 5;

pub struct AdminAuth {
    key_hash: [u8; 32],
    /// SHA-256 of a session id → expiry (unix seconds).
    sessions: Mutex<HashMap<[u8; 32], i64>>,
    attempts: DefaultKeyedRateLimiter<IpKey>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth").finish_non_exhaustive()
    }
}

fn sha256(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// A new random key or session id: 32 bytes, base64url.
pub fn generate_secret() -> String {
    URL_SAFE_NO_PAD.encode(crate::state::random_key())
}

/// Replaces the stored admin key with a new one and returns it. Used by
/// `powgate admin-key reset`; a running server picks it up at its next start.
///
/// # Errors
/// Database errors.
pub fn reset_key(db: &Db, now: i64) -> anyhow::Result<String> {
    let key = generate_secret();
    let hash = sha256(key.as_bytes());
    db.call_blocking(|c| db::secrets::set(c, KEY_HASH, &hash, now))?;
    Ok(key)
}

impl AdminAuth {
    /// Uses the configured key, or the stored hash, or generates a key, logs
    /// it once, and stores its hash.
    ///
    /// # Errors
    /// Database errors.
    pub fn load(config: &Config, db: &Db, now: i64) -> anyhow::Result<Self> {
        let key_hash = if let Some(key) = &config.admin_key {
            sha256(key.expose().as_bytes())
        } else if let Some(stored) = db.call_blocking(|c| db::secrets::get(c, KEY_HASH))? {
            stored.try_into().map_err(|_| {
                anyhow::anyhow!("stored admin key hash is corrupt; run `powgate admin-key reset`")
            })?
        } else {
            let key = reset_key(db, now)?;
            // The one time the key is shown: the operator needs it to log in.
            tracing::warn!(
                "generated admin key: {key}  (shown only now; only its hash is stored. \
                 Set POW_ADMIN_KEY to choose your own, or run `powgate admin-key reset` and restart for a new one)"
            );
            sha256(key.as_bytes())
        };
        let per_minute = NonZeroU32::new(ATTEMPTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            key_hash,
            sessions: Mutex::new(HashMap::new()),
            attempts: RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Constant-time check of a presented key.
    pub fn key_matches(&self, candidate: &str) -> bool {
        sha256(candidate.as_bytes()).ct_eq(&self.key_hash).into()
    }

    /// Counts an authentication attempt from `ip`.
    ///
    /// # Errors
    /// The seconds to wait when the address has used up its attempts.
    pub fn attempt(&self, ip: IpKey) -> Result<(), u64> {
        self.attempts
            .check_key(&ip)
            .map_err(|not_until| crate::limits::wait_secs(&not_until))
    }

    /// Opens a session and returns its id for the cookie.
    pub fn open_session(&self, now: i64) -> String {
        let id = generate_secret();
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, exp| *exp > now);
        sessions.insert(sha256(id.as_bytes()), now + SESSION_SECS);
        id
    }

    pub fn session_valid(&self, id: &str, now: i64) -> bool {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions
            .get(&sha256(id.as_bytes()))
            .is_some_and(|exp| *exp > now)
    }

    pub fn close_session(&self, id: &str) {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.remove(&sha256(id.as_bytes()));
    }

    /// Forgets rate-limit state of addresses that have been quiet.
    pub fn forget_idle(&self) {
        self.attempts.retain_recent();
    }
}
