//! The gate: may this request pass? Allowlist rules first, then the token
//! the browser presents. It is one function, [`decide`], apart from any
//! route, because two callers ask it: `/verify-token`, for a reverse
//! proxy's auth subrequest, which describes the original request in
//! forwarded headers; and a built-in proxy mode, which gates the request
//! it received itself. [`GateRequest`] is that difference, and the only
//! one.
//!
//! This runs on every request the proxy sees, so nothing here allocates on
//! the common paths: the request is borrowed, and a known token is answered
//! from the [`crate::token_store`] cache.

use axum::http::{HeaderMap, Method, StatusCode, Uri, header};

use crate::adaptive::Event;
use crate::allowlist;
use crate::cookies;
use crate::error::ApiError;
use crate::forwarded;
use crate::routes::extract::ClientIp;
use crate::state::AppState;
use crate::token::PlainToken;
use crate::token_store::{IpCheck, TokenRecord, TokenState};
use crate::token_usage::Over;

/// The request being gated, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateRequest<'a> {
    /// Path and query of the gated request; `None` when unknown, so no
    /// path rule can let it through.
    pub path: Option<&'a str>,
    /// The browser's headers: its token (cookie or `Authorization: Bearer`)
    /// and `User-Agent`. A proxy's auth subrequest carries them over.
    pub headers: &'a HeaderMap,
    /// The client's address, after the trusted-proxy rules.
    pub client: &'a ClientIp,
    /// The method of the request that arrived; see [`Self::method`].
    own_method: &'a Method,
    /// Whether the gated request is described by forwarded headers (an
    /// auth subrequest) rather than being the request itself.
    forwarded: bool,
}

impl<'a> GateRequest<'a> {
    /// A reverse proxy's auth subrequest: the path is the original
    /// request's, from the forwarded headers of a trusted proxy
    /// ([`forwarded::original_uri`]).
    pub(crate) fn forwarded(
        own_method: &'a Method,
        headers: &'a HeaderMap,
        client: &'a ClientIp,
    ) -> Self {
        Self {
            path: forwarded::original_uri(headers, client.via_trusted_proxy),
            headers,
            client,
            own_method,
            forwarded: true,
        }
    }

    /// A request gated where it arrives (the built-in proxy mode): its own
    /// method and URI. Forwarded headers are ignored, since on such a
    /// request they are only the client's claim about itself.
    pub(crate) fn direct(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        client: &'a ClientIp,
    ) -> Self {
        Self {
            path: uri.path_and_query().map(|p| p.as_str()),
            headers,
            client,
            own_method: method,
            forwarded: false,
        }
    }

    /// The gated request's method: for a subrequest, the one a trusted
    /// proxy forwards (`None` when its two headers disagree). Read only
    /// when asked, so `/verify-token`, whose rules do not look at it, pays
    /// no header lookups for it.
    #[allow(
        dead_code,
        reason = "no gate rule reads the method yet; the built-in proxy mode will"
    )]
    pub(crate) fn method(&self) -> Option<&'a str> {
        if self.forwarded {
            forwarded::original_method(self.headers, self.own_method, self.client.via_trusted_proxy)
        } else {
            Some(self.own_method.as_str())
        }
    }
}

/// The gate's answer about a request: let through, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Valid,
    /// No token needed: an allowlist rule matched.
    Allowlisted,
    Missing,
    Malformed,
    Unknown,
    Expired {
        refreshable: bool,
    },
    Revoked,
    IpLimit,
    /// Over the token's `token_requests_per_minute`: wait, solving again
    /// does not help.
    RateLimited {
        /// Seconds until the token has room again.
        retry_after: u32,
    },
    /// The token has passed its `token_requests_total`; a refresh starts
    /// the count again.
    Exhausted,
    /// The token is not in memory and the shared database cannot be
    /// reached to check it: wait, the database is on its way back.
    StoreUnavailable {
        /// Seconds to wait before asking again.
        retry_after: u32,
    },
}

