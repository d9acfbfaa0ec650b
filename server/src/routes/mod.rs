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
use axum::extract::DefaultBodyLimit;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::ApiError;
use crate::state::AppState;

/// Ends requests that take longer than the configured time, body reading
/// included, so slow clients cannot hold a connection and its memory.
async fn request_timeout(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::time::timeout(state.config.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            state
                .metrics
                .limited
                .with_label_values(&["request_timeout"])
                .inc();
            crate::error::ApiError::Timeout.into_response()
        }
    }
}

/// Turns axum's plain-text rejections (a query string or form that does not
/// parse, a wrong content type, an empty 405) into the JSON error shape every
/// other refusal has. HTML and JSON answers pass untouched.
async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !status.is_client_error() || !plain {
        return resp;
    }
    let retry_after = resp.headers().get(axum::http::header::RETRY_AFTER).cloned();
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    let mut out = ApiError::Rejected { status, message }.into_response();
    if let Some(r) = retry_after {
        out.headers_mut().insert(axum::http::header::RETRY_AFTER, r);
    }
    out
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    // Every route with a body; JsonBody turns the limit's 413 into JSON.
    let with_bodies = Router::new()
        .merge(challenge::router())
        .merge(solve::router())
        .merge(admin::router())
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes));
    let mut router = Router::new().merge(with_bodies);
    if state.config.metrics_listen.is_none() {
        router = router.merge(metrics::router());
    }
    router
        .merge(verify::router())
        .merge(health::router())
        .merge(pages::router())
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        // A 5xx here is a 503 from a full verification queue or the
        // connection caps, expected by the thousand under a flood and
        // counted in /metrics; at tower-http's default ERROR level each
        // one would be a log line. Real faults log themselves (ApiError).
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}
