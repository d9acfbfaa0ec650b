//! Adaptive difficulty: what difficulty a new challenge from a client gets,
//! and why. One global difficulty cannot notice the network that minted a
//! thousand tokens this hour, nor a sudden wave of challenges; this module
//! prices both, from cheap in-memory events only (no database work on
//! `/api/challenge`).
//!
//! # The rule
//! `difficulty = base × 2^k × 2^j`, saturating at [`Difficulty::MAX`], then
//! capped so that the phone class's p95 time-to-token stays within the
//! challenge timeout, and never below `base`:
//!
//! 1. **k, the network step.** Every [`Event`] adds its
//!    [weight](Event::weight) to a score of the client's address (IPv4
//!    exactly, IPv6 by /64) and of its network (IPv4 /24, IPv6 /48); see
//!    [`network`]. Scores decay with the live half-life
//!    (`network_half_life_minutes`) and saturate at 7.5 steps
//!    ([`network::SATURATION`]).
//!    A holder's step is `floor(score / STEP)` with [`STEP`] = 16, capped at
//!    `k_max = log2(network_difficulty_max)` (at most [`K_LIMIT`] = 7). A
//!    client's k is the worst of its address's and its network's. An event
//!    reaches the network only while the address's own score is below
//!    [`network::ADDRESS_SHARE`] (half a step), so one address cannot price
//!    everyone behind its NAT or in its /24.
//! 2. **j, the pressure step.** Challenges issued in the last 30 s, as a
//!    rate per minute, against the live `pressure_baseline_per_minute`:
//!    `j = floor(log2(rate / baseline))` from twice the baseline on, capped
//!    at `log2(pressure_difficulty_max)`; see [`pressure`]. A challenge
//!    counts only from an address and network below a step and within its
//!    provider's share ([`Adaptive::record`]).
//! 3. **The cap.** The phone class's hash rate (the median of measured
//!    rates when enough networks reported one, else the reference, see
//!    [`crate::stats`]) gives the largest difficulty whose p95 time,
//!    `ln 20 · D / rate`, fits in `challenge_timeout`. A multiplied price a
//!    phone could not pay in time would lock real visitors out.
//! 4. **Refresh.** A refresh challenge costs half of what a new one would
//!    from the same client now: the multiplied, capped difficulty, halved.
//!    That is never below `base / 2`, the floor [`crate::acceptance`]
//!    requires of a refresh, so the verifier accepts every quote as it is.
//! 5. **Pin.** `difficulty_pinned = 1` turns both steps off: `base` for
//!    everyone (and `base / 2` for a refresh).
//!
//! The challenge signs the quoted difficulty, so `/api/solve` checks it
//! like any other: a challenge quoted at ×4 stays good when the pressure
//! falls, and [`crate::acceptance`] requires only the base.
//!
//! # The arithmetic behind the numbers
//! - **A real visitor never gets k > 0.** One address: two challenges (one
//!   solved), one token, one refresh (its challenge solved, a token) scores
//!   at most `1 + 1 + 1 = 3`, plus 1 per abandoned page load; its /24 sees
//!   the same when it is alone there. Below one step (16) it stays at k = 0.
//! - **A botnet rises to ×4 within 5 minutes.** 4 000 addresses over 40
//!   /24s, 100 per /24, each minting one token within 5 minutes (issue +1,
//!   solve −1, token +1): each /24 scores 100, decayed by at most
//!   `2^(-5/30)` = 0.89 at the default 30-minute half-life, so at least 89 ≥
//!   2 · 16: k ≥ 2, ×4 (k = 5 by the score: ×16 at the default ceiling,
//!   which the phone cap lowers to ×11 at base `low`). 36 tokens per /24
//!   in 5 minutes are already enough.
//! - **It is back to base within three half-lives, whatever its peak.** A
//!   score never exceeds `7.5 · 16 = 120`; three halvings leave at most
//!   15 < 16, so k = 0. This is why k is linear in the score and `k_max` is
//!   at most 7: a logarithmic k, or a higher saturation, would need more
//!   half-lives after a long attack.
//!
//! # What it cannot do
//! A score belongs to an address or a network, not to a person: everyone
//! behind one NAT, a university /24 or a carrier-grade NAT shares it, so
//! a busy shared network pays more than its members would alone. An
//! attacker scattered over more networks than its rate fills (fewer than
//! about 32 tokens per /24 per half-life) stays at base, and only the
//! pressure step reaches it.

