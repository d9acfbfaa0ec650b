//! Reader threads: the token lookup `/verify-token` waits on for a token
//! not in memory, on threads and connections of their own.
//!
//! Every other store call goes through `spawn_blocking` and the pool
//! ([`super::SqliteStore::call`]). That costs a new blocking task and the
//! wake of an idle pool thread per call, which for a lookup of a few pages
//! is most of the price: with 1 000 000 stored tokens drawn at random, a
//! powgate on one CPU answered 23 500 lookups/s that way and 36 500/s here
//! (`just bench` part (g)). A reader instead drains a queue and sleeps only
//! when it is empty, so under load one wake serves many lookups, and the
//! blocking rule still holds: no SQLite call runs on the async runtime.
//!
//! The readers' connections are their own, so lookups never wait for a
//! pool connection held by writes (a flood of issues, a large revocation),
//! and writes never wait behind a flood of unknown tokens.
//!
//! A reader runs one lookup at a time. Readers beyond the first are woken
//! only when the queue outgrows the readers awake ([`WAKE_ANOTHER_AFTER`]),
//! so that a reader stalled on the disk does not hold up the others' work,
//! yet a light load costs one wake, not one per reader.
//!
//! Readers run as `SCHED_BATCH` on Linux ([`run_as_batch`]): a woken
//! reader then waits for a busy CPU's current thread instead of preempting
//! it, so one wake serves the lookups queued meanwhile.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use crate::store::StoreError;

/// Most reader threads, whatever the CPU count: a lookup is short, and
/// more readers than CPUs only add wakes.
const MAX_READERS: usize = 4;

/// Queued lookups per awake reader beyond which another reader is woken.
const WAKE_ANOTHER_AFTER: usize = 16;

type Job = Box<dyn FnOnce(&Connection) + Send>;

struct Queue {
    jobs: VecDeque<Job>,
    /// Readers waiting on `ready` that no wake is meant for.
    asleep: usize,
    /// Wakes sent and not yet taken by a reader. A reader counts as awake
    /// from the moment its wake is sent, not when it first runs, so that
    /// the lookups queued before it runs do not each wake it again.
    wakes: usize,
    /// Set when the store is dropped: readers finish the queue and exit.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    readers: usize,
    /// Reader threads still running, for the test that they stop.
    running: AtomicUsize,
}

impl Shared {
    /// The queue. A panic never happens while it is locked (jobs run
    /// unlocked, and only push and pop run locked), so a poisoned lock is
    /// still consistent.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reader threads of one database file; they stop when the last clone
/// of the store that holds this is dropped.
pub(crate) struct Readers {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("readers", &self.shared.readers)
            .finish_non_exhaustive()
    }
}

impl Readers {
    /// Opens one connection per reader (as `open_connection` prepares it,
    /// then read-only) and starts the threads: one per CPU this process
    /// may run on, at most [`MAX_READERS`].
    ///
    /// # Errors
    /// When a connection cannot be opened or a thread cannot start.
    pub(crate) fn start(
        path: &Path,
        open_connection: impl Fn(&Path) -> rusqlite::Result<Connection>,
    ) -> anyhow::Result<Self> {
        let readers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_READERS);
        Self::start_n(path, open_connection, readers)
    }

    /// [`Self::start`] with `readers` threads.
    fn start_n(
        path: &Path,
        open_connection: impl Fn(&Path) -> rusqlite::Result<Connection>,
        readers: usize,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                asleep: 0,
                wakes: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            readers,
            running: AtomicUsize::new(0),
        });
        let handle = Self {
            shared: shared.clone(),
        };
        for i in 0..readers {
            let conn = open_connection(path)
                .and_then(|c| c.execute_batch("PRAGMA query_only = ON;").map(|()| c))
                .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
            let shared = shared.clone();
            shared.running.fetch_add(1, Ordering::SeqCst);
            let started = std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || {
                    run_as_batch();
                    serve(&shared, &conn);
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = started {
                handle.shared.running.fetch_sub(1, Ordering::SeqCst);
                return Err(anyhow::anyhow!(
                    "cannot start a database reader thread: {e}"
                ));
            }
        }
        Ok(handle)
    }

    /// Runs `f` on a reader's connection and waits for it without blocking
    /// the runtime.
    ///
    /// # Errors
    /// SQLite errors from `f`, or a panic inside `f` (as a fault; the
    /// reader goes on with the next lookup).
    pub(crate) async fn call<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            // The caller may have gone (its request timed out): nobody to tell.
            let _ = tx.send(f(c));
        });
        {
            let mut q = self.shared.lock();
            q.jobs.push_back(job);
            let awake = self.shared.readers - q.asleep;
            if q.asleep > 0 && (awake == 0 || q.jobs.len() > WAKE_ANOTHER_AFTER * awake) {
                q.asleep -= 1;
                q.wakes += 1;
                self.shared.ready.notify_one();
            }
        }
        match rx.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Fault(anyhow::anyhow!(
                "a database lookup panicked"
            ))),
        }
    }

    /// Readers asleep with no wake meant for them, and wakes not yet taken.
    #[cfg(test)]
    fn sleep_counts(&self) -> (usize, usize) {
        let q = self.shared.lock();
        (q.asleep, q.wakes)
    }

    /// Reader threads still running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> Arc<dyn Fn() -> usize + Send + Sync> {
        let shared = self.shared.clone();
        Arc::new(move || shared.running.load(Ordering::SeqCst))
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Makes the calling thread `SCHED_BATCH`: same weight and nice value,
/// but its wakes never preempt the thread running on its CPU.
///
/// Why: on a busy CPU the thread that queues a lookup is the runtime's
/// worker, and a woken reader used to preempt it at once (it had slept, so
/// the scheduler owed it time), ran the one lookup queued, and slept again:
/// two context switches per lookup. As a batch thread it runs when the
/// worker waits for sockets or its slice ends, and then drains every lookup
/// queued meanwhile. With 1 000 000 stored tokens drawn at random and
/// powgate on one CPU, that cut context switches from 27 000 to 2 300 a
/// second and raised the lookups answered by 4–20 % (README, part (g)). An
/// idle CPU still runs a woken reader at once; the delay it can add on a
/// saturated one is at most a scheduler slice.
fn run_as_batch() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads `param`, a valid, initialised
        // `sched_param` that outlives the call; pid 0 is the calling thread.
        #[allow(unsafe_code)]
        let failed =
            unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &raw const param) } != 0;
        if failed {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot make the SQLite reader threads SCHED_BATCH; lookups of tokens not in memory will cost more context switches"
            );
        }
    }
}

