//! Per-address rate limits (governor), the wrong-answer back-off, and the
//! connection caps. Each refusal is counted in `powgate_limited_total`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client_ip::IpKey;
use crate::config::Limits;
use crate::error::ApiError;
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

pub struct RateLimits {
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

/// The `Retry-After` for a governor refusal.
pub(crate) fn wait_secs(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    retry_after_secs(not_until.wait_time_from(DefaultClock::default().now()))
}

impl RateLimits {
    pub fn new(limits: &Limits) -> Self {
        Self {
            challenges: keyed(limits.challenges_per_minute),
            solutions: keyed(limits.solutions_per_minute),
            backoff: quick_cache::sync::Cache::new(BACKOFF_CAPACITY),
            backoff_for: limits.wrong_answer_backoff,
        }
    }

    /// # Errors
    /// 429 with the wait when `ip` asked for too many challenges.
    pub fn check_challenge(&self, ip: IpKey, metrics: &Metrics) -> Result<(), ApiError> {
        if let Some(l) = &self.challenges {
            l.check_key(&ip).map_err(|n| {
                metrics.limited.with_label_values(&["challenge_rate"]).inc();
                ApiError::RateLimited(wait_secs(&n))
            })?;
        }
        Ok(())
    }

    /// # Errors
    /// 429 with the wait when `ip` is backing off after a wrong answer or
    /// submitted too often.
    pub fn check_solution(&self, ip: IpKey, metrics: &Metrics) -> Result<(), ApiError> {
        if let Some(until) = self.backoff.get(&ip) {
            let now = Instant::now();
            if until > now {
                metrics
                    .limited
                    .with_label_values(&["wrong_answer_backoff"])
                    .inc();
                return Err(ApiError::RateLimited(retry_after_secs(until - now)));
            }
            self.backoff.remove(&ip);
        }
        if let Some(l) = &self.solutions {
            l.check_key(&ip).map_err(|n| {
                metrics.limited.with_label_values(&["solution_rate"]).inc();
                ApiError::RateLimited(wait_secs(&n))
            })?;
        }
        Ok(())
    }

    /// Starts the back-off after a wrong answer from `ip`.
    pub fn penalise(&self, ip: IpKey) {
        if !self.backoff_for.is_zero() {
            self.backoff.insert(ip, Instant::now() + self.backoff_for);
        }
    }

    /// Forgets addresses that have been quiet, so memory stays bounded.
    pub fn forget_idle(&self) {
        for l in [&self.challenges, &self.solutions].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Open-connection counts, total and per peer address.
pub struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    exempt: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl std::fmt::Debug for ConnLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLimits")
            .field("max_total", &self.max_total)
            .field("max_per_ip", &self.max_per_ip)
            .finish_non_exhaustive()
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRefused {
    Total,
    PerIp,
}

/// Held for the life of one connection; releases its slot when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        exempt: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            exempt: Box::new(exempt),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a slot for a new connection from `ip`.
    ///
    /// # Errors
    /// Which cap is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, ConnRefused> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.0 >= self.max_total {
            return Err(ConnRefused::Total);
        }
        let per_ip = open.1.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip && !(self.exempt)(ip) {
            if *per_ip == 0 {
                open.1.remove(&ip);
            }
            return Err(ConnRefused::PerIp);
        }
        *per_ip += 1;
        open.0 += 1;
        Ok(ConnGuard {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
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

    #[test]
    fn connection_caps_and_exemption() {
        let trusted: IpAddr = "127.0.0.1".parse().unwrap();
        let l = ConnLimits::new(3, 1, move |ip| ip == trusted);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let g1 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), ConnRefused::PerIp);
        let t1 = l.admit(trusted).unwrap();
        let t2 = l.admit(trusted).unwrap();
        assert_eq!(l.admit(trusted).unwrap_err(), ConnRefused::Total);
        drop((g1, t1));
        assert_eq!(l.open(), 1);
        let _g2 = l.admit(a).unwrap();
        drop(t2);
    }

    #[test]
    fn backoff_after_a_wrong_answer() {
        let limits = Limits {
            challenges_per_minute: 0,
            solutions_per_minute: 0,
            wrong_answer_backoff: Duration::from_secs(30),
            max_connections: 1,
            max_connections_per_ip: 1,
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
            matches!(r.check_solution(ip, &m), Err(ApiError::RateLimited(s)) if (29..=30).contains(&s))
        );
        r.check_solution(IpKey::of("203.0.113.2".parse().unwrap()), &m)
            .unwrap();
    }
}
