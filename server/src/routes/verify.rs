//! `/verify-token`: the reverse proxy's question "may this request pass?",
//! asked on every request. The [`crate::gate`] decides; this module reads
//! the question from the proxy's subrequest and words the answer for it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pow::wire::VerifyResponse;

use crate::error::ApiError;
use crate::forwarded::OriginalRequest;
use crate::gate::{self, Decision, GateRequest};
use crate::routes::extract::ClientIp;
use crate::routes::within_request_time;
use crate::state::AppState;

/// Everything but RFC 3986's unreserved characters is escaped in `redir`.
const REDIR_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn router() -> Router<AppState> {
    // Proxies use GET (nginx auth_request) or the original method
    // (Traefik), so any method is answered.
    Router::new().route("/verify-token", any(verify))
}

pub(crate) const STATUS_HEADER: HeaderName = HeaderName::from_static("x-powgate-status");
pub(crate) const REFRESHABLE_HEADER: HeaderName = HeaderName::from_static("x-powgate-refreshable");
/// Where nginx should send a browser; see the nginx recipe.
pub(crate) const LOCATION_HEADER: HeaderName = HeaderName::from_static("x-powgate-location");

/// Answers on every request the proxy sees, so the common case (a known,
/// valid token) allocates nothing of its own: the headers are borrowed from
/// the request rather than extracted as a copy, the original request is read
/// in place, and a passing answer has a fixed body.
async fn verify(
    State(state): State<AppState>,
    client: ClientIp,
    req: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let (parts, _) = req.into_parts();
    let gated = GateRequest::forwarded(&parts.method, &parts.headers, &client);
    // The route skips the request_timeout middleware (routes/mod.rs); the
    // gate's database work is the one thing here that can wait.
    let decision = within_request_time(&state, gate::decide(&state, &gated)).await??;
    // Read only for a refusal: a passing answer needs none of it.
    let original =
        || OriginalRequest::from_headers(&parts.headers, &parts.method, client.via_trusted_proxy);
    let resp = respond(&state, decision, original, &parts.headers);
    state
        .metrics
        .verify_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// The challenge page's URL (`page`), with `redir` set to the original URL
/// when known.
fn challenge_location(page: &str, original: &OriginalRequest<'_>) -> String {
    match original.url() {
        Some(url) => format!("{page}?redir={}", utf8_percent_encode(&url, REDIR_ESCAPE)),
        None => page.to_owned(),
    }
}

/// Builds the answer. A browser loading a page is sent to the challenge
/// page: with a 302 for proxies that pass our answer through (Caddy,
/// Traefik, and proxy mode's own visitors), or with `X-Powgate-Location`
/// for nginx, whose `auth_request` only understands 2xx, 401 and 403.
/// Everyone else gets the JSON. `original` reads the request being gated
/// (called for a refusal only), `headers` are the ones that arrived (the
/// browser's, or its proxy's copy).
///
/// Proxy mode answers its refused visitors with this too, so both modes
/// word a refusal alike.
pub(crate) fn respond<'a>(
    state: &AppState,
    decision: Decision,
    original: impl FnOnce() -> OriginalRequest<'a>,
    headers: &HeaderMap,
) -> Response {
    let mut resp = if decision.status_code().is_success() {
        let mut resp = Response::new(Body::from(passing_body(decision)));
        *resp.status_mut() = decision.status_code();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    } else {
        refusal(state, decision, &original(), headers)
    };
    let h = resp.headers_mut();
    h.insert(STATUS_HEADER, HeaderValue::from_static(decision.label()));
    h.insert(
        REFRESHABLE_HEADER,
        HeaderValue::from_static(if decision.refreshable() {
            "true"
        } else {
            "false"
        }),
    );
    crate::error::add_api_headers(h);
    resp
}

/// The JSON of a passing answer, written out: it is the same every time,
/// and serializing it was a measurable share of `/verify-token`'s cost. A
/// test checks it against the serialized [`VerifyResponse`].
fn passing_body(decision: Decision) -> &'static str {
    match decision {
        Decision::Allowlisted => r#"{"status":"allowlisted","refreshable":false}"#,
        _ => r#"{"status":"valid","refreshable":false}"#,
    }
}

/// A refusal: the JSON reason, and for a browser loading a page, where to
/// go. A refusal that waiting cures (`rate_limited`) sends nobody to the
/// page, since solving again does not help: it answers 429 with
/// `Retry-After`, or 403 with the same headers to nginx, whose
/// `auth_request` passes only 2xx, 401 and 403 (its recipe turns that 403
/// into the visitor's 429). Caddy and Traefik pass the 429 through.
fn refusal(
    state: &AppState,
    decision: Decision,
    original: &OriginalRequest<'_>,
    headers: &HeaderMap,
) -> Response {
    let page = state.config.page_url();
    let retry_after = decision.retry_after();
    let navigation = retry_after.is_none() && original.is_browser_navigation(headers);
    let location = navigation
        .then(|| HeaderValue::from_str(&challenge_location(&page, original)).ok())
        .flatten();
    let body = VerifyResponse {
        status: decision.label().to_owned(),
        refreshable: decision.refreshable(),
        challenge_url: Some(page),
        message: Some(decision.message().to_owned()),
    };
    let status = if retry_after.is_some() && original.status_only {
        StatusCode::FORBIDDEN
    } else if navigation && !original.status_only {
        StatusCode::FOUND
    } else {
        decision.status_code()
    };
    let mut resp = (status, Json(body)).into_response();
    if let Some(wait) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    if let Some(loc) = location {
        let h = resp.headers_mut();
        h.insert(LOCATION_HEADER, loc.clone());
        if status == StatusCode::FOUND {
            h.insert(header::LOCATION, loc);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_bodies_are_the_serialized_response() {
        for decision in [Decision::Valid, Decision::Allowlisted] {
            let serialized = serde_json::to_string(&VerifyResponse {
                status: decision.label().to_owned(),
                refreshable: false,
                challenge_url: None,
                message: None,
            })
            .unwrap();
            assert_eq!(passing_body(decision), serialized);
        }
    }
}