/// A reader's loop: the next job, else sleep until woken; exits once the
/// store is gone and the queue is empty.
fn serve(shared: &Shared, conn: &Connection) {
    let mut q = shared.lock();
    loop {
        if let Some(job) = q.jobs.pop_front() {
            drop(q);
            // A panicking job drops its sender, which tells its caller; the
            // reader itself must live on for everyone else's lookups.
            let _ = catch_unwind(AssertUnwindSafe(|| job(conn)));
            q = shared.lock();
            continue;
        }
        if q.closed {
            return;
        }
        q.asleep += 1;
        // Only a wake sent by `call` (or closing) ends the sleep: `wait`
        // may also return spuriously, and such a reader, still counted as
        // asleep, waits again.
        loop {
            q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
            if q.wakes > 0 {
                q.wakes -= 1;
                break;
            }
            if q.closed {
                q.asleep -= 1;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    fn readers(dir: &tempfile::TempDir, count: usize) -> Readers {
        Readers::start_n(&dir.path().join("r.db"), |p| Connection::open(p), count).unwrap()
    }

    /// Waits until every reader sleeps with no wake outstanding.
    async fn until_all_asleep(readers: &Readers, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while readers.sleep_counts() != (count, 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "readers never all went to sleep: (asleep, wakes) = {:?}",
                readers.sleep_counts()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// This thread's scheduling policy and nice value, fields 41 and 19 of
    /// `/proc/thread-self/stat` (counted after the name, which may hold
    /// spaces).
    #[cfg(target_os = "linux")]
    fn policy_and_nice() -> (u32, i32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (
            fields[41 - 3].parse().unwrap(),
            fields[19 - 3].parse().unwrap(),
        )
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn readers_run_as_batch_threads_at_the_process_nice_value() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 1);
        let (_, nice_here) = policy_and_nice();
        let (policy, nice) = readers.call(|_| Ok(policy_and_nice())).await.unwrap();
        assert_eq!(policy, libc::SCHED_BATCH as u32);
        assert_eq!(
            nice, nice_here,
            "SCHED_BATCH must not change the nice value"
        );
    }

    /// A burst wakes more readers than one, each lookup is answered, and
    /// afterwards every reader sleeps with no wake lost or left over, so
    /// the next single lookup is answered too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_wakes_more_readers_and_none_is_lost_afterwards() {
        const READERS: usize = 3;
        let dir = tempfile::tempdir().unwrap();
        let readers = Arc::new(readers(&dir, READERS));
        until_all_asleep(&readers, READERS).await;
        for burst in 0..3 {
            let lookups: Vec<_> = (0..(WAKE_ANOTHER_AFTER * READERS * 4))
                .map(|_| {
                    let readers = readers.clone();
                    tokio::spawn(async move {
                        readers
                            .call(|_| {
                                std::thread::sleep(Duration::from_millis(1));
                                Ok(std::thread::current().name().map(str::to_owned))
                            })
                            .await
                    })
                })
                .collect();
            let mut ran_on = HashSet::new();
            for lookup in lookups {
                let name = tokio::time::timeout(Duration::from_secs(10), lookup)
                    .await
                    .expect("a lookup was never answered")
                    .unwrap()
                    .unwrap();
                ran_on.insert(name);
            }
            assert!(ran_on.len() > 1, "burst {burst} ran on {ran_on:?} only");
            until_all_asleep(&readers, READERS).await;
            let one: i64 = tokio::time::timeout(
                Duration::from_secs(5),
                readers.call(|c| c.query_row("SELECT 1", [], |r| r.get(0))),
            )
            .await
            .expect("a lookup after the burst was never answered")
            .unwrap();
            assert_eq!(one, 1);
            until_all_asleep(&readers, READERS).await;
        }
    }
}
