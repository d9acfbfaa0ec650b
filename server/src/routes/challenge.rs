//! `POST /api/challenge`: issues a signed, expiring, IP-bound challenge,
//! within the bound on open challenges per address and network, at the
//! difficulty [`crate::adaptive`] quotes for the client.

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use pow::wire::{ChallengePurpose, ChallengeRequest, ChallengeResponse};
use pow::{ChallengeClaims, Purpose};

use crate::adaptive::{Event, Holder};
use crate::cookies;
use crate::error::{ApiError, Result};
use crate::open_challenges::Opened;
use crate::routes::extract::{ClientIp, JsonBody};
use crate::state::AppState;
use crate::token::PlainToken;
use crate::token_store::TokenState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/challenge", post(issue))
}

async fn issue(
    state: axum::extract::State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>> {
    state
        .rate_limits
        .check_challenge(client.key, &state.settings.get(), &state.metrics)?;
    let refresh = refresh_target(&state, &client, &headers, req).await?;
    issue_signed(&state, &client, refresh).map(Json)
}

/// Signs a challenge for `client`, a refresh of token `refresh` or a new
/// one, at the difficulty [`crate::adaptive`] quotes it, within its bound
/// on open challenges: the one place a challenge is made, for `POST
/// /api/challenge` and the TCP gate alike. The challenge rate
/// ([`crate::limits::RateLimits::check_challenge`]) is the caller's to
/// check first, before any work on the request.
///
/// # Errors
/// `rate_limited` when the address or a network has too many open
/// challenges; `internal` when the random generator fails.
pub(crate) fn issue_signed(
    state: &AppState,
    client: &ClientIp,
    refresh: Option<i64>,
) -> Result<ChallengeResponse> {
    let settings = state.settings.get();
    let now = state.now();

    let quote = state.adaptive.quote(
        Holder::all_of(client.key),
        &settings,
        now,
        &state.stats,
        state.config.argon2,
    );
    let (purpose, difficulty) = match refresh {
        Some(token_id) => (Purpose::Refresh { token_id }, quote.refresh_difficulty),
        None => (Purpose::New, quote.difficulty),
    };

    let mut id = [0u8; 16];
    getrandom::fill(&mut id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("random generator: {e}")))?;
    let expires_at = now + i64::from(settings.challenge_timeout_minutes) * 60;
    let opened = state
        .open_challenges
        .open(client.key, id, expires_at, now)
        .map_err(|refused| {
            state
                .metrics
                .limited
                .with_label_values(&[refused.limit])
                .inc();
            ApiError::RateLimited(refused.retry_after)
        })?;
    if opened == Opened::LedgerFull {
        state
            .metrics
            .limited
            .with_label_values(&["open_challenges_untracked"])
            .inc();
    }
    let claims = ChallengeClaims {
        id,
        purpose,
        issued_at: now,
        expires_at,
        difficulty,
        params: state.config.argon2,
        ip_key: client.key.to_bytes(),
        ticket_bits: state.config.ticket_bits,
    };
    state.stats.record_issued(now);
    state
        .adaptive
        .record(client.key, Event::ChallengeIssued, now);
    #[allow(clippy::cast_precision_loss)] // at most 2^7
    state
        .metrics
        .challenge_network_multiplier
        .observe(quote.network.multiplier as f64);
    state
        .metrics
        .challenges_issued
        .with_label_values(&[if matches!(purpose, Purpose::New) {
            "new"
        } else {
            "refresh"
        }])
        .inc();
    tracing::debug!(?purpose, difficulty = difficulty.get(), ip = %client.key, "challenge issued");
    Ok(ChallengeResponse {
        challenge: claims.sign(&state.challenge_key),
        purpose: match purpose {
            Purpose::New => ChallengePurpose::New,
            Purpose::Refresh { .. } => ChallengePurpose::Refresh,
        },
        salt: hex::encode(claims.id),
        argon2: claims.params,
        difficulty: difficulty.get(),
        target: hex::encode(difficulty.target()),
        issued_at: claims.issued_at,
        expires_at: claims.expires_at,
        ticket_bits: claims.ticket_bits,
    })
}

/// Decides whether this request gets a refresh challenge, and for which token.
///
/// An explicit `refresh_token` must be refreshable, or the request fails with
/// the reason. Without one, a refreshable token in the cookie is used quietly;
/// any other cookie state just means a new-token challenge.
async fn refresh_target(
    state: &AppState,
    client: &ClientIp,
    headers: &HeaderMap,
    req: ChallengeRequest,
) -> Result<Option<i64>> {
    let (token, explicit) = match req.refresh_token.as_deref() {
        Some(t) => (t, true),
        None => match cookies::cookie_str(headers, cookies::TOKEN_COOKIE) {
            Some(t) => (t, false),
            None => return Ok(None),
        },
    };
    match refreshable_token_id(state, client, token).await {
        Ok(id) => Ok(Some(id)),
        Err(e) if explicit => Err(e),
        Err(_) => Ok(None),
    }
}

/// The id of `token` if it may be refreshed from `client` now: expired
/// within its refresh window, or unexpired with its request budget used up.
pub(crate) async fn refreshable_token_id(
    state: &AppState,
    client: &ClientIp,
    token: &str,
) -> Result<i64> {
    let token = PlainToken::parse(token)
        .map_err(|e| ApiError::BadRequest(format!("refresh_token: {e}")))?;
    let rec = state.tokens.lookup(token.hashed()).await?.ok_or_else(|| {
        ApiError::NotFound("refresh_token is unknown or was purged; solve a new challenge".into())
    })?;
    let now = state.now();
    let settings = state.settings.get();
    match rec.state(now, state.config.refresh_window_secs()) {
        TokenState::Revoked => {
            return Err(ApiError::Forbidden(
                "this token was revoked and cannot be refreshed".into(),
            ));
        }
        // An exhausted token is refreshed like an expired one: the refresh
        // starts its request count again.
        TokenState::Active
            if state
                .token_usage
                .is_exhausted(&rec, settings.token_requests_total) => {}
        TokenState::Active => {
            return Err(ApiError::BadRequest(
                "this token has not expired yet and has requests left; there is nothing to refresh"
                    .into(),
            ));
        }
        TokenState::Expired { refreshable: false } => {
            return Err(ApiError::Expired(
                "this token is past its refresh window; solve a new challenge".into(),
            ));
        }
        TokenState::Expired { refreshable: true } => {}
    }
    if !rec.has_ip(client.key) && rec.ips.len() >= settings.token_max_ips as usize {
        return Err(ApiError::WrongIp(
            "this token is already used from its maximum number of addresses".into(),
        ));
    }
    Ok(rec.id)
}
