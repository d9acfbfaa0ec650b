//! The challenge page, its scripts, the worker and the wasm solver, all
//! embedded in the binary at build time (see `build.rs`), plus the small
//! `api/config` document the page reads.
//!
//! Every file is served with `Cache-Control: no-cache` and a content-hash
//! ETag: browsers revalidate on each load (a cheap 304), so an upgraded
//! binary can never be paired with a stale cached wasm or script.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::error::ApiError;
use crate::locale;
use crate::routes::extract::{ClientIp, PathParams};
use crate::routes::nojs;
use crate::state::AppState;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Only same-origin resources, plus compiling WebAssembly.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/api/config", get(page_config))
        .route("/{*path}", get(asset))
}

/// The embedded files below `dir` (such as `locales/`), by their path
/// below it.
pub(crate) fn embedded_under(dir: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> {
    embedded::ASSETS
        .iter()
        .filter_map(move |(p, _, _, bytes)| Some((p.strip_prefix(dir)?, *bytes)))
}

/// An embedded file by its path below the served root.
pub(crate) fn find(path: &str) -> Option<(&'static str, &'static str, &'static [u8])> {
    embedded::ASSETS
        .iter()
        .find(|(p, ..)| *p == path)
        .map(|(_, mime, etag, bytes)| (*mime, *etag, *bytes))
}

async fn index(
    State(state): State<AppState>,
    client: ClientIp,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    challenge_page(&state, &client, &uri, &headers)
}

async fn asset(
    State(state): State<AppState>,
    client: ClientIp,
    uri: axum::http::Uri,
    PathParams(path): PathParams<String>,
    headers: HeaderMap,
) -> Response {
    if path == "index.html" {
        return challenge_page(&state, &client, &uri, &headers);
    }
    serve(&path, &headers)
}

/// The challenge page in the visitor's language, its no-JavaScript form
/// filled in for this request (see [`nojs`]). It differs by `?redir=`, so
/// it has no ETag, and by `Accept-Language`, which `Vary` tells caches.
fn challenge_page(
    state: &AppState,
    client: &ClientIp,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Response {
    let Some((mime, _, bytes)) = find("index.html") else {
        return ApiError::NotFound("no such page: /index.html".into()).into_response();
    };
    let page_url = nojs::page_url(&state.config, headers, uri.path(), client.via_trusted_proxy);
    let lang_param = locale::lang_param(uri.query()).unwrap_or_default();
    let locale = locale::negotiate(
        Some(&lang_param),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let html = nojs::fill_page(
        &String::from_utf8_lossy(bytes),
        &nojs::PageSlots {
            locale,
            page_url: &page_url,
            redir: &nojs::redir_param(uri.query()),
            lang_param: &lang_param,
        },
    );
    let mut resp = html.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    add_security_headers(h);
    resp
}

/// Serves an embedded file, honouring `If-None-Match`.
pub(crate) fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((mime, etag, bytes)) = find(path) else {
        return ApiError::NotFound(format!("no such page: /{path}")).into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if mime.starts_with("text/html") || mime.starts_with("text/javascript") {
        add_security_headers(h);
    } else {
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    resp
}

/// nosniff, the CSP and the referrer policy of pages and scripts. Workers
/// follow their own script's policy, not the page's, so scripts carry one
/// too: a worker may then load only same-origin code and wasm.
fn add_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

#[derive(Debug, Serialize)]
struct PageConfig {
    /// Hosts besides the page's own that `?redir=` may lead to.
    redirect_domains: Vec<String>,
    public_url: Option<String>,
    /// The operator's name for the site, shown as the page's heading.
    site_name: Option<String>,
    /// Where visitors reach the operator (http, https or mailto).
    contact_url: Option<String>,
}

async fn page_config(State(state): State<AppState>) -> Json<PageConfig> {
    Json(PageConfig {
        redirect_domains: state.config.redirect_domains.clone(),
        public_url: state.config.public_url.clone(),
        site_name: state.config.site_name.clone(),
        contact_url: state.config.contact_url.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_the_solver_are_embedded() {
        for p in [
            "index.html",
            "app.js",
            "worker.js",
            "pool.js",
            "queue.js",
            "caps.js",
            "progress.js",
            "solver-choice.js",
            "batch.js",
            "answer.js",
            "challenge.js",
            "style.css",
            "i18n.js",
            "locales/en.json",
            "locales/zh-CN.json",
            "shared/base.css",
            "shared/http.js",
            "shared/format.js",
            "shared/wire.js",
            "admin/index.html",
            "admin/app.js",
            "solver/powgate_solver_wasm.js",
            "solver/powgate_solver_wasm_bg.wasm",
            "solver/scalar/powgate_solver_wasm.js",
            "solver/scalar/powgate_solver_wasm_bg.wasm",
        ] {
            assert!(find(p).is_some(), "{p} is not embedded");
        }
        assert_eq!(
            find("solver/powgate_solver_wasm_bg.wasm").unwrap().0,
            "application/wasm"
        );
        assert!(find("tests/pool.test.mjs").is_none());
        assert!(find("package.json").is_none());
        // Served once, at /shared/, not again through frontend/'s link to it.
        assert!(find("shared/tests/http.test.mjs").is_none());
        assert!(find("shared/package.json").is_none());
        assert!(find("shared/shared/base.css").is_none());
    }
}
