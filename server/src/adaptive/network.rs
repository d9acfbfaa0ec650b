//! Network scores: decayed sums of event weights per address, IPv4 /24
//! and IPv6 /48, kept only under keyed hashes, and the step `k` each
//! score gives (see the parent module for the rule and its arithmetic).

use std::hash::{BuildHasher, RandomState};

use ipnet::IpNet;
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use serde::Serialize;

use super::Event;
use crate::client_ip::{IpKey, Prefix};

/// Score per step of `k`: `k = floor(score / STEP)`.
pub(crate) const STEP: f64 = 16.0;

/// The largest `k` a score can reach: [`SATURATION`] lies half a step
/// above it.
pub(crate) const K_LIMIT: u32 = 7;

/// The score no holder exceeds, 7.5 steps (120): three halvings leave
/// 0.94 of a step, below the first, so any holder is back to k = 0 within
/// three half-lives whatever its peak. It does not follow the live
/// ceiling, so raising the ceiling, or switching the mechanism on, acts
/// on the scores at once.
pub(crate) const SATURATION: f64 = (K_LIMIT as f64 + 0.5) * STEP;

/// How much of its network's score one address can make: events reach
/// the network only while the address's own score is below half a step.
/// Without it one address could price everyone behind its carrier-grade
/// NAT, office or university /24 (or its hoster's /48): 240 points a
/// minute of wrong tickets within the network's solution budget saturated
/// the /24 in 30 s. With it one address brings its network at most half a
/// step (plus one event), so raising a network takes several of its
/// addresses, which is what a network score is for; the address's own
/// score still rises to the ceiling.
pub(crate) const ADDRESS_SHARE: f64 = STEP / 2.0;

/// Holders remembered. Each entry is a `u64` key and an 8-byte score plus
/// the cache's own bookkeeping: 6.9 MB of RSS when full (measured with
/// 400 000 holders recorded), so 100 000 scored networks take about 5 MB.
/// Beyond it the cache forgets the entries used least, so a flood from a
/// million addresses, each touched once, evicts mostly its own one-off
/// addresses, while a network touched by many events stays.
pub(crate) const CAPACITY: usize = 131_072;

/// A cache of at most `capacity` scores. Without ghosts: quick_cache keeps
/// the keys of evicted entries (half the capacity by default) to re-admit
/// them as hot, but an evicted score is gone anyway, and the ghosts' slots
/// took a third of the memory (10.5 MB against 6.9 MB measured for a full
/// cache).
fn cache(capacity: usize) -> Cache<u64, Score> {
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(capacity)
        .weight_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
        .ghost_allocation(0.0)
        .build();
    match options {
        Ok(options) => Cache::with_options(
            options,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
        // Only unset capacities fail to build, and both are set above.
        Err(_) => Cache::new(capacity),
    }
}

/// Whose score: a client address (IPv4 exactly, IPv6 by /64), or a network
/// enclosing it (IPv4 /24, IPv6 /48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    Address(IpKey),
    Network(Prefix),
}

impl Holder {
    /// The prefix lengths scored as networks. IPv6 /56 is left out: a
    /// subscriber's /56 is already a handful of /64s, while the /48 is what
    /// a hosting customer or a site holds.
    const NETWORK_LENS: [u8; 2] = [24, 48];

    /// The address and every scored network enclosing it, narrowest first.
    pub(crate) fn all_of(key: IpKey) -> impl Iterator<Item = Self> {
        std::iter::once(Self::Address(key)).chain(Self::networks_of(key))
    }

    /// The scored networks enclosing `key`: one (its /24 or its /48).
    pub(crate) fn networks_of(key: IpKey) -> impl Iterator<Item = Self> {
        key.enclosing()
            .filter(|p| Self::NETWORK_LENS.contains(&p.len()))
            .map(Self::Network)
    }
}

impl Holder {
    /// The holders an admin asks about: an address (its own score and its
    /// network's), or a network of a scored size or narrower (that
    /// network's). IPv4 counts exactly and by /24; IPv6 by /64 and by /48.
    ///
    /// # Errors
    /// A message saying what is accepted.
    pub(crate) fn parse_query(text: &str) -> Result<Vec<Self>, String> {
        let text = text.trim();
        let net: IpNet = crate::client_ip::parse_net(text).ok_or_else(|| {
            format!(
                "ip: {text:?} is neither an address nor a network; send e.g. 203.0.113.7, 203.0.113.0/24 or 2001:db8::/48"
            )
        })?;
        let key = IpKey::of(net.network());
        let (address_len, network_len) = match net {
            IpNet::V4(_) => (32, 24),
            IpNet::V6(_) => (64, 48),
        };
        if net.prefix_len() >= address_len {
            Ok(Self::all_of(key).collect())
        } else if net.prefix_len() >= network_len {
            Ok(Self::networks_of(key).collect())
        } else {
            Err(format!(
                "ip: {text} is wider than the networks scored (IPv4 /24, IPv6 /48); ask about one of those or an address in it"
            ))
        }
    }
}

