//! Token rows, with the addresses each token has been used from.
//!
//! A row is keyed by the token's hash, and holds its addresses as a JSON
//! array of `[address key, first seen]`, oldest first ([`Addresses`]); its
//! refresh and request counts are in `token_requests`, by id, which the
//! request-count flush rewrites. A lookup is two B-tree descents; see
//! `migrations/0004_tokens_by_hash.sql`.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::store::model::{
    AddIp, Extended, Issued, RequestCount, RevokeScope, RevokedById, TokenRecord,
};
use crate::token::HashedToken;

/// `SELECT` of a [`TokenRecord`]'s columns, from the tables they live in,
/// followed by `$rest`: one literal at compile time, so the lookup
/// `/verify-token` waits on builds no string per call.
macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT t.id, t.token_hash, t.created_at, t.expires_at, t.revoked_at,
                    r.refresh_count, r.requests_used, t.ips
             FROM tokens t JOIN token_requests r ON r.token_id = t.id ",
            $rest
        )
    };
}

/// A token's addresses with when each was first seen, ordered by (first
/// seen, address): the `ips` column.
#[derive(Debug, Default, PartialEq, Eq)]
struct Addresses(Vec<(String, i64)>);

impl Addresses {
    fn parse(json: &str) -> rusqlite::Result<Self> {
        serde_json::from_str(json).map(Self).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("a token's addresses are not [[address, first seen], …]: {e}").into(),
            )
        })
    }

    fn to_json(&self) -> rusqlite::Result<String> {
        serde_json::to_string(&self.0)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }

    fn contains(&self, ip: &str) -> bool {
        self.0.iter().any(|(i, _)| i == ip)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn add(&mut self, ip: &str, first_seen: i64) {
        self.0.push((ip.to_owned(), first_seen));
        self.0
            .sort_unstable_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    }

    /// The address keys, oldest first.
    fn into_keys(self) -> Vec<String> {
        self.0.into_iter().map(|(ip, _)| ip).collect()
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: Vec<u8> = r.get(1)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            "token hash is not 32 bytes".into(),
        )
    })?;
    Ok(TokenRecord {
        id: r.get(0)?,
        hash: HashedToken(hash),
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        revoked_at: r.get(4)?,
        refresh_count: r.get(5)?,
        requests_used: r.get(6)?,
        ips: Addresses::parse(r.get_ref(7)?.as_str()?)?.into_keys(),
    })
}

/// The token hashes a `… RETURNING token_hash` statement gives back;
/// a blob of another length (never written by powgate) is skipped.
fn returned_hashes<P: rusqlite::Params>(
    stmt: &mut rusqlite::Statement<'_>,
    params: P,
) -> rusqlite::Result<Vec<HashedToken>> {
    let mut out = Vec::new();
    for h in stmt.query_map(params, |r| r.get::<_, Vec<u8>>(0))? {
        if let Ok(h) = <[u8; 32]>::try_from(h?) {
            out.push(HashedToken(h));
        }
    }
    Ok(out)
}

/// Stores a new token, records the solving address as its first, and
/// enforces the per-address token cap, all in one transaction.
///
/// # Errors
/// SQLite errors.
pub(crate) fn insert(
    c: &mut Connection,
    hash: &HashedToken,
    now: i64,
    expires_at: i64,
    issuer_ip: &str,
    difficulty: u64,
    max_tokens_per_ip: u32,
) -> rusqlite::Result<Issued> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ips = Addresses::default();
    ips.add(issuer_ip, now);
    // The next id as a rowid table would pick it; the transaction holds
    // the write lock, so no other insert can take it meanwhile.
    let id: i64 = tx.query_row(
        "INSERT INTO tokens (token_hash, id, created_at, expires_at, issuer_ip, difficulty, ips)
         VALUES (?1, (SELECT coalesce(max(id), 0) + 1 FROM tokens), ?2, ?3, ?4, ?5, ?6)
         RETURNING id",
        params![
            &hash.0[..],
            now,
            expires_at,
            issuer_ip,
            i64::try_from(difficulty).unwrap_or(i64::MAX),
            ips.to_json()?
        ],
        |r| r.get(0),
    )?;
    tx.prepare_cached("INSERT INTO token_requests (token_id) VALUES (?1)")?
        .execute([id])?;
    let evicted = enforce_cap(&tx, issuer_ip, id, now, max_tokens_per_ip)?;
    tx.commit()?;
    Ok(Issued { id, evicted })
}

