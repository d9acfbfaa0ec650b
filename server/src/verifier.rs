//! Server-side argon2id verification: bounded, fair, off the async runtime,
//! on reused memory blocks, and at a lower CPU priority than request
//! handling.
//!
//! # Turns
//! Verifications run on `permits` dedicated threads, each owning one memory
//! block, created when the verifier is. A submission first asks for a
//! *turn* on one of them ([`Verifier::turn`]) and only then spends its
//! challenge, so a submission that is not verified keeps its challenge.
//!
//! Turns are granted by *spot*: the submission's reputation bucket first
//! (see [`crate::reputation`]: 0 for an address and networks that sent no
//! recent wrong answer), then its arrival. A finishing verification hands
//! its thread straight to the best waiter. A flood of wrong answers thus
//! queues mostly behind itself: a correct solution from a clean network
//! overtakes every waiter from a penalised one.
//!
//! The waiting list holds at most `queue` waiters (each a few dozen bytes
//! here, plus its open request). When it is full, a newcomer with a better
//! spot than the worst waiter evicts that waiter; otherwise the newcomer is
//! turned away. A waiter that got no turn within its `max_wait` leaves the
//! list. Either way the client is told [`Queued`], with how many are ahead
//! of it, and resubmits; its arrival is remembered by challenge id (see
//! [`PLACE_MEMORY_SECS`]), so the resubmission takes up its old place in
//! line instead of joining the back. Memory is bounded by `queue` and
//! [`PLACES_CAPACITY`], and by `permits × m` for the argon2 blocks.
//!
//! # Priority of the threads
//! The threads run at the configured nice value (10 by default). A flood of
//! wrong solutions keeps every verification thread busy; at the normal
//! priority they would take their full share of the CPU from the threads
//! that answer `/verify-token` for visitors who already hold a token. Lowered,
//! they use what request handling leaves, which on an idle machine is all of
//! it. They are dedicated threads rather than tokio's blocking pool because
//! a thread cannot raise its priority back, and the pool's threads also run
//! the database calls.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pow::{ChallengeClaims, Hasher};

use crate::reputation::WORST_BUCKET;
use tokio::sync::oneshot;

/// How long a place in line is remembered after its submission was last
/// seen (and never past its challenge's expiry): long enough for a client
/// told [`Queued`] to come back after its `Retry-After`, short enough that
/// an abandoned place is soon forgotten.
pub(crate) const PLACE_MEMORY_SECS: i64 = 60;

/// Most places remembered, about 60 bytes each (4 MB). Only submissions
/// that had to wait are remembered, and only for a minute: this is every
/// queued submission of a minute at over 1 000 a second. The cache keeps
/// the places asked for again (a waiting visitor resubmits every few
/// seconds) over one-off ones.
pub(crate) const PLACES_CAPACITY: usize = 65_536;

/// Every this many turns, the thread goes to the earliest arrival in line
/// whatever its bucket. Strict priority alone would starve a visitor who
/// shares a /24 or a carrier-grade NAT with an offender for as long as
/// clean-looking submissions keep coming (a scattered flood's fresh
/// addresses are clean until verified); this keeps it moving at one turn in
/// eight, in order of arrival, while clean networks keep seven in eight.
pub(crate) const OLDEST_EVERY: u64 = 8;

#[derive(Debug)]
pub struct Verifier {
    line: Arc<Line>,
    /// Work for the verification threads. Unbounded in type only: a job is
    /// sent only by the holder of a turn, and there are `permits` turns.
    jobs: mpsc::Sender<Job>,
    permits: usize,
}

/// The submission asking for a turn, named by its challenge so that a
/// resubmission of the same challenge keeps its place in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The challenge id.
    pub id: [u8; 16],
    /// The challenge's expiry (unix seconds): its place is not remembered
    /// past it.
    pub expires_at: i64,
}

/// No turn for now: the waiting list was full of better waiters, or the
/// wait ran out. The client should resubmit; its place is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Waiters whose turn comes before this one's.
    pub ahead: usize,
    /// Whether it waited its full `max_wait` (rather than being turned
    /// away or evicted by a better newcomer).
    pub waited: bool,
}

