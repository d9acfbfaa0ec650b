//! Server-side argon2id verification: bounded, off the async runtime, on
//! reused memory blocks, and at a lower CPU priority than request handling.
//!
//! Verifications run on `permits` dedicated threads, each owning one memory
//! block, created when the verifier is. At most `queue` more may wait for a
//! thread. A request beyond both is told 503 straight away, so a flood of
//! submissions can neither pile up without bound nor grow memory past
//! `permits × m`.
//!
//! The threads run at the configured nice value (10 by default). A flood of
//! wrong solutions keeps every verification thread busy; at the normal
//! priority they would take their full share of the CPU from the threads
//! that answer `/verify-token` for visitors who already hold a token. Lowered,
//! they use what request handling leaves, which on an idle machine is all of
//! it. They are dedicated threads rather than tokio's blocking pool because
//! a thread cannot raise its priority back, and the pool's threads also run
//! the database calls.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pow::{ChallengeClaims, Hasher};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

#[derive(Debug)]
pub struct Verifier {
    /// Slots for running plus waiting verifications.
    admission: Arc<Semaphore>,
    /// Work for the verification threads. Unbounded in type only: the
    /// admission semaphore bounds what is ever in it.
    jobs: mpsc::Sender<Job>,
    capacity: usize,
}

/// A place in the verification queue, taken before the challenge is spent so
/// that a busy server never burns a client's challenge.
#[derive(Debug)]
pub struct Reservation {
    admission: OwnedSemaphorePermit,
    jobs: mpsc::Sender<Job>,
}

/// Why a verification did not produce a yes or no.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("verification queue is full")]
    Busy,
    #[error("argon2: {0}")]
    Hash(#[from] pow::HashError),
    #[error("the verification thread stopped before answering")]
    Lost,
}

/// Outcome of one verification.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict {
    pub valid: bool,
    /// Time spent hashing, not waiting.
    pub hash_seconds: f64,
}

#[derive(Debug)]
struct Job {
    claims: ChallengeClaims,
    nonce: u64,
    reply: oneshot::Sender<Result<Verdict, VerifyError>>,
    /// Held until the answer is sent, so the queue slot frees with it.
    _admission: OwnedSemaphorePermit,
}

impl Verifier {
    /// Starts `permits` verification threads at CPU priority `nice`.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub(crate) fn new(permits: usize, queue: usize, nice: i32) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..permits {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("powgate-argon2-{n}"))
                .spawn(move || run_thread(&rx, nice))?;
        }
        Ok(Self {
            admission: Arc::new(Semaphore::new(permits + queue)),
            jobs,
            capacity: permits + queue,
        })
    }

    /// Takes a queue slot without waiting.
    ///
    /// # Errors
    /// [`VerifyError::Busy`] when running and waiting slots are all taken.
    pub fn reserve(&self) -> Result<Reservation, VerifyError> {
        let admission = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| VerifyError::Busy)?;
        Ok(Reservation {
            admission,
            jobs: self.jobs.clone(),
        })
    }

    /// Verifications running or waiting right now.
    pub(crate) fn queue_depth(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }
}

impl Reservation {
    /// Hands the check to a verification thread and waits for its answer.
    ///
    /// # Errors
    /// Allocation failure of a memory block, or a verification thread that
    /// panicked.
    pub(crate) async fn verify(
        self,
        claims: ChallengeClaims,
        nonce: u64,
    ) -> Result<Verdict, VerifyError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            claims,
            nonce,
            reply,
            _admission: self.admission,
        };
        self.jobs.send(job).map_err(|_| VerifyError::Lost)?;
        answer.await.map_err(|_| VerifyError::Lost)?
    }
}

/// One verification thread: lowers its own priority, then verifies jobs on
/// its memory block until the verifier is dropped.
fn run_thread(rx: &Mutex<mpsc::Receiver<Job>>, nice: i32) {
    lower_priority(nice);
    let mut hasher: Option<Hasher> = None;
    loop {
        // The lock is held only while waiting for a job, never while hashing.
        let job = match rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv()
        {
            Ok(job) => job,
            Err(mpsc::RecvError) => return,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            verify_on(&mut hasher, &job.claims, job.nonce)
        }));
        match outcome {
            // The requester may have gone (its connection closed); nobody
            // is left to tell.
            Ok(result) => drop(job.reply.send(result)),
            Err(_) => {
                tracing::error!("argon2 verification panicked; its memory block is discarded");
                hasher = None;
                // Dropping the reply tells the requester: VerifyError::Lost.
            }
        }
    }
}

fn verify_on(
    hasher: &mut Option<Hasher>,
    claims: &ChallengeClaims,
    nonce: u64,
) -> Result<Verdict, VerifyError> {
    let hasher = match hasher {
        Some(h) => h,
        None => hasher.insert(Hasher::new(claims.params)?),
    };
    let started = Instant::now();
    let valid = hasher.verify(claims, nonce)?;
    Ok(Verdict {
        valid,
        hash_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Sets the calling thread's nice value. On Linux the nice value belongs to
/// the thread, so this leaves the rest of the process alone.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        tracing::warn!(nice, error = %e, "cannot lower the argon2 threads' priority");
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(
        nice,
        "POW_VERIFY_NICE is only applied on Linux; argon2 runs at normal priority"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's nice value, from procfs (`thread-self` for the caller).
    #[cfg(target_os = "linux")]
    fn thread_nice(task: &str) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{task}/stat")).unwrap();
        // nice is field 19; fields 3 on follow the parenthesised name.
        let after = stat.rsplit_once(')').unwrap().1;
        after.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn verification_threads_are_niced_and_the_caller_is_not() {
        let before = thread_nice("thread-self");
        let _v = Verifier::new(2, 0, 7).unwrap();
        let mut found = 0;
        for _ in 0..200 {
            found = 0;
            for entry in std::fs::read_dir("/proc/self/task").unwrap() {
                let task = format!("self/task/{}", entry.unwrap().file_name().to_str().unwrap());
                let comm =
                    std::fs::read_to_string(format!("/proc/{task}/comm")).unwrap_or_default();
                if comm.starts_with("powgate-argon2") && thread_nice(&task) == before + 7 {
                    found += 1;
                }
            }
            if found >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(found >= 2, "expected two argon2 threads at nice +7");
        assert_eq!(thread_nice("thread-self"), before);
    }
}
