//! `POST /api/solve`: checks a solution and issues or extends a token.
//! `POST /api/token`: the no-JavaScript path, which turns a token pasted into
//! a form into the cookie.
//!
//! The order of checks is the point of this module:
//! 1. everything cheap (size, schema, signature, expiry, address,
//!    the admission ticket, parameters and difficulty as [`crate::acceptance`] requires them now),
//!    then the refresh token for a refresh challenge;
//! 2. a turn on a verification thread, in line by the client's reputation
//!    (see [`crate::verifier`]); a submission that gets none is answered
//!    503 `queued` and keeps its challenge and its place in line;
//! 3. the challenge is spent, once, atomically;
//! 4. the one argon2 hash. A wrong answer counts against the address's and
//!    its networks' reputation and starts its back-off.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Json, Router};
use pow::wire::{SolveRequest, SolveResponse, Telemetry};
use pow::{ChallengeClaims, ChallengeError, Purpose};
use serde::Deserialize;

use crate::acceptance::Requirements;
use crate::adaptive::Event;
use crate::config::Config;
use crate::cookies;
use crate::error::{ApiError, Result};
use crate::gate::{Decision, judge_token};
use crate::locale;
use crate::origin::{self, RequestOrigin};
use crate::redirect::safe_redirect;
use crate::routes::extract::{ClientIp, FormBody, JsonBody};
use crate::routes::nojs;
use crate::state::AppState;
use crate::stats::{DeviceClass, SolveReport};
use crate::token::PlainToken;
use crate::verifier::Place;

/// The longest a submission waits for its turn before it is told `queued`:
/// 10 s, well inside the read timeouts of common proxies (nginx's 60 s), and
/// at most half of powgate's own request timeout, so the answer always
/// gets out.
fn max_wait(config: &Config) -> Duration {
    Duration::from_secs(10).min(config.limits.request_timeout / 2)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/solve", post(solve))
        .route("/api/token", post(paste_token))
}

/// `POST /api/solve`: [`redeem`], answered as JSON with the token cookie.
async fn solve(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Result<JsonBody<SolveRequest>, ApiError>,
) -> Result<Response> {
    let from = Presenter {
        cookie_token: cookies::cookie_str(&headers, cookies::TOKEN_COOKIE),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    };
    let body = body.map(|JsonBody(req)| req);
    // Where the page may send the visitor: checked here, by the server's
    // one rule, so the page need not re-implement it.
    let redirect = body
        .as_ref()
        .ok()
        .and_then(|req| req.redir.as_deref())
        .and_then(|redir| redirect_target(&state, &headers, redir));
    let minted = redeem(&state, &client, body, from).await?;
    let settings = state.settings.get();
    let plain = minted.token.expose();
    let mut resp = Json(SolveResponse {
        token: plain.clone(),
        refreshed: minted.refreshed,
        expires_at: minted.expires_at,
        redirect,
    })
    .into_response();
    set_cookie(&state, &mut resp, &plain, settings.token_hours);
    Ok(resp)
}

/// What a submission carries besides its answer: the token cookie, which
/// a refresh may present instead of `refresh_token`, and the client's
/// `User-Agent` for the device statistics. The TCP gate has neither.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Presenter<'a> {
    pub cookie_token: Option<&'a str>,
    pub user_agent: &'a str,
}

/// A token issued or extended for a correct answer.
#[derive(Debug)]
pub(crate) struct Minted {
    pub token: PlainToken,
    pub refreshed: bool,
    pub expires_at: i64,
}