pub(crate) mod network;
pub(crate) mod pressure;

use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use pow::{Argon2Params, Difficulty};
use serde::Serialize;

use crate::client_ip::IpKey;
use crate::settings::{LiveSettings, Settings};
use crate::stats::{DeviceClass, Stats};
pub(crate) use network::{Holder, HolderScore, K_LIMIT, STEP};
use network::{NetworkScores, ScoreRule};
use pressure::{Pressure, PressureFactor};

/// Something a client did that moves its network's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A challenge was issued to it.
    ChallengeIssued,
    /// A challenge of its was solved: takes back the weight, so the
    /// scores count challenges issued *without* a solve.
    ChallengeSolved,
    /// It sent a wrong answer (or a wrong admission ticket).
    WrongAnswer,
    /// It was given a token, new or refreshed.
    TokenMinted,
    /// One of its tokens was refused for its address limit: a token shared
    /// beyond its addresses.
    AddressLimit,
    /// One of its tokens used up its lifetime request budget (recorded once,
    /// at the request that used it up: see `gate::budgeted`).
    BudgetExhausted,
}

impl Event {
    /// What the event adds to a score; a step of k is [`STEP`] = 16.
    ///
    /// - an issued challenge: 1, taken back by its solve, so an abandoned
    ///   challenge costs 1 and a solved one nothing;
    /// - a wrong answer: 2, garbage that cost a verification;
    /// - a token: 1, the unit of honest use: sixteen tokens from one
    ///   address or network in a half-life is a step;
    /// - an address-limit refusal: 4, a sign of one token feeding a
    ///   crawler from several places, which a person meets rarely (a phone
    ///   on its third network) and counts once per token and address;
    /// - an exhausted budget: 8, half a step: a person uses up the default
    ///   50 000 requests once in a long day at most, which with its
    ///   refresh's token (1) stays below a step, while a crawler that
    ///   exhausts a token every few minutes holds its network a step or
    ///   more up and pays double for every refresh.
    pub(crate) const fn weight(self) -> f64 {
        match self {
            Self::ChallengeIssued | Self::TokenMinted => 1.0,
            Self::ChallengeSolved => -1.0,
            Self::WrongAnswer => 2.0,
            Self::AddressLimit => 4.0,
            Self::BudgetExhausted => 8.0,
        }
    }
}

/// The network step of a quote, with its inputs.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct NetworkFactor {
    /// The holder that decided it (the worst), its score and step.
    pub decided_by: Option<HolderScore>,
    /// Score per step.
    pub threshold: f64,
    /// The live `network_half_life_minutes`.
    pub half_life_minutes: u32,
    pub k: u32,
    /// log2 of the live `network_difficulty_max`, at most [`K_LIMIT`].
    pub k_max: u32,
    /// `2^k`.
    pub multiplier: u64,
}

/// The phone-class cap of a quote.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct PhoneCap {
    /// The largest difficulty whose phone p95 time fits the timeout.
    pub difficulty: u64,
    /// The phone class's hashes per second.
    pub hash_rate: f64,
    /// `measured` or `reference`.
    pub source: &'static str,
    pub timeout_seconds: u64,
}

