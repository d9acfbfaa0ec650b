//! The SQLite backend, the embedded default: one r2d2 pool, connection
//! pragmas, embedded migrations, and the two ways to reach the file, both
//! of which keep every blocking rusqlite call off the async runtime:
//! [`SqliteStore::call`] for everything, and the [`readers`] for the token
//! lookup `/verify-token` waits on. The only module that names rusqlite;
//! one submodule per table family holds the SQL.

pub(crate) mod challenges;
mod readers;
pub(crate) mod secrets;
pub(crate) mod settings;
pub(crate) mod tokens;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use self::readers::Readers;

use super::{
    AddIp, Extended, Issued, RequestCount, RevokeScope, RevokedById, Store, StoreError, TokenRecord,
};
use crate::token::HashedToken;

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// A pool that gave no connection within its timeout is busy, not broken:
/// the only SQLite failure a retry can be expected to cure.
impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Fault(e.into())
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Fault(anyhow::anyhow!("database task failed: {e}"))
    }
}

/// The migrations, embedded in the binary and applied in order at start-up.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../../migrations/0001_init.sql")),
        M::up(include_str!("../../../../migrations/0002_settings.sql")),
        M::up(include_str!(
            "../../../../migrations/0003_token_requests.sql"
        )),
        M::up(include_str!(
            "../../../../migrations/0004_tokens_by_hash.sql"
        )),
    ])
}

/// Per-connection settings.
///
/// `synchronous = FULL` fsyncs the WAL at every commit, so a token is on
/// disk before its 200 is sent and survives a crash or power loss. The cost
/// is one fsync per issued token, which is small next to the argon2
/// verification that precedes it. WAL itself is not switched on here: that
/// needs the file to itself, which [`prepare_file`] has before the pool
/// opens its connections.
fn init_connection(c: &mut Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "PRAGMA busy_timeout = 5000;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
}

/// Brings the file to the state every pooled connection expects, on a
/// single connection, before the pool exists: WAL on, schema migrated.
///
/// WAL lets `/verify-token` readers run while a writer commits. The mode is
/// stored in the file, so it is set once here rather than by each pooled
/// connection: r2d2 opens all of them in parallel, and on a brand-new file
/// they used to race to switch it, the losers failing with "database is
/// locked" (logged as an ERROR on a newcomer's very first start).
fn prepare_file(path: &Path) -> anyhow::Result<()> {
    let mut c = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
    init_connection(&mut c)?;
    let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        anyhow::bail!(
            "database {} cannot use WAL (journal mode is {mode})",
            path.display()
        );
    }
    let migrations = migrations();
    let pending = migrations.pending_migrations(&c).map_err(|e| {
        anyhow::anyhow!("cannot read the schema version of {}: {e}", path.display())
    })?;
    // An existing file's upgrade rewrites tables (version 4 rewrote the
    // tokens: about 10 s for a million), so say why the start waits.
    let fresh = matches!(
        migrations.current_version(&c),
        Ok(rusqlite_migration::SchemaVersion::NoneSet)
    );
    if pending > 0 && !fresh {
        tracing::info!(database = %path.display(), pending, "upgrading the database schema; a large store takes a while");
    }
    migrations
        .to_latest(&mut c)
        .map_err(|e| anyhow::anyhow!("cannot migrate database {}: {e}", path.display()))
}

/// The files SQLite keeps for the database at `path`: the database, its
/// write-ahead log and its shared-memory index.
fn database_files(path: &Path) -> [std::path::PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    [path.to_owned(), with_suffix("-wal"), with_suffix("-shm")]
}

/// Makes the database readable by powgate's user only: it holds the
/// challenge HMAC key. The file is created 0600 before SQLite opens it, and
/// SQLite gives the WAL and SHM files it creates the database file's mode.
/// Files left by an older version (0644 under the usual umask) are tightened,
/// with a warning, since others may have read them already.
#[cfg(unix)]
fn make_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create database {}: {e}", path.display()))?;
    for file in database_files(path) {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue; // no WAL or SHM yet
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        // Not fatal when it fails (a file owned by another user that powgate
        // may only write through its group): the operator is told instead.
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => tracing::warn!(
                file = %file.display(),
                was = format_args!("{mode:o}"),
                "the database was open to other users; it is 0600 now. It holds \
                 the challenge key: set POW_SECRET to a new value, or delete the \
                 challenge_hmac_key row, if others may have read it"
            ),
            Err(e) => tracing::warn!(
                file = %file.display(),
                was = format_args!("{mode:o}"),
                error = %e,
                "the database is open to other users and cannot be made 0600; \
                 it holds the challenge key, so restrict it"
            ),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// The SQLite file behind a pool of connections, and the reader threads
/// that look tokens up ([`readers`]).
#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pool: Pool,
    readers: Arc<Readers>,
}