/// The per-address token cap (`POW_MAX_TOKENS_PER_IP`, 0 for none), the
/// one rule for an issue and a refresh alike, run inside their transaction.
/// `newest` is the token just issued or refreshed, and stays; of the
/// address's other active tokens, the `max - 1` that expire last (the most
/// recently issued or refreshed) stay too, and the rest are expired now.
/// They stay refreshable like any expired token, but a refresh comes back
/// here, so refreshing cannot hold more than `max` valid tokens either.
/// Returns the hashes expired.
fn enforce_cap(
    tx: &Connection,
    issuer_ip: &str,
    newest: i64,
    now: i64,
    max: u32,
) -> rusqlite::Result<Vec<HashedToken>> {
    let Some(others) = max.checked_sub(1) else {
        return Ok(Vec::new());
    };
    let mut stmt = tx.prepare_cached(
        "UPDATE tokens SET expires_at = ?1
         WHERE id IN (
             SELECT id FROM tokens
             WHERE issuer_ip = ?2 AND id != ?3 AND expires_at > ?1 AND revoked_at IS NULL
             ORDER BY expires_at DESC, id DESC
             LIMIT -1 OFFSET ?4)
         RETURNING token_hash",
    )?;
    returned_hashes(&mut stmt, params![now, issuer_ip, newest, others])
}

/// The token with this hash and its addresses: the lookup `/verify-token`
/// waits on for a token not in memory, one descent of the table's B-tree.
///
/// # Errors
/// SQLite errors.
pub(crate) fn find_by_hash(
    c: &Connection,
    hash: &HashedToken,
) -> rusqlite::Result<Option<TokenRecord>> {
    c.prepare_cached(select_tokens!("WHERE t.token_hash = ?1"))?
        .query_row([&hash.0[..]], from_row)
        .optional()
}

/// # Errors
/// SQLite errors.
pub(crate) fn find_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<TokenRecord>> {
    c.prepare_cached(select_tokens!("WHERE t.id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Records a new address for a token unless that would exceed `max`. The
/// check and the insert share one immediate transaction, so concurrent
/// requests from different addresses cannot overshoot the limit.
///
/// # Errors
/// SQLite errors.
pub(crate) fn add_ip(
    c: &mut Connection,
    token_id: i64,
    ip: &str,
    now: i64,
    max: u32,
) -> rusqlite::Result<AddIp> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let added = record_ip(&tx, token_id, ip, now, max)?;
    tx.commit()?;
    Ok(added)
}

/// [`add_ip`]'s check and insert, inside the caller's transaction.
fn record_ip(
    tx: &Connection,
    token_id: i64,
    ip: &str,
    now: i64,
    max: u32,
) -> rusqlite::Result<AddIp> {
    let json: String = tx
        .prepare_cached("SELECT ips FROM tokens WHERE id = ?1")?
        .query_row([token_id], |r| r.get(0))?;
    let mut ips = Addresses::parse(&json)?;
    if ips.contains(ip) {
        return Ok(AddIp::Known(ips.into_keys()));
    }
    if ips.len() >= max as usize {
        return Ok(AddIp::LimitReached);
    }
    ips.add(ip, now);
    tx.prepare_cached("UPDATE tokens SET ips = ?2 WHERE id = ?1")?
        .execute(params![token_id, ips.to_json()?])?;
    Ok(AddIp::Added(ips.into_keys()))
}

/// Extends a token after a refresh solve, starts its request budget again,
/// counts it as its issuing
/// address's newest token against `max_tokens_per_ip` (see
/// [`enforce_cap`]), and records the solving address if there is room, all
/// in one transaction. `None` when the token was revoked or purged.
///
/// # Errors
/// SQLite errors.
pub(crate) fn extend(
    c: &mut Connection,
    token_id: i64,
    ip: &str,
    now: i64,
    expires_at: i64,
    max_ips: u32,
    max_tokens_per_ip: u32,
) -> rusqlite::Result<Option<Extended>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let issuer_ip: Option<String> = tx
        .query_row(
            "UPDATE tokens SET expires_at = ?2 WHERE id = ?1 AND revoked_at IS NULL
             RETURNING issuer_ip",
            params![token_id, expires_at],
            |r| r.get(0),
        )
        .optional()?;
    let Some(issuer_ip) = issuer_ip else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE token_requests SET refresh_count = refresh_count + 1, requests_used = 0
         WHERE token_id = ?1",
        [token_id],
    )?;
    let evicted = enforce_cap(&tx, &issuer_ip, token_id, now, max_tokens_per_ip)?;
    record_ip(&tx, token_id, ip, now, max_ips)?;
    let record = find_by_id(&tx, token_id)?;
    tx.commit()?;
    Ok(record.map(|record| Extended { record, evicted }))
}

