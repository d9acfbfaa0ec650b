//! Settings overrides stored by the admin API.
//!
//! One row per overridden setting; `name` is a [`crate::settings::SPECS`]
//! name (the list in `migrations/0002_settings.sql` is only the one of its
//! day). Only [`crate::settings::LiveSettings`] reads and writes this table.

use rusqlite::{Connection, params};

/// All stored overrides as (name, value).
///
/// # Errors
/// SQLite errors.
pub(crate) fn load(c: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = c.prepare("SELECT name, value FROM settings ORDER BY name")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Stores overrides in one transaction.
///
/// # Errors
/// SQLite errors.
pub(crate) fn store(c: &mut Connection, values: &[(&str, i64)], now: i64) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    for (name, value) in values {
        tx.execute(
            "INSERT INTO settings (name, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![name, value, now],
        )?;
    }
    tx.commit()
}

/// Removes every override.
///
/// # Errors
/// SQLite errors.
pub(crate) fn clear(c: &Connection) -> rusqlite::Result<usize> {
    c.execute("DELETE FROM settings", [])
}
