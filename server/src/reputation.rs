//! Reputation: how many wrong answers an address and its networks sent
//! recently, as a small priority bucket for the verification queue.
//!
//! # The defence as a whole
//! A wrong answer costs its sender one admission ticket (see
//! `pow::ticket`; nothing at all with the ticket off) and costs powgate one
//! argon2id verification, so a flood of them can fill every verification
//! thread. Refusing the flood outright is not possible: a garbage
//! submission with a valid ticket looks like a correct one until it has
//! been hashed. Instead the flood is made to *wait behind* everyone who has
//! not been sending garbage:
//!
//! 1. Every wrong answer (and every missing or wrong ticket) adds one to a
//!    score of its address (IPv4 exactly, IPv6 by /64) and of each network
//!    enclosing it (IPv4 /24; IPv6 /56 and /48, see [`IpKey::enclosing`]).
//!    Scores decay exponentially with a half-life of [`HALF_LIFE_SECS`].
//! 2. A submission's [`priority`](Reputation::priority) is a bucket derived
//!    from the sum of those scores: 0 when neither the address nor any
//!    enclosing network failed recently, then one bucket more per doubling.
//! 3. The verifier grants its threads best bucket first, then by arrival
//!    (see [`crate::verifier`]), so a correct solution from a clean network
//!    overtakes a whole queue of garbage.
//!
//! Why networks: per-address scores alone would never bind on a flooder
//! who rotates through the 65 536 /64s of one IPv6 /48 or the addresses of
//! an IPv4 block. Every failure also lands on the enclosing /24, /56 and
//! /48, so the rotation raises its whole network, and the next fresh /64 in
//! it already starts in a bad bucket. The address's own score counts on
//! top, so inside a penalised network the address that failed ranks below
//! its clean neighbours (a bucket lower when it alone failed).
//!
//! A scattered flood, one address in each of thousands of networks, cannot
//! be told apart by network. Each of its addresses is clean for its first
//! submission only: after one wrong answer it waits behind every clean
//! visitor, and the per-address wrong-answer back-off
//! ([`crate::limits`]) spaces out its retries. Such a flood therefore costs
//! real visitors at most one verification per flooding address per
//! half-life.
//!
//! What it cannot do: a flood from addresses never seen before (or seen
//! longer ago than a few half-lives) is as clean as a visitor and shares
//! bucket 0 with them in arrival order; the cost of that first submission
//! has to come from elsewhere (the admission ticket, the rate limits). A
//! visitor behind the same NAT or /24 as an offender waits behind clean
//! networks too (behind the same NAT it *is* the offender's address). And
//! reputation only orders: it never refuses anyone.

use quick_cache::sync::{Cache, EntryAction, EntryResult};

use crate::client_ip::{IpKey, Prefix};

/// How long it takes a score to halve: ten minutes. Long enough that an
/// address cannot shed a failure between two of its own submissions (the
/// wrong-answer back-off is seconds, a challenge lives minutes) and that a
/// network that sent a thousand wrong answers stays behind clean ones for
/// over an hour (log2(1000) ≈ 10 half-lives); short enough that a network
/// which once shared an address with an offender (a NAT, a café) is back
/// in bucket 0 within about twenty minutes.
pub(crate) const HALF_LIFE_SECS: f64 = 600.0;

/// The worst bucket: 2^14 recent failures or more. Enough buckets to keep
/// a network with ten wrong answers apart from one with ten thousand,
/// few enough for the verifier to keep one line per bucket.
pub(crate) const WORST_BUCKET: u8 = 15;

/// Most addresses and networks remembered, about 100 bytes each, so 10 MB
/// at most. A scattered flood of 4 000 addresses takes 8 000 entries.
/// Beyond the capacity the cache forgets the entries used least: a
/// network is touched by every failure inside it, so the one-off /64s of a
/// rotating flooder go first and its /48 stays.
const CAPACITY: usize = 100_000;

