//! The storage seam: what the server needs from a database, in domain terms.
//!
//! Routes and the domain stores ([`crate::token_store::TokenStore`],
//! [`crate::challenge_ledger::ChallengeLedger`],
//! [`crate::settings::LiveSettings`], [`crate::admin_auth`]) hold an
//! `Arc<dyn Store>` and never see SQL or a driver's types. Each backend lives
//! in its own submodule and is the only place that names its driver:
//! [`sqlite`] (the embedded default) today, PostgreSQL next. The rules a
//! backend must keep (single-use spend, the address limit under
//! concurrency, the per-address token cap, …) are pinned by one test suite,
//! `conformance`, that runs against every backend.
//!
//! The trait is object-safe through `async-trait`, which boxes each call's
//! future. That costs one allocation per store call, nothing next to the
//! query behind it, and the `/verify-token` hot path answers from
//! [`crate::token_store::TokenStore`]'s cache without calling the store at
//! all. Native `async fn` in traits would need enum dispatch over the
//! backends instead, which every new backend would have to edit.

#[cfg(test)]
pub(crate) mod conformance;
pub(crate) mod model;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub(crate) use model::{
    AddIp, Extended, Issued, RequestCount, RevokeScope, RevokedById, TokenRecord, TokenState,
};

use crate::config::Database;
use crate::token::HashedToken;

/// Why a store call failed: the difference decides the HTTP answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The store cannot be reached now (its pool timed out, the connection
    /// was refused or lost); the same call may well succeed in a moment, so
    /// clients get 503 with `Retry-After`, not a 500.
    #[error("the store is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Anything else: a failed statement, corrupt data, a panicked task.
    #[error("store error: {0:#}")]
    Fault(anyhow::Error),
}

/// What another instance changed in a shared store, for the caches here.
/// A backend that only this process writes (SQLite) has no changes to feed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "sent by shared backends (PostgreSQL); SQLite has no other writer"
)]
pub(crate) enum StoreChange {
    /// This token's row changed or came to be (revoked, refreshed, issued,
    /// purged): drop what is cached about it. Keyed by hash, the cache's
    /// own key, so no scan is needed.
    Token { hash: HashedToken },
    /// Rows changed that the change does not list (expire-all, a bulk
    /// revocation or purge): drop every cached token.
    AllTokens,
    /// The live settings changed: read them again.
    Settings,
    /// A secret changed (`powgate admin-key reset`): read the admin key
    /// again.
    Secrets,
    /// Changes may have been missed (a lost connection, a lagging
    /// receiver): drop every cache and read the settings again.
    Resync,
}

/// Everything the server stores. One trait rather than one per table
/// family, so a backend is one type and one `Arc<dyn Store>`; the sections
/// below follow the domain stores that call them.
///
/// Times are unix seconds. Every method is one atomic step: a backend that
/// needs several statements runs them in one transaction.
#[async_trait]
pub(crate) trait Store: Send + Sync + std::fmt::Debug {
    // ---- Spent challenges ([`crate::challenge_ledger`]) ----

