//! HTTP routes, one module per resource; [`app`] merges them.

pub mod admin;
pub mod challenge;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod pages;
pub mod solve;
pub mod verify;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::ApiError;
use crate::state::AppState;

/// Runs `work` within the configured request time. Past it, the cut is
/// counted and the answer is 408, so a slow client (or a stuck database)
/// cannot hold a connection and its memory.
///
/// # Errors
/// [`ApiError::Timeout`] when the time is up.
pub async fn within_request_time<F: Future>(
    state: &AppState,
    work: F,
) -> Result<F::Output, ApiError> {
    tokio::time::timeout(state.config.limits.request_timeout, work)
        .await
        .map_err(|_| {
            state
                .metrics
                .limited
                .with_label_values(&["request_timeout"])
                .inc();
            ApiError::Timeout
        })
}

/// Bounds a whole request, body reading included (see
/// [`within_request_time`]).
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    within_request_time(&state, next.run(req))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Turns axum's plain-text rejections (a query string or form that does not
/// parse, a wrong content type, an empty 405) into the JSON error shape every
/// other refusal has. HTML and JSON answers pass untouched.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !status.is_client_error() || !plain {
        return resp;
    }
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    let mut out = ApiError::Rejected { status, message }.into_response();
    if let Some(r) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, r);
    }
    out
}

/// Gives every answer under `/api/` the JSON API headers, successes
/// included (refusals carry them from [`ApiError`] already).
async fn api_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    if api {
        crate::error::add_api_headers(resp.headers_mut());
    }
    resp
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

/// Whether tower-http's trace layer would record anything: its span and
/// its events are all at DEBUG, one target per callback.
fn request_tracing_enabled() -> bool {
    use tracing::Level;
    tracing::enabled!(target: "tower_http::trace::make_span", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_request", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_failure", Level::DEBUG)
}

/// The whole application.
///
/// The routes fall in two groups, because the first is asked on every
/// request of the protected site (`/verify-token`, and `/healthz`, which
/// monitors poll) and should pay only for what it needs:
/// - `/verify-token` and `/healthz` use only extractors whose refusals are
///   [`ApiError`]s and read no body, so they cannot produce a plain-text
///   rejection for `json_errors` to rewrite, and they answer their own
///   headers. Their requests are bounded by hyper's header-read timeout
///   (server.rs) and, for the database work of `/verify-token`, by
///   [`within_request_time`] inside the handler.
/// - everything else goes through `json_errors`, `api_headers` and the
///   `request_timeout` middleware, which bounds body reading too.
pub fn app(state: AppState) -> Router {
    let hot = Router::new()
        .merge(verify::router())
        .merge(health::router())
        .method_not_allowed_fallback(method_not_allowed);
    // Every route with a body; JsonBody turns the limit's 413 into JSON.
    let with_bodies = Router::new()
        .merge(challenge::router())
        .merge(solve::router())
        .merge(admin::router())
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes));
    let mut rest = Router::new().merge(with_bodies);
    if state.config.metrics_listen.is_none() {
        rest = rest.merge(metrics::router());
    }
    let rest = rest
        .merge(pages::router())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(api_headers))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ));
    let router = Router::new().merge(hot).merge(rest).fallback(not_found);
    // With its output filtered out, the layer still costs a span check, two
    // timestamps and a wrapped body per request (about 1 600 instructions
    // of /verify-token's, counted with callgrind): it is there only when
    // its output is wanted, e.g. RUST_LOG=tower_http=debug.
    let router = if request_tracing_enabled() {
        // A 5xx here is a 503 from a full verification queue or the
        // connection caps, expected by the thousand under a flood and
        // counted in /metrics; at tower-http's default ERROR level each
        // one would be a log line. Real faults log themselves (ApiError).
        router.layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
    } else {
        router
    };
    router.with_state(state)
}
