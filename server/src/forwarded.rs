//! The request a reverse proxy is asking about, from the headers it adds
//! to its `/verify-token` subrequest:
//!
//! - nginx `auth_request`: `X-Original-URI`, `X-Original-Method` (and the
//!   usual `Host` / `X-Forwarded-Proto` if the recipe sets them);
//! - Caddy `forward_auth` and Traefik `ForwardAuth`: `X-Forwarded-Uri`,
//!   `X-Forwarded-Method`, `X-Forwarded-Host`, `X-Forwarded-Proto`.
//!
//! They are read only from trusted proxies: from anyone else they are a
//! client's claim about itself.

use axum::http::{HeaderMap, HeaderName, Method, header};

const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-original-host");
const X_ORIGINAL_PROTO: HeaderName = HeaderName::from_static("x-original-proto");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// Borrowed from the request's headers: `/verify-token` runs on every
/// request the proxy sees, so nothing here allocates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OriginalRequest<'a> {
    pub method: Option<&'a str>,
    /// Path and query, as the client sent them.
    pub uri: Option<&'a str>,
    pub host: Option<&'a str>,
    pub proto: Option<&'a str>,
    /// nginx's `auth_request` accepts only 2xx, 401 and 403 from us, so it
    /// must get the redirect target in a header instead of a 302.
    pub status_only: bool,
}

/// The first value of a header, trimmed; `None` when absent or empty.
fn header_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let v = h.get(name)?.to_str().ok()?;
    let first = v.split(',').next().unwrap_or(v).trim();
    (!first.is_empty()).then_some(first)
}

/// A header's whole value, trimmed; `None` when absent or empty. For the
/// original URI, where a comma is part of the path or query, not a list.
fn header_whole<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let v = h.get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then_some(v)
}

/// The one value when only one style is present or both agree;
/// `Some(None)` when they disagree; `None` when neither is present.
fn either<'a>(nginx: Option<&'a str>, forwarded: Option<&'a str>) -> Option<Option<&'a str>> {
    match (nginx, forwarded) {
        (Some(a), Some(b)) => Some((a == b).then_some(a)),
        (Some(a), None) | (None, Some(a)) => Some(Some(a)),
        (None, None) => None,
    }
}

/// The original request's path and query, from a trusted proxy's headers:
/// all the allowlist needs, so `/verify-token` reads only this much before
/// it knows whether it will refuse.
pub(crate) fn original_uri(h: &HeaderMap, trusted: bool) -> Option<&str> {
    if !trusted {
        return None;
    }
    uri_of(h, header_whole(h, &X_ORIGINAL_URI))
}

/// The original request's method: a trusted proxy's `X-Original-Method`
/// or `X-Forwarded-Method` (`None` when the two disagree), else the
/// request's own method, which is also all an untrusted peer gets.
pub(crate) fn original_method<'a>(
    h: &'a HeaderMap,
    own_method: &'a Method,
    trusted: bool,
) -> Option<&'a str> {
    if !trusted {
        return Some(own_method.as_str());
    }
    either(
        header_str(h, &X_ORIGINAL_METHOD),
        header_str(h, &X_FORWARDED_METHOD),
    )
    .unwrap_or(Some(own_method.as_str()))
}

/// The host the browser asked for, as a trusted proxy reports it in
/// `X-Forwarded-Host`; `None` from anyone else.
pub(crate) fn forwarded_host(h: &HeaderMap, trusted: bool) -> Option<&str> {
    trusted.then(|| header_str(h, &X_FORWARDED_HOST)).flatten()
}

