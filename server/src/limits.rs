//! Rate limits on challenges and solutions, the wrong-answer back-off, and
//! the connection caps. Each refusal is counted in `powgate_limited_total`.
//!
//! # Rates by address and by network
//!
//! Each challenge and each solution is counted twice over:
//! - by address ([`IpKey`]: IPv4 exactly, IPv6 by /64), with governor and
//!   the configured `rate_*_per_minute`;
//! - by every network the address lies in ([`IpKey::enclosing`]: IPv4 /24;
//!   IPv6 /56 and /48), each level with its own live budget from
//!   [`crate::settings`]. An IPv6 /48 holds 65 536 /64s and a /24 256
//!   addresses, so without these a client that rotates through its
//!   addresses never meets the per-address rate.
//!
//! A request passes only when every level has room, and only then does it
//! take a cell at every level: a refusal at one level costs the others
//! nothing, so a flood that a /48 budget stops does not also drain the
//! budget of the /56 or /64 a neighbour shares with it. To peek before
//! taking, the network levels are small GCRA buckets of our own (governor
//! cannot peek), and the per-address governor check, which takes a cell
//! only when it passes, runs between the peek and the take.
//!
//! A network bucket keeps only its theoretical arrival time, which means
//! the same thing under any budget, so a budget read per request is the
//! whole "rebuild": a PATCH applies to the next request, and 0 turns a
//! level off at once. Buckets that have drained are forgotten by
//! [`RateLimits::forget_idle`], and at most [`NETWORK_CAPACITY`] are kept;
//! beyond that a network goes uncounted (its addresses still are), so a
//! botnet spread over very many networks cannot grow memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client_ip::{IpKey, NetKey, Prefix};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::settings::{NetworkBudgets, Settings};

/// Most addresses the back-off remembers; the oldest are forgotten first.
const BACKOFF_CAPACITY: usize = 100_000;
/// Most network buckets kept per kind of request (about 48 bytes each).
const NETWORK_CAPACITY: usize = 200_000;

fn keyed(per_minute: u32) -> Option<DefaultKeyedRateLimiter<IpKey>> {
    NonZeroU32::new(per_minute).map(|n| {
        let burst = NonZeroU32::new(burst_of(per_minute)).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
    })
}

/// The shape every rate here has: a burst of a quarter minute's worth lets
/// a page reload or a retry through without waiting, while the sustained
/// rate stays `per_minute`.
fn burst_of(per_minute: u32) -> u32 {
    (per_minute / 4).max(1)
}

/// The per-network GCRA buckets of one kind of request: the theoretical
/// arrival time of each network counted recently.
#[derive(Debug)]
struct NetworkBuckets {
    tat: Mutex<HashMap<Prefix, Instant>>,
    /// Most buckets kept: [`NETWORK_CAPACITY`] but in tests.
    capacity: usize,
}

/// One network level over its budget: which, and for how long.
#[derive(Debug, Clone, Copy)]
struct Over {
    len: u8,
    wait: Duration,
}