/// Writes tokens' request counts to their `requests_used`, all in one
/// transaction. A count is the whole number used since issue or the last
/// refresh, not an increment, and a row only ever grows to it: writing the
/// same count twice (a flush cancelled after its commit, then the final
/// one at shutdown) or an older one after a newer changes nothing, so no
/// request is ever counted twice. Each count lands only while the token's
/// `refresh_count` is still the one it was counted under: a refresh
/// started the budget again, so counts from before it are dropped.
///
/// # Errors
/// SQLite errors; nothing is written then.
pub(crate) fn write_requests(c: &mut Connection, counts: &[RequestCount]) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE token_requests SET requests_used = max(requests_used, ?2)
             WHERE token_id = ?1 AND refresh_count = ?3",
        )?;
        for n in counts {
            stmt.execute(params![
                n.token_id,
                i64::try_from(n.used).unwrap_or(i64::MAX),
                n.refresh_count
            ])?;
        }
    }
    tx.commit()
}

/// Deletes tokens whose refresh window has closed (their counts go with
/// them, by the foreign key's cascade). Returns their hashes so caches can
/// drop them.
///
/// # Errors
/// SQLite errors.
pub(crate) fn purge(
    c: &Connection,
    now: i64,
    purge_after_secs: i64,
) -> rusqlite::Result<Vec<HashedToken>> {
    let mut stmt =
        c.prepare_cached("DELETE FROM tokens WHERE expires_at + ?2 <= ?1 RETURNING token_hash")?;
    returned_hashes(&mut stmt, params![now, purge_after_secs])
}

/// Active (unexpired, unrevoked) tokens.
///
/// # Errors
/// SQLite errors.
pub(crate) fn count_active(c: &Connection, now: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM tokens WHERE expires_at > ?1 AND revoked_at IS NULL",
        [now],
        |r| r.get(0),
    )
}

/// One page of tokens, newest first, and the total count.
///
/// # Errors
/// SQLite errors.
pub(crate) fn list(
    c: &Connection,
    limit: u32,
    offset: u64,
) -> rusqlite::Result<(Vec<TokenRecord>, i64)> {
    let total = c.query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))?;
    let mut stmt = c.prepare(select_tokens!(
        "ORDER BY t.created_at DESC, t.id DESC LIMIT ?1 OFFSET ?2"
    ))?;
    let recs = stmt
        .query_map(
            params![limit, i64::try_from(offset).unwrap_or(i64::MAX)],
            from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok((recs, total))
}

/// Revokes the token with this id.
///
/// # Errors
/// SQLite errors.
pub(crate) fn revoke_by_id(c: &Connection, id: i64, now: i64) -> rusqlite::Result<RevokedById> {
    let revoked: Option<Vec<u8>> = c
        .query_row(
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL
             RETURNING token_hash",
            params![id, now],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(hash) = revoked.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
        return Ok(RevokedById::Revoked(HashedToken(hash)));
    }
    let exists = c
        .query_row("SELECT 1 FROM tokens WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some();
    Ok(if exists {
        RevokedById::AlreadyRevoked
    } else {
        RevokedById::Unknown
    })
}

/// Expires every active token now; they stay refreshable.
///
/// # Errors
/// SQLite errors.
pub(crate) fn expire_all(c: &Connection, now: i64) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE tokens SET expires_at = ?1 WHERE expires_at > ?1 AND revoked_at IS NULL",
        [now],
    )
}

/// Revokes, in one transaction, the unrevoked tokens in `scope`, expired
/// ones included, so none of them can be refreshed. Returns their hashes.
///
/// # Errors
/// SQLite errors.
pub(crate) fn revoke_scope(
    c: &mut Connection,
    scope: RevokeScope,
    now: i64,
) -> rusqlite::Result<Vec<HashedToken>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let revoked = match scope {
        RevokeScope::All => {
            let mut stmt = tx.prepare(
                "UPDATE tokens SET revoked_at = ?1 WHERE revoked_at IS NULL RETURNING token_hash",
            )?;
            returned_hashes(&mut stmt, [now])?
        }
        RevokeScope::Network(_) => {
            // Addresses are stored as text, so the network test runs here.
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare("SELECT id, ips FROM tokens WHERE revoked_at IS NULL")?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Addresses::parse(r.get_ref(1)?.as_str()?)?,
                    ))
                })?;
                let mut ids = Vec::new();
                for row in rows {
                    let (id, ips) = row?;
                    if ips.0.iter().any(|(ip, _)| scope.takes_address(ip)) {
                        ids.push(id);
                    }
                }
                ids.sort_unstable();
                ids
            };
            let mut stmt = tx.prepare_cached(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL
                 RETURNING token_hash",
            )?;
            let mut out = Vec::new();
            for id in ids {
                out.extend(returned_hashes(&mut stmt, params![id, now])?);
            }
            out
        }
    };
    tx.commit()?;
    Ok(revoked)
}