/// Checks an answer (`body`, or why it could not be read) from `client` and
/// mints its token: the one place a solution is judged, for `POST
/// /api/solve` and the TCP gate alike. Counts every outcome, including
/// bodies that fail to parse, for the metrics and the admin page.
///
/// # Errors
/// Every refusal, as the [`ApiError`] the client is told.
pub(crate) async fn redeem(
    state: &AppState,
    client: &ClientIp,
    body: Result<SolveRequest, ApiError>,
    from: Presenter<'_>,
) -> Result<Minted> {
    let result = match (
        state
            .rate_limits
            .check_solution(client.key, &state.settings.get(), &state.metrics)
            .map_err(ApiError::from),
        body,
    ) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(req)) => check_and_issue(state, client, from, req).await,
    };
    // A wrong answer starts the address's back-off. A wrong ticket is
    // garbage too, however cheap it was to refuse, so it counts against the
    // sender's networks like a wrong answer and sends them to the back of
    // the line; but no back-off, so a client with a bug can resubmit at
    // once. A missing ticket counts for nothing: it is what a page cached
    // from before the ticket sends, and it cost powgate one comparison.
    match &result {
        Err(ApiError::WrongAnswer) => {
            state.rate_limits.penalise(client.key);
            state.reputation.record_failure(client.key, state.now());
            state
                .adaptive
                .record(client.key, Event::WrongAnswer, state.now());
        }
        Err(ApiError::BadTicket { missing: false }) => {
            state.reputation.record_failure(client.key, state.now());
            state
                .adaptive
                .record(client.key, Event::WrongAnswer, state.now());
        }
        _ => {}
    }
    if let Err(e) = &result {
        state
            .metrics
            .solutions
            .with_label_values(&["rejected", e.code()])
            .inc();
        // A queued answer has not failed: it is sent again and usually
        // succeeds. Counted as failed, every resubmission of a visitor
        // waiting out a flood would show on the admin page as one more.
        if !matches!(e, ApiError::Queued { .. }) {
            state.stats.record_failed(state.now());
        }
    }
    result
}

