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

use axum::http::{HeaderMap, StatusCode, Uri, header};

use crate::allowlist;
use crate::cookies;
use crate::error::ApiError;
use crate::forwarded;
use crate::routes::extract::ClientIp;
use crate::state::AppState;
use crate::token::PlainToken;
use crate::token_store::{IpCheck, TokenState};

/// The request being gated, borrowed. The method is not part of it: no
/// allowlist rule looks at it, and reading a proxy's forwarded method on
/// every request would cost `/verify-token` for nothing.
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
}

impl<'a> GateRequest<'a> {
    /// A reverse proxy's auth subrequest: the path is the original
    /// request's, from the forwarded headers of a trusted proxy
    /// ([`forwarded::original_uri`]).
    pub(crate) fn forwarded(headers: &'a HeaderMap, client: &'a ClientIp) -> Self {
        Self {
            path: forwarded::original_uri(headers, client.via_trusted_proxy),
            headers,
            client,
        }
    }

    /// A request gated where it arrives (the built-in proxy mode): its own
    /// URI. Forwarded URI headers are ignored, since on such a request they
    /// are only the client's claim about itself.
    #[allow(
        dead_code,
        reason = "the built-in proxy mode's entry (see the module doc); until it lands only tests call it"
    )]
    pub(crate) fn direct(uri: &'a Uri, headers: &'a HeaderMap, client: &'a ClientIp) -> Self {
        Self {
            path: uri.path_and_query().map(|p| p.as_str()),
            headers,
            client,
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
}

impl Decision {
    pub(crate) fn status_code(self) -> StatusCode {
        match self {
            Self::Valid | Self::Allowlisted => StatusCode::OK,
            Self::Missing | Self::Malformed | Self::Unknown | Self::Expired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::Revoked | Self::IpLimit => StatusCode::FORBIDDEN,
        }
    }

    /// Every [`Self::label`], at [`Self::index`]: the `outcome` values of
    /// `powgate_verify_decisions_total`, whose counters are resolved once
    /// from this list ([`crate::metrics::Metrics::verify_outcomes`]).
    pub(crate) const LABELS: [&'static str; 8] = [
        "valid",
        "allowlisted",
        "missing",
        "malformed",
        "unknown",
        "expired",
        "revoked",
        "ip_limit",
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
                "the token has expired; refresh it at half difficulty at challenge_url (or `powgate solve --refresh`)"
            }
            Self::Expired { refreshable: false } => {
                "the token has expired; obtain a new one at challenge_url"
            }
            Self::Revoked => "the token was revoked; obtain a new one at challenge_url",
            Self::IpLimit => {
                "the token is already used from its maximum number of addresses; obtain a new one at challenge_url"
            }
        }
    }

    pub(crate) fn refreshable(self) -> bool {
        matches!(self, Self::Expired { refreshable: true })
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
        judge_presented(state, req.headers, req.client).await?
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
    if rec.has_ip(client.key) {
        return Ok(Decision::Valid);
    }
    // A new address: only now are the live settings needed.
    let max_ips = state.settings.get().token_max_ips;
    match state
        .tokens
        .check_ip(&rec, client.key, now, max_ips)
        .await?
    {
        IpCheck::Allowed => Ok(Decision::Valid),
        IpCheck::LimitReached => Ok(Decision::IpLimit),
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
            GateRequest::direct(&uri, &headers, &client).path,
            Some("/private?q=1")
        );
        assert_eq!(
            GateRequest::forwarded(&headers, &client).path,
            Some("/.well-known/x")
        );
    }

    #[test]
    fn a_forwarded_path_counts_only_from_a_trusted_proxy() {
        let (headers, client) = (claiming("/.well-known/x"), client(false));
        assert_eq!(GateRequest::forwarded(&headers, &client).path, None);
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
