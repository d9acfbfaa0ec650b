//! PostgreSQL storage, for several powgate instances sharing one database.
//!
//! The crates: tokio-postgres, with deadpool-postgres for the pool and
//! tokio-postgres-rustls for TLS, rather than sqlx, because
//! - `LISTEN` on a dedicated connection is tokio-postgres's own
//!   `Connection::poll_message`, which yields each notification as it
//!   arrives, with no second abstraction between powgate and the socket;
//! - deadpool's `Pool::status()` gives size, available and waiting, which is
//!   what `/metrics` shows;
//! - TLS goes through the rustls and ring already built for proxy mode's
//!   https upstreams, so there is one TLS stack and one crypto provider;
//! - every statement is plain SQL at run time: no compile-time database, no
//!   macros, no query cache to keep in the repository;
//! - sqlx would bring its own pool, runtime glue and SQLite driver beside
//!   rusqlite, a second way to do everything the SQLite backend does.
//!
//! How the rules hold across instances:
//! - a challenge is spent by an insert on its primary key, which succeeds
//!   once whichever instance tries;
//! - a new address locks the token's row (`SELECT … FOR UPDATE`) before it
//!   counts and inserts, so instances take turns at the count;
//! - the per-address token cap takes a transaction-scoped advisory lock on
//!   the address before it counts, for the same reason (the rows it counts
//!   may not exist yet, so there is no row to lock);
//! - every write that other instances may hold in their caches
//!   (revocations, expire-all, purges, refreshes, tokens expired by the
//!   cap, settings, a reset admin key) sends a `NOTIFY` in its own transaction, so it is
//!   announced exactly when it is visible; [`listen`] turns them into the
//!   seam's [`StoreChange`]s.
//!
//! [`url`] checks the `postgres://` URL and its TLS policy; [`migrate`]
//! brings the schema up to date under an advisory lock.

mod listen;
pub(crate) mod migrate;
pub(crate) mod url;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio::sync::broadcast;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::{
    AddIp, Extended, Issued, RequestCount, RevokeScope, RevokedById, Store, StoreChange,
    StoreError, TokenRecord,
};
use crate::token::HashedToken;

pub(crate) use url::PostgresUrl;

/// The connection pool.
type Pool = deadpool_postgres::Pool;

/// How long a request waits for a free pooled connection before the store
/// counts as unavailable (503): a full pool under load clears in well under
/// a second, so waiting longer would only stack up requests.
const POOL_WAIT: Duration = Duration::from_secs(2);

/// The PostgreSQL store: a pool for the queries, and a listener on a
/// connection of its own for the other instances' changes.
#[derive(Debug)]
pub(crate) struct PostgresStore {
    pool: Pool,
    changes: broadcast::Sender<StoreChange>,
    /// This instance, so it can skip its own notifications.
    instance: u64,
    listener: Arc<listen::Listener>,
    /// The last `/healthz` check and when it ran, so a monitor polling
    /// often costs one query a second at most.
    last_check: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long a reachability answer for `/healthz` is reused.
const HEALTH_TTL: Duration = Duration::from_secs(1);

/// The pool's state, read when `/metrics` is scraped.
#[derive(Debug)]
struct PoolGauges {
    pool: Pool,
    connections: prometheus::IntGaugeVec,
}

impl PoolGauges {
    fn new(pool: Pool) -> Self {
        let connections = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "powgate_store_pool_connections",
                "PostgreSQL pool: connections open (size) and idle (available), the most it opens (max), and requests waiting for one (waiting).",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("pool metric: {e}"));
        Self { pool, connections }
    }
}

impl prometheus::core::Collector for PoolGauges {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.connections.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let s = self.pool.status();
        for (state, n) in [
            ("size", s.size),
            ("available", s.available),
            ("max", s.max_size),
            ("waiting", s.waiting),
        ] {
            self.connections
                .with_label_values(&[state])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.connections.collect()
    }
}

