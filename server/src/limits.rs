//! Per-address rate limits (governor), the wrong-answer back-off, and the
//! connection caps. Each refusal is counted in `powgate_limited_total`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client_ip::{IpKey, NetKey};
use crate::config::Limits;
use crate::metrics::Metrics;

/// Most addresses the back-off remembers; the oldest are forgotten first.
const BACKOFF_CAPACITY: usize = 100_000;

fn keyed(per_minute: u32) -> Option<DefaultKeyedRateLimiter<IpKey>> {
    // A burst of a quarter minute's worth lets a page reload or a retry
    // through without waiting, while the sustained rate stays as configured.
    NonZeroU32::new(per_minute).map(|n| {
        let burst = NonZeroU32::new((per_minute / 4).max(1)).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
    })
}

pub(crate) struct RateLimits {
    challenges: Option<DefaultKeyedRateLimiter<IpKey>>,
    solutions: Option<DefaultKeyedRateLimiter<IpKey>>,
    backoff: quick_cache::sync::Cache<IpKey, Instant>,
    backoff_for: Duration,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("backoff_for", &self.backoff_for)
            .finish_non_exhaustive()
    }
}

/// A `Retry-After` in whole seconds: rounded up, so a client that waits
/// that long is let through, and at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0 || wait.is_zero())
}

/// How long a governor refusal asks the client to wait.
fn wait_of(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// A request refused by [`RateLimits`], already counted in
/// `powgate_limited_total`. The routes answer it with a 429 whose
/// `Retry-After` is `wait` rounded up (see [`retry_after_secs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    /// How long until the client is let through again.
    pub wait: Duration,
}

impl RateLimits {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            challenges: keyed(limits.challenges_per_minute),
            solutions: keyed(limits.solutions_per_minute),
            backoff: quick_cache::sync::Cache::new(BACKOFF_CAPACITY),
            backoff_for: limits.wrong_answer_backoff,
        }
    }

    /// # Errors
    /// [`Limited`] with the wait when `ip` asked for too many challenges.
    pub(crate) fn check_challenge(&self, ip: IpKey, metrics: &Metrics) -> Result<(), Limited> {
        if let Some(l) = &self.challenges {
            l.check_key(&ip).map_err(|n| {
                metrics.limited.with_label_values(&["challenge_rate"]).inc();
                Limited { wait: wait_of(&n) }
            })?;
        }
        Ok(())
    }

    /// # Errors
    /// [`Limited`] with the wait when `ip` is backing off after a wrong
    /// answer or submitted too often.
    pub(crate) fn check_solution(&self, ip: IpKey, metrics: &Metrics) -> Result<(), Limited> {
        if let Some(until) = self.backoff.get(&ip) {
            let now = Instant::now();
            if until > now {
                metrics
                    .limited
                    .with_label_values(&["wrong_answer_backoff"])
                    .inc();
                return Err(Limited { wait: until - now });
            }
            self.backoff.remove(&ip);
        }
        if let Some(l) = &self.solutions {
            l.check_key(&ip).map_err(|n| {
                metrics.limited.with_label_values(&["solution_rate"]).inc();
                Limited { wait: wait_of(&n) }
            })?;
        }
        Ok(())
    }

    /// Starts the back-off after a wrong answer from `ip`.
    pub(crate) fn penalise(&self, ip: IpKey) {
        if !self.backoff_for.is_zero() {
            self.backoff.insert(ip, Instant::now() + self.backoff_for);
        }
    }

    /// Forgets addresses that have been quiet, so memory stays bounded.
    pub(crate) fn forget_idle(&self) {
        for l in [&self.challenges, &self.solutions].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The connection caps, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnCaps {
    /// Open connections in total.
    pub total: usize,
    /// Slots of `total` that only trusted proxies may take, so that direct
    /// clients, however many, cannot lock out the proxy that carries
    /// everyone else's traffic.
    pub reserved_for_trusted: usize,
    /// Open connections per peer address (IPv6 by /64).
    pub per_peer: usize,
    /// Open connections per peer network (IPv4 /24, IPv6 /48), so that one
    /// network's many addresses cannot take every slot either.
    pub per_network: usize,
}

/// Open-connection counts: in total, from untrusted peers, and per peer
/// address and network. Trusted proxies are held only to the total: all
/// proxied traffic arrives from them.
pub(crate) struct ConnLimits {
    caps: ConnCaps,
    is_trusted: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    open: Mutex<OpenConns>,
}

#[derive(Default)]
struct OpenConns {
    total: usize,
    untrusted: usize,
    per_peer: HashMap<IpKey, usize>,
    per_network: HashMap<NetKey, usize>,
}

impl std::fmt::Debug for ConnLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLimits")
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnRefused {
    /// Every slot open to this peer is taken.
    Total,
    PerPeer,
    PerNetwork,
}

impl ConnRefused {
    /// The `powgate_limited_total` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Total => "connections_total",
            Self::PerPeer => "connections_per_ip",
            Self::PerNetwork => "connections_per_network",
        }
    }
}

