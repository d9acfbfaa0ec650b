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

/// Field names as the admin API and the `settings` table spell them.
pub const FIELDS: [&str; 5] = [
    "difficulty",
    "challenge_timeout",
    "token_hours",
    "token_max_ips",
    "max_tokens_per_ip",
];

impl Settings {
    /// A field's value by its API name.
    pub fn field(&self, name: &str) -> Option<i64> {
        Some(match name {
            "difficulty" => i64::try_from(self.difficulty.get()).unwrap_or(i64::MAX),
            "challenge_timeout" => self.challenge_timeout_minutes.into(),
            "token_hours" => self.token_hours.into(),
            "token_max_ips" => self.token_max_ips.into(),
            "max_tokens_per_ip" => self.max_tokens_per_ip.into(),
            _ => return None,
        })
    }

    /// Sets a field by its API name after checking its range.
    ///
    /// # Errors
    /// A message naming the allowed range.
    pub fn set_field(&mut self, name: &str, value: i64) -> Result<(), String> {
        let ranged = |(min, max): (u32, u32), unit: &str| {
            u32::try_from(value)
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{value} is out of range: allowed {min}..={max}{unit}"))
        };
        match name {
            "difficulty" => {
                self.difficulty = u64::try_from(value)
                    .map_err(|_| pow::ParamsError::Difficulty(0))
                    .and_then(Difficulty::new)
                    .map_err(|e| e.to_string())?;
            }
            "challenge_timeout" => {
                self.challenge_timeout_minutes = ranged(Self::CHALLENGE_TIMEOUT, " minutes")?
            }
            "token_hours" => self.token_hours = ranged(Self::TOKEN_HOURS, " hours")?,
            "token_max_ips" => self.token_max_ips = ranged(Self::TOKEN_MAX_IPS, "")?,
            "max_tokens_per_ip" => {
                self.max_tokens_per_ip = ranged(Self::MAX_TOKENS_PER_IP, " (0 = off)")?
            }
            _ => return Err(format!("unknown setting; known: {}", FIELDS.join(", "))),
        }
        Ok(())
    }

    /// Allowed range of a field, for the admin page.
    pub fn range(name: &str) -> Option<(u64, u64)> {
        let r = |(a, b): (u32, u32)| (u64::from(a), u64::from(b));
        Some(match name {
            "difficulty" => (Difficulty::MIN.get(), Difficulty::MAX.get()),
            "challenge_timeout" => r(Self::CHALLENGE_TIMEOUT),
            "token_hours" => r(Self::TOKEN_HOURS),
            "token_max_ips" => r(Self::TOKEN_MAX_IPS),
            "max_tokens_per_ip" => r(Self::MAX_TOKENS_PER_IP),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings {
            difficulty: Difficulty::MEDIUM,
            challenge_timeout_minutes: 30,
            token_hours: 24,
            token_max_ips: 2,
            max_tokens_per_ip: 0,
        }
    }

    #[test]
    fn fields_round_trip_and_ranges_hold() {
        let mut s = base();
        for name in FIELDS {
            let v = s.field(name).unwrap();
            s.set_field(name, v).unwrap();
        }
        assert_eq!(s, base());
        assert!(s.set_field("difficulty", 0).unwrap_err().contains("1..="));
        assert!(
            s.set_field("token_hours", -1)
                .unwrap_err()
                .contains("1..=8760")
        );
        assert!(s.set_field("nope", 1).is_err());
        s.set_field("max_tokens_per_ip", 0).unwrap();
    }
}