    /// Records challenge `id` as spent, valid until `expires_at`. `true` for
    /// exactly one caller per id, even under concurrency and across
    /// instances sharing the store.
    async fn spend_challenge(
        &self,
        id: [u8; 16],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError>;

    /// Forgets spent challenges whose expiry is before `now` (they are
    /// refused on expiry alone); returns how many.
    async fn purge_spent_challenges(&self, now: i64) -> Result<usize, StoreError>;

    // ---- Tokens ([`crate::token_store`]) ----

    /// Stores a new token and `issuer_ip` as its first address, and enforces
    /// the per-address token cap (`max_tokens_per_ip`, 0 for none: of the
    /// address's other active tokens, the `max - 1` that expire last stay,
    /// the rest are expired now), all at once.
    async fn issue_token(
        &self,
        hash: HashedToken,
        now: i64,
        expires_at: i64,
        issuer_ip: String,
        difficulty: u64,
        max_tokens_per_ip: u32,
    ) -> Result<Issued, StoreError>;

    /// The token with this hash, with its addresses oldest first.
    async fn find_token(&self, hash: HashedToken) -> Result<Option<TokenRecord>, StoreError>;

    /// The token with this id, with its addresses oldest first.
    #[allow(
        dead_code,
        reason = "for backends and the conformance suite; the server finds by hash"
    )]
    async fn find_token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError>;

    /// Records address key `ip` for a token unless it already has `max`
    /// others. The count and the insert are one step, so concurrent new
    /// addresses never leave more than `max` recorded.
    async fn add_token_address(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        max: u32,
    ) -> Result<AddIp, StoreError>;

    /// After a refresh solve: moves the token's expiry to `expires_at`,
    /// counts one more refresh, starts its request budget again, enforces
    /// its issuing address's token cap as for an issue, and records `ip` if
    /// there is room under `max_ips`, all at once. `None` when the token
    /// was revoked or is gone.
    #[allow(clippy::too_many_arguments)]
    async fn refresh_token(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        expires_at: i64,
        max_ips: u32,
        max_tokens_per_ip: u32,
    ) -> Result<Option<Extended>, StoreError>;

    /// Writes request counts, all or none. Each count is a total, and a
    /// row only grows to it, so writing one twice changes nothing; it lands
    /// only while the token's `refresh_count` is still the one it was
    /// counted under.
    async fn write_request_counts(&self, counts: Vec<RequestCount>) -> Result<(), StoreError>;

    /// Revokes the unrevoked tokens in `scope`, expired ones too; returns
    /// their hashes.
    async fn revoke(&self, scope: RevokeScope, now: i64) -> Result<Vec<HashedToken>, StoreError>;

    /// Revokes the token with this id.
    async fn revoke_by_id(&self, id: i64, now: i64) -> Result<RevokedById, StoreError>;

    /// Expires every active token now (they stay refreshable); returns how
    /// many.
    async fn expire_all(&self, now: i64) -> Result<usize, StoreError>;

    /// One page of tokens, newest first, and the total count.
    async fn list_tokens(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<TokenRecord>, i64), StoreError>;

    /// Tokens neither expired nor revoked at `now`.
    async fn count_active_tokens(&self, now: i64) -> Result<i64, StoreError>;

    /// Deletes tokens whose expiry plus `purge_after_secs` is not after
    /// `now`; returns their hashes.
    async fn purge_tokens(
        &self,
        now: i64,
        purge_after_secs: i64,
    ) -> Result<Vec<HashedToken>, StoreError>;

    // ---- Secrets ([`crate::state`], [`crate::admin_auth`]) ----

    /// The secret `name`, storing `candidate` first when there is none.
    /// Concurrent first calls (two instances starting at once) all get the
    /// one value that was stored.
    async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
        now: i64,
    ) -> Result<Vec<u8>, StoreError>;

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces (or creates) the secret `name`; a shared store announces
    /// it to the other instances ([`StoreChange::Secrets`]).
    async fn set_secret(&self, name: &str, value: Vec<u8>, now: i64) -> Result<(), StoreError>;

    // ---- Live settings ([`crate::settings::LiveSettings`]) ----

    /// Every stored override as (name, value), sorted by name.
    async fn load_settings(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Stores overrides, all or none.
    async fn store_settings(
        &self,
        values: Vec<(&'static str, i64)>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Removes every override.
    async fn clear_settings(&self) -> Result<(), StoreError>;

    // ---- Other instances ----

    /// Changes made by other instances sharing this store, for the caches
    /// here; `None` when nobody else writes to it. Each call subscribes
    /// anew, so every consumer gets every change.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        None
    }

    // ---- Operations ----

    /// Whether the store answers now, for `/healthz`; `None` for a store
    /// with no such state of its own (an SQLite file is there or powgate
    /// would not have started).
    async fn is_reachable(&self) -> Option<bool> {
        None
    }

    /// The backend's own metrics (a pool, a listener), added to `/metrics`.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }
}

/// Opens the store configured by `database`, creating and migrating it as
/// needed.
///
/// # Errors
/// When it cannot be opened or migrated.
pub(crate) async fn open(database: &Database, connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path, connections)?),
        Database::Postgres(url) => Arc::new(
            postgres::PostgresStore::open(url, usize::try_from(connections).unwrap_or(32)).await?,
        ),
    })
}
