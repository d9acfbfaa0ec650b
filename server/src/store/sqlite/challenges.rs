//! Spent challenges: the record that makes each challenge single-use.

use rusqlite::{Connection, params};

/// Spends challenge `id`. Returns `true` for exactly one caller per id, even
/// under concurrency: the insert is a single statement on a primary key.
///
/// # Errors
/// SQLite errors.
pub(crate) fn spend(
    c: &Connection,
    id: &[u8; 16],
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "INSERT INTO spent_challenges (id, spent_at, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO NOTHING",
        params![&id[..], now, expires_at],
    )?;
    Ok(n == 1)
}

/// Deletes records of challenges that have expired: they are refused on
/// expiry alone, so their record is no longer needed.
///
/// # Errors
/// SQLite errors.
pub(crate) fn purge_expired(c: &Connection, now: i64) -> rusqlite::Result<usize> {
    c.execute("DELETE FROM spent_challenges WHERE expires_at < ?1", [now])
}
