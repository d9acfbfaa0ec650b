//! Which address a request comes from, and the key it is counted under.
//!
//! A forwarded-IP header is believed only when the TCP peer is one of the
//! configured trusted proxies; otherwise anyone could claim any address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

#[derive(Debug, Clone)]
pub(crate) struct ClientIpResolver {
    trusted: Vec<IpNet>,
    header: HeaderName,
}

impl ClientIpResolver {
    pub(crate) fn new(trusted: Vec<IpNet>, header: HeaderName) -> Self {
        Self { trusted, header }
    }

    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` itself unless `peer` is a trusted proxy
    /// that sent a parseable client-IP header.
    ///
    /// For `X-Forwarded-For`, which every proxy on the way appends to, the
    /// right-most address that is not itself a trusted proxy is taken: the
    /// addresses left of it were written by the client and prove nothing.
    pub(crate) fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.is_trusted(peer) {
            self.forwarded_client(peer, headers)
        } else {
            canonical(peer)
        }
    }

    /// [`resolve`](Self::resolve) for a `peer` already known to be a trusted
    /// proxy. Walks the header's hops from the right without collecting
    /// them: this runs on every proxied request.
    pub(crate) fn forwarded_client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut found = None;
        // Several header lines are one list, in order; read from the end.
        let values = headers
            .get_all(&self.header)
            .iter()
            .rev()
            .filter_map(|v| v.to_str().ok());
        'hops: for v in values {
            for part in v.rsplit(',') {
                // A garbled hop makes everything left of it unknowable.
                let Some(ip) = parse_ip(part) else {
                    break 'hops;
                };
                found = Some(ip);
                if !self.is_trusted(ip) {
                    break 'hops;
                }
            }
        }
        found.unwrap_or_else(|| canonical(peer))
    }
}

/// A network as configured: a CIDR such as `10.0.0.0/8`, or a single
/// address, which stands for itself.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    // Tolerate "[v6]" and "v4:port" forms some proxies write.
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .unwrap_or(s);
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| {
            s.rsplit_once(':')
                .and_then(|(h, _)| h.parse::<Ipv4Addr>().ok())
                .map(IpAddr::V4)
        })
        .map(canonical)
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) become plain IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The address a client is counted by: an IPv4 address exactly, an IPv6
/// address by its /64, since one subscriber usually holds a whole /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(bits)))
            }
        }
    }

    /// The network this address is counted in for per-network limits.
    pub(crate) fn network(self) -> NetKey {
        NetKey::of(self.0)
    }

    /// 16 bytes for signing into a challenge.
    pub fn to_bytes(self) -> [u8; 16] {
        match self.0 {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        }
    }

    /// Text form stored in the database: `203.0.113.7` or `2001:db8::/64`.
    pub(crate) fn to_text(self) -> String {
        self.to_string()
    }

    /// Whether `text`, a stored [`to_text`](Self::to_text), is this key.
    /// Parses instead of formatting, so `/verify-token` compares a token's
    /// addresses without allocating.
    pub(crate) fn is_text(self, text: &str) -> bool {
        match self.0 {
            IpAddr::V4(v4) => text.parse::<Ipv4Addr>().is_ok_and(|t| t == v4),
            IpAddr::V6(v6) => text
                .strip_suffix("/64")
                .and_then(|t| t.parse::<Ipv6Addr>().ok())
                .is_some_and(|t| t == v6),
        }
    }
}

impl std::fmt::Display for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The network an address belongs to, for caps that one subscriber's many
/// addresses must not escape: an IPv4 /24 and an IPv6 /48, the smallest
/// blocks that are routed on their own, so a host or a small provider
/// usually holds a whole one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NetKey(IpAddr);

impl NetKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self(IpAddr::V4(Ipv4Addr::from(u32::from(v4) & !0xff))),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 80) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(bits)))
            }
        }
    }
}

impl std::fmt::Display for NetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}/24"),
            IpAddr::V6(v6) => write!(f, "{v6}/48"),
        }
    }
}

/// A network enclosing a client address, for the limits and the reputation
/// that a client rotating through many addresses must not escape.
///
/// [`IpKey::enclosing`] yields them narrowest first: an IPv4 /24; an IPv6
/// /56 (a subscriber's usual delegation) and /48 (a site's, and the block
/// a hosting provider hands one customer). The prefix length is part of
/// the key, so a /56 never collides with the /48 that shares its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// `ip` masked to its first `len` bits (`len` ≤ 32 for IPv4, ≤ 128 for
    /// IPv6).
    fn of(ip: IpAddr, len: u8) -> Self {
        let addr = match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        Self { addr, len }
    }

    /// The prefix length: 24, 56 or 48.
    pub(crate) fn len(self) -> u8 {
        self.len
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl IpKey {
    /// The networks this address lies in, narrowest first: IPv4 /24; IPv6
    /// /56 then /48.
    /// The provider-sized network around the key: IPv4 /16, IPv6 /32 (a
    /// common allocation to one ISP or hoster). Only used to bound how much
    /// one provider can move a figure shared by everyone, the adaptive
    /// pressure; never to price a client.
    pub(crate) fn provider(self) -> Prefix {
        let len = match self.0 {
            IpAddr::V4(_) => 16,
            IpAddr::V6(_) => 32,
        };
        Prefix::of(self.0, len)
    }

    pub(crate) fn enclosing(self) -> impl Iterator<Item = Prefix> {
        let lens: &[u8] = match self.0 {
            IpAddr::V4(_) => &[24],
            IpAddr::V6(_) => &[56, 48],
        };
        let ip = self.0;
        lens.iter().map(move |&len| Prefix::of(ip, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn resolver(header: &'static str) -> ClientIpResolver {
        ClientIpResolver::new(
            vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            HeaderName::from_static(header),
        )
    }

    fn headers(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn header_is_ignored_from_untrusted_peers() {
        let r = resolver("x-real-ip");
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(r.resolve(peer, &headers("x-real-ip", "1.2.3.4")), peer);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            r.resolve(local, &headers("x-real-ip", "1.2.3.4")),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(r.resolve(local, &headers("x-real-ip", "garbage")), local);
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_hop() {
        let r = resolver("x-forwarded-for");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let h = headers("x-forwarded-for", "6.6.6.6, 198.51.100.2, 10.1.1.1");
        assert_eq!(
            r.resolve(local, &h),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_ipv4_exactly() {
        let a = IpKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = IpKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = IpKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_text(), "2001:db8:1:2::/64");
        assert!(a.is_text("2001:db8:1:2::/64"));
        assert!(!a.is_text("2001:db8:1:2::"));
        assert!(!c.is_text("2001:db8:1:2::/64"));
        let v4 = IpKey::of("192.0.2.1".parse().unwrap());
        assert_eq!(v4.to_text(), "192.0.2.1");
        assert!(v4.is_text("192.0.2.1"));
        assert!(!v4.is_text("192.0.2.10"));
        assert!(!v4.is_text("::ffff:192.0.2.1/64"));
        assert_ne!(
            IpKey::of("1.2.3.4".parse().unwrap()),
            IpKey::of("1.2.3.5".parse().unwrap())
        );
        assert_eq!(
            IpKey::of("::ffff:1.2.3.4".parse().unwrap()),
            IpKey::of("1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn networks_are_ipv4_slash_24_and_ipv6_slash_48() {
        let net = |s: &str| NetKey::of(s.parse().unwrap());
        assert_eq!(net("192.0.2.1"), net("192.0.2.254"));
        assert_ne!(net("192.0.2.1"), net("192.0.3.1"));
        assert_eq!(net("::ffff:192.0.2.9"), net("192.0.2.1"));
        assert_eq!(net("2001:db8:1:ffff::1"), net("2001:db8:1:2::1"));
        assert_ne!(net("2001:db8:1::1"), net("2001:db8:2::1"));
        assert_eq!(net("192.0.2.77").to_string(), "192.0.2.0/24");
        assert_eq!(net("2001:db8:1:2::1").to_string(), "2001:db8:1::/48");
    }
    #[test]
    fn enclosing_networks_are_ipv4_slash_24_and_ipv6_slash_56_then_48() {
        let enc = |s: &str| {
            IpKey::of(s.parse().unwrap())
                .enclosing()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(enc("192.0.2.77"), ["192.0.2.0/24"]);
        assert_eq!(enc("::ffff:192.0.2.77"), ["192.0.2.0/24"]);
        assert_eq!(
            enc("2001:db8:1:2ff:aaaa::1"),
            ["2001:db8:1:200::/56", "2001:db8:1::/48"]
        );
        // The length is part of the key: a /56 at the start of a /48 is
        // not that /48.
        let v6 = IpKey::of("2001:db8:1::1".parse().unwrap());
        let [site, wide]: [Prefix; 2] = v6.enclosing().collect::<Vec<_>>().try_into().unwrap();
        assert_ne!(site, wide);
        assert_eq!((site.len(), wide.len()), (56, 48));
    }
}
