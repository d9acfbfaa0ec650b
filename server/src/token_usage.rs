//! How much each token has been used: the request budgets of issue 15.
//!
//! Every request a token passes at the gate ([`crate::gate`]) is counted
//! here, and two live settings bound it:
//! - `token_requests_per_minute`: a sustained rate per token, with a burst
//!   of a whole minute's worth at once (a first visit to a heavy page is
//!   50–150 requests together). Over it, the gate answers `rate_limited`
//!   with the seconds to wait.
//! - `token_requests_total`: a lifetime budget. Past it the token is
//!   `exhausted` and must be refreshed, a solve at the refresh difficulty,
//!   which starts the count again.
//!
//! Only requests that pass count: a refusal (of either kind, or any other)
//! takes nothing, and allowlisted requests never reach a token.
//!
//! # On the hot path
//! Counting is one concurrent-map lookup by token id and a few atomics:
//! no lock of our own, no allocation once a token has its entry, and no
//! database write. The rate is a GCRA cell per token, a theoretical
//! arrival time updated by compare-and-swap. It is ours rather than
//! governor's keyed limiter because governor fixes the quota when the
//! limiter is built, and a PATCH of the rate must apply to the next request
//! without forgetting what every token has used; a theoretical arrival time
//! means the same thing under any rate, so reading the rate per request is
//! the whole "rebuild" (as in [`crate::limits`]). Time is the server's
//! clock in seconds, so within one second a token gets its burst and the
//! sustained rate refills once a second.
//!
//! # Persistence and crash tolerance
//! The lifetime count of a token starts from its row's `requests_used`.
//! [`TokenUsage::flush`] adds what was counted since to the rows in one
//! transaction, every [`FLUSH_INTERVAL`] from a background task
//! ([`crate::server::serve`]) and once more at graceful shutdown, after
//! the in-flight requests have drained. A crash (or `kill -9`) therefore
//! loses at most one flush interval of counts: the tokens used in those
//! seconds get that many requests back. Nothing is ever counted twice: a
//! flush moves exactly what it writes out of the pending count, and a
//! failed write puts it back.
//!
//! # Memory
//! An entry is about 100 bytes. One whose counts are all written, whose
//! rate cell has refilled and which has not been used for [`IDLE_SECS`] is
//! dropped by the flush; its token's cached record is dropped with it, so
//! the next request reads the row, which holds every count written, rather
//! than a record cached before them.
//!
//! A request that read a token's cached record just before its entry was
//! dropped would start a new entry from that record, which may predate the
//! counts written since. So the last few thousand dropped entries' counts
//! are remembered ([`DROPPED_MEMORY`]), and a new entry starts from the
//! larger of the record's count and the remembered one.
//!
//! A refresh ([`TokenUsage::restart`]) sets the row's count to 0 and the
//! entry's too. Counts still pending from before it are discarded, both
//! here and in the database, where a flush adds a count only while the
//! token's `refresh_count` is the one it was counted under.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use quick_cache::sync::Cache;

use crate::db::DbError;
use crate::db::tokens::RequestCount;
use crate::metrics::Metrics;
use crate::token::HashedToken;
use crate::token_store::{TokenRecord, TokenStore};

/// How often counts are written to the database; at most this much of
/// them is lost in a crash.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How long an entry stays after its token's last request once it has
/// nothing left to write.
pub(crate) const IDLE_SECS: i64 = 60;

/// Dropped entries whose counts are remembered for a new entry of the same
/// token; they are needed only in the moment after the drop (see the
/// module doc).
const DROPPED_MEMORY: usize = 4_096;

const MICROS: i64 = 1_000_000;
/// The rate's window: the burst is one window's worth of requests.
const WINDOW_MICROS: i64 = 60 * MICROS;

/// Why a token may not pass this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    /// Over `token_requests_per_minute`; room again in this many seconds.
    Rate { retry_after: u32 },
    /// At `token_requests_total`; a refresh starts the count again.
    Total,
}