/// A difficulty for a client, and why.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Quote {
    /// The live `difficulty`.
    pub base: u64,
    /// The live `difficulty_pinned`.
    pub pinned: bool,
    pub network: NetworkFactor,
    pub pressure: PressureFactor,
    /// `base × 2^k × 2^j`, saturated at the maximum difficulty.
    pub multiplied: u64,
    /// Worked out only when the multiplied difficulty is above the base
    /// (below it there is nothing to cap), or when asked to explain.
    pub phone_cap: Option<PhoneCap>,
    /// What a new challenge gets.
    pub difficulty: Difficulty,
    /// What a refresh challenge gets: `difficulty`, halved.
    pub refresh_difficulty: Difficulty,
}

/// The phone rate as last looked up, reused within its second: the
/// lookup scans the solve samples, and under a flood every challenge
/// would repeat it.
#[derive(Debug, Default)]
struct PhoneRateCache {
    at: AtomicI64,
    /// The rate's `f64` bits; 0 when never looked up.
    rate_bits: AtomicU64,
    /// 1 when the rate is measured.
    measured: AtomicU64,
}

/// Network scores and the pressure ring.
#[derive(Debug)]
pub(crate) struct Adaptive {
    scores: NetworkScores,
    pressure: Pressure,
    /// Read by [`Self::record`], whose callers (the gate, the integrator's
    /// budget) hold no snapshot.
    settings: LiveSettings,
    phone_rate: PhoneRateCache,
    /// (token, address) pairs whose address-limit refusal was counted,
    /// under keyed hashes; see [`Self::record_address_limit`].
    address_limits_counted: quick_cache::sync::Cache<u64, ()>,
    /// Per provider network (keyed hash): the pressure window it last
    /// counted in and how many; see [`Self::adds_to_pressure`].
    provider_counts: quick_cache::sync::Cache<u64, u64>,
    /// Keys both caches above: random per process, so no address is kept.
    pair_hasher: std::hash::RandomState,
}

/// Challenges one provider network (IPv4 /16, IPv6 /32) may add to the
/// pressure per 30-second window: 64 a minute, the default baseline. A
/// surge needs several providers; a real wave of visitors has them.
pub(crate) const PROVIDER_SHARE: u64 = 32;

/// Provider networks remembered for that count: a few MB at most.
const PROVIDERS_REMEMBERED: usize = 65_536;

/// (token, address) pairs remembered as counted: a few hundred KB. When
/// one is forgotten, a pair refused again counts once more, which only
/// matters for a pair refused again and again: a crawler's.
const ADDRESS_LIMITS_REMEMBERED: usize = 16_384;

impl Adaptive {
    pub(crate) fn new(settings: LiveSettings) -> Self {
        Self::with_capacity(settings, network::CAPACITY)
    }

    pub(crate) fn with_capacity(settings: LiveSettings, capacity: usize) -> Self {
        Self {
            scores: NetworkScores::with_capacity(capacity),
            pressure: Pressure::default(),
            settings,
            phone_rate: PhoneRateCache::default(),
            address_limits_counted: quick_cache::sync::Cache::new(ADDRESS_LIMITS_REMEMBERED),
            provider_counts: quick_cache::sync::Cache::new(PROVIDERS_REMEMBERED),
            pair_hasher: std::hash::RandomState::new(),
        }
    }

    /// Counts `event` from `key` at `now`: in its address's and network's
    /// scores, and an issued challenge in the pressure too, unless the
    /// client's network step is already above 0. Recorded while a
    /// mechanism is off as well, so switching it on acts at once.
    ///
    /// Why a priced network does not add to the pressure: challenges cost
    /// nothing to request, so without this a few addresses, each within
    /// its challenge rate, could raise everyone's difficulty (480 a minute
    /// is ×8 at the default baseline). Each address or network now adds at
    /// most about one step's worth (16 unsolved challenges) to the window
    /// before its own step prices it instead; moving the pressure takes a
    /// wave from many networks, which is what the pressure is for.
    pub(crate) fn record(&self, key: IpKey, event: Event, now: i64) {
        let rule = score_rule(&self.settings.get());
        if event == Event::ChallengeIssued && self.adds_to_pressure(key, now, rule) {
            self.pressure.record(now);
        }
        self.scores.record(key, event, now, rule);
    }