impl Decision {
    pub(crate) fn status_code(self) -> StatusCode {
        match self {
            Self::Valid | Self::Allowlisted => StatusCode::OK,
            Self::Missing | Self::Malformed | Self::Unknown | Self::Expired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::Revoked | Self::IpLimit => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Exhausted => StatusCode::UNAUTHORIZED,
            Self::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every [`Self::label`], at [`Self::index`]: the `outcome` values of
    /// `powgate_verify_decisions_total`, whose counters are resolved once
    /// from this list ([`crate::metrics::Metrics::verify_outcomes`]).
    pub(crate) const LABELS: [&'static str; 11] = [
        "valid",
        "allowlisted",
        "missing",
        "malformed",
        "unknown",
        "expired",
        "revoked",
        "ip_limit",
        "rate_limited",
        "exhausted",
        "store_unavailable",
    ];

    /// The position of this decision's label in [`Self::LABELS`].
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Valid => 0,
            Self::Allowlisted => 1,
            Self::Missing => 2,
            Self::Malformed => 3,
            Self::Unknown => 4,
            Self::Expired { .. } => 5,
            Self::Revoked => 6,
            Self::IpLimit => 7,
            Self::RateLimited { .. } => 8,
            Self::Exhausted => 9,
            Self::StoreUnavailable { .. } => 10,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// What the client should do about it.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Valid | Self::Allowlisted => "ok",
            Self::Missing => {
                "a powgate token is required: solve the challenge at challenge_url, or run `powgate solve` with that URL and send the token as Authorization: Bearer"
            }
            Self::Malformed => {
                "the token is not in a valid format; obtain a new one at challenge_url"
            }
            Self::Unknown => {
                "the token is unknown or was purged; obtain a new one at challenge_url"
            }
            Self::Expired { refreshable: true } => {
                "the token has expired; refresh it, at half the difficulty of a new challenge, at challenge_url (or `powgate solve --refresh`)"
            }
            Self::Expired { refreshable: false } => {
                "the token has expired; obtain a new one at challenge_url"
            }
            Self::Revoked => "the token was revoked; obtain a new one at challenge_url",
            Self::IpLimit => {
                "the token is already used from its maximum number of addresses; obtain a new one at challenge_url"
            }
            Self::RateLimited { .. } => {
                "this token is sending requests faster than its rate allows; wait Retry-After seconds and retry (solving again does not help)"
            }
            Self::Exhausted => {
                "this token has used its request budget; refresh it, at half the difficulty of a new challenge, at challenge_url (or `powgate solve --refresh`)"
            }
            Self::StoreUnavailable { .. } => {
                "the token cannot be checked now, the database is unreachable; retry after Retry-After seconds (solving again does not help)"
            }
        }
    }

    pub(crate) fn refreshable(self) -> bool {
        matches!(self, Self::Expired { refreshable: true } | Self::Exhausted)
    }

    /// Seconds the client should wait before asking again, for a refusal
    /// that waiting cures.
    pub(crate) fn retry_after(self) -> Option<u32> {
        match self {
            Self::RateLimited { retry_after } | Self::StoreUnavailable { retry_after } => {
                Some(retry_after)
            }
            _ => None,
        }
    }
}

/// Decides whether `req` may pass: an allowlist rule, else the presented
/// token. Counts the decision in `powgate_verify_decisions_total` (and a
/// matching rule in its own counter), so every caller is counted alike.
///
/// # Errors
/// Only database failures.
pub(crate) async fn decide(state: &AppState, req: &GateRequest<'_>) -> Result<Decision, ApiError> {
    let subject = allowlist::Subject {
        ip: req.client.ip,
        user_agent: req
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        path: req.path,
    };
    let decision = if let Some(rule) = allowlist::find(&state.config.allowlist, &subject) {
        state
            .metrics
            .allowlist_matches
            .with_label_values(&[&rule.name])
            .inc();
        Decision::Allowlisted
    } else {
        match judge_presented(state, req.headers, req.client).await {
            // A refusal like the others, so proxies treat it as one (the
            // nginx recipe turns it into the visitor's 503) and proxy mode
            // answers it in its own words.
            Err(ApiError::StoreUnavailable(wait)) => Decision::StoreUnavailable {
                retry_after: u32::try_from(wait).unwrap_or(u32::MAX),
            },
            other => other?,
        }
    };
    state.metrics.verify_outcomes[decision.index()].inc();
    Ok(decision)
}

