//! Spent challenges as the rest of the server sees them: the record that
//! makes each challenge single-use. Routes and background jobs go through
//! this store rather than the SQL in [`crate::db::challenges`], so a second
//! storage backend (PostgreSQL) only has to implement these two methods.
//!
//! Not to be confused with [`crate::open_challenges`], the in-memory bound
//! on challenges issued and not yet spent.

use crate::db::{Db, DbError, challenges};

#[derive(Debug)]
pub(crate) struct ChallengeLedger {
    db: Db,
}

impl ChallengeLedger {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Spends challenge `id`, valid until `expires_at`. `true` for exactly
    /// one caller per id, even under concurrency (see
    /// [`challenges::spend`]).
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn spend(
        &self,
        id: [u8; 16],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, DbError> {
        self.db
            .call(move |c| challenges::spend(c, &id, now, expires_at))
            .await
    }

    /// Forgets challenges that have expired, which are refused on expiry
    /// alone, and returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn purge_expired(&self, now: i64) -> Result<usize, DbError> {
        self.db
            .call(move |c| challenges::purge_expired(c, now))
            .await
    }
}
