//! Tokens as the rest of the server sees them: the [`Store`] behind an
//! in-memory cache, so `/verify-token` answers for a known token without
//! touching the database. Every change made here goes through here, which
//! keeps the cache exact: writes hit the database first, then replace the
//! cached entry. Changes other instances make to a shared store arrive as
//! [`StoreChange`]s and are applied by [`TokenStore::apply`].
//!
//! A record read from the database may be stale by the time it reaches the
//! cache: an admin revocation can commit while the read is in flight. Every
//! removal therefore bumps a generation counter, and a record read before a
//! bump is not cached (or is taken out again at once), so a revoked token can
//! never come back from the cache.
//!
//! Hashes the database does not hold are remembered too, so a flood of
//! well-formed but unknown tokens is answered without a query. A hash only
//! becomes known by being issued here, which forgets its absence; the same
//! generation rule, on a counter of issues, keeps a read that raced an issue
//! from remembering the new token as absent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::client_ip::IpKey;
use crate::store::{AddIp, Issued, RequestCount, Store, StoreChange, StoreError};
// The token types routes work with, so they need not reach into `store`.
pub(crate) use crate::store::{RevokeScope, RevokedById, TokenRecord, TokenState};
use crate::token::HashedToken;

#[derive(Debug)]
pub(crate) struct TokenStore {
    store: Arc<dyn Store>,
    cache: Cache<HashedToken, Cached>,
    /// How long a cached record is answered before it is read again; `None`
    /// when only this process writes the store, so the cache is exact.
    ttl: Option<Duration>,
    /// Bumped by every removal; see the module comment.
    generation: AtomicU64,
    /// Hashes found absent from the database, bounded like `cache`.
    absent: Cache<HashedToken, ()>,
    /// Bumped by every issue, the only way a hash becomes known.
    issues: AtomicU64,
}

/// A cached record and when it was read.
#[derive(Debug, Clone)]
struct Cached {
    rec: Arc<TokenRecord>,
    read_at: Instant,
}

/// Outcome of presenting a known, valid token from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpCheck {
    Allowed,
    LimitReached,
}

impl TokenStore {
    pub(crate) fn new(store: Arc<dyn Store>, capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            store,
            cache: Cache::new(capacity),
            ttl,
            generation: AtomicU64::new(0),
            absent: Cache::new(capacity),
            issues: AtomicU64::new(0),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `rec`, read from the database after `seen` was taken, unless
    /// an entry was removed since: the read may predate that removal's write.
    /// Then any cached entry goes too, since it is older still (an extended
    /// token's entry still says expired). The second check covers a removal
    /// that lands between the first one and the insert; dropping a fresh
    /// entry there only costs a miss.
    fn cache_if_current(&self, seen: u64, rec: Arc<TokenRecord>) {
        if self.generation() != seen {
            self.cache.remove(&rec.hash);
            return;
        }
        let hash = rec.hash;
        self.cache.insert(
            hash,
            Cached {
                rec,
                read_at: Instant::now(),
            },
        );
        if self.generation() != seen {
            self.cache.remove(&hash);
        }
    }

    fn issues(&self) -> u64 {
        self.issues.load(Ordering::SeqCst)
    }

    /// Remembers that the database did not hold `hash` when read after
    /// `seen` issues, unless a token was issued since: that read may predate
    /// the issue of this very hash. Checked again after the insert, as in
    /// [`Self::cache_if_current`].
    fn remember_absent_if_current(&self, seen: u64, hash: HashedToken) {
        if self.issues() != seen {
            return;
        }
        self.absent.insert(hash, ());
        if self.issues() != seen {
            self.absent.remove(&hash);
        }
    }

    /// Removes entries after their rows changed; callers write first.
    fn forget<'a>(&self, hashes: impl IntoIterator<Item = &'a HashedToken>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for h in hashes {
            self.cache.remove(h);
        }
    }

