//! Liveness, and a bare handler that benchmarks compare `/verify-token` with.

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}
