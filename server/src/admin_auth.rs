//! Who may use the admin page and API.
//!
//! - The admin key is `POW_ADMIN_KEY`, or one generated at first start of
//!   which only the SHA-256 is stored; either way the server keeps only the
//!   hash and compares hashes in constant time.
//! - A stored key is replaced by `powgate admin-key reset`. On a store that
//!   several instances share (PostgreSQL), every running instance hears of
//!   it at once ([`AdminAuth::reload`]) and takes the new key, closing the
//!   sessions the old one opened: a key is reset because it leaked, so
//!   neither it nor what it opened may keep working anywhere.
//! - Logging in with the key opens a session (cookie `powgate_admin`,
//!   HttpOnly, SameSite=Strict, Secure over https). Sessions live in memory,
//!   so a restart logs everyone out.
//! - Every check of a presented key, whichever way it arrives (the login
//!   form, `Authorization: Bearer` on any admin route, the session probe),
//!   goes through [`AdminAuth::authenticate`], so there is no side door
//!   where guesses are free.
//!
//! # Limiting key guesses
//!
//! `authenticate` first asks whether the client is *limited*, and only then
//! compares the key. While limited, every key is refused with 429, the right
//! one included: a guesser learns nothing from the answer, so the limit
//! bounds the search instead of just slowing the wrong half of it.
//!
//! Only *failures* are counted. A correct key costs nothing, so a script
//! that sends `Bearer` on every call is never slowed down; the only cost on
//! its path is one map lookup for the limited state.
//!
//! Failures are counted twice, each with its own budget (a GCRA bucket: a
//! burst, then one more per interval):
//! - by address ([`IpKey`]: IPv4 exactly, IPv6 by /64): 5, then one per 12 s;
//! - by network (IPv4 /24, IPv6 /48): 20, then one per 6 s. Whoever holds a
//!   /48 holds 65 536 /64s, and a /24 is often one provider's pool, so the
//!   per-address budget alone would multiply by the number of addresses at
//!   hand. The network budget is larger so that one mistyping neighbour
//!   does not lock out a whole office.
//!
//! Either budget used up limits the client. A botnet spread over many
//! networks is bounded only per network; the answer to that is a long key
//! (the generated one has 256 bits), not a global lock that any attacker
//! could use to shut the operator out.
//!
//! Sessions are neither counted nor limited. A session id is 256 random
//! bits that no one guesses, so a session proves that the key was presented
//! already; counting stale ones (a restart forgets every session) would push
//! an operator's own page reloads towards a lockout, and limiting live ones
//! would let a guesser on the operator's network lock out an operator who
//! is already signed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::client_ip::{IpKey, NetKey};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::secret::generate_secret;
use crate::store::Store;

/// How long an admin session lasts.
pub(crate) const SESSION_SECS: i64 = 12 * 3600;
/// Name of the stored key hash in the `secrets` table.
const KEY_HASH: &str = "admin_key_hash";
/// Failed key checks an address may make at once, and the seconds after
/// which it may make one more.
const ADDRESS_BUDGET: Budget = Budget {
    burst: 5,
    interval_secs: 12,
};
/// The same for a whole network (IPv4 /24, IPv6 /48): larger, since many
/// people may share one.
const NETWORK_BUDGET: Budget = Budget {
    burst: 20,
    interval_secs: 6,
};

/// A GCRA bucket's shape: `burst` failures at once, then one per interval.
#[derive(Debug, Clone, Copy)]
struct Budget {
    burst: i64,
    interval_secs: i64,
}

impl Budget {
    /// Seconds still to wait when the bucket's theoretical arrival time is
    /// `tat`; `None` while there is room for another failure.
    fn wait(self, tat: i64, now: i64) -> Option<i64> {
        let ahead = tat - now - (self.burst - 1) * self.interval_secs;
        (ahead > 0).then_some(ahead)
    }

    /// The arrival time after one more failure at `now`.
    fn after_failure(self, tat: Option<i64>, now: i64) -> i64 {
        tat.unwrap_or(now).max(now) + self.interval_secs
    }
}

/// What failures are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    Address(IpKey),
    Network(NetKey),
}

