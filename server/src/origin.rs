//! Where a browser request comes from, for the CSRF checks of the admin API
//! and the token form (`POST /api/token`).
//!
//! An origin is scheme, host and port together: `http://example.com` is not
//! `https://example.com`, because a page served over plain http (which a
//! network attacker can write) must not act on the https site. This site's
//! own origins are:
//!
//! 1. the origin of `public_url`, when configured;
//! 2. the `Host` header, and a trusted proxy's `X-Forwarded-Host`, with the
//!    scheme the request arrived with: https only when a trusted proxy says
//!    so in `X-Forwarded-Proto` (powgate itself speaks plain http).

use axum::http::uri::{Authority, Uri};
use axum::http::{HeaderMap, header};

/// What the headers say about the page that made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestOrigin {
    /// `Origin` is one of this site's origins.
    Same,
    /// Another site, an opaque origin (`Origin: null`), or `Sec-Fetch-Site`
    /// saying cross-site or same-site.
    Foreign,
    /// No `Origin` and no telling `Sec-Fetch-Site`: not a browser, or a
    /// browser's plain navigation.
    Unknown,
}

/// Scheme, lower-case host and port (the scheme's default when absent).
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn new(https: bool, authority: &Authority) -> Self {
        Self {
            https,
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        }
    }

    /// The origin of an absolute http(s) URL such as an `Origin` header or
    /// `public_url`; `None` for anything else, `null` included.
    fn of_url(url: &str) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        let https = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("https") => true,
            s if s.eq_ignore_ascii_case("http") => false,
            _ => return None,
        };
        Some(Self::new(https, uri.authority()?))
    }

    /// The origin of a `Host`-style header value reached over `https` or not.
    fn of_host(host: &str, https: bool) -> Option<Self> {
        Some(Self::new(https, &host.parse::<Authority>().ok()?))
    }
}

/// Classifies a request by its `Origin` and `Sec-Fetch-Site` headers.
/// `X-Forwarded-Host` and `X-Forwarded-Proto` count only when
/// `via_trusted_proxy`.
pub(crate) fn request_origin(
    headers: &HeaderMap,
    public_url: Option<&str>,
    via_trusted_proxy: bool,
) -> RequestOrigin {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return RequestOrigin::Foreign;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return RequestOrigin::Unknown;
    };
    let Some(origin) = origin.to_str().ok().and_then(Origin::of_url) else {
        return RequestOrigin::Foreign;
    };
    let https = crate::forwarded::forwarded_https(headers, via_trusted_proxy);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let forwarded = crate::forwarded::forwarded_host(headers, via_trusted_proxy);
    let mut own = [host, forwarded]
        .into_iter()
        .flatten()
        .filter_map(|h| Origin::of_host(h, https))
        .chain(public_url.and_then(Origin::of_url));
    if own.any(|o| o == origin) {
        RequestOrigin::Same
    } else {
        RequestOrigin::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn an_origin_is_scheme_host_and_port() {
        let plain = |origin| {
            request_origin(
                &headers(&[("host", "example.com"), ("origin", origin)]),
                None,
                false,
            )
        };
        assert_eq!(plain("http://example.com"), RequestOrigin::Same);
        assert_eq!(plain("http://EXAMPLE.com:80"), RequestOrigin::Same);
        assert_eq!(plain("https://example.com"), RequestOrigin::Foreign);
        assert_eq!(plain("http://example.com:8080"), RequestOrigin::Foreign);
        assert_eq!(plain("http://example.com.evil"), RequestOrigin::Foreign);
        assert_eq!(plain("null"), RequestOrigin::Foreign);
        assert_eq!(
            request_origin(&headers(&[("host", "example.com")]), None, false),
            RequestOrigin::Unknown
        );
    }

    #[test]
    fn https_comes_from_public_url_or_a_trusted_proxy_only() {
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "example.com"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://example.com"),
        ]);
        assert_eq!(request_origin(&proxied, None, true), RequestOrigin::Same);
        assert_eq!(
            request_origin(&proxied, None, false),
            RequestOrigin::Foreign
        );
        let direct = headers(&[("host", "example.com"), ("origin", "https://example.com")]);
        assert_eq!(request_origin(&direct, None, false), RequestOrigin::Foreign);
        assert_eq!(
            request_origin(&direct, Some("https://example.com/.powgate"), false),
            RequestOrigin::Same
        );
        assert_eq!(
            request_origin(&direct, Some("http://example.com/.powgate"), false),
            RequestOrigin::Foreign
        );
    }

    #[test]
    fn sec_fetch_site_other_than_same_origin_is_foreign() {
        for site in ["cross-site", "same-site"] {
            let h = headers(&[
                ("host", "example.com"),
                ("origin", "http://example.com"),
                ("sec-fetch-site", site),
            ]);
            assert_eq!(request_origin(&h, None, false), RequestOrigin::Foreign);
            let h = headers(&[("sec-fetch-site", site)]);
            assert_eq!(request_origin(&h, None, false), RequestOrigin::Foreign);
        }
    }
}