/// Who a score belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Holder {
    Address(IpKey),
    Network(Prefix),
}

impl Holder {
    /// The address and every network enclosing it.
    fn all_of(key: IpKey) -> impl Iterator<Item = Self> {
        std::iter::once(Self::Address(key)).chain(key.enclosing().map(Self::Network))
    }
}

/// A score as of `at` (unix seconds); it decays from there.
#[derive(Debug, Clone, Copy)]
struct Score {
    value: f64,
    at: i64,
}

impl Score {
    /// The value at `now`, decayed since `at`. A clock that went back
    /// (`now < at`) decays nothing.
    fn at(self, now: i64) -> f64 {
        #[allow(clippy::cast_precision_loss)] // seconds: far below 2^52
        let elapsed = now.saturating_sub(self.at).max(0) as f64;
        self.value * 0.5f64.powf(elapsed / HALF_LIFE_SECS)
    }
}

/// Decayed counts of recent failures per address and network.
pub(crate) struct Reputation {
    scores: Cache<Holder, Score>,
}

impl std::fmt::Debug for Reputation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reputation")
            .field("remembered", &self.scores.len())
            .finish_non_exhaustive()
    }
}

impl Default for Reputation {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Reputation {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            scores: Cache::new(capacity),
        }
    }

    /// Counts one failure (a wrong answer) against `key` and every network
    /// enclosing it.
    pub(crate) fn record_failure(&self, key: IpKey, now: i64) {
        for holder in Holder::all_of(key) {
            // One atomic read-modify-write per entry: concurrent failures in
            // one network must all count, or a flood would undercount itself.
            let result = self.scores.entry(&holder, None, |_, score| {
                *score = Score {
                    value: score.at(now) + 1.0,
                    at: now,
                };
                EntryAction::Retain(())
            });
            if let EntryResult::Vacant(guard) = result {
                let _ = guard.insert(Score {
                    value: 1.0,
                    at: now,
                });
            }
        }
    }

    /// The priority bucket of a submission from `key`: 0 when neither it
    /// nor an enclosing network failed recently, up to [`WORST_BUCKET`].
    pub(crate) fn priority(&self, key: IpKey, now: i64) -> u8 {
        let total: f64 = Holder::all_of(key)
            .filter_map(|h| self.scores.get(&h))
            .map(|s| s.at(now))
            .sum();
        bucket(total)
    }
}