impl Counted {
    fn of(ip: IpAddr) -> [Self; 2] {
        let address = IpKey::of(ip);
        [Self::Address(address), Self::Network(address.network())]
    }

    fn budget(self) -> Budget {
        match self {
            Self::Address(_) => ADDRESS_BUDGET,
            Self::Network(_) => NETWORK_BUDGET,
        }
    }
}

/// A credential presented for the admin API.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Credential<'a> {
    /// The admin key, from the login form or `Authorization: Bearer`.
    Key(&'a str),
    /// The id from the session cookie.
    Session(&'a str),
}

pub(crate) struct AdminAuth {
    /// The key's SHA-256; replaced when another process resets a stored key.
    key_hash: Mutex<[u8; 32]>,
    /// Whether the key is `POW_ADMIN_KEY`, which a stored one never replaces.
    configured: bool,
    /// SHA-256 of a session id → expiry (unix seconds).
    sessions: Mutex<HashMap<[u8; 32], i64>>,
    /// Failed key checks: the GCRA theoretical arrival time (unix seconds)
    /// of each address and network that failed recently.
    failures: Mutex<HashMap<Counted, i64>>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth").finish_non_exhaustive()
    }
}

fn sha256(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Replaces the stored admin key with a new one and returns it.
///
/// # Errors
/// Store errors.
async fn reset_key(store: &dyn Store, now: i64) -> anyhow::Result<String> {
    let key = generate_secret();
    let hash = sha256(key.as_bytes());
    store.set_secret(KEY_HASH, hash.to_vec(), now).await?;
    Ok(key)
}

/// A stored key hash, checked for its length.
fn stored_hash(stored: Vec<u8>) -> anyhow::Result<[u8; 32]> {
    stored.try_into().map_err(|_| {
        anyhow::anyhow!("stored admin key hash is corrupt; run `powgate admin-key reset`")
    })
}

/// Replaces the admin key in the configured database with a new one and
/// returns it. Used by `powgate admin-key reset`. Running servers on a
/// shared store (PostgreSQL) take it at once; one on an SQLite file takes
/// it at its next start.
///
/// # Errors
/// When the database cannot be opened or written.
pub async fn reset_stored_key(config: &Config, now: i64) -> anyhow::Result<String> {
    let store = crate::store::open(&config.database, 1).await?;
    reset_key(&*store, now).await
}

impl AdminAuth {
    /// Uses the configured key, or the stored hash, or generates a key, logs
    /// it once, and stores its hash.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn load(config: &Config, store: &dyn Store, now: i64) -> anyhow::Result<Self> {
        let key_hash = if let Some(key) = &config.admin_key {
            sha256(key.expose().as_bytes())
        } else if let Some(stored) = store.get_secret(KEY_HASH).await? {
            stored_hash(stored)?
        } else {
            // Stored only if no instance starting at the same moment stored
            // one first; then that one is the key, and it showed it.
            let key = generate_secret();
            let candidate = sha256(key.as_bytes());
            let stored = stored_hash(
                store
                    .get_or_create_secret(KEY_HASH, candidate.to_vec(), now)
                    .await?,
            )?;
            if stored == candidate {
                // The one time the key is shown: the operator needs it to log in.
                tracing::warn!(
                    "generated admin key: {key}  (shown only now; only its hash is stored. \
                     Set POW_ADMIN_KEY to choose your own, or run `powgate admin-key reset` for a new one)"
                );
            }
            stored
        };
        Ok(Self {
            key_hash: Mutex::new(key_hash),
            configured: config.admin_key.is_some(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the stored key again, after another process may have reset it
    /// (a [`crate::store::StoreChange::Secrets`], or a resync that may have
    /// missed one). A new key replaces the old one at once and closes every
    /// session. Nothing changes when the key is `POW_ADMIN_KEY`.
    ///
    /// # Errors
    /// Store errors, or a corrupt stored hash; the key in use stays.
    pub(crate) async fn reload(&self, store: &dyn Store) -> anyhow::Result<()> {
        if self.configured {
            return Ok(());
        }
        let Some(stored) = store.get_secret(KEY_HASH).await? else {
            return Ok(());
        };
        let stored = stored_hash(stored)?;
        let mut key_hash = self
            .key_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *key_hash == stored {
            return Ok(());
        }
        *key_hash = stored;
        drop(key_hash);
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        tracing::warn!("the admin key was reset; the old one and its sessions no longer work");
        Ok(())
    }

    /// The one check of an admin credential from client address `ip`; see
    /// the module doc for the order of its steps and why.
    ///
    /// # Errors
    /// For a key: 429 with `Retry-After` while `ip` or its network is limited
    /// (counted in `powgate_limited_total{limit="admin_auth"}`), whatever the
    /// key; else 401 when it is wrong. For a session: 401 when it is unknown
    /// or expired.
    pub(crate) fn authenticate(
        &self,
        ip: IpAddr,
        presented: Credential<'_>,
        now: i64,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        let key = match presented {
            Credential::Session(id) if self.session_valid(id, now) => return Ok(()),
            Credential::Session(_) => {
                return Err(ApiError::Unauthorized(
                    "session expired; log in again".into(),
                ));
            }
            Credential::Key(key) => key,
        };
        let counted = Counted::of(ip);
        // One lock across check, comparison and count: with separate steps,
        // a burst of parallel guesses would all pass the check before the
        // first failure was counted. Hashing a key under it takes about a
        // microsecond.
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wait = counted
            .iter()
            .filter_map(|c| c.budget().wait(*failures.get(c)?, now))
            .max();
        if let Some(wait) = wait {
            drop(failures);
            metrics.limited.with_label_values(&["admin_auth"]).inc();
            return Err(ApiError::RateLimited(u64::try_from(wait).unwrap_or(1)));
        }
        if self.key_matches(key) {
            return Ok(());
        }
        for c in counted {
            let tat = c.budget().after_failure(failures.get(&c).copied(), now);
            failures.insert(c, tat);
        }
        drop(failures);
        tracing::warn!(ip = %IpKey::of(ip), "wrong admin key");
        Err(ApiError::Unauthorized("wrong admin key".into()))
    }

    /// Constant-time check of a presented key.
    fn key_matches(&self, candidate: &str) -> bool {
        let key_hash = *self
            .key_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sha256(candidate.as_bytes()).ct_eq(&key_hash).into()
    }

    /// Opens a session and returns its id for the cookie.
    pub(crate) fn open_session(&self, now: i64) -> String {
        let id = generate_secret();
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, exp| *exp > now);
        sessions.insert(sha256(id.as_bytes()), now + SESSION_SECS);
        id
    }

    fn session_valid(&self, id: &str, now: i64) -> bool {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions
            .get(&sha256(id.as_bytes()))
            .is_some_and(|exp| *exp > now)
    }

    pub(crate) fn close_session(&self, id: &str) {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.remove(&sha256(id.as_bytes()));
    }

    /// Forgets the failures of addresses and networks whose buckets have
    /// drained, so memory stays bounded by recent failures.
    pub(crate) fn forget_idle(&self, now: i64) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.retain(|_, tat| *tat > now);
        failures.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth {
            key_hash: Mutex::new(sha256(b"right-key-right-key")),
            configured: true,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn check(a: &AdminAuth, ip: &str, key: &str, now: i64) -> Result<(), ApiError> {
        a.authenticate(
            ip.parse().unwrap(),
            Credential::Key(key),
            now,
            &Metrics::new(),
        )
    }

    #[test]
    fn the_right_key_waits_out_the_limit_like_a_wrong_one() {
        let a = auth();
        let ip = "192.0.2.1";
        for _ in 0..ADDRESS_BUDGET.burst {
            assert!(matches!(
                check(&a, ip, "guess", 0),
                Err(ApiError::Unauthorized(_))
            ));
        }
        let wait = ADDRESS_BUDGET.interval_secs;
        for key in ["guess", "right-key-right-key"] {
            assert!(
                matches!(check(&a, ip, key, 0), Err(ApiError::RateLimited(w)) if w == wait.unsigned_abs())
            );
        }
        assert!(check(&a, ip, "right-key-right-key", wait - 1).is_err());
        check(&a, ip, "right-key-right-key", wait).unwrap();
        // Successes are not counted: the next failure is the only one allowed.
        check(&a, ip, "right-key-right-key", wait).unwrap();
        assert!(matches!(
            check(&a, ip, "guess", wait),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(check(&a, ip, "right-key-right-key", wait).is_err());
    }

    #[test]
    fn failures_from_many_addresses_of_one_network_add_up() {
        let a = auth();
        for i in 0..NETWORK_BUDGET.burst {
            let ip = format!("2001:db8:7:{i:x}::1");
            assert!(matches!(
                check(&a, &ip, "guess", 0),
                Err(ApiError::Unauthorized(_))
            ));
        }
        assert!(matches!(
            check(&a, "2001:db8:7:ffff::1", "right-key-right-key", 0),
            Err(ApiError::RateLimited(_))
        ));
        check(&a, "2001:db8:8::1", "right-key-right-key", 0).unwrap();
    }

    #[test]
    fn an_ipv4_mapped_address_counts_in_its_ipv4_network() {
        assert_eq!(
            Counted::of("::ffff:192.0.2.77".parse().unwrap()),
            Counted::of("192.0.2.77".parse().unwrap())
        );
        assert_eq!(
            Counted::of("192.0.2.77".parse().unwrap())[1],
            Counted::Network(NetKey::of("192.0.2.1".parse().unwrap()))
        );
    }

    /// A store with no key yet, as every instance of a fleet starting at
    /// once finds it.
    fn empty_store() -> (tempfile::TempDir, std::sync::Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("db"), 16).unwrap();
        (dir, std::sync::Arc::new(store))
    }

    fn without_configured_key() -> std::sync::Arc<Config> {
        std::sync::Arc::new(crate::config::RawConfig::default().validate().unwrap())
    }

    /// Each instance used to store the key it generated over the others',
    /// so the key one of them showed worked on that one alone, and on none
    /// once they restarted with the last one stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_starting_at_once_without_a_key_all_take_the_one_stored() {
        let (_dir, store) = empty_store();
        let config = without_configured_key();
        let loads: Vec<_> = (0..8)
            .map(|_| {
                let (store, config) = (store.clone(), config.clone());
                tokio::spawn(async move { AdminAuth::load(&config, &*store, 0).await.unwrap() })
            })
            .collect();
        let mut auths = Vec::new();
        for load in loads {
            auths.push(load.await.unwrap());
        }
        let stored = store.get_secret(KEY_HASH).await.unwrap().unwrap();
        for auth in auths {
            assert_eq!(auth.key_hash.lock().unwrap().to_vec(), stored);
        }
    }

    #[tokio::test]
    async fn a_key_reset_elsewhere_replaces_the_old_one_and_closes_its_sessions() {
        let (_dir, store) = empty_store();
        let auth = AdminAuth::load(&without_configured_key(), &*store, 0)
            .await
            .unwrap();
        let session = auth.open_session(0);
        let key = reset_key(&*store, 0).await.unwrap();
        assert!(!auth.key_matches(&key), "nothing read yet");
        auth.reload(&*store).await.unwrap();
        assert!(auth.key_matches(&key));
        assert!(!auth.session_valid(&session, 0));
    }

    #[tokio::test]
    async fn a_configured_key_is_never_replaced_by_a_stored_one() {
        let (_dir, store) = empty_store();
        let raw = crate::config::RawConfig {
            admin_key: Some("configured-key-0123456789".into()),
            ..crate::config::RawConfig::default()
        };
        let auth = AdminAuth::load(&raw.validate().unwrap(), &*store, 0)
            .await
            .unwrap();
        let session = auth.open_session(0);
        let stored = reset_key(&*store, 0).await.unwrap();
        auth.reload(&*store).await.unwrap();
        assert!(auth.key_matches("configured-key-0123456789"));
        assert!(!auth.key_matches(&stored));
        assert!(auth.session_valid(&session, 0));
    }

    #[test]
    fn drained_buckets_are_forgotten() {
        let a = auth();
        let _ = check(&a, "192.0.2.1", "guess", 0);
        a.forget_idle(NETWORK_BUDGET.interval_secs);
        assert_eq!(
            a.failures.lock().unwrap().len(),
            1,
            "the address still counts"
        );
        a.forget_idle(ADDRESS_BUDGET.interval_secs);
        assert!(a.failures.lock().unwrap().is_empty());
    }
}
