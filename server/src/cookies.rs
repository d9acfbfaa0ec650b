//! powgate's cookies, the user token's and the admin session's: how they
//! are written and read.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, CookieBuilder, SameSite};

use crate::config::Config;
use crate::token::PlainToken;

pub const TOKEN_COOKIE: &str = "powgate_token";
pub(crate) const SESSION_COOKIE: &str = "powgate_admin";

/// What both cookies share: out of scripts' reach, `Secure` when the public
/// URL is https, and the whole site unless narrowed.
fn base(
    config: &Config,
    name: &'static str,
    value: &str,
    max_age_secs: i64,
) -> CookieBuilder<'static> {
    Cookie::build((name, value.to_owned()))
        .path("/")
        .http_only(true)
        .secure(config.is_https())
        .max_age(cookie::time::Duration::seconds(max_age_secs))
}

fn header_value(c: CookieBuilder<'_>) -> Option<HeaderValue> {
    HeaderValue::from_str(&c.build().to_string()).ok()
}

/// The `Set-Cookie` value for `token`. It lives until the token's refresh
/// window closes, so an expired token can still be presented for a refresh.
/// `Lax`, so that following a link to the protected site sends it.
pub(crate) fn token_cookie(config: &Config, token: &str, max_age_secs: i64) -> Option<HeaderValue> {
    let mut c = base(config, TOKEN_COOKIE, token, max_age_secs).same_site(SameSite::Lax);
    if let Some(domain) = &config.cookie_domain {
        c = c.domain(domain.clone());
    }
    header_value(c)
}

/// The `Set-Cookie` value for an admin session: `Strict` and host-only, so
/// no other site and no sibling subdomain ever gets it sent along, and
/// scoped to the admin API's path, so the protected application (its pages,
/// logs and middleware) never receives it. Logging out must write the same
/// path, or the browser keeps the cookie.
pub(crate) fn session_cookie(
    config: &Config,
    session: &str,
    max_age_secs: i64,
) -> Option<HeaderValue> {
    header_value(
        base(config, SESSION_COOKIE, session, max_age_secs)
            .path(admin_api_path(config))
            .same_site(SameSite::Strict),
    )
}

/// `/api/admin` under the path of the public URL, as the browser sees it:
/// `/.powgate/api/admin` for `https://example.com/.powgate`; without one,
/// under proxy mode's prefix.
fn admin_api_path(config: &Config) -> String {
    let prefix = match config.public_url.as_deref() {
        Some(url) => url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(""),
        None => config.proxy.as_ref().map_or("", |p| p.prefix.as_str()),
    };
    format!("{}/api/admin", prefix.trim_end_matches('/'))
}

/// An `Authorization` header that is not `Bearer <token>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Authorization must be `Bearer <token>`")]
pub(crate) struct BadAuthorization;

/// Where a client's token comes from: an `Authorization: Bearer` credential
/// shaped like a powgate token (see [`PlainToken::has_token_shape`]), else
/// the cookie. Any other `Authorization` header (HTTP Basic, the protected
/// application's own Bearer token) belongs to the application behind
/// powgate, so it must not void a valid cookie. A token-shaped credential
/// that does not parse is still presented, and judged malformed.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    match bearer(headers) {
        Ok(Some(credential)) if PlainToken::has_token_shape(credential) => Some(credential),
        _ => cookie_str(headers, TOKEN_COOKIE),
    }
}

/// The credential of an `Authorization: Bearer …` header, if one was sent.
/// The scheme is matched case-insensitively, as HTTP requires.
///
/// # Errors
/// [`BadAuthorization`] when the header is present but is not `Bearer <credential>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, BadAuthorization> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let auth = auth.to_str().map_err(|_| BadAuthorization)?;
    let (scheme, rest) = auth.trim().split_once(' ').ok_or(BadAuthorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BadAuthorization);
    }
    Ok(Some(rest.trim()))
}