/// One token's counts.
#[derive(Debug)]
struct Usage {
    /// The token, so a dropped entry can drop the cached record too.
    hash: HashedToken,
    /// The token's `refresh_count` these counts belong to.
    refresh_count: AtomicI64,
    /// Requests written to the row (or read from it).
    flushed: AtomicU64,
    /// Requests counted since, not yet written.
    pending: AtomicU64,
    /// GCRA theoretical arrival time, in microseconds since the epoch.
    tat: AtomicI64,
    /// Unix seconds of the last counted request.
    last_seen: AtomicI64,
    /// Requests per minute over the last flush interval, for the admin list.
    recent_per_minute: AtomicU64,
}

impl Usage {
    /// An entry for `rec`, starting from `used` requests.
    fn new(rec: &TokenRecord, used: u64, now: i64) -> Self {
        Self {
            hash: rec.hash,
            refresh_count: AtomicI64::new(rec.refresh_count),
            flushed: AtomicU64::new(used),
            pending: AtomicU64::new(0),
            tat: AtomicI64::new(0),
            last_seen: AtomicI64::new(now),
            recent_per_minute: AtomicU64::new(0),
        }
    }

    /// Requests used so far. Pending is read first: a flush adds to
    /// `flushed` before it takes from `pending`, so a read racing it can
    /// only count the moving requests twice, never miss them.
    fn used(&self) -> u64 {
        let pending = self.pending.load(Ordering::SeqCst);
        self.flushed.load(Ordering::SeqCst) + pending
    }

    /// Takes one request of the GCRA cell at `now_us`, or says how long
    /// until there is room. The emission interval is read per call, so a
    /// changed rate applies at once.
    fn take_rate(&self, now_us: i64, per_minute: u32) -> Result<(), Over> {
        let interval = WINDOW_MICROS / i64::from(per_minute.max(1));
        let mut tat = self.tat.load(Ordering::SeqCst);
        loop {
            let next = tat.max(now_us) + interval;
            let ahead = next - now_us;
            if ahead > WINDOW_MICROS {
                let wait = ((ahead - WINDOW_MICROS + MICROS - 1) / MICROS).max(1);
                return Err(Over::Rate {
                    retry_after: u32::try_from(wait).unwrap_or(u32::MAX),
                });
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }

    /// Counts one request unless that would pass `total` (0 = no budget).
    /// A compare-and-swap, so concurrent requests of one token never pass
    /// more than `total` between them.
    fn take_one(&self, total: u32) -> Result<u64, Over> {
        let mut pending = self.pending.load(Ordering::SeqCst);
        loop {
            let used = self.flushed.load(Ordering::SeqCst) + pending + 1;
            if total != 0 && used > u64::from(total) {
                return Err(Over::Total);
            }
            match self.pending.compare_exchange_weak(
                pending,
                pending + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(used),
                Err(seen) => pending = seen,
            }
        }
    }

    fn restart(&self, refresh_count: i64) {
        self.refresh_count.store(refresh_count, Ordering::SeqCst);
        self.flushed.store(0, Ordering::SeqCst);
        self.pending.store(0, Ordering::SeqCst);
    }
}

/// A token's usage as the admin list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UsageView {
    /// Requests used since issue or the last refresh, unwritten ones too.
    pub used: u64,
    /// Requests per minute over the last flush interval.
    pub recent_per_minute: u64,
}

impl UsageView {
    /// Whether this usage has reached `total` (0 = no budget): the one
    /// rule of exhaustion outside the hot path, which counts and checks in
    /// one step.
    pub(crate) fn exhausts(self, total: u32) -> bool {
        total != 0 && self.used >= u64::from(total)
    }
}

/// The usage of every token seen recently; see the module doc.
#[derive(Debug)]
pub(crate) struct TokenUsage {
    entries: DashMap<i64, Usage>,
    /// Counts of recently dropped entries, by token id: (refresh count,
    /// requests used).
    dropped: Cache<i64, (i64, u64)>,
    /// Serialises the moves of counts that are not the hot path's (flush,
    /// its undo, a refresh's restart), so they cannot interleave.
    bookkeeping: Mutex<FlushClock>,
}

/// When the last flush ran, for the recent rate.
#[derive(Debug, Default)]
struct FlushClock {
    last: Option<i64>,
}

impl Default for TokenUsage {
    fn default() -> Self {
        Self {
            entries: DashMap::new(),
            dropped: Cache::new(DROPPED_MEMORY),
            bookkeeping: Mutex::default(),
        }
    }
}

impl TokenUsage {
    fn bookkeeping(&self) -> std::sync::MutexGuard<'_, FlushClock> {
        // Nothing here is left half-done by a panic that matters: counts
        // are moved by single atomic steps.
        self.bookkeeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one passing request of `rec` at `now`, within
    /// `per_minute` (with a burst of as many) and `total`, 0 meaning no
    /// limit; returns the requests used with this one.
    ///
    /// # Errors
    /// [`Over`] when a limit refuses it; nothing is counted then.
    pub(crate) fn admit(
        &self,
        rec: &TokenRecord,
        now: i64,
        per_minute: u32,
        total: u32,
    ) -> Result<u64, Over> {
        // The read guard ends with this `if`, before `entry` below takes
        // the shard's write lock.
        if let Some(usage) = self.entries.get(&rec.id)
            && usage.refresh_count.load(Ordering::SeqCst) >= rec.refresh_count
        {
            return Self::admit_to(&usage, now, per_minute, total);
        }
        // First request since start-up or since the entry went idle, or a
        // refresh this entry has not heard of: the row's count is the start.
        let usage = self
            .entries
            .entry(rec.id)
            .and_modify(|u| {
                // No bookkeeping lock here (the flush takes it before the
                // map's): this shard's write lock already keeps the
                // flush's moves of this entry out.
                if u.refresh_count.load(Ordering::SeqCst) < rec.refresh_count {
                    u.restart(rec.refresh_count);
                }
            })
            .or_insert_with(|| Usage::new(rec, self.starting_count(rec), now))
            .downgrade();
        Self::admit_to(&usage, now, per_minute, total)
    }

