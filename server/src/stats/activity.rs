//! Per-minute counts of challenges issued, solved and failed over the last
//! day, summed into hour/day windows and timelines for the admin page.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Minutes of history kept.
const MINUTES: usize = 24 * 60;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Bucket {
    /// Unix seconds at the start of the bucket.
    pub start: i64,
    pub issued: u64,
    pub solved: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Window {
    pub hour: u64,
    pub day: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Counts {
    pub issued: Window,
    pub solved: Window,
    pub failed: Window,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Timeline {
    pub bucket_seconds: i64,
    pub buckets: Vec<Bucket>,
}

/// Per-minute buckets, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Activity(Mutex<VecDeque<Bucket>>);

impl Activity {
    fn with<R>(&self, f: impl FnOnce(&mut VecDeque<Bucket>) -> R) -> R {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn bump(&self, now: i64, f: impl FnOnce(&mut Bucket)) {
        let start = now - now.rem_euclid(60);
        self.with(|minutes| {
            if minutes.back().is_none_or(|b| b.start != start) {
                minutes.push_back(Bucket {
                    start,
                    ..Bucket::default()
                });
                while minutes.len() > MINUTES {
                    minutes.pop_front();
                }
            }
            if let Some(b) = minutes.back_mut() {
                f(b);
            }
        });
    }

    pub(crate) fn record_issued(&self, now: i64) {
        self.bump(now, |b| b.issued += 1);
    }

    pub(crate) fn record_solved(&self, now: i64) {
        self.bump(now, |b| b.solved += 1);
    }

    pub(crate) fn record_failed(&self, now: i64) {
        self.bump(now, |b| b.failed += 1);
    }

    fn window(buckets: &VecDeque<Bucket>, now: i64, secs: i64, f: impl Fn(&Bucket) -> u64) -> u64 {
        buckets.iter().filter(|b| b.start > now - secs).map(f).sum()
    }

    pub(crate) fn counts(&self, now: i64) -> Counts {
        self.with(|m| Counts {
            issued: Window {
                hour: Self::window(m, now, 3600, |b| b.issued),
                day: Self::window(m, now, 86_400, |b| b.issued),
            },
            solved: Window {
                hour: Self::window(m, now, 3600, |b| b.solved),
                day: Self::window(m, now, 86_400, |b| b.solved),
            },
            failed: Window {
                hour: Self::window(m, now, 3600, |b| b.failed),
                day: Self::window(m, now, 86_400, |b| b.failed),
            },
        })
    }

    /// `count` buckets of `bucket_seconds` each, ending with the current one.
    pub(crate) fn timeline(&self, now: i64, bucket_seconds: i64, count: usize) -> Timeline {
        let last = now - now.rem_euclid(bucket_seconds);
        let first = last - bucket_seconds * (i64::try_from(count).unwrap_or(1) - 1);
        let mut buckets: Vec<Bucket> = (0..count)
            .map(|i| Bucket {
                start: first + bucket_seconds * i64::try_from(i).unwrap_or(0),
                ..Bucket::default()
            })
            .collect();
        self.with(|minutes| {
            for m in minutes.iter() {
                if m.start < first {
                    continue;
                }
                let Ok(i) = usize::try_from((m.start - first) / bucket_seconds) else {
                    continue;
                };
                if let Some(b) = buckets.get_mut(i) {
                    b.issued += m.issued;
                    b.solved += m.solved;
                    b.failed += m.failed;
                }
            }
        });
        Timeline {
            bucket_seconds,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_timeline_respect_age() {
        let s = Activity::default();
        let now = 10_000_000;
        s.record_issued(now - 7200);
        s.record_issued(now - 30);
        s.record_failed(now);
        let c = s.counts(now);
        assert_eq!((c.issued.hour, c.issued.day, c.failed.hour), (1, 2, 1));
        let t = s.timeline(now, 3600, 24);
        assert_eq!(t.buckets.len(), 24);
        assert_eq!(t.buckets.iter().map(|b| b.issued).sum::<u64>(), 2);
        assert_eq!(t.buckets.last().unwrap().failed, 1);
    }
}
