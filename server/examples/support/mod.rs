//! What the load examples (`flood`, `attack`) share: the loopback-only
//! rule, a cheap random number generator, and the addresses they may put in
//! the client-IP header. Included with `#[path]`, as an example cannot
//! depend on another.

// Each example uses part of this module; its `pub` is the interface to
// them, not an export.
#![allow(dead_code, unreachable_pub)]

/// True for `http://127.x.y.z[:port]`, `http://localhost[:port]` and
/// `http://[::1][:port]`: the load never leaves this machine.
///
/// Parsed with the same URI parser the HTTP client uses, so that what is
/// checked is the host the requests go to; and no user info at all, since
/// in `http://localhost:1@evil.example/` the part before `@` only looks
/// like a host.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    if uri.scheme_str() != Some("http") || authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// xorshift64*: plenty for picking addresses and nonces, and it keeps the
/// hot loop free of system calls.
pub struct Rng(pub u64);

impl Rng {
    pub fn seeded() -> Self {
        let mut seed = [0u8; 8];
        // A fixed fallback seed would only make the addresses predictable,
        // which does not matter for a benchmark.
        let _ = getrandom::fill(&mut seed);
        Self(u64::from_le_bytes(seed) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An address in 198.18.0.0/15, the range RFC 2544 sets aside for
    /// benchmarks.
    pub fn bench_ip(&mut self) -> String {
        let low = self.next() & 0x1_ffff;
        format!(
            "198.{}.{}.{}",
            18 + (low >> 16),
            (low >> 8) & 0xff,
            low & 0xff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3/",
            "http://localhost:1",
            "http://[::1]:8080/x",
        ] {
            assert!(is_loopback_url(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1",
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://127.0.0.1.example.com",
            "http://[::2]:80",
            // User info before the real host (the review of issue 14).
            "http://localhost:1@evil.example/",
            "http://127.0.0.1@evil.example",
            "http://evil.example?127.0.0.1",
            "http://evil.example#@127.0.0.1",
        ] {
            assert!(!is_loopback_url(bad), "{bad}");
        }
    }

    #[test]
    fn addresses_stay_in_the_benchmark_range() {
        let net: ipnet::Ipv4Net = "198.18.0.0/15".parse().unwrap();
        let mut rng = Rng(12345);
        for _ in 0..10_000 {
            let ip: std::net::Ipv4Addr = rng.bench_ip().parse().unwrap();
            assert!(net.contains(&ip), "{ip}");
        }
    }
}