    /// Where a new entry for `rec` starts: its row's count, or what the
    /// entry dropped a moment ago had counted, if more (the record may have
    /// been read before that entry's last flush).
    fn starting_count(&self, rec: &TokenRecord) -> u64 {
        let row = u64::try_from(rec.requests_used).unwrap_or(0);
        match self.dropped.get(&rec.id) {
            Some((refresh_count, used)) if refresh_count == rec.refresh_count => row.max(used),
            _ => row,
        }
    }

    fn admit_to(usage: &Usage, now: i64, per_minute: u32, total: u32) -> Result<u64, Over> {
        usage.last_seen.store(now, Ordering::Relaxed);
        if total != 0 && usage.used() >= u64::from(total) {
            return Err(Over::Total);
        }
        if per_minute != 0 {
            usage.take_rate(now.saturating_mul(MICROS), per_minute)?;
        }
        usage.take_one(total)
    }

    /// Whether `rec` has used up `total` (0 = no budget): such a token may
    /// be refreshed before it expires.
    pub(crate) fn is_exhausted(&self, rec: &TokenRecord, total: u32) -> bool {
        self.view(rec).exhausts(total)
    }

    /// `rec`'s usage, unwritten counts included.
    pub(crate) fn view(&self, rec: &TokenRecord) -> UsageView {
        let from_row = UsageView {
            used: u64::try_from(rec.requests_used).unwrap_or(0),
            recent_per_minute: 0,
        };
        match self.entries.get(&rec.id) {
            Some(u) if u.refresh_count.load(Ordering::SeqCst) >= rec.refresh_count => UsageView {
                used: u.used(),
                recent_per_minute: u.recent_per_minute.load(Ordering::Relaxed),
            },
            _ => from_row,
        }
    }

    /// Starts `token_id`'s count again after a refresh to `refresh_count`
    /// (its row's count is set to 0 by the same write that extends it).
    /// Observes what it had used in `powgate_token_requests_used`.
    pub(crate) fn restart(&self, token_id: i64, refresh_count: i64, metrics: &Metrics) {
        // The bookkeeping lock before the map's, everywhere.
        let _guard = self.bookkeeping();
        if let Some(u) = self.entries.get(&token_id) {
            #[allow(clippy::cast_precision_loss, reason = "a histogram sample")]
            metrics.token_requests_used.observe(u.used() as f64);
            u.restart(refresh_count);
        }
    }

