//! Tokens as the rest of the server sees them: the database behind an
//! in-memory cache, so `/verify-token` answers for a known token without
//! touching SQLite. Every change goes through here, which keeps the cache
//! exact: writes hit the database first, then replace the cached entry.

use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::client_ip::IpKey;
use crate::db::tokens::{self as rows, AddIp, Issued, TokenRecord};
use crate::db::{Db, DbError};
use crate::token::HashedToken;

#[derive(Debug)]
pub struct TokenStore {
    db: Db,
    cache: Cache<HashedToken, Arc<TokenRecord>>,
}

/// Outcome of presenting a known, valid token from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpCheck {
    Allowed,
    LimitReached,
}

impl TokenStore {
    pub fn new(db: Db, capacity: usize) -> Self {
        Self {
            db,
            cache: Cache::new(capacity),
        }
    }

    /// The token with this hash, from the cache or else the database.
    ///
    /// # Errors
    /// Database errors.
    pub async fn lookup(&self, hash: HashedToken) -> Result<Option<Arc<TokenRecord>>, DbError> {
        if let Some(rec) = self.cache.get(&hash) {
            return Ok(Some(rec));
        }
        let rec = self.db.call(move |c| rows::find_by_hash(c, &hash)).await?;
        Ok(rec.map(|r| {
            let r = Arc::new(r);
            self.cache.insert(hash, r.clone());
            r
        }))
    }

    /// Allows `ip` for `rec` if it is known or there is room; a new address
    /// is written to the database before this returns, so the limit holds
    /// across restarts.
    ///
    /// # Errors
    /// Database errors.
    pub async fn check_ip(
        &self,
        rec: &TokenRecord,
        ip: IpKey,
        now: i64,
        max: u32,
    ) -> Result<IpCheck, DbError> {
        if rec.has_ip(ip) {
            return Ok(IpCheck::Allowed);
        }
        if rec.ips.len() >= max as usize {
            return Ok(IpCheck::LimitReached);
        }
        let (id, ip_owned) = (rec.id, ip.to_text());
        let res = self
            .db
            .call(move |c| rows::add_ip(c, id, &ip_owned, now, max))
            .await?;
        match res {
            AddIp::Added(ips) | AddIp::Known(ips) => {
                let mut updated = rec.clone();
                updated.ips = ips;
                self.cache.insert(rec.hash, Arc::new(updated));
                Ok(IpCheck::Allowed)
            }
            AddIp::LimitReached => {
                self.cache.remove(&rec.hash);
                Ok(IpCheck::LimitReached)
            }
        }
    }

    /// Stores a new token (see [`rows::insert`]) and forgets evicted ones.
    ///
    /// # Errors
    /// Database errors.
    pub async fn issue(
        &self,
        hash: HashedToken,
        now: i64,
        expires_at: i64,
        ip: String,
        difficulty: u64,
        max_per_ip: u32,
    ) -> Result<Issued, DbError> {
        let issued = self
            .db
            .call(move |c| rows::insert(c, &hash, now, expires_at, &ip, difficulty, max_per_ip))
            .await?;
        for h in &issued.evicted {
            self.cache.remove(h);
        }
        Ok(issued)
    }

    /// Extends a token after a refresh solve.
    ///
    /// # Errors
    /// Database errors.
    pub async fn extend(
        &self,
        token_id: i64,
        ip: String,
        now: i64,
        expires_at: i64,
        max_ips: u32,
    ) -> Result<Option<Arc<TokenRecord>>, DbError> {
        let rec = self
            .db
            .call(move |c| rows::extend(c, token_id, &ip, now, expires_at, max_ips))
            .await?;
        Ok(rec.map(|r| {
            let r = Arc::new(r);
            self.cache.insert(r.hash, r.clone());
            r
        }))
    }

    /// Deletes tokens past their refresh window.
    ///
    /// # Errors
    /// Database errors.
    pub async fn purge(&self, now: i64, purge_after_secs: i64) -> Result<usize, DbError> {
        let gone = self
            .db
            .call(move |c| rows::purge(c, now, purge_after_secs))
            .await?;
        for h in &gone {
            self.cache.remove(h);
        }
        Ok(gone.len())
    }

    /// Drops one entry, after a change made elsewhere (admin revocation).
    pub fn invalidate(&self, hash: &HashedToken) {
        self.cache.remove(hash);
    }

    /// Drops every entry, after a bulk change.
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }
}
