//! Token rows and the addresses each token has been used from.

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::client_ip::IpKey;
use crate::token::HashedToken;

/// A token as stored, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    pub id: i64,
    pub hash: HashedToken,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub refresh_count: i64,
    /// Passed `/verify-token` requests since issue or the last refresh, as
    /// last flushed; [`crate::token_usage`] adds what it counted since.
    pub requests_used: i64,
    /// Address keys, oldest first.
    pub ips: Vec<String>,
}

/// Where a token stands at one moment: the one place the rules of
/// revocation, expiry and the refresh window are written, read by
/// `/verify-token`, the refresh challenge and the admin list alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    /// Not expired and not revoked.
    Active,
    /// Past `expires_at`; `refreshable` while the refresh window after it
    /// is still open, so a half-difficulty solve can extend it.
    Expired { refreshable: bool },
    /// Revoked by an admin: never valid or refreshable again, whatever its
    /// expiry says.
    Revoked,
}

impl TokenState {
    /// The status shown in the admin token list.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired { .. } => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl TokenRecord {
    /// The token's state at `now`, with a refresh window of
    /// `refresh_window` seconds after expiry. Expiry is inclusive
    /// (`expires_at == now` is expired) and so is the window's end.
    pub(crate) fn state(&self, now: i64, refresh_window: i64) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at <= now {
            TokenState::Expired {
                refreshable: now < self.expires_at.saturating_add(refresh_window),
            }
        } else {
            TokenState::Active
        }
    }

    /// Whether the token is already used from `ip`.
    pub(crate) fn has_ip(&self, ip: IpKey) -> bool {
        self.ips.iter().any(|i| ip.is_text(i))
    }
}

const COLUMNS: &str =
    "id, token_hash, created_at, expires_at, revoked_at, refresh_count, requests_used";

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
        ips: Vec::new(),
    })
}

/// A token's address keys, oldest first.
fn ips_of(c: &Connection, token_id: i64) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached("SELECT ip FROM token_ips WHERE token_id = ?1 ORDER BY first_seen, ip")?
        .query_map([token_id], |r| r.get(0))?
        .collect()
}

fn load_ips(c: &Connection, rec: &mut TokenRecord) -> rusqlite::Result<()> {
    rec.ips = ips_of(c, rec.id)?;
    Ok(())
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

/// What issuing a token did.
#[derive(Debug)]
pub(crate) struct Issued {
    /// Tokens of the same address that were expired to make room
    /// (`POW_MAX_TOKENS_PER_IP`); the caller drops them from its cache.
    pub evicted: Vec<HashedToken>,
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
    tx.execute(
        "INSERT INTO tokens (token_hash, created_at, expires_at, issuer_ip, difficulty)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            &hash.0[..],
            now,
            expires_at,
            issuer_ip,
            i64::try_from(difficulty).unwrap_or(i64::MAX)
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO token_ips (token_id, ip, first_seen) VALUES (?1, ?2, ?3)",
        params![id, issuer_ip, now],
    )?;
    let evicted = enforce_cap(&tx, issuer_ip, id, now, max_tokens_per_ip)?;
    tx.commit()?;
    Ok(Issued { evicted })
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

/// # Errors
/// SQLite errors.
pub(crate) fn find_by_hash(
    c: &Connection,
    hash: &HashedToken,
) -> rusqlite::Result<Option<TokenRecord>> {
    let rec = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_hash = ?1"
        ))?
        .query_row([&hash.0[..]], from_row)
        .optional()?;
    rec.map(|mut r| load_ips(c, &mut r).map(|()| r)).transpose()
}

/// # Errors
/// SQLite errors.
pub(crate) fn find_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<TokenRecord>> {
    let rec = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    rec.map(|mut r| load_ips(c, &mut r).map(|()| r)).transpose()
}

/// Result of [`add_ip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddIp {
    /// The address is now recorded; here is the full list.
    Added(Vec<String>),
    /// The address was already recorded.
    Known(Vec<String>),
    /// The token already has `max` other addresses.
    LimitReached,
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
    let mut ips = ips_of(tx, token_id)?;
    if ips.iter().any(|i| i == ip) {
        return Ok(AddIp::Known(ips));
    }
    if ips.len() >= max as usize {
        return Ok(AddIp::LimitReached);
    }
    tx.execute(
        "INSERT INTO token_ips (token_id, ip, first_seen) VALUES (?1, ?2, ?3)",
        params![token_id, ip, now],
    )?;
    ips.push(ip.to_owned());
    Ok(AddIp::Added(ips))
}

/// What a refresh did.
#[derive(Debug)]
pub(crate) struct Extended {
    /// The token as it is now.
    pub record: TokenRecord,
    /// Tokens of its issuing address that were expired to keep it within
    /// the per-address cap; the caller drops them from its cache.
    pub evicted: Vec<HashedToken>,
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
            "UPDATE tokens SET expires_at = ?2, refresh_count = refresh_count + 1, requests_used = 0
             WHERE id = ?1 AND revoked_at IS NULL
             RETURNING issuer_ip",
            params![token_id, expires_at],
            |r| r.get(0),
        )
        .optional()?;
    let Some(issuer_ip) = issuer_ip else {
        return Ok(None);
    };
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
            "UPDATE tokens SET requests_used = max(requests_used, ?2)
             WHERE id = ?1 AND refresh_count = ?3",
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

