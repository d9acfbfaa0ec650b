//! `/metrics` for Prometheus, on the main listener or on
//! `POW_METRICS_LISTEN`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::Result;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> Result<Response> {
    // Gauges are read at scrape time, so they are never stale.
    let now = state.now();
    let active = state.tokens.count_active(now).await?;
    let m = &state.metrics;
    m.active_tokens.set(active);
    m.verify_queue_depth
        .set(i64::try_from(state.verifier.queue_depth()).unwrap_or(i64::MAX));
    m.verify_waiting
        .set(i64::try_from(state.verifier.waiting()).unwrap_or(i64::MAX));
    let settings = state.settings.get();
    m.difficulty
        .set(i64::try_from(settings.difficulty.get()).unwrap_or(i64::MAX));
    let pressure = state.adaptive.pressure(&settings, now);
    let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.pressure_multiplier.set(gauge(pressure.multiplier));
    m.pressure_challenges_per_minute
        .set(gauge(pressure.per_minute));
    m.pressure_baseline_per_minute
        .set(i64::from(pressure.baseline_per_minute));
    m.networks_scored
        .set(i64::try_from(state.adaptive.networks_scored()).unwrap_or(i64::MAX));
    let mut resp = m.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}