impl PostgresStore {
    /// Opens a pool of at most `max_connections` to `url`, migrates the
    /// schema, and starts listening for the other instances' changes.
    ///
    /// # Errors
    /// When the server cannot be reached, refuses the login, or a migration
    /// fails. The messages name the server by its redacted URL.
    pub(crate) async fn open(url: &PostgresUrl, max_connections: usize) -> anyhow::Result<Self> {
        let pool = open_pool(url, max_connections).await?;
        let (changes, _) = broadcast::channel(1024);
        let mut instance = [0u8; 8];
        getrandom::fill(&mut instance).context("the operating system's random generator")?;
        let instance = u64::from_le_bytes(instance);
        let listener = listen::Listener::start(url.clone(), changes.clone(), instance)
            .await
            .with_context(|| format!("cannot listen for changes on the database {url}"))?;
        Ok(Self {
            pool,
            changes,
            instance,
            listener,
            last_check: tokio::sync::Mutex::new(None),
        })
    }

    /// A pooled connection, or [`StoreError::Unavailable`].
    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => classify(e),
            other => StoreError::Unavailable(other.into()),
        })
    }

    /// Announces `change` to the other instances when `tx` commits.
    async fn notify(
        &self,
        tx: &Transaction<'_>,
        change: &listen::Change,
    ) -> Result<(), StoreError> {
        let payload = listen::payload(self.instance, change);
        tx.execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &payload])
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Announces that these tokens changed: one by one when they are few,
    /// otherwise as "all tokens" (a notification's payload is limited to
    /// 8000 bytes, and flushing a cache costs less than hundreds of them).
    async fn notify_tokens(
        &self,
        tx: &Transaction<'_>,
        hashes: &[HashedToken],
    ) -> Result<(), StoreError> {
        if hashes.len() > listen::MAX_TOKENS_PER_NOTIFICATION {
            return self.notify(tx, &listen::Change::AllTokens).await;
        }
        if hashes.is_empty() {
            return Ok(());
        }
        self.notify(
            tx,
            &listen::Change::Tokens {
                hashes: hashes.to_vec(),
            },
        )
        .await
    }
}

impl PostgresStore {
    /// Announces purged tokens, in as many notifications as they need. Not
    /// as "all tokens", as [`Self::notify_tokens`] would for many: every
    /// instance purges every `purge_interval_secs`, and a busy site purges
    /// hundreds at a time, so that would flush every cache each minute to
    /// announce tokens that no cache would pass anyway.
    async fn notify_purged(
        &self,
        tx: &Transaction<'_>,
        hashes: &[HashedToken],
    ) -> Result<(), StoreError> {
        for chunk in hashes.chunks(listen::MAX_TOKENS_PER_NOTIFICATION) {
            self.notify_tokens(tx, chunk).await?;
        }
        Ok(())
    }
}

/// A pool with the timeouts that make an unreachable server a quick 503.
async fn open_pool(url: &PostgresUrl, max_connections: usize) -> anyhow::Result<Pool> {
    if let Some(warning) = url.tls_warning() {
        tracing::warn!(database = %url, "{warning}");
    }
    let manager = deadpool_postgres::Manager::from_config(
        url.config().clone(),
        url.connector()?,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let connect = url
        .config()
        .get_connect_timeout()
        .copied()
        .unwrap_or(POOL_WAIT);
    let pool = Pool::builder(manager)
        .max_size(max_connections)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(connect))
        .recycle_timeout(Some(connect))
        .build()
        .context("cannot build the PostgreSQL pool")?;
    let mut client = pool
        .get()
        .await
        .with_context(|| format!("cannot connect to the database {url}"))?;
    let applied = migrate::migrate(&mut client)
        .await
        .with_context(|| format!("database {url}"))?;
    if applied > 0 {
        tracing::info!(database = %url, migrations = applied, "PostgreSQL schema migrated");
    }
    Ok(pool)
}

/// Whether a PostgreSQL error means "not reachable now" (503, try again)
/// or a fault of the statement or the data.
fn classify(e: tokio_postgres::Error) -> StoreError {
    let unavailable = e.is_closed()
        || match e.code() {
            // No SQLSTATE: an I/O or TLS failure on the way to the server.
            None => true,
            Some(code) => {
                let class = &code.code()[..2];
                // 08: connection exceptions; 57: operator intervention
                // (shutdown, admin terminate); 53: out of resources
                // (too many connections); 40: serialization failure or
                // deadlock, which a retry settles; and a lock another
                // session held past lock_timeout (see `url`).
                matches!(class, "08" | "57" | "53" | "40")
                    || *code == SqlState::CANNOT_CONNECT_NOW
                    || *code == SqlState::LOCK_NOT_AVAILABLE
            }
        };
    if unavailable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Fault(e.into())
    }
}

