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
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// Ends requests that take longer than the configured time, body reading
/// included, so slow clients cannot hold a connection and its memory.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => crate::error::ApiError::Timeout.into_response(),
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(challenge::router())
        .merge(solve::router())
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes));
    let mut router = Router::new().merge(api).merge(admin::router());
    if state.config.metrics_listen.is_none() {
        router = router.merge(metrics::router());
    }
    router
        .merge(verify::router())
        .merge(health::router())
        .merge(pages::router())
        .layer(axum::middleware::from_fn_with_state(
            state.config.limits.request_timeout,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