/// Held for the life of one connection; releases its slot when dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    limits: Arc<ConnLimits>,
    /// The peer's keys; `None` for a trusted proxy, which is counted in
    /// the total only.
    untrusted: Option<(IpKey, NetKey)>,
}

/// Adds one to `map[key]` unless it is at `cap`.
fn take<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K, cap: usize) -> bool {
    let n = map.entry(key).or_insert(0);
    if *n >= cap {
        return false;
    }
    *n += 1;
    true
}

/// Subtracts one from `map[key]`, forgetting keys that reach 0 so the maps
/// hold only peers with open connections.
fn give_back<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl ConnLimits {
    pub(crate) fn new(
        caps: ConnCaps,
        is_trusted: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            caps,
            is_trusted: Box::new(is_trusted),
            open: Mutex::new(OpenConns::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenConns> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for a new connection from `ip`.
    ///
    /// # Errors
    /// Which cap is full.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, ConnRefused> {
        let trusted = (self.is_trusted)(ip);
        let mut open = self.lock();
        if open.total >= self.caps.total {
            return Err(ConnRefused::Total);
        }
        if trusted {
            open.total += 1;
            return Ok(ConnGuard {
                limits: self.clone(),
                untrusted: None,
            });
        }
        let shared = self
            .caps
            .total
            .saturating_sub(self.caps.reserved_for_trusted);
        if open.untrusted >= shared {
            return Err(ConnRefused::Total);
        }
        let (peer, net) = (IpKey::of(ip), NetKey::of(ip));
        if !take(&mut open.per_peer, peer, self.caps.per_peer) {
            return Err(ConnRefused::PerPeer);
        }
        if !take(&mut open.per_network, net, self.caps.per_network) {
            give_back(&mut open.per_peer, &peer);
            return Err(ConnRefused::PerNetwork);
        }
        open.total += 1;
        open.untrusted += 1;
        Ok(ConnGuard {
            limits: self.clone(),
            untrusted: Some((peer, net)),
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some((peer, net)) = &self.untrusted {
            open.untrusted = open.untrusted.saturating_sub(1);
            give_back(&mut open.per_peer, peer);
            give_back(&mut open.per_network, net);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(retry_after_secs(ms(11_900)), 12);
        assert_eq!(retry_after_secs(ms(11_001)), 12);
        assert_eq!(retry_after_secs(ms(3_000)), 3);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn caps(total: usize, reserved_for_trusted: usize) -> ConnCaps {
        ConnCaps {
            total,
            reserved_for_trusted,
            per_peer: 2,
            per_network: 4,
        }
    }

    #[test]
    fn trusted_proxies_are_held_only_to_the_total() {
        let proxy = ip("127.0.0.1");
        let l = ConnLimits::new(caps(5, 0), move |ip| ip == proxy);
        let held: Vec<_> = (0..5).map(|_| l.admit(proxy).unwrap()).collect();
        assert_eq!(l.admit(proxy).unwrap_err(), ConnRefused::Total);
        drop(held);
        assert_eq!(l.open(), 0);
    }

    #[test]
    fn untrusted_peers_cannot_take_the_slots_reserved_for_trusted_proxies() {
        let proxy = ip("127.0.0.1");
        let l = ConnLimits::new(caps(6, 2), move |ip| ip == proxy);
        // Four networks' worth of direct clients fill the four shared slots...
        let direct: Vec<_> = ["192.0.2.1", "198.51.100.1", "203.0.113.1", "10.0.0.1"]
            .into_iter()
            .map(|a| l.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(l.admit(ip("10.9.9.9")).unwrap_err(), ConnRefused::Total);
        // ...and the proxy still gets the two reserved ones, then the total holds.
        let p1 = l.admit(proxy).unwrap();
        let _p2 = l.admit(proxy).unwrap();
        assert_eq!(l.admit(proxy).unwrap_err(), ConnRefused::Total);
        // A freed slot is open to whoever comes next, the proxy included.
        drop(p1);
        assert_eq!(l.admit(ip("10.9.9.9")).unwrap_err(), ConnRefused::Total);
        let _p3 = l.admit(proxy).unwrap();
        drop(direct);
        let _d = l.admit(ip("10.9.9.9")).unwrap();
    }

    #[test]
    fn the_per_peer_cap_counts_an_ipv6_slash_64_as_one_peer() {
        let l = ConnLimits::new(caps(100, 0), |_| false);
        let _a = l.admit(ip("2001:db8:0:1::1")).unwrap();
        let _b = l.admit(ip("2001:db8:0:1::2")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8:0:1:ffff::3")).unwrap_err(),
            ConnRefused::PerPeer
        );
        let _other_64 = l.admit(ip("2001:db8:0:2::1")).unwrap();
        // IPv4 peers are counted exactly.
        let _c = l.admit(ip("192.0.2.1")).unwrap();
        let _d = l.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(l.admit(ip("192.0.2.1")).unwrap_err(), ConnRefused::PerPeer);
        let _e = l.admit(ip("192.0.2.2")).unwrap();
    }

    #[test]
    fn one_network_cannot_take_every_slot_however_many_addresses_it_has() {
        let l = ConnLimits::new(caps(100, 0), |_| false);
        // Per network 4, per peer 2: two addresses of a /24 fill it.
        let v4: Vec<_> = (1..=4)
            .map(|i| l.admit(ip(&format!("192.0.2.{}", (i + 1) / 2))).unwrap())
            .collect();
        assert_eq!(
            l.admit(ip("192.0.2.77")).unwrap_err(),
            ConnRefused::PerNetwork
        );
        let _next_24 = l.admit(ip("192.0.3.1")).unwrap();
        // An IPv6 /48 is one network across its /64s.
        let v6: Vec<_> = (1..=4)
            .map(|i| l.admit(ip(&format!("2001:db8:7:{i}::1"))).unwrap())
            .collect();
        assert_eq!(
            l.admit(ip("2001:db8:7:ff::1")).unwrap_err(),
            ConnRefused::PerNetwork
        );
        let _next_48 = l.admit(ip("2001:db8:8::1")).unwrap();
        // A refusal by network leaves the peer's own count as it was.
        assert_eq!(
            l.admit(ip("192.0.2.99")).unwrap_err(),
            ConnRefused::PerNetwork
        );
        drop(v4);
        let _a = l.admit(ip("192.0.2.99")).unwrap();
        let _b = l.admit(ip("192.0.2.99")).unwrap();
        drop(v6);
        assert_eq!(l.open(), 4);
    }

    #[test]
    fn backoff_after_a_wrong_answer() {
        let limits = Limits {
            challenges_per_minute: 0,
            solutions_per_minute: 0,
            wrong_answer_backoff: Duration::from_secs(30),
            connections: ConnCaps {
                total: 1,
                reserved_for_trusted: 0,
                per_peer: 1,
                per_network: 1,
            },
            max_body_bytes: 8192,
            header_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
        };
        let r = RateLimits::new(&limits);
        let m = Metrics::new();
        let ip = IpKey::of("203.0.113.1".parse().unwrap());
        r.check_solution(ip, &m).unwrap();
        r.penalise(ip);
        assert!(
            matches!(r.check_solution(ip, &m), Err(Limited { wait }) if (29..=30).contains(&retry_after_secs(wait)))
        );
        r.check_solution(IpKey::of("203.0.113.2".parse().unwrap()), &m)
            .unwrap();
    }
}
