//! The ledger of open challenges: issued, not yet spent, not yet expired.
//!
//! The challenge rate alone lets one address stockpile
//! `rate × timeout` challenges (60/min × 30 min = 1 800), all solvable later
//! at the difficulty they were issued with. A page holds one challenge at a
//! time and reloads leave a few behind, so a bound per address and per
//! network far above that costs visitors nothing and caps a stockpile.
//!
//! Kept in memory only: a restart forgets the ledger, which at worst lets
//! an address hold twice the bound for one challenge timeout.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::client_ip::{IpKey, NetKey};
use crate::config::OpenChallengeLimits;

/// Most open challenges tracked in total, about 50 bytes each. Beyond it a
/// new challenge is issued untracked rather than refused: asking for a
/// challenge costs nothing, so a refusal for a full ledger would let a
/// botnet that fills it (thousands of networks at their bound) shut the
/// page for every visitor. Untracked challenges are counted in
/// `powgate_limited_total{limit="open_challenges_untracked"}`; the
/// per-address and per-network bounds still hold for what is tracked.
const CAPACITY: usize = 500_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: [u8; 16],
    address: IpKey,
    expires_at: i64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open challenges by network, so both bounds are one lookup.
    by_network: HashMap<NetKey, Vec<Entry>>,
    total: usize,
}

/// Why a challenge was not issued: the `powgate_limited_total` label and
/// the seconds until the oldest counted challenge expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub limit: &'static str,
    pub retry_after: u64,
}

/// What [`OpenChallenges::open`] did with a challenge it let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Counted against its address and network until spent or expired.
    Tracked,
    /// Not counted: the bounds are off.
    Unbounded,
    /// Not counted: the ledger is full (see [`CAPACITY`]).
    LedgerFull,
}

#[derive(Debug)]
pub(crate) struct OpenChallenges {
    limits: OpenChallengeLimits,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl OpenChallenges {
    pub(crate) fn new(limits: OpenChallengeLimits) -> Self {
        Self::with_capacity(limits, CAPACITY)
    }

    fn with_capacity(limits: OpenChallengeLimits, capacity: usize) -> Self {
        Self {
            limits,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn enabled(&self) -> bool {
        self.limits.per_ip > 0 || self.limits.per_network > 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Records challenge `id` as open for `address` until `expires_at`.
    ///
    /// # Errors
    /// [`Refused`] when `address` or its network is at its bound; nothing
    /// is recorded then.
    pub(crate) fn open(
        &self,
        address: IpKey,
        id: [u8; 16],
        expires_at: i64,
        now: i64,
    ) -> Result<Opened, Refused> {
        if !self.enabled() {
            return Ok(Opened::Unbounded);
        }
        let capacity = self.capacity;
        let net = address.network();
        let OpenChallengeLimits {
            per_ip,
            per_network,
        } = self.limits;
        self.with(|inner| {
            let entries = inner.by_network.entry(net).or_default();
            let before = entries.len();
            entries.retain(|e| e.expires_at > now);
            inner.total -= before - entries.len();
            // The wait until the earliest of `counted` expires frees a slot.
            let refuse = |limit, counted: &mut dyn Iterator<Item = &Entry>| Refused {
                limit,
                retry_after: counted
                    .map(|e| e.expires_at - now)
                    .min()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(1)
                    .max(1),
            };
            let of_address = entries.iter().filter(|e| e.address == address).count();
            if per_ip > 0 && of_address >= per_ip as usize {
                return Err(refuse(
                    "open_challenges_per_ip",
                    &mut entries.iter().filter(|e| e.address == address),
                ));
            }
            if per_network > 0 && entries.len() >= per_network as usize {
                return Err(refuse("open_challenges_per_network", &mut entries.iter()));
            }
            if inner.total >= capacity {
                // The periodic sweep frees expired entries of other networks.
                if entries.is_empty() {
                    inner.by_network.remove(&net);
                }
                return Ok(Opened::LedgerFull);
            }
            entries.push(Entry {
                id,
                address,
                expires_at,
            });
            inner.total += 1;
            Ok(Opened::Tracked)
        })
    }

    /// Frees the slot of a spent challenge.
    pub(crate) fn close(&self, address: IpKey, id: &[u8; 16]) {
        if !self.enabled() {
            return;
        }
        let net = address.network();
        self.with(|inner| {
            if let Some(entries) = inner.by_network.get_mut(&net)
                && let Some(i) = entries.iter().position(|e| &e.id == id)
            {
                entries.swap_remove(i);
                inner.total -= 1;
                if entries.is_empty() {
                    inner.by_network.remove(&net);
                }
            }
        });
    }

    /// Frees the slots of expired challenges and forgets empty networks, so
    /// memory follows the open challenges; run by the purge job.
    pub(crate) fn forget_expired(&self, now: i64) {
        self.with(|inner| {
            let mut total = 0;
            inner.by_network.retain(|_, entries| {
                entries.retain(|e| e.expires_at > now);
                total += entries.len();
                !entries.is_empty()
            });
            inner.by_network.shrink_to_fit();
            inner.total = total;
        });
    }

    /// Challenges open now, as last counted; only tests look.
    #[cfg(test)]
    fn count(&self) -> usize {
        self.with(|inner| inner.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IpKey {
        IpKey::of(s.parse().unwrap())
    }

    #[test]
    fn slots_are_freed_on_close_and_on_expiry() {
        let l = OpenChallenges::new(OpenChallengeLimits {
            per_ip: 2,
            per_network: 3,
        });
        let a = key("198.51.100.1");
        l.open(a, [1; 16], 100, 0).unwrap();
        l.open(a, [2; 16], 200, 0).unwrap();
        let r = l.open(a, [3; 16], 100, 10).unwrap_err();
        assert_eq!(r.limit, "open_challenges_per_ip");
        assert_eq!(r.retry_after, 90, "until the first one expires");
        l.close(a, &[1; 16]);
        l.open(a, [3; 16], 100, 10).unwrap();
        assert_eq!(l.count(), 2);
        l.open(key("198.51.100.2"), [4; 16], 100, 10).unwrap();
        let r = l.open(key("198.51.100.3"), [5; 16], 100, 10).unwrap_err();
        assert_eq!(r.limit, "open_challenges_per_network");
        l.open(key("198.51.101.3"), [5; 16], 100, 10).unwrap();
        l.forget_expired(150);
        assert_eq!(l.count(), 1, "only [2; 16] expires after 150");
        l.open(a, [6; 16], 300, 150).unwrap();
    }

    /// A botnet filling the ledger with many networks at their bound must
    /// not shut the page for a network it has never seen.
    #[test]
    fn a_full_ledger_does_not_refuse_a_fresh_network() {
        let limits = OpenChallengeLimits {
            per_ip: 2,
            per_network: 2,
        };
        let l = OpenChallenges::with_capacity(limits, 4);
        for (n, net) in ["192.0.2.1", "198.51.100.1"].into_iter().enumerate() {
            for i in 0..2u8 {
                let id = [u8::try_from(n).unwrap() * 2 + i; 16];
                assert_eq!(l.open(key(net), id, 100, 0), Ok(Opened::Tracked));
            }
        }
        assert_eq!(l.count(), 4);
        assert_eq!(
            l.open(key("203.0.113.1"), [9; 16], 100, 0),
            Ok(Opened::LedgerFull)
        );
        assert_eq!(
            l.open(key("192.0.2.1"), [10; 16], 100, 0)
                .unwrap_err()
                .limit,
            "open_challenges_per_ip",
            "the tracked bounds still hold"
        );
        assert_eq!(l.count(), 4);
    }
}