/// The right to run one verification on a thread. Dropping it, used or
/// not, hands the thread to the best waiter.
#[derive(Debug)]
pub struct Turn {
    line: Arc<Line>,
    jobs: mpsc::Sender<Job>,
}

/// Why a verification did not produce a yes or no.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
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
    /// Held until the answer is sent, so the thread goes to the next
    /// waiter with it.
    _turn: Turn,
}

/// Where a waiter stands: best bucket, then earliest arrival. `seq` only
/// tells apart concurrent submissions of one place, which share an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Spot {
    bucket: u8,
    arrival: u64,
    seq: u64,
}

/// What a waiter is told.
#[derive(Debug)]
enum Answer {
    Granted,
    /// A better newcomer took its place in a full list.
    Evicted {
        ahead: usize,
    },
}

/// A remembered place: its arrival number, until `forget_at`.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    arrival: u64,
    forget_at: i64,
}

/// The waiting list and the idle threads, under one lock, held only for
/// bookkeeping (never across an await or a hash).
#[derive(Debug)]
struct Line {
    state: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    /// Threads no turn holds. Never above 0 while anyone waits: a thread
    /// that frees goes straight to the best waiter.
    idle: usize,
    /// Waiters, best spot first, each with the channel that tells it.
    waiting: BTreeMap<Spot, oneshot::Sender<Answer>>,
    /// Most waiters.
    capacity: usize,
    places: quick_cache::unsync::Cache<[u8; 16], Remembered>,
    next_arrival: u64,
    next_seq: u64,
    /// Turns handed over so far, for [`OLDEST_EVERY`].
    handovers: u64,
}

/// What [`Line::enter`] decided.
enum Entry {
    Granted,
    Waiting(Spot, oneshot::Receiver<Answer>),
    Refused(Queued),
}