/// The first cookie named `name`, ignoring unparseable pairs, borrowed from
/// the header. Surrounding double quotes are dropped, as `Cookie::value`
/// does.
pub fn cookie_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)?
        .value_raw()?;
    Some(
        raw.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(raw),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_strict_and_host_only_the_token_cookie_lax_and_shared() {
        let mut config = crate::config::RawConfig::default().validate().unwrap();
        config.cookie_domain = Some("example.com".into());
        config.public_url = Some("https://example.com/.powgate/".into());
        let token = token_cookie(&config, "t", 60).unwrap();
        let session = session_cookie(&config, "s", 60).unwrap();
        let (token, session) = (token.to_str().unwrap(), session.to_str().unwrap());
        for c in [token, session] {
            for attr in ["HttpOnly", "Secure", "Max-Age=60"] {
                assert!(c.contains(attr), "{attr} missing: {c}");
            }
        }
        assert!(
            token.contains("Path=/;") || token.ends_with("Path=/"),
            "{token}"
        );
        assert!(token.starts_with("powgate_token=t;"), "{token}");
        assert!(token.contains("SameSite=Lax") && token.contains("Domain=example.com"));
        assert!(session.starts_with("powgate_admin=s;"), "{session}");
        assert!(session.contains("SameSite=Strict") && !session.contains("Domain"));
    }

    /// The application behind the proxy must never receive the admin
    /// session: it is scoped to the admin API under the public URL's path.
    #[test]
    fn the_admin_session_cookie_is_not_sent_to_the_protected_application() {
        let mut config = crate::config::RawConfig::default().validate().unwrap();
        let path_of = |config: &Config| {
            let c = session_cookie(config, "s", 60).unwrap();
            let c = c.to_str().unwrap().to_owned();
            c.split("; ")
                .find_map(|a| a.strip_prefix("Path="))
                .map(str::to_owned)
        };
        assert_eq!(path_of(&config).as_deref(), Some("/api/admin"));
        for url in [
            "https://example.com/.powgate",
            "https://example.com/.powgate/",
        ] {
            config.public_url = Some(url.into());
            assert_eq!(path_of(&config).as_deref(), Some("/.powgate/api/admin"));
        }
        config.public_url = Some("https://gate.example.com".into());
        assert_eq!(path_of(&config).as_deref(), Some("/api/admin"));
    }

    /// In proxy mode the admin API is at `/.powgate/api/admin`: a session
    /// cookie for `/api/admin` would never be sent back, so no admin could
    /// stay logged in (and `/api/admin` is the application's path there).
    #[test]
    fn in_proxy_mode_the_admin_session_cookie_is_scoped_to_the_prefixed_admin_api() {
        let raw = crate::config::RawConfig {
            upstream: Some("http://127.0.0.1:3000".into()),
            proxy_prefix: "/gate/".into(),
            ..crate::config::RawConfig::default()
        };
        let config = raw.validate().unwrap();
        let c = session_cookie(&config, "s", 60).unwrap();
        assert!(
            c.to_str().unwrap().contains("Path=/gate/api/admin"),
            "{c:?}"
        );
    }

    #[test]
    fn a_powgate_bearer_wins_over_the_cookie_any_other_authorization_does_not() {
        const TOKEN: &str = "0b6f4b52-0e5c-4f7e-9d2a-111111111111";
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; powgate_token=xyz"),
        );
        assert_eq!(presented_token(&h), Some("xyz"));
        let bearer_token = format!("Bearer {TOKEN}");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&bearer_token).unwrap(),
        );
        assert_eq!(presented_token(&h), Some(TOKEN));
        // Shaped like a token but not a UUIDv4: presented, to be refused.
        let bad = "zzzzzzzz-0e5c-4f7e-9d2a-111111111111";
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {bad}")).unwrap(),
        );
        assert_eq!(presented_token(&h), Some(bad));
        for other in [
            "Basic dXNlcjpwYXNz",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "Bearer abc",
            "Bearer",
            "Digest username=\"u\"",
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(other));
            assert_eq!(presented_token(&h), Some("xyz"), "{other}");
        }
        h.remove(header::COOKIE);
        assert_eq!(presented_token(&h), None);
    }

    #[test]
    fn cookie_values_are_borrowed_unquoted_and_found_in_any_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=b; junk; c=d"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("powgate_token=\"q1\"; powgate_token=second"),
        );
        assert_eq!(cookie_str(&h, "c"), Some("d"));
        assert_eq!(cookie_str(&h, TOKEN_COOKIE), Some("q1"));
        assert_eq!(cookie_str(&h, "a"), Some("b"));
        assert_eq!(cookie_str(&h, "missing"), None);
    }
}