/// Whether a trusted proxy says the browser's request came over https
/// (`X-Forwarded-Proto: https`); always `false` from anyone else.
pub(crate) fn forwarded_https(h: &HeaderMap, trusted: bool) -> bool {
    trusted && header_str(h, &X_FORWARDED_PROTO).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The original path from nginx's `X-Original-URI` (already read, as
/// `nginx_uri`) and the Caddy/Traefik `X-Forwarded-Uri`. A proxy sets one
/// style and may pass the other through from the client (Caddy forwards a
/// client's X-Original-URI untouched). When both are present and disagree,
/// neither can be believed: the request gets no path, so no path rule can
/// let it through.
fn uri_of<'a>(h: &'a HeaderMap, nginx_uri: Option<&'a str>) -> Option<&'a str> {
    either(nginx_uri, header_whole(h, &X_FORWARDED_URI)).flatten()
}

impl<'a> OriginalRequest<'a> {
    /// Reads the forwarded headers when `trusted`, else only the request's
    /// own method.
    pub(crate) fn from_headers(h: &'a HeaderMap, own_method: &'a Method, trusted: bool) -> Self {
        if !trusted {
            return Self {
                method: Some(own_method.as_str()),
                ..Self::default()
            };
        }
        let nginx_uri = header_whole(h, &X_ORIGINAL_URI);
        Self {
            method: original_method(h, own_method, trusted),
            uri: uri_of(h, nginx_uri),
            host: header_str(h, &X_FORWARDED_HOST)
                .or_else(|| header_str(h, &X_ORIGINAL_HOST))
                .or_else(|| h.get(header::HOST).and_then(|v| v.to_str().ok())),
            proto: header_str(h, &X_FORWARDED_PROTO)
                .or_else(|| header_str(h, &X_ORIGINAL_PROTO))
                .filter(|p| *p == "http" || *p == "https"),
            status_only: nginx_uri.is_some(),
        }
    }

    /// A request gated where it arrives (proxy mode): its own method, path
    /// and `Host`; the scheme is what a trusted proxy in front reports,
    /// else plain http, the only one powgate serves itself.
    pub(crate) fn direct(
        h: &'a HeaderMap,
        method: &'a Method,
        uri: &'a axum::http::Uri,
        trusted: bool,
    ) -> Self {
        Self {
            method: Some(method.as_str()),
            uri: uri
                .path_and_query()
                .map(axum::http::uri::PathAndQuery::as_str),
            host: forwarded_host(h, trusted)
                .or_else(|| h.get(header::HOST).and_then(|v| v.to_str().ok())),
            proto: Some(if forwarded_https(h, trusted) {
                "https"
            } else {
                "http"
            }),
            status_only: false,
        }
    }

    /// The original URL: absolute when host and scheme are known, else the
    /// path alone. Only a path starting with `/` is used.
    pub(crate) fn url(&self) -> Option<String> {
        let uri = self
            .uri
            .filter(|u| u.starts_with('/') && !u.starts_with("//"))?;
        Some(match (self.proto, self.host) {
            (Some(proto), Some(host)) => format!("{proto}://{host}{uri}"),
            _ => uri.to_owned(),
        })
    }

    /// A browser loading a page: GET or HEAD asking for HTML. Only these are
    /// redirected to the challenge page; anything else (an API call, a form
    /// post with a body) gets a 401 JSON answer, so no request body is ever
    /// lost to a redirect.
    pub(crate) fn is_browser_navigation(&self, h: &HeaderMap) -> bool {
        let method_ok = matches!(self.method, Some("GET" | "HEAD"));
        let accept = h
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let xhr = h.contains_key(X_REQUESTED_WITH);
        method_ok && !xhr && accept.contains("text/html")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn nginx_and_caddy_styles() {
        let h = headers(&[
            ("x-original-uri", "/a?b=1"),
            ("x-original-method", "POST"),
            ("host", "site.example"),
            ("x-forwarded-proto", "https"),
        ]);
        let o = OriginalRequest::from_headers(&h, &Method::GET, true);
        assert_eq!(o.url().as_deref(), Some("https://site.example/a?b=1"));
        assert_eq!(o.method, Some("POST"));
        assert!(o.status_only);
        let h = headers(&[
            ("x-forwarded-uri", "/x"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "app.example"),
            ("x-forwarded-proto", "http"),
            ("accept", "text/html,*/*"),
        ]);
        let o = OriginalRequest::from_headers(&h, &Method::GET, true);
        assert_eq!(o.url().as_deref(), Some("http://app.example/x"));
        assert!(!o.status_only);
        assert!(o.is_browser_navigation(&h));
    }

    /// Regression: behind Caddy, a client's own `X-Original-URI:
    /// /robots.txt` was preferred over Caddy's `X-Forwarded-Uri`, letting any
    /// path through the allowlist.
    #[test]
    fn conflicting_uri_styles_yield_no_path() {
        let h = headers(&[
            ("x-forwarded-uri", "/admin/secret"),
            ("x-original-uri", "/robots.txt"),
            ("x-forwarded-method", "POST"),
            ("x-original-method", "GET"),
        ]);
        let o = OriginalRequest::from_headers(&h, &Method::GET, true);
        assert_eq!(o.uri, None);
        assert_eq!(o.method, None, "a disagreeing method is no navigation");
        let h = headers(&[("x-forwarded-uri", "/same"), ("x-original-uri", "/same")]);
        assert_eq!(
            OriginalRequest::from_headers(&h, &Method::GET, true).uri,
            Some("/same")
        );
    }

    /// Regression: the original URI was cut at its first comma, as if it
    /// were a list, so `/.well-known/x,/../../admin` reached the allowlist
    /// as `/.well-known/x` and passed, while nginx served `/admin`.
    #[test]
    fn a_comma_in_the_original_uri_is_part_of_it() {
        for name in ["x-original-uri", "x-forwarded-uri"] {
            let h = headers(&[(name, "/.well-known/x,/../../admin")]);
            assert_eq!(original_uri(&h, true), Some("/.well-known/x,/../../admin"));
            let h = headers(&[(name, "/a?x=1,2")]);
            assert_eq!(
                OriginalRequest::from_headers(&h, &Method::GET, true).uri,
                Some("/a?x=1,2")
            );
        }
    }

    #[test]
    fn untrusted_peers_cannot_claim_an_original_request() {
        let h = headers(&[
            ("x-original-uri", "/.well-known/x"),
            ("x-forwarded-method", "GET"),
        ]);
        let o = OriginalRequest::from_headers(&h, &Method::POST, false);
        assert_eq!(o.uri, None);
        assert_eq!(o.method, Some("POST"));
    }

    #[test]
    fn only_html_gets_and_heads_are_navigations() {
        let html = headers(&[("accept", "text/html")]);
        let json = headers(&[("accept", "application/json")]);
        let get = OriginalRequest {
            method: Some("GET"),
            ..OriginalRequest::default()
        };
        let post = OriginalRequest {
            method: Some("POST"),
            ..OriginalRequest::default()
        };
        assert!(get.is_browser_navigation(&html));
        assert!(!get.is_browser_navigation(&json));
        assert!(!post.is_browser_navigation(&html));
    }
}
