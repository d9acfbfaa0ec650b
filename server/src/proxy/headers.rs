//! Header hygiene between the visitor and the upstream: what a proxy must
//! drop (hop-by-hop headers), what belongs to powgate alone (its token
//! cookie, `X-Powgate-*`), and what powgate tells the application about
//! the visitor (`X-Forwarded-*`, `X-Real-IP`), from what it saw itself.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::cookies::{self, TOKEN_COOKIE};
use crate::gate::Decision;
use crate::routes::verify::STATUS_HEADER;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What powgate saw of the visitor, to tell the upstream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visitor {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The client's address after the trusted-proxy rules.
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy, whose forwarded headers are
    /// kept (and its `X-Forwarded-For` appended to).
    pub via_trusted_proxy: bool,
}

/// The protocol a request asks to switch to (`Connection: upgrade` with an
/// `Upgrade` header), such as `websocket`.
pub(crate) fn requested_upgrade(h: &HeaderMap) -> Option<HeaderValue> {
    connection_names(h)
        .any(|n| n.eq_ignore_ascii_case("upgrade"))
        .then(|| h.get(header::UPGRADE).cloned())
        .flatten()
}

/// The names listed in `Connection` headers (RFC 9110 §7.6.1).
fn connection_names(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// Drops the hop-by-hop headers (RFC 9110 §7.6.1): those `Connection`
/// names, and the fixed ones, `Proxy-*` included. An upgrade being passed
/// on (`upgrade`) keeps its `Connection: upgrade` and `Upgrade`, which
/// are addressed to the next hop precisely so that it switches too.
pub(crate) fn drop_hop_by_hop(h: &mut HeaderMap, upgrade: Option<&HeaderValue>) {
    let named: Vec<HeaderName> = connection_names(h)
        .filter_map(|n| HeaderName::try_from(n).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        h.remove(name);
    }
    let proxy_headers: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_headers {
        h.remove(name);
    }
    if let Some(protocol) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, protocol.clone());
    }
}

/// Prepares a passing request's headers for the upstream, after
/// [`drop_hop_by_hop`]: powgate's token cookie and every client-sent
/// `X-Powgate-*` header go, powgate's own `X-Powgate-Status` and the
/// forwarding headers are set.
pub(crate) fn to_upstream(h: &mut HeaderMap, visitor: &Visitor, decision: Decision) {
    strip_token_bearer(h, decision);
    strip_token_cookie(h);
    let powgate: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("x-powgate-"))
        .cloned()
        .collect();
    for name in powgate {
        h.remove(name);
    }
    h.insert(STATUS_HEADER, HeaderValue::from_static(decision.label()));
    set_forwarded(h, visitor);
}

/// `X-Forwarded-For/Proto/Host` and `X-Real-IP`. From a trusted proxy its
/// own values are kept and the peer is appended to its
/// `X-Forwarded-For`; from anyone else they would be the visitor's claims
/// about itself, so they are overwritten.
fn set_forwarded(h: &mut HeaderMap, v: &Visitor) {
    let peer = v.peer.to_string();
    let chain = match h.get(X_FORWARDED_FOR).and_then(|x| x.to_str().ok()) {
        Some(before) if v.via_trusted_proxy => format!("{before}, {peer}"),
        _ => peer,
    };
    let trusted_value = |h: &HeaderMap, name: &HeaderName| {
        v.via_trusted_proxy.then(|| h.get(name).cloned()).flatten()
    };
    let proto =
        trusted_value(h, &X_FORWARDED_PROTO).unwrap_or_else(|| HeaderValue::from_static("http"));
    let host = trusted_value(h, &X_FORWARDED_HOST).or_else(|| h.get(header::HOST).cloned());
    if let Ok(chain) = HeaderValue::from_str(&chain) {
        h.insert(X_FORWARDED_FOR, chain);
    }
    h.insert(X_FORWARDED_PROTO, proto);
    match host {
        Some(host) => h.insert(X_FORWARDED_HOST, host),
        None => h.remove(X_FORWARDED_HOST),
    };
    if let Ok(ip) = HeaderValue::from_str(&v.client.to_string()) {
        h.insert(X_REAL_IP, ip);
    }
}

