//! Server-side argon2id verification: bounded, off the async runtime, and on
//! reused memory blocks.
//!
//! Two limits apply. At most `permits` verifications run at once (one
//! blocking thread and one memory block each), and at most `queue` more may
//! wait for a permit. A request beyond both is told 503 straight away, so a
//! flood of submissions can neither pile up without bound nor grow memory
//! past `permits × m`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pow::{ChallengeClaims, Hasher};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Verifier {
    /// Slots for running plus waiting verifications.
    admission: Arc<Semaphore>,
    /// Slots for running verifications.
    running: Arc<Semaphore>,
    /// Idle memory blocks; never more than `permits` exist.
    hashers: Arc<Mutex<Vec<Hasher>>>,
    capacity: usize,
}

/// A place in the verification queue, taken before the challenge is spent so
/// that a busy server never burns a client's challenge.
#[derive(Debug)]
pub struct Reservation {
    _admission: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
    hashers: Arc<Mutex<Vec<Hasher>>>,
}

/// Why a verification did not produce a yes or no.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("verification queue is full")]
    Busy,
    #[error("argon2: {0}")]
    Hash(#[from] pow::HashError),
    #[error("verification task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Outcome of one verification.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    pub valid: bool,
    /// Time spent hashing, not waiting.
    pub hash_seconds: f64,
}

impl Verifier {
    pub fn new(permits: usize, queue: usize) -> Self {
        Self {
            admission: Arc::new(Semaphore::new(permits + queue)),
            running: Arc::new(Semaphore::new(permits)),
            hashers: Arc::new(Mutex::new(Vec::with_capacity(permits))),
            capacity: permits + queue,
        }
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
            _admission: admission,
            running: self.running.clone(),
            hashers: self.hashers.clone(),
        })
    }

    /// Verifications running or waiting right now.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }
}

impl Reservation {
    /// Waits for a running slot, then hashes on the blocking pool.
    ///
    /// # Errors
    /// Allocation failure of a memory block, or a panic in the task.
    pub async fn verify(self, claims: ChallengeClaims, nonce: u64) -> Result<Verdict, VerifyError> {
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| VerifyError::Busy)?;
        let hashers = self.hashers.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let _running = running;
            let pooled = hashers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let mut hasher = match pooled {
                Some(h) => h,
                None => Hasher::new(claims.params)?,
            };
            let started = Instant::now();
            let valid = hasher.verify(&claims, nonce);
            let hash_seconds = started.elapsed().as_secs_f64();
            hashers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(hasher);
            Ok::<_, VerifyError>(Verdict {
                valid: valid?,
                hash_seconds,
            })
        })
        .await??;
        drop(self);
        Ok(verdict)
    }
}
