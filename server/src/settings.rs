//! The settings an operator may change while powgate runs: difficulty,
//! challenge timeout and the token rules. Handlers read a snapshot per
//! request, so a change applies to the very next challenge.

use std::sync::{Arc, RwLock};

use pow::Difficulty;
use serde::{Deserialize, Serialize};

/// One consistent set of live settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Expected hashes for a new token; refreshes cost half.
    pub difficulty: Difficulty,
    /// Minutes a challenge stays solvable.
    pub challenge_timeout_minutes: u32,
    /// Hours a token is valid after it is solved or refreshed.
    pub token_hours: u32,
    /// Distinct client addresses a token may be used from.
    pub token_max_ips: u32,
    /// Active tokens per client address before the oldest is expired; 0 = off.
    pub max_tokens_per_ip: u32,
}

impl Settings {
    /// Allowed ranges, inclusive, shared by the config loader and the admin API.
    pub const CHALLENGE_TIMEOUT: (u32, u32) = (1, 1440);
    pub const TOKEN_HOURS: (u32, u32) = (1, 8760);
    pub const TOKEN_MAX_IPS: (u32, u32) = (1, 1000);
    pub const MAX_TOKENS_PER_IP: (u32, u32) = (0, 100_000);
}

/// The current settings, swapped whole on change.
#[derive(Debug)]
pub struct LiveSettings(RwLock<Arc<Settings>>);

impl LiveSettings {
    pub fn new(s: Settings) -> Self {
        Self(RwLock::new(Arc::new(s)))
    }

    /// A snapshot; cheap (one `Arc` clone).
    pub fn get(&self) -> Arc<Settings> {
        // A poisoned lock only means a writer panicked after a whole-value
        // swap, so the value inside is still consistent.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, s: Settings) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(s);
    }
}
