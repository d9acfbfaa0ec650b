//! The stored things as the domain sees them, whatever the backend: a
//! token's record and state, what an issue, refresh or new address did, and
//! which tokens a revocation takes.

use ipnet::IpNet;

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

/// What issuing a token did.
#[derive(Debug)]
pub(crate) struct Issued {
    /// The new token's id, as the admin list shows it.
    pub id: i64,
    /// Tokens of the same address that were expired to make room
    /// (`POW_MAX_TOKENS_PER_IP`); the caller drops them from its cache.
    pub evicted: Vec<HashedToken>,
}

/// What recording an address for a token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddIp {
    /// The address is now recorded; here is the full list.
    Added(Vec<String>),
    /// The address was already recorded.
    Known(Vec<String>),
    /// The token already has `max` other addresses.
    LimitReached,
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

/// The requests one token has used, as of one flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestCount {
    pub token_id: i64,
    /// The token's `refresh_count` they were counted under.
    pub refresh_count: i64,
    /// Requests used since issue or that refresh.
    pub used: u64,
}

/// What revoking one token by its id did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevokedById {
    /// It is revoked now; the caller drops it from its cache.
    Revoked(HashedToken),
    /// It was revoked before; nothing changed.
    AlreadyRevoked,
    /// No token has this id (never issued, or purged).
    Unknown,
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

impl RevokeScope {
    /// Whether a token with the recorded address key `stored`
    /// (`203.0.113.7` or `2001:db8:1:2::/64`) is in this scope.
    pub(crate) fn takes_address(&self, stored: &str) -> bool {
        match self {
            Self::All => true,
            Self::Network(net) => stored_in(stored, net),
        }
    }
}

/// Whether `stored`, an address key as recorded for a token, lies in `net`.
fn stored_in(stored: &str, net: &IpNet) -> bool {
    if let Ok(ip) = stored.parse::<std::net::IpAddr>() {
        return net.contains(&ip);
    }
    // Two aligned networks overlap exactly when one contains the other.
    stored
        .parse::<IpNet>()
        .is_ok_and(|s| net.contains(&s) || s.contains(net))
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
        let net = |s: &str| RevokeScope::Network(s.parse::<IpNet>().unwrap());
        assert!(net("203.0.113.0/24").takes_address("203.0.113.7"));
        assert!(!net("203.0.113.0/24").takes_address("203.0.114.7"));
        assert!(net("2001:db8:1::/48").takes_address("2001:db8:1:2::/64"));
        assert!(!net("2001:db8:1::/48").takes_address("2001:db8:2:2::/64"));
        // The /64 is all that is stored, so a narrower network takes it.
        assert!(net("2001:db8:1:2::5/128").takes_address("2001:db8:1:2::/64"));
        assert!(!net("203.0.113.0/24").takes_address("2001:db8:1:2::/64"));
        assert!(!net("0.0.0.0/0").takes_address("garbage"));
        assert!(RevokeScope::All.takes_address("garbage"));
    }
}
