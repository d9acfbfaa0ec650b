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
    /// Readers not waiting on `ready`.
    awake: usize,
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
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                awake: readers,
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
            let asleep = self.shared.readers - q.awake;
            if asleep > 0 && (q.awake == 0 || q.jobs.len() > WAKE_ANOTHER_AFTER * q.awake) {
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
        q.awake -= 1;
        q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
        q.awake += 1;
    }
}
