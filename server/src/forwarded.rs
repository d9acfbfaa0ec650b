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

use axum::http::{HeaderMap, Method, header};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalRequest {
    pub method: Option<String>,
    /// Path and query, as the client sent them.
    pub uri: Option<String>,
    pub host: Option<String>,
    pub proto: Option<String>,
    /// nginx's `auth_request` accepts only 2xx, 401 and 403 from us, so it
    /// must get the redirect target in a header instead of a 302.
    pub status_only: bool,
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The one value when only one style is present or both agree;
/// `Some(None)` when they disagree; `None` when neither is present.
fn either(nginx: Option<String>, forwarded: Option<String>) -> Option<Option<String>> {
    match (nginx, forwarded) {
        (Some(a), Some(b)) => Some((a == b).then_some(a)),
        (Some(a), None) | (None, Some(a)) => Some(Some(a)),
        (None, None) => None,
    }
}

impl OriginalRequest {
    /// Reads the forwarded headers when `trusted`, else only the request's
    /// own method.
    pub fn from_headers(h: &HeaderMap, own_method: &Method, trusted: bool) -> Self {
        if !trusted {
            return Self {
                method: Some(own_method.to_string()),
                ..Self::default()
            };
        }
        let nginx_uri = header_str(h, "x-original-uri");
        let forwarded_uri = header_str(h, "x-forwarded-uri");
        let status_only = nginx_uri.is_some();
        Self {
            method: either(
                header_str(h, "x-original-method"),
                header_str(h, "x-forwarded-method"),
            )
            .unwrap_or_else(|| Some(own_method.to_string())),
            // A proxy sets one style and may pass the other through from the
            // client (Caddy forwards a client's X-Original-URI untouched). When
            // both are present and disagree, neither can be believed: the
            // request gets no path, so no path rule can let it through.
            uri: either(nginx_uri, forwarded_uri).flatten(),
            host: header_str(h, "x-forwarded-host")
                .or_else(|| header_str(h, "x-original-host"))
                .or_else(|| {
                    h.get(header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                }),
            proto: header_str(h, "x-forwarded-proto")
                .or_else(|| header_str(h, "x-original-proto"))
                .filter(|p| p == "http" || p == "https"),
            status_only,
        }
    }

    /// The original URL: absolute when host and scheme are known, else the
    /// path alone. Only a path starting with `/` is used.
    pub fn url(&self) -> Option<String> {
        let uri = self
            .uri
            .as_deref()
            .filter(|u| u.starts_with('/') && !u.starts_with("//"))?;
        Some(match (&self.proto, &self.host) {
            (Some(proto), Some(host)) => format!("{proto}://{host}{uri}"),
            _ => uri.to_owned(),
        })
    }

    /// A browser loading a page: GET or HEAD asking for HTML. Only these are
    /// redirected to the challenge page; anything else (an API call, a form
    /// post with a body) gets a 401 JSON answer, so no request body is ever
    /// lost to a redirect.
    pub fn is_browser_navigation(&self, h: &HeaderMap) -> bool {
        let method_ok = matches!(self.method.as_deref(), Some("GET" | "HEAD"));
        let accept = h
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let xhr = h.get("x-requested-with").is_some();
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
        assert_eq!(o.method.as_deref(), Some("POST"));
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
            OriginalRequest::from_headers(&h, &Method::GET, true)
                .uri
                .as_deref(),
            Some("/same")
        );
    }

    #[test]
    fn untrusted_peers_cannot_claim_an_original_request() {
        let h = headers(&[
            ("x-original-uri", "/.well-known/x"),
            ("x-forwarded-method", "GET"),
        ]);
        let o = OriginalRequest::from_headers(&h, &Method::POST, false);
        assert_eq!(o.uri, None);
        assert_eq!(o.method.as_deref(), Some("POST"));
    }

    #[test]
    fn only_html_gets_and_heads_are_navigations() {
        let html = headers(&[("accept", "text/html")]);
        let json = headers(&[("accept", "application/json")]);
        let get = OriginalRequest {
            method: Some("GET".into()),
            ..OriginalRequest::default()
        };
        let post = OriginalRequest {
            method: Some("POST".into()),
            ..OriginalRequest::default()
        };
        assert!(get.is_browser_navigation(&html));
        assert!(!get.is_browser_navigation(&json));
        assert!(!post.is_browser_navigation(&html));
    }
}