    /// The token with this hash, from the caches or else the database.
    /// A record older than the TTL is read again; if the store cannot be
    /// reached for that, the record as last read is answered, so tokens in
    /// memory keep passing through an outage of a shared database.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn lookup(
        &self,
        hash: HashedToken,
    ) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        let expired = match self.cache.get(&hash) {
            Some(c) if self.ttl.is_none_or(|ttl| c.read_at.elapsed() < ttl) => {
                return Ok(Some(c.rec));
            }
            Some(c) => Some(c.rec),
            None => None,
        };
        if expired.is_none() && self.absent.get(&hash).is_some() {
            return Ok(None);
        }
        let (seen, seen_issues) = (self.generation(), self.issues());
        let rec = match self.store.find_token(hash).await {
            Ok(rec) => rec,
            Err(StoreError::Unavailable(e)) => {
                return expired.map(Some).ok_or(StoreError::Unavailable(e));
            }
            Err(e) => return Err(e),
        };
        let Some(rec) = rec else {
            self.remember_absent_if_current(seen_issues, hash);
            return Ok(None);
        };
        let rec = Arc::new(rec);
        self.cache_if_current(seen, rec.clone());
        Ok(Some(rec))
    }

    /// Allows `ip` for `rec` if it is known or there is room; a new address
    /// is written to the database before this returns, so the limit holds
    /// across restarts.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn check_ip(
        &self,
        rec: &TokenRecord,
        ip: IpKey,
        now: i64,
        max: u32,
    ) -> Result<IpCheck, StoreError> {
        if rec.has_ip(ip) {
            return Ok(IpCheck::Allowed);
        }
        if rec.ips.len() >= max as usize {
            return Ok(IpCheck::LimitReached);
        }
        let seen = self.generation();
        let res = self
            .store
            .add_token_address(rec.id, ip.to_text(), now, max)
            .await?;
        match res {
            AddIp::Added(ips) | AddIp::Known(ips) => {
                let mut updated = rec.clone();
                updated.ips = ips;
                self.cache_if_current(seen, Arc::new(updated));
                Ok(IpCheck::Allowed)
            }
            AddIp::LimitReached => {
                self.forget([&rec.hash]);
                Ok(IpCheck::LimitReached)
            }
        }
    }

    /// Stores a new token (see [`Store::issue_token`]), forgets that its hash was
    /// absent, and forgets evicted ones.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn issue(
        &self,
        hash: HashedToken,
        now: i64,
        expires_at: i64,
        ip: String,
        difficulty: u64,
        max_per_ip: u32,
    ) -> Result<Issued, StoreError> {
        let issued = self
            .store
            .issue_token(hash, now, expires_at, ip, difficulty, max_per_ip)
            .await?;
        self.issues.fetch_add(1, Ordering::SeqCst);
        self.absent.remove(&hash);
        self.forget(&issued.evicted);
        Ok(issued)
    }

    /// Extends a token after a refresh solve (see [`Store::refresh_token`]) and
    /// forgets the tokens its address's cap evicted.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn extend(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        expires_at: i64,
        max_ips: u32,
        max_per_ip: u32,
    ) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        let seen = self.generation();
        let extended = self
            .store
            .refresh_token(token_id, ip, now, expires_at, max_ips, max_per_ip)
            .await?;
        Ok(extended.map(|e| {
            self.forget(&e.evicted);
            let r = Arc::new(e.record);
            self.cache_if_current(seen, r.clone());
            r
        }))
    }

    /// Writes the request counts [`crate::token_usage`] took to the rows,
    /// all or none (see [`Store::write_request_counts`]). The cached
    /// records keep their older count: the usage counter in memory is the
    /// authority while it lives, and drops a record with
    /// [`Self::forget_cached`] when it lets go of a token.
    ///
    /// # Errors
    /// Database errors; nothing is written then.
    pub(crate) async fn write_requests(&self, counts: Vec<RequestCount>) -> Result<(), StoreError> {
        self.store.write_request_counts(counts).await
    }

    /// Drops cached records whose rows are newer than they are, so the next
    /// lookup reads the rows. With none to drop it does nothing: the
    /// generation bump of a removal makes every lookup in flight
    /// uncacheable, and the usage flush calls this every few seconds, most
    /// often with nothing.
    pub(crate) fn forget_cached(&self, hashes: &[HashedToken]) {
        if !hashes.is_empty() {
            self.forget(hashes);
        }
    }

    /// Deletes tokens past their refresh window.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn purge(&self, now: i64, purge_after_secs: i64) -> Result<usize, StoreError> {
        let gone = self.store.purge_tokens(now, purge_after_secs).await?;
        self.forget(&gone);
        Ok(gone.len())
    }

    /// Revokes every token in `scope` (see [`Store::revoke`]) and
    /// returns how many: written first, then forgotten, like every change.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn revoke(&self, scope: RevokeScope, now: i64) -> Result<usize, StoreError> {
        let revoked = self.store.revoke(scope, now).await?;
        self.forget(&revoked);
        Ok(revoked.len())
    }

    /// Revokes the token with this id, the one the admin list shows.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn revoke_by_id(&self, id: i64, now: i64) -> Result<RevokedById, StoreError> {
        let outcome = self.store.revoke_by_id(id, now).await?;
        if let RevokedById::Revoked(hash) = &outcome {
            self.forget([hash]);
        }
        Ok(outcome)
    }

    /// Expires every active token now, leaving them refreshable, and
    /// returns how many. The statement does not say which rows it changed,
    /// so the whole cache goes, after the write as always.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn expire_all(&self, now: i64) -> Result<usize, StoreError> {
        let expired = self.store.expire_all(now).await?;
        self.forget_all();
        Ok(expired)
    }

    /// One page of tokens, newest first, and the total count, read from the
    /// database: the admin list must show every token, not the cached ones.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn list(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<TokenRecord>, i64), StoreError> {
        self.store.list_tokens(limit, offset).await
    }

    /// How many tokens are active (unexpired and unrevoked) at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn count_active(&self, now: i64) -> Result<i64, StoreError> {
        self.store.count_active_tokens(now).await
    }

    /// Drops every cached record, after rows changed that nobody listed.
    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.clear();
    }

    /// Applies a change another instance made to the shared store. The
    /// same generation rules as for a change made here keep a read in
    /// flight from caching what the change made stale; and since another
    /// instance can issue a token, the change also forgets that its hash
    /// was absent, counted as an issue so no racing read remembers it so.
    pub(crate) fn apply(&self, change: &StoreChange) {
        match change {
            StoreChange::Token { hash } => {
                self.issues.fetch_add(1, Ordering::SeqCst);
                self.absent.remove(hash);
                self.forget([hash]);
            }
            StoreChange::AllTokens | StoreChange::Resync => {
                self.issues.fetch_add(1, Ordering::SeqCst);
                self.absent.clear();
                self.forget_all();
            }
            StoreChange::Settings | StoreChange::Secrets => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::token::PlainToken;

    /// A store on a fresh database file, holding one token valid until
    /// 2 000, and the file's store for SQL of a test's own.
    async fn sqlite_store_with_a_token() -> (tempfile::TempDir, TokenStore, HashedToken, SqliteStore)
    {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("t.db"), 2).unwrap();
        let store = TokenStore::new(Arc::new(sqlite.clone()), 16, None);
        let hash = PlainToken::generate().hashed();
        store
            .issue(hash, 1_000, 2_000, "192.0.2.1".into(), 1, 10)
            .await
            .unwrap();
        (dir, store, hash, sqlite)
    }

    async fn store_with_a_token() -> (tempfile::TempDir, TokenStore, HashedToken) {
        let (dir, store, hash, _) = sqlite_store_with_a_token().await;
        (dir, store, hash)
    }

    /// The steps of `lookup` with an admin revocation committed while the
    /// database read is in flight: the stale, unrevoked record must not
    /// reach the cache, or the revoked token would keep passing.
    #[tokio::test]
    async fn a_revocation_during_a_read_keeps_the_stale_record_out() {
        let (_dir, store, hash) = store_with_a_token().await;

        let seen = store.generation();
        let stale = store.store.find_token(hash).await.unwrap().unwrap();
        let revoked = store.revoke_by_id(stale.id, 1_500).await.unwrap();
        assert_eq!(revoked, RevokedById::Revoked(hash));
        store.cache_if_current(seen, Arc::new(stale));

        let rec = store.lookup(hash).await.unwrap().unwrap();
        assert_eq!(rec.revoked_at, Some(1_500));
    }

    /// Renames the tokens table away (or back), so any query of it fails:
    /// a lookup that still answers did not touch the database.
    async fn hide_tokens_table(sqlite: &SqliteStore, hide: bool) {
        let sql = if hide {
            "ALTER TABLE tokens RENAME TO tokens_hidden"
        } else {
            "ALTER TABLE tokens_hidden RENAME TO tokens"
        };
        sqlite.call(move |c| c.execute_batch(sql)).await.unwrap();
    }

    /// A flood of well-formed but unknown tokens used to cost one SQLite
    /// query each, every time.
    #[tokio::test]
    async fn an_unknown_token_is_answered_without_the_database_the_second_time() {
        let (_dir, store, _, sqlite) = sqlite_store_with_a_token().await;
        let unknown = PlainToken::generate().hashed();
        assert!(store.lookup(unknown).await.unwrap().is_none());

        hide_tokens_table(&sqlite, true).await;
        assert!(
            store.lookup(PlainToken::generate().hashed()).await.is_err(),
            "a new hash does reach the database"
        );
        assert!(store.lookup(unknown).await.unwrap().is_none());
        hide_tokens_table(&sqlite, false).await;

        // Issuing that very hash makes it known at once.
        store
            .issue(unknown, 1_000, 2_000, "192.0.2.2".into(), 1, 10)
            .await
            .unwrap();
        assert!(store.lookup(unknown).await.unwrap().is_some());
    }

    /// The steps of `lookup` for a hash that is issued while the database
    /// read is in flight: the read's "absent" must not be remembered, or the
    /// new token would be refused as unknown.
    #[tokio::test]
    async fn an_issue_during_a_read_keeps_the_stale_absence_out() {
        let (_dir, store, _) = store_with_a_token().await;
        let hash = PlainToken::generate().hashed();

        let seen = store.issues();
        let read = store.store.find_token(hash).await.unwrap();
        assert!(read.is_none());
        store
            .issue(hash, 1_000, 2_000, "192.0.2.2".into(), 1, 10)
            .await
            .unwrap();
        store.remember_absent_if_current(seen, hash);

        assert!(store.lookup(hash).await.unwrap().is_some());
    }

    /// Expire-all changes rows it does not name, so a token cached as
    /// active before it must not keep passing from the cache after it.
    #[tokio::test]
    async fn expire_all_leaves_no_cached_token_active() {
        let (_dir, store, hash) = store_with_a_token().await;
        let before = store.lookup(hash).await.unwrap().unwrap();
        assert_eq!(before.state(1_500, 60), TokenState::Active);

        assert_eq!(store.expire_all(1_500).await.unwrap(), 1);

        let after = store.lookup(hash).await.unwrap().unwrap();
        assert_eq!(
            after.state(1_500, 60),
            TokenState::Expired { refreshable: true }
        );
    }

    #[tokio::test]
    async fn a_read_with_no_removal_meanwhile_is_cached() {
        let (_dir, store, hash) = store_with_a_token().await;
        assert!(store.lookup(hash).await.unwrap().is_some());
        assert!(store.cache.get(&hash).is_some());
    }

    /// The usage flush hands over the tokens it dropped every 5 s, most
    /// often none; forgetting none used to bump the generation anyway, so
    /// a lookup in flight across a flush was not cached.
    #[tokio::test]
    async fn a_flush_that_drops_no_token_leaves_a_lookup_in_flight_cacheable() {
        let (_dir, store, hash) = store_with_a_token().await;
        let seen = store.generation();
        let rec = store.store.find_token(hash).await.unwrap().unwrap();
        store.forget_cached(&[]);
        store.cache_if_current(seen, Arc::new(rec));
        assert!(store.cache.get(&hash).is_some());
    }
}
