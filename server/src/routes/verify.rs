//! `/verify-token`: the reverse proxy's question "may this request pass?",
//! asked on every request. A token seen before is answered from memory.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pow::wire::VerifyResponse;

use crate::allowlist;
use crate::cookies;
use crate::error::ApiError;
use crate::forwarded::{self, OriginalRequest};
use crate::routes::extract::ClientIp;
use crate::routes::within_request_time;
use crate::state::AppState;
use crate::token::PlainToken;
use crate::token_store::{IpCheck, TokenState};

/// Everything but RFC 3986's unreserved characters is escaped in `redir`.
const REDIR_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn router() -> Router<AppState> {
    // Proxies use GET (nginx auth_request) or the original method
    // (Traefik), so any method is answered.
    Router::new().route("/verify-token", any(verify))
}

pub const STATUS_HEADER: HeaderName = HeaderName::from_static("x-powgate-status");
pub const REFRESHABLE_HEADER: HeaderName = HeaderName::from_static("x-powgate-refreshable");
/// Where nginx should send a browser; see the nginx recipe.
pub const LOCATION_HEADER: HeaderName = HeaderName::from_static("x-powgate-location");

/// The decision about a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
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
    pub fn status_code(self) -> StatusCode {
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
    pub const LABELS: [&'static str; 8] = [
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
    pub fn index(self) -> usize {
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

    pub fn label(self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// What the client should do about it.
    pub fn message(self) -> &'static str {
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

    pub fn refreshable(self) -> bool {
        matches!(self, Self::Expired { refreshable: true })
    }
}

/// Judges a token string presented from `client`.
///
/// # Errors
/// Only database failures.
pub async fn decide(
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

/// Answers on every request the proxy sees, so the common case (a known,
/// valid token) allocates nothing of its own: the headers are borrowed from
/// the request rather than extracted as a copy, the original request is read
/// in place, and a passing answer has a fixed body.
async fn verify(
    State(state): State<AppState>,
    client: ClientIp,
    req: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let (parts, _) = req.into_parts();
    let headers = &parts.headers;
    let subject = allowlist::Subject {
        ip: client.ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        path: forwarded::original_uri(headers, client.via_trusted_proxy),
    };
    let decision = if let Some(rule) = allowlist::find(&state.config.allowlist, &subject) {
        state
            .metrics
            .allowlist_matches
            .with_label_values(&[&rule.name])
            .inc();
        Decision::Allowlisted
    } else {
        // The route skips the request_timeout middleware (routes/mod.rs);
        // the database work is the one thing here that can wait.
        within_request_time(&state, decide_presented(&state, headers, &client)).await??
    };
    state.metrics.verify_outcomes[decision.index()].inc();
    let resp = respond(&state, decision, &parts, client.via_trusted_proxy);
    state
        .metrics
        .verify_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// Judges the token a request presents ([`cookies::presented_token`]). A
/// token-shaped `Bearer` that does not pass may be the application's own
/// credential (UUID API keys are common), so a valid cookie beside it still
/// lets the request through; the refusal otherwise stays the Bearer's.
async fn decide_presented(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    client: &ClientIp,
) -> Result<Decision, ApiError> {
    let presented = cookies::presented_token(headers);
    let decision = decide(state, presented, client).await?;
    if decision == Decision::Valid {
        return Ok(decision);
    }
    match cookies::cookie_str(headers, cookies::TOKEN_COOKIE) {
        Some(cookie) if Some(cookie) != presented => {
            let by_cookie = decide(state, Some(cookie), client).await?;
            Ok(if by_cookie == Decision::Valid {
                by_cookie
            } else {
                decision
            })
        }
        _ => Ok(decision),
    }
}

/// The challenge page's URL (`page`), with `redir` set to the original URL
/// when known.
fn challenge_location(page: &str, original: &OriginalRequest<'_>) -> String {
    match original.url() {
        Some(url) => format!("{page}?redir={}", utf8_percent_encode(&url, REDIR_ESCAPE)),
        None => page.to_owned(),
    }
}

/// Builds the answer. A browser loading a page is sent to the challenge
/// page: with a 302 for proxies that pass our answer through (Caddy,
/// Traefik), or with `X-Powgate-Location` for nginx, whose `auth_request`
/// only understands 2xx, 401 and 403. Everyone else gets the JSON.
/// `via_proxy`: whether the request came from a trusted proxy, whose
/// headers describe the original request.
fn respond(state: &AppState, decision: Decision, request: &Parts, via_proxy: bool) -> Response {
    let mut resp = if decision.status_code().is_success() {
        let mut resp = Response::new(Body::from(passing_body(decision)));
        *resp.status_mut() = decision.status_code();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    } else {
        refusal(state, decision, request, via_proxy)
    };
    let h = resp.headers_mut();
    h.insert(STATUS_HEADER, HeaderValue::from_static(decision.label()));
    h.insert(
        REFRESHABLE_HEADER,
        HeaderValue::from_static(if decision.refreshable() {
            "true"
        } else {
            "false"
        }),
    );
    crate::error::add_api_headers(h);
    resp
}

/// The JSON of a passing answer, written out: it is the same every time,
/// and serializing it was a measurable share of `/verify-token`'s cost. A
/// test checks it against the serialized [`VerifyResponse`].
fn passing_body(decision: Decision) -> &'static str {
    match decision {
        Decision::Allowlisted => r#"{"status":"allowlisted","refreshable":false}"#,
        _ => r#"{"status":"valid","refreshable":false}"#,
    }
}

/// A refusal: the JSON reason, and for a browser loading a page, where to
/// go.
fn refusal(state: &AppState, decision: Decision, request: &Parts, via_proxy: bool) -> Response {
    let headers = &request.headers;
    let original = OriginalRequest::from_headers(headers, &request.method, via_proxy);
    let page = format!("{}/", state.config.public_url.as_deref().unwrap_or(""));
    let navigation = original.is_browser_navigation(headers);
    let location = navigation
        .then(|| HeaderValue::from_str(&challenge_location(&page, &original)).ok())
        .flatten();
    let body = VerifyResponse {
        status: decision.label().to_owned(),
        refreshable: decision.refreshable(),
        challenge_url: Some(page),
        message: Some(decision.message().to_owned()),
    };
    let status = if navigation && !original.status_only {
        StatusCode::FOUND
    } else {
        decision.status_code()
    };
    let mut resp = (status, Json(body)).into_response();
    if let Some(loc) = location {
        let h = resp.headers_mut();
        h.insert(LOCATION_HEADER, loc.clone());
        if status == StatusCode::FOUND {
            h.insert(header::LOCATION, loc);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn passing_bodies_are_the_serialized_response() {
        for decision in [Decision::Valid, Decision::Allowlisted] {
            let serialized = serde_json::to_string(&VerifyResponse {
                status: decision.label().to_owned(),
                refreshable: false,
                challenge_url: None,
                message: None,
            })
            .unwrap();
            assert_eq!(passing_body(decision), serialized);
        }
    }
}