    /// Whether a challenge issued to `key` now counts in the pressure: its
    /// address and network are below a step by their own score (whatever
    /// the live ceiling: with the network step switched off, an address
    /// asking for hundreds of challenges must not count them all), and its
    /// provider (IPv4 /16, IPv6 /32) has not counted [`PROVIDER_SHARE`] in
    /// this window yet, so that fresh /48s carved from one provider's /32
    /// do not make a wave either.
    fn adds_to_pressure(&self, key: IpKey, now: i64, rule: ScoreRule) -> bool {
        let raw = ScoreRule {
            k_max: K_LIMIT,
            ..rule
        };
        let unpriced = self
            .scores
            .worst(Holder::all_of(key), now, raw)
            .is_none_or(|h| h.k == 0);
        unpriced && self.provider_share_left(key, now)
    }

    /// Takes one of the provider's [`PROVIDER_SHARE`] places in the current
    /// 30-second window, if one is left.
    fn provider_share_left(&self, key: IpKey, now: i64) -> bool {
        let provider = self.pair_hasher.hash_one(key.provider());
        let window =
            now.div_euclid(pressure::WINDOW_SECS as i64).cast_unsigned() & u64::from(u32::MAX);
        let mut left = true;
        let result = self.provider_counts.entry(&provider, None, |_, packed| {
            let count = if *packed >> 32 == window {
                *packed & u64::from(u32::MAX)
            } else {
                0
            };
            left = count < PROVIDER_SHARE;
            *packed = window << 32 | (count + u64::from(left));
            quick_cache::sync::EntryAction::Retain(())
        });
        if let quick_cache::sync::EntryResult::Vacant(guard) = result {
            let _ = guard.insert(window << 32 | 1);
        }
        left
    }

    /// Counts that token `token_id` was refused from `key` for its address
    /// limit, once per token and address: a browser that met the limit
    /// (a phone on its third network) sends every subresource of a page to
    /// the same refusal, and fifty of them must not price its next
    /// challenge at the ceiling. A token tried from ever more addresses
    /// still counts once for each.
    pub(crate) fn record_address_limit(&self, token_id: i64, key: IpKey, now: i64) {
        let pair = self.pair_hasher.hash_one((token_id, key));
        if self.address_limits_counted.get(&pair).is_none() {
            self.address_limits_counted.insert(pair, ());
            self.record(key, Event::AddressLimit, now);
        }
    }

    /// Holders scored now, for `/metrics`.
    pub(crate) fn networks_scored(&self) -> usize {
        self.scores.len()
    }

    /// The pressure at `now` under `s`, for `/metrics` and the admin page.
    pub(crate) fn pressure(&self, s: &Settings, now: i64) -> PressureFactor {
        let a = s.adaptive;
        let j_max = if a.pinned { 0 } else { log2(a.pressure_max) };
        self.pressure.factor(now, a.baseline_per_minute, j_max)
    }

    /// Each of `holders`' scores at `now`, for the admin page.
    pub(crate) fn scores(&self, holders: &[Holder], s: &Settings, now: i64) -> Vec<HolderScore> {
        let rule = score_rule(s);
        holders
            .iter()
            .map(|h| self.scores.score(*h, now, rule))
            .collect()
    }

