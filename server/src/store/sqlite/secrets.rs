//! Secrets generated once and kept in the database.

use rusqlite::{Connection, OptionalExtension, params};

/// Returns the stored secret `name`, or stores and returns `generate()`.
/// `INSERT OR IGNORE` then `SELECT` makes two concurrent first starts agree.
///
/// # Errors
/// SQLite errors.
pub(crate) fn get_or_create(
    c: &Connection,
    name: &str,
    now: i64,
    generate: impl FnOnce() -> Vec<u8>,
) -> rusqlite::Result<Vec<u8>> {
    if let Some(v) = get(c, name)? {
        return Ok(v);
    }
    c.execute(
        "INSERT OR IGNORE INTO secrets (name, value, created_at) VALUES (?1, ?2, ?3)",
        params![name, generate(), now],
    )?;
    c.query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
        r.get(0)
    })
}

/// # Errors
/// SQLite errors.
pub(crate) fn get(c: &Connection, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    c.query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

/// Replaces a secret.
///
/// # Errors
/// SQLite errors.
pub(crate) fn set(c: &Connection, name: &str, value: &[u8], now: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO secrets (name, value, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
        params![name, value, now],
    )?;
    Ok(())
}