    /// Writes every pending count to the database in one transaction, then
    /// drops idle entries (and their tokens' cached records). Returns how
    /// many requests were written.
    ///
    /// # Errors
    /// The database error; the counts stay pending for the next flush.
    pub(crate) async fn flush(
        &self,
        tokens: &TokenStore,
        now: i64,
        metrics: &Metrics,
    ) -> Result<u64, DbError> {
        let counts = self.take_pending(now);
        let written = counts.iter().map(|c| c.requests).sum();
        if !counts.is_empty()
            && let Err(e) = tokens.add_requests(counts.clone()).await
        {
            self.put_back(&counts);
            return Err(e);
        }
        let dropped = self.drop_idle(now, metrics);
        tokens.forget_cached(&dropped);
        Ok(written)
    }

    /// Moves every pending count to `flushed` and returns them; also
    /// updates each entry's recent rate.
    fn take_pending(&self, now: i64) -> Vec<RequestCount> {
        let mut clock = self.bookkeeping();
        // The first flush after start-up covers about one interval.
        let interval = i64::try_from(FLUSH_INTERVAL.as_secs()).unwrap_or(1);
        let elapsed = clock.last.map_or(interval, |last| (now - last).max(1));
        clock.last = Some(now);
        let mut out = Vec::new();
        for e in &self.entries {
            let n = e.pending.load(Ordering::SeqCst);
            let per_minute = n.saturating_mul(60) / u64::try_from(elapsed).unwrap_or(1);
            e.recent_per_minute.store(per_minute, Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            // `flushed` first: see `Usage::used`.
            e.flushed.fetch_add(n, Ordering::SeqCst);
            e.pending.fetch_sub(n, Ordering::SeqCst);
            out.push(RequestCount {
                token_id: *e.key(),
                refresh_count: e.refresh_count.load(Ordering::SeqCst),
                requests: n,
            });
        }
        out
    }

    /// Undoes [`Self::take_pending`] after a failed write, for entries
    /// still counting under the same refresh.
    fn put_back(&self, counts: &[RequestCount]) {
        let _guard = self.bookkeeping();
        for c in counts {
            if let Some(e) = self.entries.get(&c.token_id)
                && e.refresh_count.load(Ordering::SeqCst) == c.refresh_count
            {
                e.pending.fetch_add(c.requests, Ordering::SeqCst);
                e.flushed.fetch_sub(c.requests, Ordering::SeqCst);
            }
        }
    }

    /// Drops entries with nothing to write, a refilled rate cell and no
    /// request for [`IDLE_SECS`]; returns their tokens.
    fn drop_idle(&self, now: i64, metrics: &Metrics) -> Vec<HashedToken> {
        let _guard = self.bookkeeping();
        let mut dropped = Vec::new();
        self.entries.retain(|id, u| {
            let idle = u.pending.load(Ordering::SeqCst) == 0
                && u.tat.load(Ordering::SeqCst) <= now.saturating_mul(MICROS)
                && u.last_seen.load(Ordering::Relaxed) <= now - IDLE_SECS;
            if idle {
                let used = u.used();
                #[allow(clippy::cast_precision_loss, reason = "a histogram sample")]
                metrics.token_requests_used.observe(used as f64);
                self.dropped
                    .insert(*id, (u.refresh_count.load(Ordering::SeqCst), used));
                dropped.push(u.hash);
            }
            !idle
        });
        dropped
    }

    /// Entries held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, requests_used: i64) -> TokenRecord {
        TokenRecord {
            id,
            hash: HashedToken([u8::try_from(id).unwrap(); 32]),
            created_at: 0,
            expires_at: i64::MAX,
            revoked_at: None,
            refresh_count: 0,
            requests_used,
            ips: Vec::new(),
        }
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn the_burst_is_a_minute_of_requests_and_the_rate_refills_each_second() {
        let usage = TokenUsage::default();
        let rec = record(1, 0);
        for _ in 0..120 {
            usage.admit(&rec, NOW, 120, 0).unwrap();
        }
        assert_eq!(
            usage.admit(&rec, NOW, 120, 0),
            Err(Over::Rate { retry_after: 1 })
        );
        // 120 per minute is 2 a second.
        usage.admit(&rec, NOW + 1, 120, 0).unwrap();
        usage.admit(&rec, NOW + 1, 120, 0).unwrap();
        assert!(usage.admit(&rec, NOW + 1, 120, 0).is_err());
        assert_eq!(usage.view(&rec).used, 122, "refusals are not counted");
    }

    #[test]
    fn retry_after_is_the_wait_until_the_next_request_fits() {
        let usage = TokenUsage::default();
        let rec = record(1, 0);
        usage.admit(&rec, NOW, 1, 0).unwrap();
        assert_eq!(
            usage.admit(&rec, NOW + 10, 1, 0),
            Err(Over::Rate { retry_after: 50 })
        );
        usage.admit(&rec, NOW + 60, 1, 0).unwrap();
    }

    /// A governor quota is fixed when the limiter is built; ours is read
    /// per request, and changing it must not forget what was used.
    #[test]
    fn a_changed_rate_applies_to_the_next_request_and_keeps_what_was_used() {
        let usage = TokenUsage::default();
        let rec = record(1, 0);
        for _ in 0..600 {
            usage.admit(&rec, NOW, 600, 0).unwrap();
        }
        assert!(usage.admit(&rec, NOW, 1_200, 0).is_err(), "still used up");
        let passed_in_a_second = (0..100)
            .filter(|_| usage.admit(&rec, NOW + 1, 1_200, 0).is_ok())
            .count();
        assert_eq!(passed_in_a_second, 20, "1 200 a minute refills 20 a second");
        assert!(
            usage.admit(&rec, NOW + 1, 0, 0).is_ok(),
            "0 turns the rate off"
        );
    }

    #[test]
    fn the_lifetime_budget_starts_from_the_row_and_refuses_at_its_end() {
        let usage = TokenUsage::default();
        let rec = record(1, 8);
        assert_eq!(usage.admit(&rec, NOW, 0, 10), Ok(9));
        assert_eq!(usage.admit(&rec, NOW, 0, 10), Ok(10));
        assert_eq!(usage.admit(&rec, NOW, 0, 10), Err(Over::Total));
        assert!(usage.is_exhausted(&rec, 10));
        assert!(!usage.is_exhausted(&rec, 0), "0 turns the budget off");
        assert_eq!(usage.admit(&rec, NOW, 0, 0), Ok(11));
    }

    #[test]
    fn concurrent_requests_of_one_token_never_pass_more_than_its_budget() {
        let usage = TokenUsage::default();
        let rec = record(1, 0);
        let passed = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        if usage.admit(&rec, NOW, 0, 2_500).is_ok() {
                            passed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
            // Flushes racing the counting must not let any more through.
            s.spawn(|| {
                for _ in 0..200 {
                    let _ = usage.take_pending(NOW);
                }
            });
        });
        assert_eq!(passed.load(Ordering::SeqCst), 2_500);
        assert_eq!(usage.view(&rec).used, 2_500);
    }

