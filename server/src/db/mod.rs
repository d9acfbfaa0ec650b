//! SQLite storage: one r2d2 pool, connection pragmas, embedded migrations,
//! and [`Db::call`], the single way handlers reach the database, which keeps
//! every blocking rusqlite call off the async runtime.

pub mod challenges;
pub mod secrets;
pub mod settings;
pub mod tokens;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The migrations, embedded in the binary and applied in order at start-up.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/0001_init.sql")),
        M::up(include_str!("../../../migrations/0002_settings.sql")),
    ])
}

/// Per-connection settings.
///
/// WAL lets `/verify-token` readers run while a writer commits, and
/// `synchronous = FULL` fsyncs the WAL at every commit, so a token is on disk
/// before its 200 is sent and survives a crash or power loss. The cost is one
/// fsync per issued token, which is small next to the argon2 verification
/// that precedes it.
fn init_connection(c: &mut Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )
}

#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
}

impl Db {
    /// Opens (creating if needed) the database file and migrates it.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub fn open(path: &Path, max_connections: u32) -> anyhow::Result<Self> {
        let manager = SqliteConnectionManager::file(path).with_init(init_connection);
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        let mut conn = pool.get()?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| anyhow::anyhow!("cannot migrate database {}: {e}", path.display()))?;
        Ok(Self { pool })
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    ///
    /// # Errors
    /// Pool exhaustion, SQLite errors from `f`, or a panic inside `f`.
    pub async fn call<F, R>(&self, f: F) -> Result<R, DbError>
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

    /// Synchronous access, for start-up code and tests outside the runtime.
    ///
    /// # Errors
    /// Pool exhaustion or SQLite errors from `f`.
    pub fn call_blocking<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R>,
    {
        let mut conn = self.pool.get()?;
        Ok(f(&mut conn)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }
}