async fn check_and_issue(
    state: &AppState,
    client: &ClientIp,
    from: Presenter<'_>,
    req: SolveRequest,
) -> Result<Minted> {
    let now = state.now();
    let claims =
        pow::challenge::verify(&state.challenge_key, &req.challenge).map_err(|e| match e {
            ChallengeError::BadSignature => ApiError::BadRequest(
                "challenge signature is invalid; request a new challenge".into(),
            ),
            other => ApiError::BadRequest(format!("{other}; request a new challenge")),
        })?;
    if now >= claims.expires_at {
        return Err(ApiError::Expired(
            "this challenge has expired; request a new one".into(),
        ));
    }
    if claims.ip_key != client.key.to_bytes() {
        return Err(ApiError::WrongIp(
            "this challenge was issued to another address; request a new one".into(),
        ));
    }
    check_ticket(&claims, req.ticket)?;
    let (settings, last_change) = state.settings.get_with_change();
    Requirements {
        params: state.config.argon2,
        ticket_bits: state.config.ticket_bits,
        settings: &settings,
        last_change,
        grace: state.config.challenge_grace,
        now,
    }
    .check(&claims)?;
    // For a refresh the caller must hold the token being refreshed.
    let refresh = match claims.purpose {
        Purpose::New => None,
        Purpose::Refresh { token_id } => {
            let presented = req
                .refresh_token
                .as_deref()
                .or(from.cookie_token)
                .ok_or_else(|| ApiError::Forbidden("a refresh challenge needs the token being refreshed (refresh_token or the cookie)".into()))?;
            let token = PlainToken::parse(presented)
                .map_err(|e| ApiError::BadRequest(format!("refresh_token: {e}")))?;
            let rec = state.tokens.lookup(token.hashed()).await?;
            if rec.as_ref().map(|r| r.id) != Some(token_id) {
                return Err(ApiError::Forbidden(
                    "this refresh challenge belongs to another token".into(),
                ));
            }
            Some((token_id, token))
        }
    };

    // Nothing is spent while waiting: a submission that gets no turn keeps
    // its challenge and, on its return, its place in line.
    let bucket = state.reputation.priority(client.key, now);
    let place = Place {
        id: claims.id,
        expires_at: claims.expires_at,
    };
    let turn = state
        .verifier
        .turn(bucket, place, now, max_wait(&state.config))
        .await
        .map_err(|q| {
            state
                .metrics
                .limited
                .with_label_values(&["verify_queue"])
                .inc();
            ApiError::Queued {
                ahead: q.ahead,
                // Back at once to keep its spot after a full wait; a little
                // later when the list was full of better waiters.
                retry_after: if q.waited { 1 } else { 2 },
            }
        })?;
    state.metrics.verify_turn(bucket).inc();
    let (id, expires_at) = (claims.id, claims.expires_at);
    if !state
        .challenge_ledger
        .spend(id, state.now(), expires_at)
        .await?
    {
        return Err(ApiError::AlreadySpent);
    }
    state.open_challenges.close(client.key, &id);
    let verdict = match turn.verify(claims, req.nonce).await {
        Ok(v) => v,
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    state.metrics.argon2_seconds.observe(verdict.hash_seconds);
    state
        .metrics
        .verify_seconds(verdict.valid)
        .inc_by(verdict.hash_seconds);
    if !verdict.valid {
        tracing::info!(ip = %client.key, "wrong answer");
        return Err(ApiError::WrongAnswer);
    }

    let settings = state.settings.get();
    let now = state.now();
    let token_expires = now + i64::from(settings.token_hours) * 3600;
    let (token, refreshed, token_id) = match refresh {
        Some((token_id, token)) => {
            state
                .tokens
                .extend(
                    token_id,
                    client.key.to_text(),
                    now,
                    token_expires,
                    settings.token_max_ips,
                    settings.max_tokens_per_ip,
                )
                .await?
                .ok_or_else(|| {
                    ApiError::Forbidden("this token was revoked or purged meanwhile".into())
                })
                .map(|rec| {
                    state
                        .token_usage
                        .restart(rec.id, rec.refresh_count, &state.metrics);
                })?;
            (token, true, token_id)
        }
        None => {
            let token = PlainToken::generate();
            let issued = state
                .tokens
                .issue(
                    token.hashed(),
                    now,
                    token_expires,
                    client.key.to_text(),
                    claims.difficulty.get(),
                    settings.max_tokens_per_ip,
                )
                .await?;
            (token, false, issued.id)
        }
    };
    // `id` is the admin list's, which revokes by it.
    tracing::info!(ip = %client.key, refreshed, id = token_id, hash = %token.hashed().short_id(), "token issued");
    record_success(
        state,
        client,
        from.user_agent,
        req.telemetry,
        &claims,
        refreshed,
        now,
    );
    Ok(Minted {
        token,
        refreshed,
        expires_at: token_expires,
    })
}

/// The admission ticket (`pow::ticket`): one SHA-256, before anything is
/// spent, queued or hashed, so a garbage submission without a paid-for
/// ticket costs powgate microseconds and leaves the challenge solvable.
fn check_ticket(claims: &ChallengeClaims, ticket: Option<u64>) -> Result<()> {
    match ticket {
        None if claims.ticket_bits > 0 => Err(ApiError::BadTicket { missing: true }),
        Some(t) if !pow::ticket::check(&claims.id, t, claims.ticket_bits) => {
            Err(ApiError::BadTicket { missing: false })
        }
        _ => Ok(()),
    }
}

fn record_success(
    state: &AppState,
    client: &ClientIp,
    user_agent: &str,
    telemetry: Option<Telemetry>,
    claims: &ChallengeClaims,
    refreshed: bool,
    now: i64,
) {
    state
        .adaptive
        .record(client.key, Event::ChallengeSolved, now);
    state.adaptive.record(client.key, Event::TokenMinted, now);
    let m = &state.metrics;
    m.solutions.with_label_values(&["accepted", "ok"]).inc();
    m.tokens
        .with_label_values(&[if refreshed { "refreshed" } else { "issued" }])
        .inc();
    // Telemetry is the client's word: only what fits the challenge's
    // difficulty and the time the server saw pass may reach the estimates.
    let report = telemetry.and_then(|t| {
        SolveReport::vet(t, claims.difficulty, claims.params, now - claims.issued_at)
    });
    if let Some(r) = report {
        #[allow(clippy::cast_precision_loss)]
        m.client_solve_seconds
            .observe(r.elapsed_ms() as f64 / 1000.0);
    } else if telemetry.is_some() {
        tracing::debug!(?telemetry, "implausible solve telemetry dropped");
    }
    let class = DeviceClass::of_solve(telemetry.and_then(|t| t.class), user_agent);
    state
        .stats
        .record_solved(now, class, client.key.network(), report);
}

/// Where a visitor who asked for `redir` may be sent: the one rule of
/// [`safe_redirect`], against the request's own host and `redirect_domains`.
/// Both the page's `/api/solve` and the no-JavaScript `/api/token` use it.
fn redirect_target(state: &AppState, headers: &HeaderMap, redir: &str) -> Option<String> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    safe_redirect(redir, host, &state.config.redirect_domains)
}