/// Wraps `?` on tokio-postgres results.
trait Classify<T> {
    fn classified(self) -> Result<T, StoreError>;
}

impl<T> Classify<T> for Result<T, tokio_postgres::Error> {
    fn classified(self) -> Result<T, StoreError> {
        self.map_err(classify)
    }
}

const COLUMNS: &str =
    "id, token_hash, created_at, expires_at, revoked_at, refresh_count, requests_used";

fn hash_of(bytes: &[u8]) -> Result<HashedToken, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(HashedToken)
        .map_err(|_| StoreError::Fault(anyhow::anyhow!("a token hash is not 32 bytes")))
}

fn record_of(r: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.get(0),
        hash: hash_of(r.get(1))?,
        created_at: r.get(2),
        expires_at: r.get(3),
        revoked_at: r.get(4),
        refresh_count: r.get(5),
        requests_used: r.get(6),
        ips: Vec::new(),
    })
}

/// The hashes a `… RETURNING token_hash` gave back.
fn hashes_of(rows: &[Row]) -> Result<Vec<HashedToken>, StoreError> {
    rows.iter().map(|r| hash_of(r.get(0))).collect()
}

/// A token's address keys, oldest first.
async fn ips_of(c: &impl GenericClient, token_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(c.query(
        "SELECT ip FROM token_ips WHERE token_id = $1 ORDER BY first_seen, ip",
        &[&token_id],
    )
    .await
    .classified()?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// The token whose `condition` (on `tokens`, with `$1`) holds, with its
/// addresses oldest first, in one statement prepared once per connection:
/// this is every uncached `/verify-token`. Given as a string, tokio-postgres
/// prepares a statement anew at each call, a round trip of its own, so a
/// lookup that also read the addresses separately took four: 3 400 lookups
/// a second in `just bench` (g), 9 100 as one.
async fn find_where(
    c: &impl GenericClient,
    condition: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Option<TokenRecord>, StoreError> {
    let statement = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, ARRAY(SELECT i.ip FROM token_ips i WHERE i.token_id = tokens.id
                                     ORDER BY i.first_seen, i.ip)
             FROM tokens WHERE {condition}"
        ))
        .await
        .classified()?;
    let Some(row) = c.query_opt(&statement, &[value]).await.classified()? else {
        return Ok(None);
    };
    let mut rec = record_of(&row)?;
    rec.ips = row.get(COLUMNS.split(',').count());
    Ok(Some(rec))
}

/// Serialises, across instances, everything that counts one address's
/// tokens (the per-address cap), until the transaction ends. The address's
/// tokens may not exist yet, so there is no row to lock instead.
async fn lock_address(tx: &Transaction<'_>, issuer_ip: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&issuer_ip],
    )
    .await
    .classified()?;
    Ok(())
}

/// The per-address token cap, as in the SQLite backend: of the address's
/// other active tokens, the `max - 1` that expire last stay; the rest are
/// expired now. Run under [`lock_address`].
async fn enforce_cap(
    tx: &Transaction<'_>,
    issuer_ip: &str,
    newest: i64,
    now: i64,
    max: u32,
) -> Result<Vec<HashedToken>, StoreError> {
    let Some(others) = max.checked_sub(1) else {
        return Ok(Vec::new());
    };
    let rows = tx
        .query(
            "UPDATE tokens SET expires_at = $1
             WHERE id IN (
                 SELECT id FROM tokens
                 WHERE issuer_ip = $2 AND id <> $3 AND expires_at > $1 AND revoked_at IS NULL
                 ORDER BY expires_at DESC, id DESC
                 OFFSET $4)
             RETURNING token_hash",
            &[&now, &issuer_ip, &newest, &i64::from(others)],
        )
        .await
        .classified()?;
    hashes_of(&rows)
}

