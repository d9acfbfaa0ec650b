//! Spent challenges as the rest of the server sees them: the record that
//! makes each challenge single-use. Routes and background jobs go through
//! this store, which goes through the [`Store`] seam, so every backend keeps
//! the same rule.
//!
//! Not to be confused with [`crate::open_challenges`], the in-memory bound
//! on challenges issued and not yet spent.

use std::sync::Arc;

use crate::store::{Store, StoreError};

#[derive(Debug)]
pub(crate) struct ChallengeLedger {
    store: Arc<dyn Store>,
}

impl ChallengeLedger {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Spends challenge `id`, valid until `expires_at`. `true` for exactly
    /// one caller per id, even under concurrency (see
    /// [`Store::spend_challenge`]).
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn spend(
        &self,
        id: [u8; 16],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.store.spend_challenge(id, now, expires_at).await
    }

    /// Forgets challenges that have expired, which are refused on expiry
    /// alone, and returns how many.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn purge_expired(&self, now: i64) -> Result<usize, StoreError> {
        self.store.purge_spent_challenges(now).await
    }
}