fn set_cookie(state: &AppState, resp: &mut Response, token: &str, token_hours: u32) {
    let max_age = i64::from(token_hours) * 3600 + state.config.refresh_window_secs();
    if let Some(v) = cookies::token_cookie(&state.config, token, max_age) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(Debug, Deserialize)]
struct PastedToken {
    token: String,
    #[serde(default)]
    redir: String,
    /// The page's `?lang=`, if it had one: the result page speaks it too.
    #[serde(default)]
    lang: String,
}

/// Accepts a token obtained with `powgate solve` and sets the cookie, so
/// browsers without JavaScript can pass too.
///
/// Only from this site's own pages: a form posted from another site would
/// set the victim's cookie to the attacker's token (token fixation) and add
/// the victim's address to it. Without `Origin` it is not a browser's post,
/// which cannot be used against anyone.
async fn paste_token(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    FormBody(form): FormBody<PastedToken>,
) -> Result<Response> {
    if origin::request_origin(
        &headers,
        state.config.public_url.as_deref(),
        client.via_trusted_proxy,
    ) == RequestOrigin::Foreign
    {
        return Err(ApiError::Forbidden(
            "a token can only be pasted on this site's own page (cross-site request refused)"
                .into(),
        ));
    }
    let token = form.token.trim();
    let decision = judge_token(&state, Some(token), &client).await?;
    let locale = locale::negotiate(
        Some(&form.lang),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    if decision != Decision::Valid {
        let msg = match decision {
            Decision::Expired { .. } => "tokenExpired",
            Decision::IpLimit => "tokenTooManyAddresses",
            Decision::Revoked => "tokenRevoked",
            Decision::Exhausted => "tokenExhausted",
            Decision::RateLimited { .. } => "tokenTooFast",
            _ => "tokenInvalid",
        };
        // Back to the page with the same return address and language, to
        // paste again.
        let query: Vec<String> = [("redir", &form.redir), ("lang", &form.lang)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                let v: String =
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                        .collect();
                format!("{k}={v}")
            })
            .collect();
        let back = if query.is_empty() {
            "../".to_owned()
        } else {
            format!("../?{}", query.join("&"))
        };
        return Ok(nojs::result_page(
            decision.status_code(),
            locale,
            "tokenFailedTitle",
            msg,
            (&back, "backToCheck"),
        ));
    }
    // With a return address the server accepts, straight there; else a
    // page that says it worked (the challenge page again would not).
    let mut resp = match redirect_target(&state, &headers, &form.redir) {
        Some(target) => {
            let mut resp = Redirect::to(&target).into_response();
            *resp.status_mut() = StatusCode::SEE_OTHER;
            resp
        }
        None => nojs::result_page(
            StatusCode::OK,
            locale,
            "doneTitle",
            "tokenWorks",
            ("/", "homePage"),
        ),
    };
    set_cookie(&state, &mut resp, token, state.settings.get().token_hours);
    Ok(resp)
}