impl SqliteStore {
    /// Opens (creating if needed, private to this user) the database file,
    /// migrates it, and opens the pool.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub(crate) fn open(path: &Path, max_connections: u32) -> anyhow::Result<Self> {
        make_private(path)?;
        prepare_file(path)?;
        let readers = Readers::start(path, |p| {
            let mut c = Connection::open(p)?;
            init_connection(&mut c)?;
            Ok(c)
        })?;
        let manager = SqliteConnectionManager::file(path).with_init(init_connection);
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        Ok(Self {
            pool,
            readers: Arc::new(readers),
        })
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    ///
    /// # Errors
    /// Pool exhaustion, SQLite errors from `f`, or a panic inside `f`.
    pub(crate) async fn call<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            Ok(f(&mut conn)?)
        })
        .await?
    }

    /// Synchronous access, for tests outside the runtime.
    ///
    /// # Errors
    /// Pool exhaustion or SQLite errors from `f`.
    #[cfg(test)]
    pub(crate) fn call_blocking<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R>,
    {
        let mut conn = self.pool.get()?;
        Ok(f(&mut conn)?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn spend_challenge(
        &self,
        id: [u8; 16],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.call(move |c| challenges::spend(c, &id, now, expires_at))
            .await
    }

    async fn purge_spent_challenges(&self, now: i64) -> Result<usize, StoreError> {
        self.call(move |c| challenges::purge_expired(c, now)).await
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
        self.call(move |c| {
            tokens::insert(
                c,
                &hash,
                now,
                expires_at,
                &issuer_ip,
                difficulty,
                max_tokens_per_ip,
            )
        })
        .await
    }

    /// On the reader threads: the one store call `/verify-token` waits on.
    async fn find_token(&self, hash: HashedToken) -> Result<Option<TokenRecord>, StoreError> {
        self.readers
            .call(move |c| tokens::find_by_hash(c, &hash))
            .await
    }

    async fn find_token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
        self.call(move |c| tokens::find_by_id(c, id)).await
    }

    async fn add_token_address(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        max: u32,
    ) -> Result<AddIp, StoreError> {
        self.call(move |c| tokens::add_ip(c, token_id, &ip, now, max))
            .await
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
        self.call(move |c| {
            tokens::extend(
                c,
                token_id,
                &ip,
                now,
                expires_at,
                max_ips,
                max_tokens_per_ip,
            )
        })
        .await
    }

    async fn write_request_counts(&self, counts: Vec<RequestCount>) -> Result<(), StoreError> {
        self.call(move |c| tokens::write_requests(c, &counts)).await
    }

    async fn revoke(&self, scope: RevokeScope, now: i64) -> Result<Vec<HashedToken>, StoreError> {
        self.call(move |c| tokens::revoke_scope(c, scope, now))
            .await
    }

    async fn revoke_by_id(&self, id: i64, now: i64) -> Result<RevokedById, StoreError> {
        self.call(move |c| tokens::revoke_by_id(c, id, now)).await
    }

    async fn expire_all(&self, now: i64) -> Result<usize, StoreError> {
        self.call(move |c| tokens::expire_all(c, now)).await
    }

    async fn list_tokens(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<TokenRecord>, i64), StoreError> {
        self.call(move |c| tokens::list(c, limit, offset)).await
    }

    async fn count_active_tokens(&self, now: i64) -> Result<i64, StoreError> {
        self.call(move |c| tokens::count_active(c, now)).await
    }

    async fn purge_tokens(
        &self,
        now: i64,
        purge_after_secs: i64,
    ) -> Result<Vec<HashedToken>, StoreError> {
        self.call(move |c| tokens::purge(c, now, purge_after_secs))
            .await
    }

    async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
        now: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let name = name.to_owned();
        self.call(move |c| secrets::get_or_create(c, &name, now, || candidate))
            .await
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.call(move |c| secrets::get(c, &name)).await
    }

    async fn set_secret(&self, name: &str, value: Vec<u8>, now: i64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call(move |c| secrets::set(c, &name, &value, now))
            .await
    }

    async fn load_settings(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(|c| settings::load(c)).await
    }

    async fn store_settings(
        &self,
        values: Vec<(&'static str, i64)>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.call(move |c| settings::store(c, &values, now)).await
    }

    async fn clear_settings(&self) -> Result<(), StoreError> {
        self.call(|c| settings::clear(c).map(drop)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A store on a new file, which goes with the directory.
    async fn fresh_store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), 4).unwrap();
        (dir, Arc::new(store))
    }

    crate::store::conformance::conformance_tests!(fresh_store);

    /// A store whose pool has a single connection, for the tests that
    /// hold it.
    fn store_with_one_pooled_connection() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), 1).unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_lookup_never_waits_for_a_pooled_connection() {
        let (_dir, store) = store_with_one_pooled_connection();
        let hash = crate::token::PlainToken::generate().hashed();
        store
            .issue_token(hash, 1_000, 2_000, "192.0.2.1".into(), 1, 0)
            .await
            .unwrap();
        // The pool's only connection, held as a long write would hold it.
        let held = store.pool.get().unwrap();
        let found = tokio::time::timeout(Duration::from_secs(2), store.find_token(hash))
            .await
            .expect("the lookup waited for the pool")
            .unwrap();
        assert_eq!(found.map(|r| r.hash), Some(hash));
        drop(held);
    }

    #[tokio::test]
    async fn a_panicking_lookup_fails_alone_and_the_readers_go_on() {
        let (_dir, store) = store_with_one_pooled_connection();
        let panicked = store
            .readers
            .call(|_| -> rusqlite::Result<()> { panic!("a bug in a lookup") })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Fault(_))),
            "{panicked:?}"
        );
        let one: i64 = store
            .readers
            .call(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(one, 1);
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let (_dir, store) = store_with_one_pooled_connection();
        let written = store
            .readers
            .call(|c| c.execute("DELETE FROM tokens", []))
            .await;
        assert!(matches!(written, Err(StoreError::Fault(_))), "{written:?}");
    }

    #[tokio::test]
    async fn the_reader_threads_stop_with_the_store() {
        let (_dir, store) = store_with_one_pooled_connection();
        let running = store.readers.running();
        assert!(running() >= 1);
        drop(store);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while running() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} still running",
                running()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    #[tokio::test]
    async fn a_purged_token_takes_its_request_counts_with_it() {
        let (_dir, store) = store_with_one_pooled_connection();
        let hash = crate::token::PlainToken::generate().hashed();
        let id = store
            .issue_token(hash, 1_000, 2_000, "192.0.2.1".into(), 1, 0)
            .await
            .unwrap()
            .id;
        let counts = || {
            store.call_blocking(move |c| {
                c.query_row(
                    "SELECT count(*) FROM token_requests WHERE token_id = ?1",
                    [id],
                    |r| r.get::<_, i64>(0),
                )
            })
        };
        assert_eq!(counts().unwrap(), 1);
        let purged = store.purge_tokens(10_000, 60).await.unwrap();
        assert_eq!(purged, [hash]);
        assert_eq!(counts().unwrap(), 0);
    }

    /// Version 4 moved the tokens into a table keyed by their hash, with
    /// their addresses in the row: a file written before it keeps every
    /// token, every address in its order, and its ids.
    #[tokio::test]
    async fn tokens_stored_before_the_hash_keyed_table_survive_its_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let (a, b) = (
            crate::token::PlainToken::generate().hashed(),
            crate::token::PlainToken::generate().hashed(),
        );
        {
            let mut c = Connection::open(&path).unwrap();
            init_connection(&mut c).unwrap();
            migrations().to_version(&mut c, 3).unwrap();
            c.execute_batch(
                "INSERT INTO tokens (id, token_hash, created_at, expires_at, revoked_at, issuer_ip,
                                     refresh_count, difficulty, requests_used)
                 VALUES (7, x'00', 100, 200, NULL, '192.0.2.1', 2, 900, 41),
                        (9, x'01', 110, 210, 150, '2001:db8::', 0, 200, 0);
                 INSERT INTO token_ips (token_id, ip, first_seen)
                 VALUES (7, '192.0.2.1', 100), (7, '198.51.100.9', 130), (7, '198.51.100.2', 130),
                        (9, '2001:db8::', 110);",
            )
            .unwrap();
            let mut set_hash = c
                .prepare("UPDATE tokens SET token_hash = ?2 WHERE id = ?1")
                .unwrap();
            set_hash.execute(rusqlite::params![7, &a.0[..]]).unwrap();
            set_hash.execute(rusqlite::params![9, &b.0[..]]).unwrap();
        }
        let store = SqliteStore::open(&path, 2).unwrap();
        let first = store.find_token(a).await.unwrap().unwrap();
        assert_eq!(
            first,
            TokenRecord {
                id: 7,
                hash: a,
                created_at: 100,
                expires_at: 200,
                revoked_at: None,
                refresh_count: 2,
                requests_used: 41,
                ips: vec![
                    "192.0.2.1".into(),
                    "198.51.100.2".into(),
                    "198.51.100.9".into()
                ],
            }
        );
        let second = store.find_token_by_id(9).await.unwrap().unwrap();
        assert_eq!((second.hash, second.revoked_at), (b, Some(150)));
        assert_eq!(second.ips, ["2001:db8::"]);
        // The next token takes the next id, as before.
        let issued = store
            .issue_token(
                crate::token::PlainToken::generate().hashed(),
                300,
                400,
                "192.0.2.3".into(),
                1,
                0,
            )
            .await
            .unwrap();
        assert_eq!(issued.id, 10);
    }
}