/// The requests one token has used, as of one flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestCount {
    pub token_id: i64,
    /// The token's `refresh_count` they were counted under.
    pub refresh_count: i64,
    /// Requests used since issue or that refresh.
    pub used: u64,
}

/// Deletes tokens whose refresh window has closed. Returns their hashes so
/// caches can drop them.
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
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM tokens ORDER BY created_at DESC, id DESC LIMIT ?1 OFFSET ?2"
    ))?;
    let mut recs: Vec<TokenRecord> = stmt
        .query_map(
            params![limit, i64::try_from(offset).unwrap_or(i64::MAX)],
            from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    for r in &mut recs {
        load_ips(c, r)?;
    }
    Ok((recs, total))
}

/// Revokes the tokens whose hash starts with `prefix` (6 bytes, as shown in
/// the admin list). Returns the hashes revoked.
///
/// # Errors
/// SQLite errors.
pub(crate) fn revoke_by_prefix(
    c: &Connection,
    prefix: &[u8],
    now: i64,
) -> rusqlite::Result<Vec<HashedToken>> {
    let mut stmt = c.prepare(
        "UPDATE tokens SET revoked_at = ?2
         WHERE substr(token_hash, 1, ?3) = ?1 AND revoked_at IS NULL
         RETURNING token_hash",
    )?;
    returned_hashes(
        &mut stmt,
        params![prefix, now, i64::try_from(prefix.len()).unwrap_or(0)],
    )
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

/// Which tokens a bulk revocation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevokeScope {
    /// Every token not revoked yet, expired ones too.
    All,
    /// Tokens with any recorded address in the network. A stored IPv6 /64
    /// matches when it overlaps the network, so a /128 takes its /64.
    Network(IpNet),
}

/// Whether `stored`, an address key as written in `token_ips`
/// (`203.0.113.7` or `2001:db8:1:2::/64`), lies in `net`.
fn stored_in(stored: &str, net: &IpNet) -> bool {
    if let Ok(ip) = stored.parse::<std::net::IpAddr>() {
        return net.contains(&ip);
    }
    // Two aligned networks overlap exactly when one contains the other.
    stored
        .parse::<IpNet>()
        .is_ok_and(|s| net.contains(&s) || s.contains(net))
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
        RevokeScope::Network(net) => {
            // Addresses are stored as text, so the network test runs here.
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare(
                    "SELECT DISTINCT i.token_id, i.ip FROM token_ips i
                     JOIN tokens t ON t.id = i.token_id WHERE t.revoked_at IS NULL",
                )?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
                let mut ids = Vec::new();
                for row in rows {
                    let (id, ip) = row?;
                    if stored_in(&ip, &net) {
                        ids.push(id);
                    }
                }
                ids.sort_unstable();
                ids.dedup();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at: i64, revoked_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            id: 1,
            hash: HashedToken([7; 32]),
            created_at: 0,
            expires_at,
            revoked_at,
            refresh_count: 0,
            requests_used: 0,
            ips: Vec::new(),
        }
    }

    #[test]
    fn a_token_expires_at_its_expiry_second_and_stays_refreshable_until_the_window_ends() {
        let (expiry, window) = (1_000, 100);
        let state = |now| record(expiry, None).state(now, window);
        assert_eq!(state(999), TokenState::Active);
        assert_eq!(state(1_000), TokenState::Expired { refreshable: true });
        assert_eq!(state(1_099), TokenState::Expired { refreshable: true });
        assert_eq!(state(1_100), TokenState::Expired { refreshable: false });
    }

    /// A revoked token must not pass or be refreshed because its expiry
    /// still looks fine (or its refresh window is still open).
    #[test]
    fn a_revoked_token_is_revoked_whatever_its_expiry() {
        for now in [500, 1_000, 1_050, 5_000] {
            assert_eq!(
                record(1_000, Some(400)).state(now, 100),
                TokenState::Revoked,
                "{now}"
            );
        }
    }

    #[test]
    fn a_huge_refresh_window_does_not_overflow() {
        assert_eq!(
            record(i64::MAX - 1, None).state(i64::MAX - 1, i64::MAX),
            TokenState::Expired { refreshable: true }
        );
    }

    #[test]
    fn a_stored_address_key_is_in_a_network_it_overlaps() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(stored_in("203.0.113.7", &net("203.0.113.0/24")));
        assert!(!stored_in("203.0.114.7", &net("203.0.113.0/24")));
        assert!(stored_in("2001:db8:1:2::/64", &net("2001:db8:1::/48")));
        assert!(!stored_in("2001:db8:2:2::/64", &net("2001:db8:1::/48")));
        // The /64 is all that is stored, so a narrower network takes it.
        assert!(stored_in("2001:db8:1:2::/64", &net("2001:db8:1:2::5/128")));
        assert!(!stored_in("2001:db8:1:2::/64", &net("203.0.113.0/24")));
        assert!(!stored_in("garbage", &net("0.0.0.0/0")));
    }
}