    #[test]
    fn a_flush_moves_exactly_what_it_writes_and_a_failed_one_puts_it_back() {
        let usage = TokenUsage::default();
        let rec = record(1, 5);
        for _ in 0..3 {
            usage.admit(&rec, NOW, 0, 0).unwrap();
        }
        let counts = usage.take_pending(NOW);
        assert_eq!(
            counts,
            [RequestCount {
                token_id: 1,
                refresh_count: 0,
                requests: 3
            }]
        );
        assert_eq!(usage.view(&rec).used, 8);
        assert!(usage.take_pending(NOW).is_empty(), "nothing written twice");
        usage.put_back(&counts);
        assert_eq!(usage.view(&rec).used, 8);
        assert_eq!(usage.take_pending(NOW), counts);
    }

    #[test]
    fn a_refresh_restarts_the_count_and_drops_what_was_pending() {
        let (usage, metrics) = (TokenUsage::default(), Metrics::new());
        let mut rec = record(1, 0);
        for _ in 0..4 {
            usage.admit(&rec, NOW, 0, 4).unwrap();
        }
        assert_eq!(usage.admit(&rec, NOW, 0, 4), Err(Over::Total));
        usage.restart(1, 1, &metrics);
        rec.refresh_count = 1;
        assert_eq!(usage.view(&rec).used, 0);
        assert!(usage.take_pending(NOW).is_empty());
        assert_eq!(usage.admit(&rec, NOW, 0, 4), Ok(1));
    }

