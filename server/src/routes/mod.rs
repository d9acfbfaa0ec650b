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

/// The whole application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(challenge::router())
        .merge(solve::router())
        .layer(DefaultBodyLimit::max(extract::MAX_JSON_BODY));
    let mut router = Router::new().merge(api).merge(admin::router());
    if state.config.metrics_listen.is_none() {
        router = router.merge(metrics::router());
    }
    router
        .merge(verify::router())
        .merge(health::router())
        .merge(pages::router())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