/// [`Store::add_token_address`]'s count and insert, inside the caller's
/// transaction, with the token's row locked first.
async fn record_ip(
    tx: &Transaction<'_>,
    token_id: i64,
    ip: &str,
    now: i64,
    max: u32,
) -> Result<AddIp, StoreError> {
    // The lock every instance adding an address to this token queues on;
    // without it two could both count `max - 1` and both insert.
    tx.query_opt(
        "SELECT 1 FROM tokens WHERE id = $1 FOR UPDATE",
        &[&token_id],
    )
    .await
    .classified()?;
    let mut ips = ips_of(tx, token_id).await?;
    if ips.iter().any(|i| i == ip) {
        return Ok(AddIp::Known(ips));
    }
    if ips.len() >= max as usize {
        return Ok(AddIp::LimitReached);
    }
    tx.execute(
        "INSERT INTO token_ips (token_id, ip, first_seen) VALUES ($1, $2, $3)",
        &[&token_id, &ip, &now],
    )
    .await
    .classified()?;
    ips.push(ip.to_owned());
    Ok(AddIp::Added(ips))
}

#[async_trait]
impl Store for PostgresStore {
    async fn spend_challenge(
        &self,
        id: [u8; 16],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let inserted = c
            .execute(
                "INSERT INTO spent_challenges (id, spent_at, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&&id[..], &now, &expires_at],
            )
            .await
            .classified()?;
        Ok(inserted == 1)
    }