/// Judges a token string presented from `client`: the token half of the
/// gate, also used where a token is pasted in by hand (`POST /api/token`).
///
/// # Errors
/// Only database failures.
pub(crate) async fn judge_token(
    state: &AppState,
    token: Option<&str>,
    client: &ClientIp,
) -> Result<Decision, ApiError> {
    let Some(token) = token else {
        return Ok(Decision::Missing);
    };
    let Ok(token) = PlainToken::parse(token) else {
        return Ok(Decision::Malformed);
    };
    let Some(rec) = state.tokens.lookup(token.hashed()).await? else {
        return Ok(Decision::Unknown);
    };
    let now = state.now();
    match rec.state(now, state.config.refresh_window_secs()) {
        TokenState::Revoked => return Ok(Decision::Revoked),
        TokenState::Expired { refreshable } => return Ok(Decision::Expired { refreshable }),
        TokenState::Active => {}
    }
    if !rec.has_ip(client.key) {
        // A new address: only now is its limit needed. A token its budgets
        // refuse anyway is answered first, in memory: it takes no address
        // slot and no write, and an exhausted one is sent to refresh
        // rather than told `ip_limit`. `budgeted` still counts after this
        // check, so a refused address never counts.
        let (per_minute, total) = state
            .settings
            .peek(|s| (s.token_requests_per_minute, s.token_requests_total));
        if let Some(over) = state.token_usage.refusal(&rec, now, per_minute, total) {
            return Ok(over.into());
        }
        let max_ips = state.settings.get().token_max_ips;
        if state
            .tokens
            .check_ip(&rec, client.key, now, max_ips)
            .await?
            == IpCheck::LimitReached
        {
            // A token shared beyond its addresses is a crawler's habit: it
            // raises the difficulty its network is quoted next.
            state.adaptive.record_address_limit(rec.id, client.key, now);
            return Ok(Decision::IpLimit);
        }
    }
    Ok(budgeted(state, &rec, client, now))
}

/// A token that may pass by itself, within its request budgets: the one
/// place a passing token request is counted ([`crate::token_usage`]).
fn budgeted(state: &AppState, rec: &TokenRecord, client: &ClientIp, now: i64) -> Decision {
    let (per_minute, total) = state
        .settings
        .peek(|s| (s.token_requests_per_minute, s.token_requests_total));
    match state.token_usage.admit(rec, now, per_minute, total) {
        Ok(used) => {
            state.metrics.token_requests_counted.inc();
            if total != 0 && used == u64::from(total) {
                // The request that used the budget up (exactly one, the
                // count is taken atomically) feeds the network's score: a
                // crawler's habit, which raises the price of its refresh.
                // Not every refusal after it, or the 50 subresources of
                // one page would count 50 times.
                state
                    .adaptive
                    .record(client.key, Event::BudgetExhausted, now);
            }
            Decision::Valid
        }
        Err(over) => over.into(),
    }
}

impl From<Over> for Decision {
    fn from(over: Over) -> Self {
        match over {
            Over::Rate { retry_after } => Self::RateLimited { retry_after },
            Over::Total => Self::Exhausted,
        }
    }
}