/// 0 below one recent failure (one failure of an IPv4 address, counted on
/// the address and its /24, falls below after two half-lives), then one
/// more per doubling: [1, 2) → 1, [2, 4) → 2, [4, 8) → 3, …
fn bucket(total: f64) -> u8 {
    if total < 1.0 {
        return 0;
    }
    // log2 of a finite f64 ≥ 1 is in [0, 1024), and is capped right after.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let doublings = total.log2().floor().min(f64::from(WORST_BUCKET)) as u8;
    (doublings + 1).min(WORST_BUCKET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> IpKey {
        IpKey::of(ip.parse().unwrap())
    }

    const T0: i64 = 1_700_000_000;
    const HALF_LIFE: i64 = HALF_LIFE_SECS as i64;

    #[test]
    fn an_address_without_failures_is_in_bucket_0() {
        let r = Reputation::default();
        assert_eq!(r.priority(key("192.0.2.1"), T0), 0);
        assert_eq!(r.priority(key("2001:db8::1"), T0), 0);
    }

    #[test]
    fn more_failures_mean_a_worse_bucket_up_to_the_worst() {
        let r = Reputation::default();
        let a = key("192.0.2.1");
        r.record_failure(a, T0);
        let one = r.priority(a, T0);
        assert!(one > 0);
        for _ in 0..7 {
            r.record_failure(a, T0);
        }
        let eight = r.priority(a, T0);
        assert_eq!(eight, one + 3, "three doublings, three buckets");
        for _ in 0..100_000 {
            r.record_failure(a, T0);
        }
        assert_eq!(r.priority(a, T0), WORST_BUCKET);
    }

    /// Without decay one bad minute would penalise a network forever (a
    /// NAT once shared with an offender); with it, a failure fades.
    #[test]
    fn failures_decay_by_half_each_half_life_until_forgotten() {
        let r = Reputation::default();
        let a = key("192.0.2.1");
        for _ in 0..8 {
            r.record_failure(a, T0);
        }
        // 8 on the address and 8 on its /24: 16 → bucket 5.
        assert_eq!(r.priority(a, T0), 5);
        assert_eq!(r.priority(a, T0 + HALF_LIFE), 4);
        assert_eq!(r.priority(a, T0 + 2 * HALF_LIFE), 3);
        assert_eq!(r.priority(a, T0 + 5 * HALF_LIFE), 0, "16 / 32 < 1");
        // Decay is applied before a new failure adds to it.
        r.record_failure(a, T0 + 10 * HALF_LIFE);
        assert_eq!(r.priority(a, T0 + 10 * HALF_LIFE), 2, "2 + 2/64 → [2, 4)");
    }

    /// A flooder rotating through the /64s of one IPv6 /48 never repeats an
    /// address, so only the network's score can catch it: the next fresh
    /// /64 of that /48 must already start in a bad bucket.
    #[test]
    fn rotating_through_the_slash_64s_of_one_slash_48_raises_the_slash_48() {
        let r = Reputation::default();
        for n in 0..256u32 {
            // Each in its own /56 too, so only the /48 sees them all.
            r.record_failure(key(&format!("2001:db8:7:{n:x}00::1")), T0);
        }
        let fresh = key("2001:db8:7:ff01::1");
        assert!(
            r.priority(fresh, T0) >= 8,
            "256 failures in the /48: {}",
            r.priority(fresh, T0)
        );
        // Another /48 of the same provider is not touched.
        assert_eq!(r.priority(key("2001:db8:8::1"), T0), 0);
    }

    /// A network's failures must not leak onto visitors elsewhere.
    #[test]
    fn a_visitor_in_another_network_stays_in_bucket_0() {
        let r = Reputation::default();
        for n in 0..=255u8 {
            r.record_failure(key(&format!("198.51.100.{n}")), T0);
        }
        assert_eq!(r.priority(key("198.51.101.7"), T0), 0);
        assert_eq!(r.priority(key("203.0.113.7"), T0), 0);
        assert!(r.priority(key("198.51.100.77"), T0) > 0);
    }

    /// Inside a penalised network the address that failed ranks below a
    /// neighbour that did not.
    #[test]
    fn the_failing_address_ranks_below_its_clean_neighbour() {
        let r = Reputation::default();
        let bad = key("192.0.2.1");
        for _ in 0..4 {
            r.record_failure(bad, T0);
        }
        let neighbour = key("192.0.2.2");
        assert!(r.priority(neighbour, T0) > 0);
        assert!(r.priority(bad, T0) > r.priority(neighbour, T0));
    }

    #[test]
    fn memory_stays_bounded_under_a_scattered_flood() {
        let r = Reputation::with_capacity(1_000);
        for n in 0..20_000u32 {
            let [_, b, c, d] = n.to_be_bytes();
            r.record_failure(key(&format!("10.{b}.{c}.{d}")), T0);
        }
        assert!(r.scores.len() <= 1_100, "{} entries", r.scores.len());
    }

    #[test]
    fn concurrent_failures_in_one_network_all_count() {
        let r = Reputation::default();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let r = &r;
                s.spawn(move || {
                    for n in 0..64u8 {
                        r.record_failure(key(&format!("192.0.2.{}", t * 64 + n)), T0);
                    }
                });
            }
        });
        let net = r
            .scores
            .get(&Holder::Network(
                key("192.0.2.0").enclosing().next().unwrap(),
            ))
            .unwrap();
        assert!((net.value - 256.0).abs() < 1e-9, "{}", net.value);
    }
}