/// Removes `Authorization: Bearer <powgate token>` when that is what let
/// the request through: a passing token and no token cookie beside it, so
/// the gate judged the Bearer ([`crate::gate`]). With a cookie too, a
/// token-shaped Bearer may be the application's own credential that the
/// cookie passed beside, and it stays; any other `Authorization` is the
/// application's and always stays.
fn strip_token_bearer(h: &mut HeaderMap, decision: Decision) {
    let judged_bearer = decision == Decision::Valid
        && h.contains_key(header::AUTHORIZATION)
        && cookies::cookie_str(h, TOKEN_COOKIE).is_none()
        && cookies::presented_token(h).is_some();
    if judged_bearer {
        h.remove(header::AUTHORIZATION);
    }
}

/// Removes the token cookie from every `Cookie` header: the application
/// has no use for it, and its logs should not hold a working credential.
/// The other cookies are kept byte for byte, in order; a header left empty
/// goes.
fn strip_token_cookie(h: &mut HeaderMap) {
    let values: Vec<HeaderValue> = h.get_all(header::COOKIE).iter().cloned().collect();
    if !values.iter().any(|v| mentions_token_cookie(v.as_bytes())) {
        return;
    }
    h.remove(header::COOKIE);
    for value in values {
        let kept: Vec<&[u8]> = value
            .as_bytes()
            .split(|&b| b == b';')
            .map(|pair| pair.trim_ascii_start())
            .filter(|pair| !pair.is_empty() && !is_token_cookie(pair))
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            h.append(header::COOKIE, v);
        }
    }
}

fn is_token_cookie(pair: &[u8]) -> bool {
    let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
    name.trim_ascii() == TOKEN_COOKIE.as_bytes()
}

fn mentions_token_cookie(value: &[u8]) -> bool {
    value
        .windows(TOKEN_COOKIE.len())
        .any(|w| w == TOKEN_COOKIE.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn visitor(trusted: bool) -> Visitor {
        Visitor {
            peer: "192.0.2.9".parse().unwrap(),
            client: "198.51.100.1".parse().unwrap(),
            via_trusted_proxy: trusted,
        }
    }

    #[test]
    fn the_token_cookie_goes_and_the_others_stay_byte_for_byte() {
        let mut h = headers(&[
            ("cookie", "a=1;b=\"x y\"; powgate_token=pg_secret; c=%2F"),
            ("cookie", "powgate_token=pg_other"),
        ]);
        to_upstream(&mut h, &visitor(false), Decision::Valid);
        let cookies: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=\"x y\"; c=%2F"]);
    }

    #[test]
    fn a_passing_powgate_bearer_goes_the_applications_own_credentials_stay() {
        const TOKEN: &str = "Bearer 0b6f4b52-0e5c-4f7e-9d2a-111111111111";
        let cases = [
            // The gate passed this Bearer: it is powgate's.
            (&[("authorization", TOKEN)][..], Decision::Valid, false),
            // Not judged (an allowlisted path): it may be the app's key.
            (&[("authorization", TOKEN)][..], Decision::Allowlisted, true),
            // A cookie beside it may be what passed.
            (
                &[("authorization", TOKEN), ("cookie", "powgate_token=x")][..],
                Decision::Valid,
                true,
            ),
            (
                &[("authorization", "Basic dTpw")][..],
                Decision::Valid,
                true,
            ),
            (
                &[("authorization", "Bearer app-jwt.x.y")][..],
                Decision::Valid,
                true,
            ),
        ];
        for (pairs, decision, kept) in cases {
            let mut h = headers(pairs);
            to_upstream(&mut h, &visitor(false), decision);
            assert_eq!(
                h.contains_key("authorization"),
                kept,
                "{pairs:?} {decision:?}"
            );
        }
    }

    #[test]
    fn a_connection_named_header_and_proxy_headers_are_dropped() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        drop_hop_by_hop(&mut h, None);
        let left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_its_connection_and_upgrade_headers() {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let upgrade = requested_upgrade(&h);
        drop_hop_by_hop(&mut h, upgrade.as_ref());
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn forwarded_headers_are_overwritten_unless_from_a_trusted_proxy() {
        let claims = [
            ("x-forwarded-for", "10.9.9.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "admin.internal"),
            ("x-real-ip", "10.9.9.9"),
            ("x-powgate-status", "valid"),
            ("host", "site.example"),
        ];
        let mut h = headers(&claims);
        to_upstream(&mut h, &visitor(false), Decision::Missing);
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "site.example");
        assert_eq!(h["x-real-ip"], "198.51.100.1");
        assert_eq!(h["x-powgate-status"], "missing");
        let mut h = headers(&claims);
        to_upstream(&mut h, &visitor(true), Decision::Valid);
        assert_eq!(h["x-forwarded-for"], "10.9.9.9, 192.0.2.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "admin.internal");
        assert_eq!(h["x-powgate-status"], "valid");
    }
}
