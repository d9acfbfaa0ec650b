//! Liveness, and a bare handler that benchmarks compare `/verify-token` with.
//! In proxy mode it also says whether the application answers.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

/// `ok`; with a store of its own state (PostgreSQL) a line `store:
/// reachable` or `store: unreachable`; in proxy mode a line `upstream:
/// reachable` or `upstream: unreachable`. Still 200 when either is down:
/// powgate itself is alive, and serves what it can (cached tokens), and a
/// supervisor that restarted it for their sake would only add an outage.
/// Both checks are cached briefly (`UpstreamClient::is_reachable`, the
/// store's `is_reachable`), never a connection per poll.
async fn health(State(state): State<AppState>) -> String {
    let mut out = String::from("ok\n");
    match state.store.is_reachable().await {
        None => {}
        Some(true) => out.push_str("store: reachable\n"),
        Some(false) => out.push_str("store: unreachable\n"),
    }
    if let Some(upstream) = &state.upstream {
        out.push_str(if upstream.is_reachable().await {
            "upstream: reachable\n"
        } else {
            "upstream: unreachable\n"
        });
    }
    out
}
