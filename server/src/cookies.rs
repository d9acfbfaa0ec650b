//! The `powgate_token` cookie: how it is written and read.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use crate::config::Config;

pub const TOKEN_COOKIE: &str = "powgate_token";

/// The `Set-Cookie` value for `token`. It lives until the token's refresh
/// window closes, so an expired token can still be presented for a refresh.
pub fn token_cookie(config: &Config, token: &str, max_age_secs: i64) -> Option<HeaderValue> {
    let mut c = Cookie::build((TOKEN_COOKIE, token.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(config.is_https())
        .max_age(cookie::time::Duration::seconds(max_age_secs));
    if let Some(domain) = &config.cookie_domain {
        c = c.domain(domain.clone());
    }
    HeaderValue::from_str(&c.build().to_string()).ok()
}

/// An `Authorization` header that is not `Bearer <token>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Authorization must be `Bearer <token>`")]
pub struct BadAuthorization;

/// Where a client's token comes from: `Authorization: Bearer`, else the
/// cookie.
///
/// # Errors
/// [`BadAuthorization`] when an `Authorization` header is present but unusable.
pub fn presented_token(headers: &HeaderMap) -> Result<Option<String>, BadAuthorization> {
    match bearer(headers)? {
        Some(token) => Ok(Some(token.to_owned())),
        None => Ok(cookie_value(headers, TOKEN_COOKIE)),
    }
}

/// The credential of an `Authorization: Bearer …` header, if one was sent.
/// The scheme is matched case-insensitively, as HTTP requires.
///
/// # Errors
/// [`BadAuthorization`] when the header is present but is not `Bearer <credential>`.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, BadAuthorization> {
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

/// The first cookie named `name`, ignoring unparseable pairs.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_over_cookie_and_junk_is_an_error() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; powgate_token=xyz"),
        );
        assert_eq!(presented_token(&h), Ok(Some("xyz".into())));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented_token(&h), Ok(Some("abc".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_token(&h), Err(BadAuthorization));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(presented_token(&h), Err(BadAuthorization));
    }
}
