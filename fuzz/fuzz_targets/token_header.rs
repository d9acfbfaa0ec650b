//! Token decoding from request headers must never panic:
//! `powgate::cookies::presented_token` on arbitrary `Authorization` and
//! `Cookie` values, then `powgate::token::PlainToken::parse` on whatever it
//! yields (and on the raw input). Accepted tokens must be canonical UUIDv4s
//! that round-trip through `expose`.
//!
//! Input layout: the first byte says which headers to send (bit 0
//! Authorization, bit 1 Cookie, bit 2 a second Cookie header); the rest is
//! split at the first 0xFF byte into the Authorization value and the cookie
//! value(s).
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use powgate::cookies::{TOKEN_COOKIE, cookie_str, presented_token};
use powgate::token::PlainToken;

fn check_token(s: &str) {
    if let Ok(t) = PlainToken::parse(s) {
        let exposed = t.expose();
        assert_eq!(exposed.len(), 36);
        assert!(
            s.eq_ignore_ascii_case(&exposed),
            "parse accepted a non-canonical form"
        );
        let again = PlainToken::parse(&exposed).expect("an exposed token parses");
        assert_eq!(again.hashed(), t.hashed());
        // Debug never shows the token.
        assert!(!format!("{t:?}").contains(&exposed));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if let Ok(s) = std::str::from_utf8(rest) {
        check_token(s);
    }
    let (auth, cookie) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let mut auth_sent = false;
    if flags & 1 != 0 {
        if let Ok(v) = HeaderValue::from_bytes(auth) {
            headers.insert(header::AUTHORIZATION, v);
            auth_sent = true;
        }
    }
    if flags & 2 != 0 {
        if let Ok(v) = HeaderValue::from_bytes(cookie) {
            headers.append(header::COOKIE, v);
        }
    }
    if flags & 4 != 0 {
        if let Ok(v) = HeaderValue::from_bytes(auth) {
            headers.append(header::COOKIE, v);
        }
    }

    let from_cookie = cookie_str(&headers, TOKEN_COOKIE);
    match presented_token(&headers) {
        Some(token) if Some(token) != from_cookie => {
            // Only a token-shaped Bearer credential wins over the cookie:
            // a trimmed part of that header.
            assert!(auth_sent, "a token from neither header");
            let auth = std::str::from_utf8(auth).expect("accepted headers are text");
            assert!(auth.contains(token));
            assert!(PlainToken::has_token_shape(token));
            check_token(token);
        }
        Some(token) => check_token(token),
        None => assert!(from_cookie.is_none()),
    }
});
