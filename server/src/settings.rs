//! The settings an operator may change while powgate runs: difficulty,
//! challenge timeout and the token rules. Handlers read a snapshot per
//! request, so a change applies to the very next challenge.

use std::sync::{Arc, RwLock};

use pow::Difficulty;
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError};

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

/// When the difficulty last changed, and from what: challenges issued at
/// the previous value stay acceptable for a short grace period (see
/// [`crate::acceptance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DifficultyChange {
    /// The difficulty in force before the change.
    pub previous: Difficulty,
    /// Unix seconds of the change.
    pub at: i64,
}

/// What an update writes to the `settings` table.
#[derive(Debug)]
pub enum Persist {
    /// Store these fields as overrides of the configuration.
    Overrides(Vec<(&'static str, i64)>),
    /// Remove every override, so the configuration applies again.
    ClearOverrides,
}

/// The settings in force and the last difficulty change, swapped together.
type Current = (Arc<Settings>, Option<DifficultyChange>);

/// The current settings, swapped whole on change.
///
/// Readers take a snapshot under a short `RwLock` read (one `Arc` clone), so
/// the hot path never waits for the database. Writers queue on an async
/// mutex held across read, modify, persist and swap: two admins changing
/// different fields at once both see their change survive.
#[derive(Debug)]
pub struct LiveSettings {
    current: Arc<RwLock<Current>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl LiveSettings {
    pub fn new(s: Settings) -> Self {
        Self {
            current: Arc::new(RwLock::new((Arc::new(s), None))),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A poisoned lock only means a writer panicked after a whole-value
        // swap, so the value inside is still consistent.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A snapshot; cheap (one `Arc` clone).
    pub fn get(&self) -> Arc<Settings> {
        self.read().0.clone()
    }

    /// A snapshot together with the last difficulty change, read at once so
    /// the two agree.
    pub fn get_with_change(&self) -> (Arc<Settings>, Option<DifficultyChange>) {
        let cur = self.read();
        (cur.0.clone(), cur.1)
    }

    /// Applies `change` to the current settings and stores what it returns,
    /// as one step that no other update can interleave with. Readers see the
    /// new settings only once they are stored. Once the write has started,
    /// the swap happens even if the caller is cancelled (a client that hangs
    /// up), so the live and the stored settings cannot drift apart.
    ///
    /// # Errors
    /// Whatever `change` refuses (nothing is stored or swapped then), or the
    /// database error.
    pub async fn update<E: From<DbError>>(
        &self,
        db: &Db,
        now: i64,
        change: impl FnOnce(&mut Settings) -> Result<Persist, E>,
    ) -> Result<Settings, E> {
        let writer = self.writer.clone().lock_owned().await;
        let before = *self.get();
        let mut next = before;
        let persist = change(&mut next)?;
        let current = self.current.clone();
        // Store and swap on the blocking thread, which runs to the end even
        // when this future is dropped; the writers' lock goes with it.
        db.call(move |c| {
            let _writer = writer;
            match persist {
                Persist::Overrides(fields) => crate::db::settings::store(c, &fields, now)?,
                Persist::ClearOverrides => drop(crate::db::settings::clear(c)?),
            }
            let mut cur = current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if next.difficulty != before.difficulty {
                cur.1 = Some(DifficultyChange {
                    previous: before.difficulty,
                    at: now,
                });
            }
            cur.0 = Arc::new(next);
            Ok(())
        })
        .await?;
        Ok(next)
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
        // The message quotes `value` as sent: a negative number must not be
        // reported as what it became after a conversion.
        let out_of_range = |(min, max): (u64, u64), unit: &str| {
            format!("{value} is out of range: allowed {min}..={max}{unit}")
        };
        let ranged = |(min, max): (u32, u32), unit: &str| {
            u32::try_from(value)
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| out_of_range((min.into(), max.into()), unit))
        };
        match name {
            "difficulty" => {
                self.difficulty = u64::try_from(value)
                    .ok()
                    .and_then(|v| Difficulty::new(v).ok())
                    .ok_or_else(|| {
                        out_of_range(
                            (Difficulty::MIN.get(), Difficulty::MAX.get()),
                            " expected hashes",
                        )
                    })?;
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

    /// Issue 12, item 4: `-5` was reported as `0`.
    #[test]
    fn negative_difficulty_is_reported_as_sent() {
        let mut s = base();
        let e = s.set_field("difficulty", -5).unwrap_err();
        assert!(e.starts_with("-5 is out of range: allowed 1..="), "{e}");
        let e = s.set_field("difficulty", i64::MIN).unwrap_err();
        assert!(e.starts_with(&i64::MIN.to_string()), "{e}");
        let e = s.set_field("difficulty", 0).unwrap_err();
        assert!(e.starts_with("0 is out of range"), "{e}");
        assert_eq!(s, base());
    }
}
