//! Pressure: how many challenges were issued in the last [`WINDOW_SECS`]
//! seconds, counted in a ring of per-second atomic slots, so issuing a
//! challenge takes no lock.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Seconds of history: long enough that one busy second is not a surge,
/// short enough that the multiplier falls half a minute after a wave ends.
pub(crate) const WINDOW_SECS: usize = 30;

/// Per-second counts of the last [`WINDOW_SECS`] seconds. Each slot packs
/// the second it counts (its low 32 bits) above the count (32 bits), so
/// a slot last written a lap ago is told apart from the current second and
/// restarted with one compare-and-swap.
#[derive(Debug)]
pub(crate) struct Pressure {
    slots: [AtomicU64; WINDOW_SECS],
}

impl Default for Pressure {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The pressure as the quote uses it, with its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct PressureFactor {
    /// Challenges issued in the last 30 s.
    pub challenges_last_30s: u64,
    /// The same as a rate per minute.
    pub per_minute: u64,
    /// The live `pressure_baseline_per_minute`.
    pub baseline_per_minute: u32,
    /// The exponent: `floor(log2(per_minute / baseline))` from twice the
    /// baseline on, capped by `j_max`.
    pub j: u32,
    /// log2 of the live `pressure_difficulty_max`.
    pub j_max: u32,
    /// `2^j`.
    pub multiplier: u64,
}

/// The slot's tag for second `now`: its low 32 bits (a lap of 136 years).
fn tag(now: i64) -> u64 {
    now.cast_unsigned() & u64::from(u32::MAX)
}

fn slot_index(now: i64) -> usize {
    // rem_euclid of a positive modulus is in 0..WINDOW_SECS.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = now.rem_euclid(WINDOW_SECS as i64) as usize;
    i
}

impl Pressure {
    /// Counts one challenge issued at `now`.
    pub(crate) fn record(&self, now: i64) {
        let tag = tag(now);
        let _ = self.slots[slot_index(now)].fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |packed| {
                let count = if packed >> 32 == tag {
                    (packed & u64::from(u32::MAX))
                        .saturating_add(1)
                        .min(u64::from(u32::MAX))
                } else {
                    1
                };
                Some(tag << 32 | count)
            },
        );
    }

    /// Challenges issued in the [`WINDOW_SECS`] seconds ending at `now`.
    pub(crate) fn recent(&self, now: i64) -> u64 {
        (0..WINDOW_SECS as i64)
            .map(|back| now - back)
            .map(|second| {
                let packed = self.slots[slot_index(second)].load(Ordering::Relaxed);
                if packed >> 32 == tag(second) {
                    packed & u64::from(u32::MAX)
                } else {
                    0
                }
            })
            .sum()
    }

    /// The multiplier at `now` against `baseline_per_minute`, capped at
    /// `2^j_max`.
    pub(crate) fn factor(&self, now: i64, baseline_per_minute: u32, j_max: u32) -> PressureFactor {
        let recent = self.recent(now);
        let per_minute = recent.saturating_mul(60 / WINDOW_SECS as u64);
        let j = exponent(per_minute, baseline_per_minute).min(j_max);
        PressureFactor {
            challenges_last_30s: recent,
            per_minute,
            baseline_per_minute,
            j,
            j_max,
            multiplier: 1 << j,
        }
    }
}

/// `floor(log2(rate / baseline))`, 0 below twice the baseline: ×2 from
/// twice the normal rate, ×4 from four times, one doubling of the price
/// per doubling of the rate.
fn exponent(per_minute: u64, baseline: u32) -> u32 {
    let ratio = per_minute / u64::from(baseline.max(1));
    // ilog2 of a u64 is at most 63.
    ratio.checked_ilog2().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    #[test]
    fn the_exponent_doubles_the_price_per_doubling_of_the_rate() {
        assert_eq!(exponent(0, 60), 0);
        assert_eq!(exponent(60, 60), 0, "normal");
        assert_eq!(exponent(119, 60), 0);
        assert_eq!(exponent(120, 60), 1, "twice normal → ×2");
        assert_eq!(exponent(240, 60), 2, "a surge of 4× the baseline → ×4");
        assert_eq!(exponent(480, 60), 3);
        assert_eq!(exponent(u64::MAX, 1), 63);
    }

    #[test]
    fn a_burst_raises_the_pressure_and_it_falls_30_seconds_later() {
        let p = Pressure::default();
        assert_eq!(p.factor(T0, 60, 3).multiplier, 1);
        // 120 challenges in 10 s: 240 per minute over the window, 4×.
        for i in 0..120 {
            p.record(T0 + i / 12);
        }
        let f = p.factor(T0 + 10, 60, 3);
        assert_eq!((f.challenges_last_30s, f.per_minute), (120, 240));
        assert_eq!((f.j, f.multiplier), (2, 4));
        assert_eq!(p.factor(T0 + 10, 60, 1).multiplier, 2, "ceiling ×2");
        assert_eq!(p.factor(T0 + 10, 60, 0).multiplier, 1, "off");
        // The last second of the burst leaves the window 30 s after it.
        assert_eq!(p.recent(T0 + 9 + 29), 12, "12 per second");
        assert_eq!(p.recent(T0 + 9 + 30), 0);
        assert_eq!(p.factor(T0 + 40, 60, 3).multiplier, 1);
    }

    /// A slot last written a lap ago must not add its old count to the
    /// second that reuses it.
    #[test]
    fn a_slot_from_an_earlier_lap_restarts_at_one() {
        let p = Pressure::default();
        for _ in 0..50 {
            p.record(T0);
        }
        p.record(T0 + WINDOW_SECS as i64);
        assert_eq!(p.recent(T0 + WINDOW_SECS as i64), 1);
    }

    #[test]
    fn concurrent_challenges_all_count() {
        let p = Pressure::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        p.record(T0);
                    }
                });
            }
        });
        assert_eq!(p.recent(T0), 4000);
    }
}