impl NetworkBuckets {
    fn new(capacity: usize) -> Self {
        Self {
            tat: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Prefix, Instant>> {
        self.tat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets `key`'s request through when every network level has room and
    /// `also` (the per-address check) passes, then takes one cell at each
    /// level; otherwise takes nothing. Returns the level that refused
    /// longest.
    fn check_then_take<E>(
        &self,
        key: IpKey,
        budgets: NetworkBudgets,
        now: Instant,
        also: impl FnOnce() -> Result<(), E>,
    ) -> Result<Result<(), E>, Over> {
        let mut tat = self.lock();
        let levels = key
            .enclosing()
            .map(|net| (net, budgets.for_prefix_len(net.len())))
            .filter(|&(_, per_minute)| per_minute > 0)
            .collect::<Vec<_>>();
        let mut over: Option<Over> = None;
        for &(net, per_minute) in &levels {
            let (interval, burst) = shape(per_minute);
            let Some(&t) = tat.get(&net) else { continue };
            // Room while the arrival time is at most burst - 1 intervals ahead.
            let ahead = t.saturating_duration_since(now);
            let allowed = interval * (burst - 1);
            if ahead > allowed {
                let wait = ahead - allowed;
                if over.is_none_or(|o| wait > o.wait) {
                    over = Some(Over {
                        len: net.len(),
                        wait,
                    });
                }
            }
        }
        if let Some(o) = over {
            return Err(o);
        }
        if let Err(e) = also() {
            return Ok(Err(e));
        }
        for (net, per_minute) in levels {
            let (interval, _) = shape(per_minute);
            // Full: the network goes uncounted until the next sweep
            // (forget_idle) frees drained buckets. Sweeping here instead
            // would make every request of a wide botnet walk the whole map.
            if tat.len() >= self.capacity && !tat.contains_key(&net) {
                continue;
            }
            let t = tat.entry(net).or_insert(now);
            *t = (*t).max(now) + interval;
        }
        Ok(Ok(()))
    }

    /// Forgets buckets that have drained: they hold nothing a fresh one
    /// would not.
    fn forget_idle(&self, now: Instant) {
        let mut tat = self.lock();
        tat.retain(|_, t| *t > now);
        tat.shrink_to_fit();
    }
}

/// A per-minute budget's GCRA emission interval and burst.
fn shape(per_minute: u32) -> (Duration, u32) {
    (
        Duration::from_secs(60) / per_minute.max(1),
        burst_of(per_minute),
    )
}

/// What a rate counts, for the `powgate_limited_total` labels.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Challenges,
    Solutions,
}

impl Kind {
    /// The label of a refusal at the network level of prefix length `len`.
    fn network_label(self, len: u8) -> &'static str {
        match (self, len) {
            (Self::Challenges, 24) => "challenge_rate_per_24",
            (Self::Challenges, 56) => "challenge_rate_per_56",
            (Self::Challenges, _) => "challenge_rate_per_48",
            (Self::Solutions, 24) => "solution_rate_per_24",
            (Self::Solutions, 56) => "solution_rate_per_56",
            (Self::Solutions, _) => "solution_rate_per_48",
        }
    }
}

pub(crate) struct RateLimits {
    challenges: Option<DefaultKeyedRateLimiter<IpKey>>,
    solutions: Option<DefaultKeyedRateLimiter<IpKey>>,
    challenge_networks: NetworkBuckets,
    solution_networks: NetworkBuckets,
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
            challenge_networks: NetworkBuckets::new(NETWORK_CAPACITY),
            solution_networks: NetworkBuckets::new(NETWORK_CAPACITY),
            backoff: quick_cache::sync::Cache::new(BACKOFF_CAPACITY),
            backoff_for: limits.wrong_answer_backoff,
        }
    }

    /// Counts a challenge for `ip` and its networks, under the network
    /// budgets of `settings`.
    ///
    /// # Errors
    /// [`Limited`] with the wait when `ip` or one of its networks asked for
    /// too many challenges.
    pub(crate) fn check_challenge(
        &self,
        ip: IpKey,
        settings: &Settings,
        metrics: &Metrics,
    ) -> Result<(), Limited> {
        self.check_rate(
            Kind::Challenges,
            ip,
            settings.challenges_per_minute,
            Instant::now(),
            metrics,
        )
    }

    /// Counts a solution submission for `ip` and its networks.
    ///
    /// # Errors
    /// [`Limited`] with the wait when `ip` is backing off after a wrong
    /// answer, or it or one of its networks submitted too often.
    pub(crate) fn check_solution(
        &self,
        ip: IpKey,
        settings: &Settings,
        metrics: &Metrics,
    ) -> Result<(), Limited> {
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
        self.check_rate(
            Kind::Solutions,
            ip,
            settings.solutions_per_minute,
            Instant::now(),
            metrics,
        )
    }

    /// Every level has room, or nothing is taken (see the module doc).
    fn check_rate(
        &self,
        kind: Kind,
        ip: IpKey,
        budgets: NetworkBudgets,
        now: Instant,
        metrics: &Metrics,
    ) -> Result<(), Limited> {
        let (networks, per_address, address_label) = match kind {
            Kind::Challenges => (&self.challenge_networks, &self.challenges, "challenge_rate"),
            Kind::Solutions => (&self.solution_networks, &self.solutions, "solution_rate"),
        };
        let address = || match per_address {
            Some(l) => l.check_key(&ip).map_err(|n| wait_of(&n)),
            None => Ok(()),
        };
        match networks.check_then_take(ip, budgets, now, address) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => {
                metrics.limited.with_label_values(&[address_label]).inc();
                Err(Limited { wait })
            }
            Err(over) => {
                metrics
                    .limited
                    .with_label_values(&[kind.network_label(over.len)])
                    .inc();
                Err(Limited { wait: over.wait })
            }
        }
    }

    /// Starts the back-off after a wrong answer from `ip`.
    pub(crate) fn penalise(&self, ip: IpKey) {
        if !self.backoff_for.is_zero() {
            self.backoff.insert(ip, Instant::now() + self.backoff_for);
        }
    }

    /// Forgets addresses and networks that have been quiet, so memory
    /// stays bounded.
    pub(crate) fn forget_idle(&self) {
        for l in [&self.challenges, &self.solutions].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let now = Instant::now();
        self.challenge_networks.forget_idle(now);
        self.solution_networks.forget_idle(now);
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
    /// Shows `open.total` in /metrics; set under the lock, so it is exact.
    open_gauge: prometheus::IntGauge,
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

/// A connection's slot, shared: held by the connection and by a tunnel one
/// of its requests upgraded to, released when the last of them ends.
#[derive(Debug, Clone)]
pub(crate) struct ConnSlot {
    /// Held for its `Drop`.
    _guard: Arc<ConnGuard>,
}

impl ConnSlot {
    pub(crate) fn new(guard: ConnGuard) -> Self {
        Self {
            _guard: Arc::new(guard),
        }
    }
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

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
        open_gauge: prometheus::IntGauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            caps,
            is_trusted: Box::new(is_trusted),
            open: Mutex::new(OpenConns::default()),
            open_gauge,
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
            self.open_gauge.set(gauge_value(open.total));
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
        self.open_gauge.set(gauge_value(open.total));
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
        self.limits.open_gauge.set(gauge_value(open.total));
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

    fn gauge() -> prometheus::IntGauge {
        prometheus::IntGauge::new("open", "open").unwrap()
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
        let open = gauge();
        let l = ConnLimits::new(caps(5, 0), move |ip| ip == proxy, open.clone());
        let held: Vec<_> = (0..5).map(|_| l.admit(proxy).unwrap()).collect();
        assert_eq!(l.admit(proxy).unwrap_err(), ConnRefused::Total);
        assert_eq!(open.get(), 5);
        drop(held);
        assert_eq!(l.open(), 0);
        assert_eq!(open.get(), 0);
    }

    #[test]
    fn untrusted_peers_cannot_take_the_slots_reserved_for_trusted_proxies() {
        let proxy = ip("127.0.0.1");
        let l = ConnLimits::new(caps(6, 2), move |ip| ip == proxy, gauge());
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
        let l = ConnLimits::new(caps(100, 0), |_| false, gauge());
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
        let l = ConnLimits::new(caps(100, 0), |_| false, gauge());
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

    fn per_address(challenges_per_minute: u32) -> Limits {
        Limits {
            challenges_per_minute,
            solutions_per_minute: 0,
            wrong_answer_backoff: Duration::ZERO,
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
        }
    }

    /// Limits with `per_minute` challenges per address, their metrics, and
    /// the instant the test counts from.
    fn fresh(per_minute: u32) -> (RateLimits, Metrics, Instant) {
        (
            RateLimits::new(&per_address(per_minute)),
            Metrics::new(),
            Instant::now(),
        )
    }

    fn budgets(per_24: u32, per_56: u32, per_48: u32) -> NetworkBudgets {
        NetworkBudgets {
            per_24,
            per_56,
            per_48,
        }
    }

    /// Challenges for `addr` at `now` under `b`: `Ok`, or the refusal's
    /// `powgate_limited_total` label.
    fn challenge(
        r: &RateLimits,
        m: &Metrics,
        b: NetworkBudgets,
        addr: &str,
        now: Instant,
    ) -> Result<(), &'static str> {
        let before = |m: &Metrics| -> Vec<u64> {
            LABELS
                .iter()
                .map(|l| m.limited.with_label_values(&[l]).get())
                .collect()
        };
        let counts = before(m);
        let key = IpKey::of(ip(addr));
        match r.check_rate(Kind::Challenges, key, b, now, m) {
            Ok(()) => Ok(()),
            Err(_) => {
                let after = before(m);
                let i = (0..LABELS.len())
                    .find(|&i| after[i] != counts[i])
                    .expect("a refusal is counted");
                Err(LABELS[i])
            }
        }
    }

    const LABELS: [&str; 4] = [
        "challenge_rate",
        "challenge_rate_per_24",
        "challenge_rate_per_56",
        "challenge_rate_per_48",
    ];

    /// Issue 14: an attacker rotating through the 65 536 /64s of one IPv6
    /// /48 never met the per-address rate. The /48 budget (8 a minute, a
    /// burst of 2) holds it, while another /48 keeps its own budget.
    #[test]
    fn rotating_the_64s_of_one_48_hits_the_48_budget_while_another_48_passes() {
        let (r, m, now) = fresh(60);
        let b = budgets(0, 0, 8);
        let results: Vec<_> = (1..=6)
            .map(|i| challenge(&r, &m, b, &format!("2001:db8:1:{i:x}00::1"), now))
            .collect();
        assert_eq!(results[..2], [Ok(()), Ok(())]);
        for refused in &results[2..] {
            assert_eq!(*refused, Err("challenge_rate_per_48"));
        }
        assert_eq!(challenge(&r, &m, b, "2001:db8:2::1", now), Ok(()));
        // The budget refills at its rate: 7.5 s for one more.
        let later = now + Duration::from_millis(7_600);
        assert_eq!(challenge(&r, &m, b, "2001:db8:1:ff00::1", later), Ok(()));
    }

    /// The /56 level: rotating the /64s of one subscriber's /56 hits it,
    /// while a /64 of another /56 in the same /48 passes.
    #[test]
    fn rotating_the_64s_of_one_56_hits_the_56_budget_not_its_neighbours() {
        let (r, m, now) = fresh(60);
        let b = budgets(0, 4, 0);
        assert_eq!(challenge(&r, &m, b, "2001:db8:1:100::1", now), Ok(()));
        assert_eq!(
            challenge(&r, &m, b, "2001:db8:1:1ff::1", now),
            Err("challenge_rate_per_56")
        );
        assert_eq!(challenge(&r, &m, b, "2001:db8:1:200::1", now), Ok(()));
    }

    /// Rotating the addresses of one IPv4 /24 hits the /24 budget; the
    /// IPv4-mapped form of an address counts in the same /24, and the next
    /// /24 has its own budget.
    #[test]
    fn rotating_the_addresses_of_one_24_hits_the_24_budget_mapped_ones_included() {
        let (r, m, now) = fresh(60);
        let b = budgets(12, 0, 0);
        for i in 1..=3 {
            assert_eq!(challenge(&r, &m, b, &format!("192.0.2.{i}"), now), Ok(()));
        }
        assert_eq!(
            challenge(&r, &m, b, "::ffff:192.0.2.200", now),
            Err("challenge_rate_per_24")
        );
        assert_eq!(
            challenge(&r, &m, b, "192.0.2.99", now),
            Err("challenge_rate_per_24")
        );
        assert_eq!(challenge(&r, &m, b, "192.0.3.1", now), Ok(()));
    }

    /// 0 turns a level off, also for a network that was over its budget.
    #[test]
    fn a_zero_budget_turns_its_level_off() {
        let (r, m, now) = fresh(0);
        for i in 1..=4 {
            let _ = challenge(&r, &m, budgets(4, 4, 4), &format!("192.0.2.{i}"), now);
        }
        for i in 1..=100 {
            let addr = format!("192.0.2.{i}");
            assert_eq!(challenge(&r, &m, budgets(0, 4, 4), &addr, now), Ok(()));
            let v6 = format!("2001:db8:1:{i:x}::1");
            assert_eq!(challenge(&r, &m, budgets(4, 0, 0), &v6, now), Ok(()));
        }
    }

    /// A request refused at one level must not use up the others: not the
    /// /56 of a client refused by its /48, nor the address of a client
    /// refused by its /24 (governor's own check would take that cell).
    #[test]
    fn a_refusal_at_one_level_takes_nothing_from_the_others() {
        let now = Instant::now();
        let second = now + Duration::from_millis(1_100);
        // One a minute per /56, sixty (a burst of 15) per /48.
        let (r, m) = (RateLimits::new(&per_address(0)), Metrics::new());
        let b = budgets(0, 1, 60);
        for i in 1..=15 {
            assert_eq!(
                challenge(&r, &m, b, &format!("2001:db8:1:{i:x}00::1"), now),
                Ok(())
            );
        }
        for _ in 0..3 {
            assert_eq!(
                challenge(&r, &m, b, "2001:db8:1:ff00::1", now),
                Err("challenge_rate_per_48")
            );
        }
        assert_eq!(challenge(&r, &m, b, "2001:db8:1:ff00::1", second), Ok(()));
        // One a minute per address, sixty per /24.
        let (r, m) = (RateLimits::new(&per_address(1)), Metrics::new());
        let b = budgets(60, 0, 0);
        for i in 1..=15 {
            assert_eq!(challenge(&r, &m, b, &format!("192.0.2.{i}"), now), Ok(()));
        }
        assert_eq!(
            challenge(&r, &m, b, "192.0.2.99", now),
            Err("challenge_rate_per_24")
        );
        assert_eq!(challenge(&r, &m, b, "192.0.2.99", second), Ok(()));
        let third = second + Duration::from_millis(1_100);
        assert_eq!(
            challenge(&r, &m, b, "192.0.2.99", third),
            Err("challenge_rate"),
            "the address's own rate still holds"
        );
    }

    /// Drained network buckets are forgotten, so memory follows the
    /// networks seen recently, not all networks ever seen.
    #[test]
    fn drained_network_buckets_are_forgotten() {
        let (r, m, now) = fresh(0);
        for i in 0..50 {
            let _ = challenge(
                &r,
                &m,
                budgets(60, 60, 60),
                &format!("2001:db8:{i:x}::1"),
                now,
            );
        }
        assert_eq!(r.challenge_networks.lock().len(), 100);
        r.challenge_networks
            .forget_idle(now + Duration::from_millis(500));
        assert_eq!(r.challenge_networks.lock().len(), 100, "not yet drained");
        r.challenge_networks
            .forget_idle(now + Duration::from_secs(2));
        assert!(r.challenge_networks.lock().is_empty());
    }

    /// A botnet spread over more networks than are tracked cannot grow
    /// memory: once full, new networks go uncounted (their addresses are
    /// still limited) until a sweep frees drained buckets.
    #[test]
    fn network_buckets_stop_at_their_capacity_until_a_sweep() {
        let (b, now) = (NetworkBuckets::new(10), Instant::now());
        let budgets = budgets(0, 0, 4);
        let take = |addr: &str, at| {
            b.check_then_take(IpKey::of(ip(addr)), budgets, at, || Ok::<_, ()>(()))
                .is_ok()
        };
        for i in 0..30 {
            assert!(take(&format!("2001:db8:{i:x}::1"), now));
        }
        assert_eq!(b.lock().len(), 10);
        // A tracked network is still held to its budget.
        assert!(!take("2001:db8:0:1::1", now));
        b.forget_idle(now + Duration::from_secs(20));
        assert!(b.lock().is_empty());
        assert!(take("2001:db8:ff::1", now + Duration::from_secs(20)));
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
        let s = Settings::defaults();
        let ip = IpKey::of("203.0.113.1".parse().unwrap());
        r.check_solution(ip, &s, &m).unwrap();
        r.penalise(ip);
        assert!(
            matches!(r.check_solution(ip, &s, &m), Err(Limited { wait }) if (29..=30).contains(&retry_after_secs(wait)))
        );
        r.check_solution(IpKey::of("203.0.113.2".parse().unwrap()), &s, &m)
            .unwrap();
    }
}
