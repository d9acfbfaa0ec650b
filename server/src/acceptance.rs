//! Which validly signed challenges are still worth an argon2 run.
//!
//! A signature proves only that this server (or whoever holds its key)
//! issued the claims. The claims must also match what the server asks for
//! now: the configured argon2 parameters, at least the admission ticket's
//! configured bits, and at least the difficulty in force, halved for a
//! refresh. After a difficulty change, challenges issued
//! at the previous difficulty stay acceptable for the grace period, so a
//! visitor mid-solve finishes, while a stockpile of old challenges dies.
//!
//! Every rule here is a comparison, so it runs before any argon2 work and
//! before the challenge is spent.

use std::time::Duration;

use pow::{Argon2Params, ChallengeClaims, Difficulty, Purpose};

use crate::error::ApiError;
use crate::settings::{DifficultyChange, Settings};

/// How far in the future a challenge's issue time may lie: instances
/// sharing a key may disagree on the time by this much.
const CLOCK_SKEW_SECS: i64 = 60;

/// What the server asks of a challenge at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requirements<'a> {
    pub params: Argon2Params,
    /// The admission ticket's bits in force: a challenge issued while the
    /// ticket was cheaper, or off, must not outlive the operator turning it
    /// up under attack.
    pub ticket_bits: u8,
    pub settings: &'a Settings,
    pub last_change: Option<DifficultyChange>,
    pub grace: Duration,
    pub now: i64,
}

/// The least difficulty a challenge for `purpose` needs when `d` is in force.
fn floor(purpose: Purpose, d: Difficulty) -> Difficulty {
    match purpose {
        Purpose::New => d,
        Purpose::Refresh { .. } => d.halved(),
    }
}

impl Requirements<'_> {
    /// The least difficulty `claims` may carry: the floor at the current
    /// difficulty, or within the grace period the lower of that and the
    /// floor at the previous difficulty, for challenges issued before the
    /// change.
    pub(crate) fn min_difficulty(&self, claims: &ChallengeClaims) -> Difficulty {
        let now_floor = floor(claims.purpose, self.settings.difficulty);
        let grace = i64::try_from(self.grace.as_secs()).unwrap_or(i64::MAX);
        match self.last_change {
            Some(c) if claims.issued_at <= c.at && self.now < c.at.saturating_add(grace) => {
                now_floor.min(floor(claims.purpose, c.previous))
            }
            _ => now_floor,
        }
    }

    /// # Errors
    /// 410 with what to do when `claims` asks for other argon2 parameters
    /// or less work than is required now.
    pub(crate) fn check(&self, claims: &ChallengeClaims) -> Result<(), ApiError> {
        if claims.params != self.params {
            return Err(ApiError::Expired(
                "this challenge was issued with other argon2 parameters than the server uses now; request a new challenge".into(),
            ));
        }
        if claims.ticket_bits < self.ticket_bits {
            return Err(ApiError::Expired(format!(
                "this challenge asks for a {}-bit admission ticket, below the {} bits required now; request a new challenge",
                claims.ticket_bits, self.ticket_bits
            )));
        }
        // A leaked key must not mint challenges that never die either: none
        // the server issues is dated ahead or lives past the longest timeout
        // an operator can set.
        let longest = i64::try_from(crate::settings::CHALLENGE_TIMEOUT.max)
            .unwrap_or(i64::MAX)
            .saturating_mul(60);
        if claims.issued_at > self.now.saturating_add(CLOCK_SKEW_SECS)
            || claims.expires_at.saturating_sub(claims.issued_at) > longest
        {
            return Err(ApiError::Expired(
                "this challenge's lifetime is not one the server issues; request a new challenge"
                    .into(),
            ));
        }
        let min = self.min_difficulty(claims);
        if claims.difficulty < min {
            return Err(ApiError::Expired(format!(
                "this challenge's difficulty {} is below the {} required now (the difficulty was raised); request a new challenge",
                claims.difficulty.get(),
                min.get()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(d: u64) -> Settings {
        Settings {
            difficulty: Difficulty::new(d).unwrap(),
            challenge_timeout_minutes: 30,
            token_hours: 24,
            token_max_ips: 2,
            max_tokens_per_ip: 0,
            ..Settings::defaults()
        }
    }

    fn claims(purpose: Purpose, d: u64, issued_at: i64) -> ChallengeClaims {
        ChallengeClaims {
            id: [0; 16],
            purpose,
            issued_at,
            expires_at: issued_at + 1800,
            difficulty: Difficulty::new(d).unwrap(),
            params: Argon2Params::DEFAULT,
            ip_key: [0; 16],
            ticket_bits: 0,
        }
    }

    #[test]
    fn floors_for_new_refresh_and_within_the_grace() {
        let s = settings(800);
        let mut r = Requirements {
            params: Argon2Params::DEFAULT,
            ticket_bits: 0,
            settings: &s,
            last_change: Some(DifficultyChange {
                previous: Difficulty::new(200).unwrap(),
                at: 1000,
            }),
            grace: Duration::from_secs(120),
            now: 1100,
        };
        let refresh = Purpose::Refresh { token_id: 1 };
        assert!(r.check(&claims(Purpose::New, 200, 999)).is_ok());
        assert!(r.check(&claims(refresh, 100, 999)).is_ok());
        assert!(r.check(&claims(refresh, 99, 999)).is_err());
        assert!(
            r.check(&claims(Purpose::New, 200, 1001)).is_err(),
            "issued after the raise"
        );
        r.now = 1120;
        assert!(r.check(&claims(Purpose::New, 200, 999)).is_err());
        assert!(r.check(&claims(Purpose::New, 800, 999)).is_ok());
        assert!(r.check(&claims(refresh, 400, 999)).is_ok());
        assert!(r.check(&claims(refresh, 399, 999)).is_err());
        let mut other = claims(Purpose::New, 800, 999);
        other.params = Argon2Params::new(1, 8, 1, 32).unwrap();
        assert!(r.check(&other).is_err());
    }

    #[test]
    fn a_leaked_key_cannot_mint_challenges_that_never_expire() {
        let s = settings(200);
        let r = Requirements {
            params: Argon2Params::DEFAULT,
            ticket_bits: 0,
            settings: &s,
            last_change: None,
            grace: Duration::from_secs(120),
            now: 10_000,
        };
        assert!(r.check(&claims(Purpose::New, 200, 10_000)).is_ok());
        let mut forever = claims(Purpose::New, 200, 10_000);
        forever.expires_at = i64::MAX;
        assert!(r.check(&forever).is_err());
        assert!(
            r.check(&claims(Purpose::New, 200, 10_000 + 3600)).is_err(),
            "dated ahead"
        );
    }

    /// An operator who turns the ticket on (or up) under attack must not
    /// leave the challenges issued before it good for another half hour of
    /// free garbage.
    #[test]
    fn a_challenge_with_fewer_ticket_bits_than_required_now_is_refused() {
        let s = settings(200);
        let r = Requirements {
            params: Argon2Params::DEFAULT,
            ticket_bits: 12,
            settings: &s,
            last_change: None,
            grace: Duration::from_secs(120),
            now: 10_000,
        };
        let mut c = claims(Purpose::New, 200, 10_000);
        for (bits, ok) in [(0, false), (11, false), (12, true), (13, true)] {
            c.ticket_bits = bits;
            assert_eq!(r.check(&c).is_ok(), ok, "{bits} bits");
        }
    }
}
