//! The PostgreSQL schema: numbered SQL files embedded in the binary and
//! applied at start-up, one instance at a time.
//!
//! Several instances often start at once (a rolling deploy, a fleet
//! rebooting), each finding the same migrations missing. They take turns
//! under one session-level advisory lock: the first applies them, the
//! others find them applied. A hand-written runner rather than a migration
//! crate, because the lock is the whole point and is two statements here.

use tokio_postgres::Client;

/// The migrations, in order; the version is the position plus one.
const MIGRATIONS: &[&str] = &[include_str!(
    "../../../../migrations/postgres/0001_init.sql"
)];

/// The advisory lock key every powgate instance migrates under: "powgate"
/// and a 1, so it cannot collide with another application's lock by chance.
const MIGRATION_LOCK: i64 = 0x706f_7767_6174_6501;

/// Why the schema cannot be brought up to date.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    #[error("cannot migrate the PostgreSQL database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A newer powgate migrated the database; this one would misread it.
    #[error(
        "the PostgreSQL database has schema version {found}, newer than this powgate's {known}; run the newer powgate"
    )]
    Newer { found: i64, known: i64 },
}

/// Applies the missing migrations, each in its own transaction, under the
/// advisory lock. Returns how many it applied.
///
/// # Errors
/// PostgreSQL errors, or a schema newer than this binary knows.
pub(crate) async fn migrate(client: &mut Client) -> Result<usize, MigrateError> {
    // Waits however long another instance's migrations take: the
    // session's own lock_timeout (a request's bound, see `url`) would fail
    // this start instead.
    client.batch_execute("SET lock_timeout = 0").await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply_missing(client).await;
    // Unlocked and reset even after a failure: the connection goes on to
    // serve requests from the pool.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let reset = client.batch_execute("RESET lock_timeout").await;
    let applied = applied?;
    unlocked?;
    reset?;
    Ok(applied)
}

async fn apply_missing(client: &mut Client) -> Result<usize, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS powgate_migrations (
                 version     bigint PRIMARY KEY,  -- position in MIGRATIONS, from 1
                 applied_at  bigint NOT NULL      -- unix seconds
             )",
        )
        .await?;
    let found: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM powgate_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > known {
        return Err(MigrateError::Newer { found, known });
    }
    let mut applied = 0;
    for (version, sql) in (1_i64..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO powgate_migrations (version, applied_at)
             VALUES ($1, extract(epoch FROM now())::bigint)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
        applied += 1;
    }
    Ok(applied)
}
