//! Proxy mode: powgate in front of the application, no nginx needed.
//!
//! 1. A request under the prefix (`/.powgate/` by default) is powgate's
//!    own: the prefix is cut off and [`routes::app`] serves it, with all
//!    its limits (body size, request time, JSON errors).
//! 2. Every other request is gated as `/verify-token` gates a proxy's
//!    subrequest ([`gate::decide`], with [`GateRequest::direct`]) and
//!    refused in the same words ([`verify::respond`]).
//! 3. A passing request goes to the upstream ([`upstream`]) with its body
//!    streamed, its raw path and query unchanged, and its headers cleaned
//!    ([`headers`]); the answer streams back as it comes, an upgrade
//!    (WebSocket) becomes a raw tunnel. None of powgate's own limits apply
//!    to it but the server's: header-read timeout and connection caps.

pub(crate) mod headers;
pub(crate) mod upstream;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::forwarded::OriginalRequest;
use crate::gate::{self, Decision, GateRequest};
use crate::limits::ConnSlot;
use crate::routes::extract::ClientIp;
use crate::routes::{self, verify, within_request_time};
use crate::state::AppState;
use headers::Visitor;

/// What the dispatcher needs: the state, and powgate's own routes.
#[derive(Debug, Clone)]
struct Proxy {
    state: AppState,
    own: Router,
}

/// The whole application in proxy mode: powgate's own routes under the
/// prefix, everything else gated and proxied. Only a fallback, so axum's
/// routing adds nothing to a proxied request.
pub(crate) fn router(state: AppState) -> Router {
    let own = routes::app(state.clone());
    Router::new()
        .fallback(dispatch)
        .with_state(Proxy { state, own })
}

async fn dispatch(State(proxy): State<Proxy>, req: Request) -> Response {
    let Some(config) = proxy.state.config.proxy.as_ref() else {
        return proxy.own.oneshot(req).await.into_response();
    };
    let path = req.uri().path();
    let prefix = config.prefix.as_str();
    if let Some(rest) = path.strip_prefix(prefix) {
        let own_uri = own_route_uri(rest, req.uri().query());
        return serve_own(proxy.own, req, own_uri).await;
    }
    if Some(path) == prefix.strip_suffix('/') {
        // `/.powgate` without its slash: the page's relative URLs would
        // resolve against the site's root.
        let to = match req.uri().query() {
            Some(q) => format!("{prefix}?{q}"),
            None => prefix.to_owned(),
        };
        let mut resp = StatusCode::PERMANENT_REDIRECT.into_response();
        if let Ok(to) = HeaderValue::from_str(&to) {
            resp.headers_mut().insert(header::LOCATION, to);
        }
        return resp;
    }
    // Own routes log their internal errors inside `routes::app`; this is
    // the same hook for the gate's.
    routes::log_internal_errors(gated(&proxy.state, req).await)
}

/// `/<rest>?<query>`: a path under the prefix, as powgate's routes know it.
fn own_route_uri(rest: &str, query: Option<&str>) -> Option<Uri> {
    let uri = match query {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    uri.parse().ok()
}

async fn serve_own(own: Router, req: Request, uri: Option<Uri>) -> Response {
    let Some(uri) = uri else {
        return ApiError::BadRequest("unreadable path".into()).into_response();
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    own.oneshot(Request::from_parts(parts, body))
        .await
        .into_response()
}

/// Gates a request for the application, then forwards it or refuses it as
/// forward-auth would.
async fn gated(state: &AppState, mut req: Request) -> Response {
    // Taken before the request is split: hyper hands over the connection
    // through this extension once the response is a 101.
    let upgrade = headers::requested_upgrade(req.headers());
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let client = match ClientIp::from_request_parts(&mut parts, state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let gate_request = GateRequest::direct(&parts.method, &parts.uri, &parts.headers, &client);
    let decision = match within_request_time(state, gate::decide(state, &gate_request)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) | Err(e) => return e.into_response(),
    };
    let original = || {
        OriginalRequest::direct(
            &parts.headers,
            &parts.method,
            &parts.uri,
            client.via_trusted_proxy,
        )
    };
    if !decision.status_code().is_success() {
        return verify::respond(state, decision, original, &parts.headers);
    }
    let navigation = original().is_browser_navigation(&parts.headers);
    let slot = parts.extensions.get::<ConnSlot>().cloned();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(client.ip, |c| c.0.ip());
    let visitor = Visitor {
        peer,
        client: client.ip,
        via_trusted_proxy: client.via_trusted_proxy,
    };
    match forward(state, parts, body, &visitor, decision, upgrade).await {
        Ok(mut resp) => {
            if let Some(client_upgrade) = client_upgrade
                && resp.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                // hyper releases the connection (and its slot) once it is
                // upgraded: the tunnel holds the slot instead, so open
                // tunnels count against the connection caps.
                tokio::spawn(async move {
                    tunnel(client_upgrade, upstream_upgrade).await;
                    drop(slot);
                });
            }
            resp.map(Body::new)
        }
        Err(e @ (ApiError::UpstreamUnavailable | ApiError::UpstreamTimeout)) if navigation => {
            upstream_error_page(&e)
        }
        Err(e) => e.into_response(),
    }
}

/// Sends a passing request on, its body streamed as it arrives.
async fn forward(
    state: &AppState,
    mut parts: axum::http::request::Parts,
    body: Body,
    visitor: &Visitor,
    decision: Decision,
    upgrade: Option<HeaderValue>,
) -> Result<Response<hyper::body::Incoming>, ApiError> {
    let Some(client) = state.upstream.as_ref() else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "proxy mode without an upstream client"
        )));
    };
    let body = match state.config.proxy.as_ref().and_then(|p| p.max_body_bytes) {
        Some(max) => limit_body(&parts, body, max)?,
        None => body,
    };
    headers::drop_hop_by_hop(&mut parts.headers, upgrade.as_ref());
    headers::to_upstream(&mut parts.headers, visitor, decision);
    if let Some(host) = state.config.proxy.as_ref().and_then(|p| p.host.clone()) {
        parts.headers.insert(header::HOST, host);
    }
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = client.uri_for(parts.uri.path_and_query());
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = parts.headers;
    let mut resp = client.send(out).await?;
    // hyper writes the status line in the response's version: an HTTP/1.0
    // upstream's would reach a 1.1 visitor as 1.0 and end its keep-alive.
    // Each hop speaks its own version.
    *resp.version_mut() = Version::HTTP_11;
    let upgrade_back = (resp.status() == StatusCode::SWITCHING_PROTOCOLS)
        .then(|| headers::requested_upgrade(resp.headers()))
        .flatten();
    headers::drop_hop_by_hop(resp.headers_mut(), upgrade_back.as_ref());
    Ok(resp)
}

/// Caps a proxied body at `max` bytes: refused at once when its
/// `Content-Length` says more, cut off (the upstream sees an aborted
/// upload) when a chunked one grows past it. Streamed either way.
fn limit_body(parts: &axum::http::request::Parts, body: Body, max: u64) -> Result<Body, ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::TooLarge(max_usize));
    }
    Ok(Body::new(http_body_util::Limited::new(body, max_usize)))
}

/// Copies raw bytes both ways between the visitor and the upstream once
/// both sides switched protocols, until either closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}

/// The upstream failure for a browser loading a page: a short HTML page
/// rather than JSON, with the same status.
fn upstream_error_page(e: &ApiError) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>{status}</title><h1>{status}</h1><p>{e}</p>",
        status = e.status_code()
    );
    let mut resp = (e.status_code(), body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}
