//! HTTP routes, one module per resource; [`app`] merges them.

pub(crate) mod admin;
pub(crate) mod challenge;
pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod nojs;
pub(crate) mod pages;
pub(crate) mod solve;
pub(crate) mod verify;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::util::MapResponseLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::{ApiError, InternalCause};
use crate::state::AppState;

/// Runs `work` within the configured request time. Past it, the cut is
/// counted and the answer is 408, so a slow client (or a stuck database)
/// cannot hold a connection and its memory.
///
/// # Errors
/// [`ApiError::Timeout`] when the time is up.
pub(crate) async fn within_request_time<F: Future>(
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

/// The one place a 500's cause is logged: [`ApiError`] hides it from the
/// client and hands it over as an [`InternalCause`] extension. Runs inside
/// the trace layer, so the line lands in the request's span when there is
/// one. A plain function under `MapResponseLayer`: the hot path pays one
/// empty-extensions check, no boxed future.
pub(crate) fn log_internal_errors(resp: Response) -> Response {
    if let Some(InternalCause(cause)) = resp.extensions().get::<InternalCause>() {
        tracing::error!(error = ?cause, "internal error");
    }
    resp
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
/// - `/verify-token` and `/healthz` read no body and answer their own
///   headers. Their requests are bounded by hyper's header-read timeout
///   (server.rs) and, for the database work of `/verify-token`, by
///   [`within_request_time`] inside the handler.
/// - everything else goes through `api_headers` and the `request_timeout`
///   middleware, which bounds body reading too.
///
/// Both groups refuse only through [`ApiError`]: every extractor's rejection
/// is one (see [`extract`]), and so are the 405 and 404 fallbacks.
pub(crate) fn app(state: AppState) -> Router {
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ));
    let router = Router::new()
        .merge(hot)
        .merge(rest)
        .fallback(not_found)
        .layer(MapResponseLayer::new(log_internal_errors));
    // With its output filtered out, the layer still costs a span check, two
    // timestamps and a wrapped body per request (about 1 600 instructions
    // of /verify-token's, counted with callgrind): it is there only when
    // its output is wanted, e.g. RUST_LOG=tower_http=debug.
    let router = if request_tracing_enabled() {
        // A 5xx here is a 503 from a full verification queue or the
        // connection caps, expected by the thousand under a flood and
        // counted in /metrics; at tower-http's default ERROR level each
        // one would be a log line. Real faults are logged by
        // log_internal_errors.
        router.layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
    } else {
        router
    };
    router.with_state(state)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::header;

    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;

    /// Collects the fields of every ERROR event, one string per event.
    #[derive(Clone, Default)]
    struct ErrorLines(Arc<Mutex<Vec<String>>>);

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl<S: Subscriber> Layer<S> for ErrorLines {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            if *event.metadata().level() == Level::ERROR {
                let mut fields = Fields(String::new());
                event.record(&mut fields);
                self.0.lock().unwrap().push(fields.0);
            }
        }
    }

    fn error_lines_of(work: impl FnOnce()) -> Vec<String> {
        let lines = ErrorLines::default();
        let subscriber = tracing_subscriber::registry().with(lines.clone());
        tracing::subscriber::with_default(subscriber, work);
        lines.0.lock().unwrap().clone()
    }

    #[test]
    fn an_internal_error_is_logged_once_by_the_router_hook_with_its_cause() {
        let lines = error_lines_of(|| {
            let resp = ApiError::Internal(anyhow::anyhow!("database is locked")).into_response();
            log_internal_errors(resp);
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("database is locked"), "{lines:?}");
    }

    fn test_state(dir: &tempfile::TempDir) -> AppState {
        let raw = crate::config::RawConfig {
            database: dir.path().join("powgate.db"),
            ..crate::config::RawConfig::default()
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(AppState::new(
                raw.validate().unwrap(),
                Arc::new(crate::clock::SystemClock),
            ))
            .unwrap()
    }

    /// With no middleware left to rewrite plain-text answers, each wrapped
    /// extractor must refuse in JSON itself, with axum's status for the
    /// rejection, a code that names that status (a 415 was `bad_request`)
    /// and the API headers.
    #[test]
    fn form_and_path_rejections_are_json_with_their_own_status_and_code() {
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let state = test_state(&dir);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let oversized = format!(
            "token={}",
            "a".repeat(state.config.limits.max_body_bytes + 1)
        );
        let form = "application/x-www-form-urlencoded";
        let cases = [
            // FormBody: not a form at all.
            (
                "/api/token",
                "application/json",
                "{\"token\": 1}",
                415,
                "unsupported_media_type",
            ),
            // FormBody: a form without its required field.
            ("/api/token", form, "redir=/", 422, "unprocessable_entity"),
            // FormBody: a form over the body limit, like an oversized JSON
            // body (it was a generic 413 `bad_request`, not counted).
            ("/api/token", form, oversized.as_str(), 413, "too_large"),
            // PathParams: a path that is not UTF-8 once decoded.
            ("/%FF", "text/plain", "", 400, "bad_request"),
        ];
        for (uri, content_type, body, status, code) in cases {
            let method = if body.is_empty() { "GET" } else { "POST" };
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", content_type)
                .body(axum::body::Body::from(body.to_owned()))
                .unwrap();
            let peer: std::net::SocketAddr = "192.0.2.7:4000".parse().unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let resp = rt.block_on(app(state.clone()).oneshot(req)).unwrap();
            assert_eq!(resp.status(), status, "{uri}");
            let headers = resp.headers().clone();
            assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
            let bytes = rt
                .block_on(axum::body::to_bytes(resp.into_body(), 4096))
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["error"], code, "{uri}: {json}");
            assert!(
                json["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{json}"
            );
        }
        let counted = state
            .metrics
            .limited
            .with_label_values(&["body_size"])
            .get();
        assert_eq!(counted, 1, "the oversized form is counted as body_size");
    }

    /// Served without connect info, the client-address extractor has no
    /// peer and fails with a 500: an internal error through the whole
    /// router, on each side of the hot-path split.
    #[test]
    fn an_internal_error_in_a_served_request_is_logged_by_the_app() {
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let state = test_state(&dir);
        for (method, uri) in [("GET", "/verify-token"), ("POST", "/api/challenge")] {
            let lines = error_lines_of(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let req = axum::http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from("{}"))
                    .unwrap();
                let resp = rt.block_on(app(state.clone()).oneshot(req)).unwrap();
                assert_eq!(resp.status(), 500, "{method} {uri}");
            });
            assert_eq!(lines.len(), 1, "{method} {uri}: {lines:?}");
            assert!(lines[0].contains("no peer address"), "{lines:?}");
        }
    }

    #[test]
    fn building_an_internal_error_response_logs_nothing_by_itself() {
        // Logging belongs to the hook alone: a response built but never
        // served (or served through the hook) must not be logged twice.
        let lines = error_lines_of(|| {
            drop(ApiError::Internal(anyhow::anyhow!("database is locked")).into_response());
        });
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn a_client_refusal_is_not_logged_as_an_internal_error() {
        let lines = error_lines_of(|| {
            log_internal_errors(ApiError::NotFound("no such route".into()).into_response());
        });
        assert!(lines.is_empty(), "{lines:?}");
    }
}