    /// The difficulty for a new (and a refresh) challenge from a client
    /// whose score holders are `holders`; see the module doc.
    pub(crate) fn quote(
        &self,
        holders: impl Iterator<Item = Holder>,
        s: &Settings,
        now: i64,
        stats: &Stats,
        params: Argon2Params,
    ) -> Quote {
        let a = s.adaptive;
        let rule = score_rule(s);
        let decided_by = self.scores.worst(holders, now, rule);
        let k = if a.pinned {
            0
        } else {
            decided_by.map_or(0, |h| h.k)
        };
        let pressure = self.pressure(s, now);
        let base = s.difficulty;
        let multiplied = base
            .get()
            .saturating_mul(1u64 << (k + pressure.j).min(63))
            .min(Difficulty::MAX.get());
        let phone_cap = (multiplied > base.get()).then(|| self.phone_cap(s, now, stats, params));
        let capped = phone_cap.map_or(multiplied, |c| multiplied.min(c.difficulty));
        // Within MIN..=MAX: at least the base, at most the saturated product.
        let difficulty = Difficulty::new(capped.max(base.get())).unwrap_or(base);
        Quote {
            base: base.get(),
            pinned: a.pinned,
            network: NetworkFactor {
                decided_by,
                threshold: STEP,
                half_life_minutes: a.half_life_minutes,
                k,
                k_max: rule.k_max,
                multiplier: 1 << k,
            },
            pressure,
            multiplied,
            phone_cap,
            difficulty,
            refresh_difficulty: difficulty.halved(),
        }
    }

    /// The largest difficulty whose phone p95 time-to-token fits in the
    /// challenge timeout: `p95 = ln 20 · D / rate ≤ timeout`.
    pub(crate) fn phone_cap(
        &self,
        s: &Settings,
        now: i64,
        stats: &Stats,
        params: Argon2Params,
    ) -> PhoneCap {
        let (hash_rate, source) = self.phone_rate(now, stats, params);
        let timeout_seconds = u64::from(s.challenge_timeout_minutes) * 60;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let difficulty = (timeout_seconds as f64 * hash_rate / 20f64.ln())
            .floor()
            .clamp(1.0, Difficulty::MAX.get() as f64) as u64;
        PhoneCap {
            difficulty,
            hash_rate,
            source,
            timeout_seconds,
        }
    }

    fn phone_rate(&self, now: i64, stats: &Stats, params: Argon2Params) -> (f64, &'static str) {
        let cache = &self.phone_rate;
        let label = |measured: bool| if measured { "measured" } else { "reference" };
        let bits = cache.rate_bits.load(Ordering::Relaxed);
        if bits != 0 && cache.at.load(Ordering::Relaxed) == now {
            return (
                f64::from_bits(bits),
                label(cache.measured.load(Ordering::Relaxed) == 1),
            );
        }
        let r = stats.class_rate(now, DeviceClass::Phone, params);
        let measured = r.source == "measured";
        // Telemetry is the clients' word: clamped to [reference / 2,
        // reference × 4], networks reporting slow phones can neither lower
        // the cap below half its reference value (turning the multipliers
        // off for everyone, themselves included) nor, reporting fast ones,
        // lift it so far that a quote would lock real phones out.
        let reference = DeviceClass::Phone.reference_rate(params);
        let r = crate::stats::ClassRate {
            rate: r.rate.clamp(reference / 2.0, reference * 4.0),
            ..r
        };
        // Three relaxed stores: a reader between them gets a rate a second
        // old or its label wrong for one second; neither matters.
        cache.rate_bits.store(r.rate.to_bits(), Ordering::Relaxed);
        cache.measured.store(u64::from(measured), Ordering::Relaxed);
        cache.at.store(now, Ordering::Relaxed);
        (r.rate, label(measured))
    }
}

/// log2 of a ceiling multiplier, rounded down: a value between two powers
/// of two counts as the lower one.
fn log2(ceiling: u32) -> u32 {
    ceiling.checked_ilog2().unwrap_or(0)
}

fn score_rule(s: &Settings) -> ScoreRule {
    ScoreRule {
        half_life_secs: f64::from(s.adaptive.half_life_minutes.max(1)) * 60.0,
        k_max: log2(s.adaptive.network_max).min(K_LIMIT),
    }
}

#[cfg(test)]
mod tests;