impl Line {
    fn lock(&self) -> MutexGuard<'_, LineState> {
        // Nothing panics under this lock; should it ever, the bookkeeping
        // is still consistent, as every change is a single step.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Grants a turn at once if a thread is idle, else puts the submission
    /// in line (evicting a worse waiter from a full list) or turns it away.
    fn enter(&self, bucket: u8, place: Place, now: i64) -> Entry {
        let mut st = self.lock();
        if st.idle > 0 {
            st.idle -= 1;
            return Entry::Granted;
        }
        let arrival = st.arrival_of(place, now);
        let seq = st.next_seq;
        st.next_seq += 1;
        let spot = Spot {
            bucket,
            arrival,
            seq,
        };
        if st.waiting.len() >= st.capacity {
            match st.waiting.last_key_value() {
                Some((worst, _)) if spot < *worst => {
                    if let Some((_, evicted)) = st.waiting.pop_last() {
                        // Everyone left is ahead of it, and so is the newcomer.
                        let ahead = st.waiting.len() + 1;
                        // Gone already (its request ended): nobody to tell.
                        let _ = evicted.send(Answer::Evicted { ahead });
                    }
                }
                _ => {
                    return Entry::Refused(Queued {
                        ahead: st.ahead_of(spot),
                        waited: false,
                    });
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        st.waiting.insert(spot, tx);
        Entry::Waiting(spot, rx)
    }
}

impl LineState {
    /// The arrival number of `place`: the one it was given before, if that
    /// is still remembered, else a new one at the back. Remembered (again)
    /// until a minute from now, or its expiry.
    fn arrival_of(&mut self, place: Place, now: i64) -> u64 {
        let arrival = match self.places.get(&place.id) {
            Some(r) if r.forget_at > now => r.arrival,
            _ => {
                self.next_arrival += 1;
                self.next_arrival
            }
        };
        let forget_at = place.expires_at.min(now.saturating_add(PLACE_MEMORY_SECS));
        self.places
            .insert(place.id, Remembered { arrival, forget_at });
        arrival
    }

    fn ahead_of(&self, spot: Spot) -> usize {
        self.waiting.range(..spot).count()
    }

    /// Gives a freed thread to the best waiter (every [`OLDEST_EVERY`]th
    /// time to the earliest arrival), or marks it idle.
    fn hand_over(&mut self) {
        self.handovers = self.handovers.wrapping_add(1);
        let oldest_first = self.handovers.is_multiple_of(OLDEST_EVERY);
        loop {
            let next = if oldest_first {
                self.earliest_arrival()
            } else {
                self.waiting.keys().next().copied()
            };
            let Some(waiter) = next.and_then(|spot| self.waiting.remove(&spot)) else {
                break;
            };
            // A waiter removes itself from the list before its receiver
            // goes, so this succeeds; were it ever to fail, the turn is
            // passed on rather than lost for good.
            if waiter.send(Answer::Granted).is_ok() {
                return;
            }
        }
        self.idle += 1;
    }

    /// The waiter that arrived first, in any bucket: the first of each
    /// bucket's run, at most one lookup per bucket.
    fn earliest_arrival(&self) -> Option<Spot> {
        (0..=WORST_BUCKET)
            .filter_map(|bucket| {
                let from = Spot {
                    bucket,
                    arrival: 0,
                    seq: 0,
                };
                self.waiting
                    .range(from..)
                    .next()
                    .map(|(spot, _)| *spot)
                    .filter(|spot| spot.bucket == bucket)
            })
            .min_by_key(|spot| (spot.arrival, spot.seq))
    }
}

/// A submission in line. Leaving the line, by timeout or because the
/// request was dropped, takes it out of the list; a turn granted in the
/// meantime is passed on, so no turn is ever lost.
struct Waiter<'a> {
    line: &'a Arc<Line>,
    spot: Spot,
    answer: oneshot::Receiver<Answer>,
    /// Set once the answer has been taken, so dropping does nothing more.
    settled: bool,
}

impl Waiter<'_> {
    /// Leaves the line after `max_wait`: out of the list, or, if a turn
    /// or an eviction came just now, that answer.
    fn leave(&mut self, jobs: &mpsc::Sender<Job>) -> Result<Turn, Queued> {
        let mut st = self.line.lock();
        self.settled = true;
        if st.waiting.remove(&self.spot).is_some() {
            return Err(Queued {
                ahead: st.ahead_of(self.spot),
                waited: true,
            });
        }
        // Answered under the lock before this took it, so it is there.
        match self.answer.try_recv() {
            Ok(Answer::Granted) => Ok(Turn {
                line: self.line.clone(),
                jobs: jobs.clone(),
            }),
            Ok(Answer::Evicted { ahead }) => Err(Queued {
                ahead,
                waited: false,
            }),
            Err(_) => Err(Queued {
                ahead: 0,
                waited: true,
            }),
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut st = self.line.lock();
        if st.waiting.remove(&self.spot).is_none()
            && matches!(self.answer.try_recv(), Ok(Answer::Granted))
        {
            st.hand_over();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.line.lock().hand_over();
    }
}

impl Verifier {
    /// Starts `permits` verification threads at CPU priority `nice`, with
    /// room for `queue` waiters.
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
        let line = Line {
            state: Mutex::new(LineState {
                idle: permits,
                waiting: BTreeMap::new(),
                capacity: queue,
                places: quick_cache::unsync::Cache::new(PLACES_CAPACITY),
                next_arrival: 0,
                next_seq: 0,
                handovers: 0,
            }),
        };
        Ok(Self {
            line: Arc::new(line),
            jobs,
            permits,
        })
    }

    /// Waits for a turn on a verification thread: at once if one is idle,
    /// else in line by `bucket` (0 best, see [`crate::reputation`]), then
    /// by the arrival of `place`, for at most `max_wait`. `now` (unix
    /// seconds) dates the remembered place.
    ///
    /// # Errors
    /// [`Queued`] when the list is full of better waiters, a better
    /// newcomer took this one's place, or `max_wait` passed. Nothing about
    /// the submission was spent; its place is remembered for its return.
    pub async fn turn(
        &self,
        bucket: u8,
        place: Place,
        now: i64,
        max_wait: Duration,
    ) -> Result<Turn, Queued> {
        let (spot, answer) = match self.line.enter(bucket, place, now) {
            Entry::Granted => return Ok(self.granted()),
            Entry::Refused(queued) => return Err(queued),
            Entry::Waiting(spot, answer) => (spot, answer),
        };
        let mut waiter = Waiter {
            line: &self.line,
            spot,
            answer,
            settled: false,
        };
        match tokio::time::timeout(max_wait, &mut waiter.answer).await {
            Ok(Ok(Answer::Granted)) => {
                waiter.settled = true;
                Ok(self.granted())
            }
            Ok(Ok(Answer::Evicted { ahead })) => {
                waiter.settled = true;
                Err(Queued {
                    ahead,
                    waited: false,
                })
            }
            // The sender went without a word (not done anywhere) or the
            // time is up: leave the line, taking any answer that came.
            Ok(Err(_)) | Err(_) => waiter.leave(&self.jobs),
        }
    }

    fn granted(&self) -> Turn {
        Turn {
            line: self.line.clone(),
            jobs: self.jobs.clone(),
        }
    }

    /// Submissions waiting for a turn right now.
    pub fn waiting(&self) -> usize {
        self.line.lock().waiting.len()
    }

    /// Verifications running or waiting right now.
    pub(crate) fn queue_depth(&self) -> usize {
        let st = self.line.lock();
        self.permits - st.idle + st.waiting.len()
    }
}

impl Turn {
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
        let jobs = self.jobs.clone();
        let job = Job {
            claims,
            nonce,
            reply,
            _turn: self,
        };
        jobs.send(job).map_err(|_| VerifyError::Lost)?;
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

/// Lowers the calling thread's priority by `nice` steps from its own (so
/// from the process's, whose nice value a new thread inherits), as far as
/// 19. Relative, because a powgate started under `nice -n 15` would
/// otherwise have its argon2 threads set to 10, above the rest of it (as
/// root; anyone else is refused). On Linux the nice value belongs to the
/// thread, so this leaves the rest of the process alone.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let lowered = rustix::process::getpriority_process(None)
            .and_then(|now| rustix::process::setpriority_process(None, (now + nice).min(19)));
        if let Err(e) = lowered {
            tracing::warn!(nice, error = %e, "cannot lower the argon2 threads' priority");
        }
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

    const NOW: i64 = 1_700_000_000;
    const LONG: Duration = Duration::from_secs(30);

    fn place(n: u8) -> Place {
        Place {
            id: [n; 16],
            expires_at: NOW + 600,
        }
    }

    /// A verifier with one thread, whose only turn the test holds.
    async fn busy(queue: usize) -> (Arc<Verifier>, Turn) {
        let v = Arc::new(Verifier::new(1, queue, 0).unwrap());
        let held = v.turn(0, place(0), NOW, LONG).await.unwrap();
        (v, held)
    }

    /// Lets spawned waiters run until `n` of them are in line.
    async fn until_waiting(v: &Verifier, n: usize) {
        for _ in 0..10_000 {
            if v.waiting() == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{} waiting, expected {n}", v.waiting());
    }

    /// Queues a waiter named `name` that, once granted, writes its name to
    /// `order` and gives its turn straight back.
    fn wait_in_line(
        v: &Arc<Verifier>,
        order: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
        bucket: u8,
        place: Place,
    ) -> tokio::task::JoinHandle<Result<(), Queued>> {
        let (v, order) = (v.clone(), order.clone());
        tokio::spawn(async move {
            let turn = v.turn(bucket, place, NOW, LONG).await?;
            order.lock().unwrap().push(name);
            drop(turn);
            Ok(())
        })
    }

    async fn grant_order(
        held: Turn,
        waiters: Vec<tokio::task::JoinHandle<Result<(), Queued>>>,
        order: &Mutex<Vec<&'static str>>,
    ) -> Vec<&'static str> {
        drop(held);
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        order.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_turn_is_immediate_while_a_thread_is_idle() {
        let v = Verifier::new(2, 0, 0).unwrap();
        let a = v.turn(3, place(1), NOW, LONG).await.unwrap();
        let _b = v.turn(9, place(2), NOW, LONG).await.unwrap();
        assert_eq!(v.queue_depth(), 2);
        drop(a);
        assert_eq!(v.queue_depth(), 1);
    }

    /// The attack this scheduler exists for: a line full of garbage from a
    /// penalised network must not hold up a clean visitor's answer.
    #[tokio::test]
    async fn a_clean_submission_is_verified_before_penalised_ones_that_came_first() {
        let (v, held) = busy(8).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (i, name) in ["flood-1", "flood-2", "flood-3"].into_iter().enumerate() {
            waiters.push(wait_in_line(&v, &order, name, 6, place(10 + i as u8)));
            until_waiting(&v, i + 1).await;
        }
        waiters.push(wait_in_line(&v, &order, "visitor", 0, place(20)));
        until_waiting(&v, 4).await;
        assert_eq!(
            grant_order(held, waiters, &order).await,
            ["visitor", "flood-1", "flood-2", "flood-3"]
        );
    }

    /// Strict priority would starve a visitor in a penalised network (a
    /// NAT shared with an offender) for as long as clean-looking
    /// submissions keep arriving: every eighth turn goes to the earliest
    /// arrival instead.
    #[tokio::test]
    async fn a_penalised_waiter_still_gets_one_turn_in_eight_by_arrival() {
        let (v, held) = busy(16).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = vec![wait_in_line(&v, &order, "shared-nat", 9, place(10))];
        until_waiting(&v, 1).await;
        let clean = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10"];
        for (i, name) in clean.into_iter().enumerate() {
            waiters.push(wait_in_line(&v, &order, name, 0, place(20 + i as u8)));
            until_waiting(&v, i + 2).await;
        }
        // The held turn's hand-over is the first; the eighth goes to the
        // earliest arrival.
        let got = grant_order(held, waiters, &order).await;
        assert_eq!(
            got.iter().position(|n| *n == "shared-nat"),
            Some(usize::try_from(OLDEST_EVERY).unwrap() - 1),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn within_a_bucket_turns_go_in_order_of_arrival() {
        let (v, held) = busy(8).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (i, name) in ["first", "second", "third"].into_iter().enumerate() {
            waiters.push(wait_in_line(&v, &order, name, 2, place(10 + i as u8)));
            until_waiting(&v, i + 1).await;
        }
        assert_eq!(
            grant_order(held, waiters, &order).await,
            ["first", "second", "third"]
        );
    }

    /// A full line must not turn a clean visitor away while it holds
    /// penalised waiters: the worst of them makes room, and is told how
    /// many are ahead of it.
    #[tokio::test]
    async fn a_full_line_evicts_its_worst_waiter_for_a_better_newcomer() {
        let (v, held) = busy(2).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let early = wait_in_line(&v, &order, "flood-early", 5, place(10));
        until_waiting(&v, 1).await;
        let late = wait_in_line(&v, &order, "flood-late", 5, place(11));
        until_waiting(&v, 2).await;
        let visitor = wait_in_line(&v, &order, "visitor", 0, place(20));
        assert_eq!(
            late.await.unwrap(),
            Err(Queued {
                ahead: 2,
                waited: false
            }),
            "the latest of the worst bucket leaves; the visitor and flood-early are ahead"
        );
        until_waiting(&v, 2).await;
        // A newcomer no better than the worst waiter is turned away.
        assert_eq!(
            v.turn(5, place(12), NOW, LONG).await.unwrap_err(),
            Queued {
                ahead: 2,
                waited: false
            }
        );
        assert_eq!(
            grant_order(held, vec![early, visitor], &order).await,
            ["visitor", "flood-early"]
        );
    }

    /// A waiter that ran out of time comes back with the same challenge:
    /// it must not join the back of the line behind those who came after
    /// it, or a busy server would starve it for good.
    #[tokio::test]
    async fn a_resubmission_keeps_its_place_in_line() {
        let (v, held) = busy(8).await;
        let short = Duration::from_millis(20);
        assert_eq!(
            v.turn(1, place(10), NOW, short).await.unwrap_err(),
            Queued {
                ahead: 0,
                waited: true
            }
        );
        let order = Arc::new(Mutex::new(Vec::new()));
        let later = wait_in_line(&v, &order, "later", 1, place(11));
        until_waiting(&v, 1).await;
        let back = wait_in_line(&v, &order, "came-back", 1, place(10));
        until_waiting(&v, 2).await;
        assert_eq!(
            grant_order(held, vec![later, back], &order).await,
            ["came-back", "later"]
        );
    }

    #[tokio::test]
    async fn a_place_is_forgotten_a_minute_after_it_was_last_seen() {
        let (v, held) = busy(8).await;
        let short = Duration::from_millis(20);
        v.turn(1, place(10), NOW, short).await.unwrap_err();
        let order = Arc::new(Mutex::new(Vec::new()));
        let later = wait_in_line(&v, &order, "later", 1, place(11));
        until_waiting(&v, 1).await;
        let (v2, order2) = (v.clone(), order.clone());
        let back = tokio::spawn(async move {
            let turn = v2.turn(1, place(10), NOW + PLACE_MEMORY_SECS, LONG).await?;
            order2.lock().unwrap().push("came-back-too-late");
            drop(turn);
            Ok(())
        });
        until_waiting(&v, 2).await;
        assert_eq!(
            grant_order(held, vec![later, back], &order).await,
            ["later", "came-back-too-late"]
        );
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_answers_queued_with_how_many_are_ahead() {
        let (v, held) = busy(8).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = wait_in_line(&v, &order, "first", 0, place(10));
        let second = wait_in_line(&v, &order, "second", 0, place(11));
        until_waiting(&v, 2).await;
        let q = v
            .turn(3, place(12), NOW, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(
            q,
            Queued {
                ahead: 2,
                waited: true
            }
        );
        assert_eq!(v.waiting(), 2, "it left the line");
        grant_order(held, vec![first, second], &order).await;
    }

    /// A request dropped while waiting (the client hung up), even right
    /// after its turn was granted, must not take the thread with it: a few
    /// such drops would otherwise stop verification for good.
    #[tokio::test]
    async fn a_waiter_dropped_after_its_turn_came_passes_the_turn_on() {
        let (v, held) = busy(8).await;
        let v2 = v.clone();
        let gone = tokio::spawn(async move { v2.turn(0, place(10), NOW, LONG).await.map(drop) });
        until_waiting(&v, 1).await;
        // Granted under the lock, then dropped before it could run.
        drop(held);
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        assert_eq!(v.queue_depth(), 0, "the thread is idle again");
        v.turn(0, place(11), NOW, Duration::ZERO).await.unwrap();
    }

    #[tokio::test]
    async fn a_waiter_dropped_in_line_leaves_it() {
        let (v, held) = busy(8).await;
        let v2 = v.clone();
        let gone = tokio::spawn(async move { v2.turn(0, place(10), NOW, LONG).await.map(drop) });
        until_waiting(&v, 1).await;
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        assert_eq!(v.waiting(), 0);
        drop(held);
        assert_eq!(v.queue_depth(), 0);
    }

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
        // The kernel clamps nice at 19: under `nice -n 15 cargo test` the
        // threads get 19, not 22.
        let expected = (before + 7).min(19);
        let _v = Verifier::new(2, 0, 7).unwrap();
        let mut found = 0;
        for _ in 0..200 {
            found = 0;
            for entry in std::fs::read_dir("/proc/self/task").unwrap() {
                let task = format!("self/task/{}", entry.unwrap().file_name().to_str().unwrap());
                let comm =
                    std::fs::read_to_string(format!("/proc/{task}/comm")).unwrap_or_default();
                if comm.starts_with("powgate-argon2") && thread_nice(&task) == expected {
                    found += 1;
                }
            }
            if found >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(found >= 2, "expected two argon2 threads at nice {expected}");
        assert_eq!(thread_nice("thread-self"), before);
    }
}