/// Judges the token a request presents ([`cookies::presented_token`]). A
/// token-shaped `Bearer` that does not pass may be the application's own
/// credential (UUID API keys are common), so a valid cookie beside it still
/// lets the request through; the refusal otherwise stays the Bearer's.
async fn judge_presented(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientIp,
) -> Result<Decision, ApiError> {
    let presented = cookies::presented_token(headers);
    let decision = judge_token(state, presented, client).await?;
    if decision == Decision::Valid {
        return Ok(decision);
    }
    match cookies::cookie_str(headers, cookies::TOKEN_COOKIE) {
        Some(cookie) if Some(cookie) != presented => {
            let by_cookie = judge_token(state, Some(cookie), client).await?;
            Ok(if by_cookie == Decision::Valid {
                by_cookie
            } else {
                decision
            })
        }
        _ => Ok(decision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_ip::IpKey;
    use axum::http::HeaderValue;

    fn client(via_trusted_proxy: bool) -> ClientIp {
        let ip = "192.0.2.1".parse().unwrap();
        ClientIp {
            ip,
            key: IpKey::of(ip),
            via_trusted_proxy,
        }
    }

    fn claiming(uri: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-original-uri", HeaderValue::from_static(uri));
        h
    }

    /// In proxy mode the request's own URI is what gets served, so a client
    /// that adds `X-Original-URI: /<allowlisted path>` must not be judged by
    /// that path, even from an address that is a trusted proxy.
    #[test]
    fn a_directly_gated_request_is_judged_by_its_own_uri_not_a_claimed_one() {
        let (headers, client) = (claiming("/.well-known/x"), client(true));
        let uri: Uri = "/private?q=1".parse().unwrap();
        assert_eq!(
            GateRequest::direct(&Method::GET, &uri, &headers, &client).path,
            Some("/private?q=1")
        );
        assert_eq!(
            GateRequest::forwarded(&Method::GET, &headers, &client).path,
            Some("/.well-known/x")
        );
    }

    #[test]
    fn a_forwarded_path_counts_only_from_a_trusted_proxy() {
        let (headers, client) = (claiming("/.well-known/x"), client(false));
        assert_eq!(
            GateRequest::forwarded(&Method::GET, &headers, &client).path,
            None
        );
    }

    /// Issue 13 item 2: the gate's input carries the method. A subrequest
    /// gates the method its trusted proxy forwards (nginx or Caddy style),
    /// not the subrequest's own GET; a client's claimed method counts only
    /// from a trusted proxy, and a request gated directly is its own.
    #[test]
    fn the_gated_method_is_the_forwarded_one_only_from_a_trusted_proxy() {
        let mut nginx = HeaderMap::new();
        nginx.insert("x-original-method", HeaderValue::from_static("POST"));
        let mut caddy = HeaderMap::new();
        caddy.insert("x-forwarded-method", HeaderValue::from_static("DELETE"));
        let (trusted, untrusted) = (client(true), client(false));
        let get = Method::GET;
        let forwarded = |h: &HeaderMap, c: &ClientIp| {
            GateRequest::forwarded(&get, h, c)
                .method()
                .map(str::to_owned)
        };
        assert_eq!(forwarded(&nginx, &trusted).as_deref(), Some("POST"));
        assert_eq!(forwarded(&caddy, &trusted).as_deref(), Some("DELETE"));
        assert_eq!(
            forwarded(&HeaderMap::new(), &trusted).as_deref(),
            Some("GET")
        );
        assert_eq!(forwarded(&nginx, &untrusted).as_deref(), Some("GET"));
        let mut both = nginx.clone();
        both.insert("x-forwarded-method", HeaderValue::from_static("GET"));
        assert_eq!(forwarded(&both, &trusted), None, "disagreeing headers");
        let uri: Uri = "/x".parse().unwrap();
        let put = Method::PUT;
        assert_eq!(
            GateRequest::direct(&put, &uri, &nginx, &trusted).method(),
            Some("PUT")
        );
    }

    #[test]
    fn every_decision_has_its_own_label() {
        let all = [
            Decision::Valid,
            Decision::Allowlisted,
            Decision::Missing,
            Decision::Malformed,
            Decision::Unknown,
            Decision::Expired { refreshable: true },
            Decision::Revoked,
            Decision::IpLimit,
            Decision::RateLimited { retry_after: 1 },
            Decision::Exhausted,
            Decision::StoreUnavailable { retry_after: 1 },
        ];
        let mut seen: Vec<usize> = all.iter().map(|d| d.index()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..Decision::LABELS.len()).collect::<Vec<_>>());
        assert_eq!(
            Decision::Expired { refreshable: false }.label(),
            Decision::Expired { refreshable: true }.label()
        );
    }
}