    /// A refresh this process did not see restart the entry (its record
    /// says a later refresh) starts the count from the record.
    #[test]
    fn a_record_from_a_later_refresh_restarts_a_stale_entry() {
        let usage = TokenUsage::default();
        let mut rec = record(1, 0);
        for _ in 0..4 {
            usage.admit(&rec, NOW, 0, 4).unwrap();
        }
        rec.refresh_count = 1;
        assert_eq!(usage.admit(&rec, NOW, 0, 4), Ok(1));
    }

    /// The token cache may evict a record and read it again, with the
    /// flushed counts in its `requests_used`; the live entry already holds
    /// them, so they must not be added twice (nor the unflushed ones lost).
    #[test]
    fn a_record_read_again_after_a_flush_does_not_count_its_requests_twice() {
        let usage = TokenUsage::default();
        for _ in 0..3 {
            usage.admit(&record(1, 0), NOW, 0, 0).unwrap();
        }
        let _ = usage.take_pending(NOW);
        usage.admit(&record(1, 0), NOW, 0, 0).unwrap();
        let reread = record(1, 3);
        assert_eq!(usage.admit(&reread, NOW, 0, 0), Ok(5));
        assert_eq!(usage.view(&reread).used, 5);
    }

    #[test]
    fn only_idle_fully_written_entries_are_dropped() {
        let (usage, metrics) = (TokenUsage::default(), Metrics::new());
        let (busy, idle) = (record(1, 0), record(2, 0));
        usage.admit(&idle, NOW, 60, 0).unwrap();
        usage.admit(&busy, NOW + IDLE_SECS, 60, 0).unwrap();
        assert!(
            usage.drop_idle(NOW + IDLE_SECS, &metrics).is_empty(),
            "pending counts"
        );
        let _ = usage.take_pending(NOW + IDLE_SECS);
        assert_eq!(usage.drop_idle(NOW + IDLE_SECS, &metrics), [idle.hash]);
        assert_eq!(usage.len(), 1);
        // The next request of a dropped token starts from its row.
        assert_eq!(usage.admit(&record(2, 1), NOW + IDLE_SECS, 60, 0), Ok(2));
    }

    /// A request that read its token's record before the entry's last
    /// flush, and arrives just after the entry is dropped, must not start
    /// the count again from that old record.
    #[test]
    fn a_record_older_than_a_dropped_entry_does_not_give_its_requests_back() {
        let (usage, metrics) = (TokenUsage::default(), Metrics::new());
        let stale = record(1, 0);
        for _ in 0..5 {
            usage.admit(&stale, NOW, 0, 0).unwrap();
        }
        let _ = usage.take_pending(NOW);
        assert_eq!(usage.drop_idle(NOW + IDLE_SECS, &metrics).len(), 1);
        assert_eq!(usage.admit(&stale, NOW + IDLE_SECS, 0, 0), Ok(6));
        // After a refresh the remembered count no longer applies.
        let mut refreshed = record(1, 0);
        refreshed.refresh_count = 1;
        let _ = usage.take_pending(NOW + 2 * IDLE_SECS);
        usage.drop_idle(NOW + 2 * IDLE_SECS, &metrics);
        assert_eq!(usage.admit(&refreshed, NOW + 2 * IDLE_SECS, 0, 0), Ok(1));
    }
}