impl std::fmt::Display for Holder {
    /// As a CIDR (an IPv4 address alone): what the admin asked about, shown
    /// back; it is computed from the query, never from what is stored.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(key) => key.fmt(f),
            Self::Network(prefix) => prefix.fmt(f),
        }
    }
}

impl Serialize for Holder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A score as of `at` (unix seconds, which fit a `u32` until 2106); it
/// decays from there. Eight bytes: a score is at most 120, where an `f32`
/// is exact to a millionth, and the cache holds 131 072 of them.
#[derive(Debug, Clone, Copy)]
struct Score {
    value: f32,
    at: u32,
}

impl Score {
    fn new(value: f64, now: i64) -> Self {
        // A saturated score is at most 120: well inside f32.
        #[allow(clippy::cast_possible_truncation)]
        let value = value as f32;
        Self {
            value,
            at: u32::try_from(now.max(0)).unwrap_or(u32::MAX),
        }
    }

    /// The value at `now`, decayed since `at` with `half_life` seconds. A
    /// clock that went back decays nothing.
    fn at(self, now: i64, half_life: f64) -> f64 {
        #[allow(clippy::cast_precision_loss)] // seconds: far below 2^52
        let elapsed = now.saturating_sub(i64::from(self.at)).max(0) as f64;
        f64::from(self.value) * 0.5f64.powf(elapsed / half_life)
    }
}

/// What the scores need from the live settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScoreRule {
    /// Seconds for a score to halve.
    pub half_life_secs: f64,
    /// The highest `k` in force (log2 of the ceiling multiplier).
    pub k_max: u32,
}

impl ScoreRule {
    /// The step a score gives.
    pub(crate) fn k(self, score: f64) -> u32 {
        // A score is finite and saturated, so the floor fits a u32.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let k = (score / STEP).floor().max(0.0) as u32;
        k.min(self.k_max)
    }
}

/// One holder's score and the step it gives.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct HolderScore {
    pub holder: Holder,
    pub score: f64,
    pub k: u32,
}

/// Scores per holder, under keyed hashes.
pub(crate) struct NetworkScores {
    /// Keyed with random keys drawn once per process: the cache holds
    /// `hash(holder)`, never an address, and nobody outside the process
    /// can aim collisions at a victim's key.
    hasher: RandomState,
    scores: Cache<u64, Score>,
}

impl std::fmt::Debug for NetworkScores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkScores")
            .field("scored", &self.scores.len())
            .finish_non_exhaustive()
    }
}

impl NetworkScores {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            scores: cache(capacity),
        }
    }

    fn key(&self, holder: Holder) -> u64 {
        self.hasher.hash_one(holder)
    }

    /// Holders scored now (some may have decayed to nothing).
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// Adds `event`'s weight to `key`, decayed to `now` first, saturated,
    /// never below zero; and to its network too while the address's own
    /// score is below [`ADDRESS_SHARE`].
    pub(crate) fn record(&self, key: IpKey, event: Event, now: i64, rule: ScoreRule) {
        let weight = event.weight();
        let address_before = self.add(Holder::Address(key), weight, now, rule);
        if address_before < ADDRESS_SHARE {
            for network in Holder::networks_of(key) {
                self.add(network, weight, now, rule);
            }
        }
    }

    /// Adds `weight` to `holder`'s score; returns the score before.
    fn add(&self, holder: Holder, weight: f64, now: i64, rule: ScoreRule) -> f64 {
        let next = |before: f64| Score::new((before + weight).clamp(0.0, SATURATION), now);
        let hashed = self.key(holder);
        let mut before = 0.0;
        // One atomic read-modify-write per entry, so concurrent events in
        // one network all count.
        let result = self.scores.entry(&hashed, None, |_, score| {
            before = score.at(now, rule.half_life_secs);
            *score = next(before);
            EntryAction::Retain(())
        });
        // Taking back from nothing stores nothing: a solve whose issue was
        // forgotten must not cost an entry.
        if let EntryResult::Vacant(guard) = result
            && weight > 0.0
        {
            let _ = guard.insert(next(0.0));
        }
        before
    }

    /// `holder`'s score at `now` and its step.
    pub(crate) fn score(&self, holder: Holder, now: i64, rule: ScoreRule) -> HolderScore {
        let score = self
            .scores
            .get(&self.key(holder))
            .map_or(0.0, |s| s.at(now, rule.half_life_secs));
        HolderScore {
            holder,
            score,
            k: rule.k(score),
        }
    }

    /// The worst of `holders`: the highest step, the highest score among
    /// equal steps; `None` when there are none.
    pub(crate) fn worst(
        &self,
        holders: impl Iterator<Item = Holder>,
        now: i64,
        rule: ScoreRule,
    ) -> Option<HolderScore> {
        holders
            .map(|h| self.score(h, now, rule))
            .max_by(|a, b| a.k.cmp(&b.k).then(a.score.total_cmp(&b.score)))
    }
}