    async fn purge_spent_challenges(&self, now: i64) -> Result<usize, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "DELETE FROM spent_challenges WHERE expires_at < $1",
                &[&now],
            )
            .await
            .classified()?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn issue_token(
        &self,
        hash: HashedToken,
        now: i64,
        expires_at: i64,
        issuer_ip: String,
        difficulty: u64,
        max_tokens_per_ip: u32,
    ) -> Result<Issued, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        if max_tokens_per_ip > 0 {
            lock_address(&tx, &issuer_ip).await?;
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO tokens (token_hash, created_at, expires_at, issuer_ip, difficulty)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &&hash.0[..],
                    &now,
                    &expires_at,
                    &issuer_ip,
                    &i64::try_from(difficulty).unwrap_or(i64::MAX),
                ],
            )
            .await
            .classified()?
            .get(0);
        tx.execute(
            "INSERT INTO token_ips (token_id, ip, first_seen) VALUES ($1, $2, $3)",
            &[&id, &issuer_ip, &now],
        )
        .await
        .classified()?;
        let evicted = enforce_cap(&tx, &issuer_ip, id, now, max_tokens_per_ip).await?;
        self.notify_tokens(&tx, &evicted).await?;
        tx.commit().await.classified()?;
        Ok(Issued { id, evicted })
    }

    async fn find_token(&self, hash: HashedToken) -> Result<Option<TokenRecord>, StoreError> {
        let c = self.conn().await?;
        find_where(&c, "token_hash = $1", &&hash.0[..]).await
    }

    async fn find_token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
        let c = self.conn().await?;
        find_where(&c, "id = $1", &id).await
    }

    async fn add_token_address(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        max: u32,
    ) -> Result<AddIp, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        let added = record_ip(&tx, token_id, &ip, now, max).await?;
        tx.commit().await.classified()?;
        Ok(added)
    }

    async fn refresh_token(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        expires_at: i64,
        max_ips: u32,
        max_tokens_per_ip: u32,
    ) -> Result<Option<Extended>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        // The address lock first, then the row, in the order an issue takes
        // them, so two instances cannot each hold what the other waits for.
        let Some(issuer) = tx
            .query_opt("SELECT issuer_ip FROM tokens WHERE id = $1", &[&token_id])
            .await
            .classified()?
        else {
            return Ok(None);
        };
        let issuer_ip: String = issuer.get(0);
        if max_tokens_per_ip > 0 {
            lock_address(&tx, &issuer_ip).await?;
        }
        let Some(row) = tx
            .query_opt(
                "UPDATE tokens SET expires_at = $2, refresh_count = refresh_count + 1, requests_used = 0
                 WHERE id = $1 AND revoked_at IS NULL
                 RETURNING token_hash",
                &[&token_id, &expires_at],
            )
            .await
            .classified()?
        else {
            return Ok(None);
        };
        let hash = hash_of(row.get(0))?;
        let evicted = enforce_cap(&tx, &issuer_ip, token_id, now, max_tokens_per_ip).await?;
        record_ip(&tx, token_id, &ip, now, max_ips).await?;
        let Some(record) = find_where(&tx, "id = $1", &token_id).await? else {
            return Ok(None);
        };
        let mut changed = evicted.clone();
        changed.push(hash);
        self.notify_tokens(&tx, &changed).await?;
        tx.commit().await.classified()?;
        Ok(Some(Extended { record, evicted }))
    }

    async fn write_request_counts(&self, counts: Vec<RequestCount>) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        // In id order, so two instances flushing overlapping sets lock the
        // rows in the same order and never deadlock.
        let mut counts = counts;
        counts.sort_unstable_by_key(|n| n.token_id);
        let ids: Vec<i64> = counts.iter().map(|n| n.token_id).collect();
        let refreshes: Vec<i64> = counts.iter().map(|n| n.refresh_count).collect();
        let used: Vec<i64> = counts
            .iter()
            .map(|n| i64::try_from(n.used).unwrap_or(i64::MAX))
            .collect();
        let c = self.conn().await?;
        c.execute(
            "UPDATE tokens t SET requests_used = greatest(t.requests_used, n.used)
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS n(id, refresh_count, used)
             WHERE t.id = n.id AND t.refresh_count = n.refresh_count",
            &[&ids, &refreshes, &used],
        )
        .await
        .classified()?;
        Ok(())
    }

    async fn revoke(&self, scope: RevokeScope, now: i64) -> Result<Vec<HashedToken>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        let rows = match scope {
            RevokeScope::All => {
                tx.query(
                    "UPDATE tokens SET revoked_at = $1 WHERE revoked_at IS NULL RETURNING token_hash",
                    &[&now],
                )
                .await
                .classified()?
            }
            RevokeScope::Network(_) => {
                // Addresses are stored as text (an IPv6 key is a /64), so
                // the network test is the seam's own, run here.
                let candidates = tx
                    .query(
                        "SELECT DISTINCT i.token_id, i.ip FROM token_ips i
                         JOIN tokens t ON t.id = i.token_id WHERE t.revoked_at IS NULL",
                        &[],
                    )
                    .await
                    .classified()?;
                let mut ids: Vec<i64> = candidates
                    .iter()
                    .filter(|r| scope.takes_address(r.get(1)))
                    .map(|r| r.get(0))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                tx.query(
                    "UPDATE tokens SET revoked_at = $2
                     WHERE id = ANY($1) AND revoked_at IS NULL RETURNING token_hash",
                    &[&ids, &now],
                )
                .await
                .classified()?
            }
        };
        let revoked = hashes_of(&rows)?;
        self.notify_tokens(&tx, &revoked).await?;
        tx.commit().await.classified()?;
        Ok(revoked)
    }

    async fn revoke_by_id(&self, id: i64, now: i64) -> Result<RevokedById, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        let row = tx
            .query_opt(
                "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
                 RETURNING token_hash",
                &[&id, &now],
            )
            .await
            .classified()?;
        let outcome = match row {
            Some(row) => {
                let hash = hash_of(row.get(0))?;
                self.notify_tokens(&tx, &[hash]).await?;
                RevokedById::Revoked(hash)
            }
            None => {
                let exists = tx
                    .query_opt("SELECT 1 FROM tokens WHERE id = $1", &[&id])
                    .await
                    .classified()?
                    .is_some();
                if exists {
                    RevokedById::AlreadyRevoked
                } else {
                    RevokedById::Unknown
                }
            }
        };
        tx.commit().await.classified()?;
        Ok(outcome)
    }

    async fn expire_all(&self, now: i64) -> Result<usize, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        let n = tx
            .execute(
                "UPDATE tokens SET expires_at = $1 WHERE expires_at > $1 AND revoked_at IS NULL",
                &[&now],
            )
            .await
            .classified()?;
        self.notify(&tx, &listen::Change::AllTokens).await?;
        tx.commit().await.classified()?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn list_tokens(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<TokenRecord>, i64), StoreError> {
        let c = self.conn().await?;
        let total: i64 = c
            .query_one("SELECT count(*) FROM tokens", &[])
            .await
            .classified()?
            .get(0);
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM tokens ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
                ),
                &[&i64::from(limit), &i64::try_from(offset).unwrap_or(i64::MAX)],
            )
            .await
            .classified()?;
        let mut recs = rows.iter().map(record_of).collect::<Result<Vec<_>, _>>()?;
        for r in &mut recs {
            r.ips = ips_of(&c, r.id).await?;
        }
        Ok((recs, total))
    }

    async fn count_active_tokens(&self, now: i64) -> Result<i64, StoreError> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT count(*) FROM tokens WHERE expires_at > $1 AND revoked_at IS NULL",
            &[&now],
        )
        .await
        .classified()?
        .get(0))
    }

    async fn purge_tokens(
        &self,
        now: i64,
        purge_after_secs: i64,
    ) -> Result<Vec<HashedToken>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        let rows = tx
            .query(
                "DELETE FROM tokens WHERE expires_at + $2 <= $1 RETURNING token_hash",
                &[&now, &purge_after_secs],
            )
            .await
            .classified()?;
        let purged = hashes_of(&rows)?;
        self.notify_purged(&tx, &purged).await?;
        tx.commit().await.classified()?;
        Ok(purged)
    }

    async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
        now: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let c = self.conn().await?;
        // The insert loses quietly to an instance that stored one first;
        // the select then reads whichever won, so all instances agree.
        c.execute(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &candidate, &now],
        )
        .await
        .classified()?;
        Ok(
            c.query_one("SELECT value FROM secrets WHERE name = $1", &[&name])
                .await
                .classified()?
                .get(0),
        )
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.conn().await?;
        Ok(
            c.query_opt("SELECT value FROM secrets WHERE name = $1", &[&name])
                .await
                .classified()?
                .map(|r| r.get(0)),
        )
    }

    async fn set_secret(&self, name: &str, value: Vec<u8>, now: i64) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        tx.execute(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
            &[&name, &value, &now],
        )
        .await
        .classified()?;
        self.notify(&tx, &listen::Change::Secrets).await?;
        tx.commit().await.classified()
    }

    async fn load_settings(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.conn().await?;
        Ok(
            c.query("SELECT name, value FROM settings ORDER BY name", &[])
                .await
                .classified()?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        )
    }

    async fn store_settings(
        &self,
        values: Vec<(&'static str, i64)>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        for (name, value) in &values {
            tx.execute(
                "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                &[name, value, &now],
            )
            .await
            .classified()?;
        }
        self.notify(&tx, &listen::Change::Settings).await?;
        tx.commit().await.classified()
    }

    async fn clear_settings(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.classified()?;
        tx.execute("DELETE FROM settings", &[]).await.classified()?;
        self.notify(&tx, &listen::Change::Settings).await?;
        tx.commit().await.classified()
    }

    fn changes(&self) -> Option<broadcast::Receiver<StoreChange>> {
        Some(self.changes.subscribe())
    }

    async fn is_reachable(&self) -> Option<bool> {
        let mut last = self.last_check.lock().await;
        if let Some((at, reachable)) = *last
            && at.elapsed() < HEALTH_TTL
        {
            return Some(reachable);
        }
        let reachable = tokio::time::timeout(POOL_WAIT, async {
            let c = self.conn().await?;
            c.simple_query("").await.classified()
        })
        .await
        .is_ok_and(|r| r.is_ok());
        *last = Some((Instant::now(), reachable));
        Some(reachable)
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(PoolGauges::new(self.pool.clone())),
            Box::new(self.listener.lag.clone()),
            Box::new(self.listener.resyncs.clone()),
            Box::new(self.listener.listening.clone()),
        ]
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::testing::{TestDatabase, fresh_store};
    use crate::store::Store;
    use crate::token::PlainToken;

    crate::store::conformance::conformance_tests!(fresh_store);

    /// Every uncached `/verify-token` is a lookup by hash; prepared anew at
    /// each call (and the addresses read by a second statement), it cost
    /// four round trips instead of one.
    #[tokio::test]
    async fn a_token_lookup_is_one_statement_prepared_once_per_connection() {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
        let store = super::PostgresStore::open(&db.url(), 1).await.unwrap();
        let hash = PlainToken::generate().hashed();
        store
            .issue_token(hash, 1_000, 2_000, "192.0.2.1".into(), 1, 0)
            .await
            .unwrap();
        for _ in 0..3 {
            let rec = store.find_token(hash).await.unwrap().unwrap();
            assert_eq!(rec.ips, ["192.0.2.1"]);
            assert!(
                store
                    .find_token(PlainToken::generate().hashed())
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        let c = store.conn().await.unwrap();
        let prepared: Vec<String> = c
            .query(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%token_hash = $1'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(prepared.len(), 1, "{prepared:?}");
        assert!(prepared[0].contains("token_ips"), "{prepared:?}");
    }
}
