//! Liveness, and a bare handler that benchmarks compare `/verify-token` with.
//! In proxy mode it also says whether the application answers.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

/// `ok`, and in proxy mode a second line, `upstream: reachable` or
/// `upstream: unreachable`. Still 200 when the upstream is down: powgate
/// itself is alive, and a supervisor that restarted it for its upstream's
/// sake would only add an outage. The check is a cached connect
/// (`UpstreamClient::is_reachable`), never a request per poll.
async fn health(State(state): State<AppState>) -> &'static str {
    match &state.upstream {
        None => "ok\n",
        Some(upstream) if upstream.is_reachable().await => "ok\nupstream: reachable\n",
        Some(_) => "ok\nupstream: unreachable\n",
    }
}
