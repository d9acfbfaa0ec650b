//! `/verify-token`: the reverse proxy's question "may this request pass?",
//! asked on every request. A token seen before is answered from memory.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use pow::wire::VerifyResponse;

use crate::cookies;
use crate::error::ApiError;
use crate::routes::extract::ClientIp;
use crate::state::AppState;
use crate::token::PlainToken;
use crate::token_store::IpCheck;

pub fn router() -> Router<AppState> {
    // Proxies use GET (nginx auth_request) or the original method
    // (Traefik), so any method is answered.
    Router::new().route("/verify-token", any(verify))
}

pub const STATUS_HEADER: HeaderName = HeaderName::from_static("x-powgate-status");
pub const REFRESHABLE_HEADER: HeaderName = HeaderName::from_static("x-powgate-refreshable");

/// The decision about a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Valid,
    Missing,
    Malformed,
    Unknown,
    Expired { refreshable: bool },
    Revoked,
    IpLimit,
}

impl Decision {
    pub fn status_code(self) -> StatusCode {
        match self {
            Self::Valid => StatusCode::OK,
            Self::Missing | Self::Malformed | Self::Unknown | Self::Expired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::Revoked | Self::IpLimit => StatusCode::FORBIDDEN,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired { .. } => "expired",
            Self::Revoked => "revoked",
            Self::IpLimit => "ip_limit",
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
    if rec.revoked_at.is_some() {
        return Ok(Decision::Revoked);
    }
    let now = state.now();
    if rec.expires_at <= now {
        let window = i64::from(state.config.token_purge_hours) * 3600;
        return Ok(Decision::Expired {
            refreshable: now < rec.expires_at + window,
        });
    }
    let max_ips = state.settings.get().token_max_ips;
    match state
        .tokens
        .check_ip(&rec, &client.key.to_text(), now, max_ips)
        .await?
    {
        IpCheck::Allowed => Ok(Decision::Valid),
        IpCheck::LimitReached => Ok(Decision::IpLimit),
    }
}

async fn verify(
    state: axum::extract::State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let decision = match cookies::presented_token(&headers) {
        Ok(token) => decide(&state, token.as_deref(), &client).await?,
        Err(_) => Decision::Malformed,
    };
    state
        .metrics
        .verify_decisions
        .with_label_values(&[decision.label()])
        .inc();
    state
        .metrics
        .verify_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(respond(decision))
}

fn respond(decision: Decision) -> Response {
    let body = VerifyResponse {
        status: decision.label().to_owned(),
        refreshable: decision.refreshable(),
        challenge_url: (decision != Decision::Valid).then(|| "/".to_owned()),
    };
    let mut resp = (decision.status_code(), Json(body)).into_response();
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
    resp
}
