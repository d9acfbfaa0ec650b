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
//! [`url`] checks the `postgres://` URL and its TLS policy; [`migrate`]
//! brings the schema up to date under an advisory lock.

pub mod migrate;
pub mod url;

use std::time::Duration;

use anyhow::Context as _;

pub use url::PostgresUrl;

/// The connection pool.
pub type Pool = deadpool_postgres::Pool;

/// How long a request waits for a free pooled connection before the store
/// counts as unavailable (503): a full pool under load clears in well under
/// a second, so waiting longer would only stack up requests.
const POOL_WAIT: Duration = Duration::from_secs(2);

/// Opens a pool of at most `max_connections` to `url` and migrates the
/// schema.
///
/// # Errors
/// When the server cannot be reached, refuses the login, or a migration
/// fails. The messages name the server by its redacted URL.
pub async fn open(url: &PostgresUrl, max_connections: usize) -> anyhow::Result<Pool> {
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
    drop(client);
    Ok(pool)
}
