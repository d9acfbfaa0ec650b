//! Which `?redir=` targets may be followed: a path on this site, or a URL on
//! the request's own host or a configured domain. Anything else would make
//! powgate an open redirect.

/// Returns the target to redirect to, or `None` when it must be ignored.
pub(crate) fn safe_redirect(
    redir: &str,
    own_host: Option<&str>,
    allowed: &[String],
) -> Option<String> {
    let redir = redir.trim();
    if redir.is_empty() || redir.len() > 4096 || redir.chars().any(|c| c.is_control() || c == '\\')
    {
        return None;
    }
    if redir.starts_with('/') {
        // "//evil.example" is protocol-relative, not a path.
        return (!redir.starts_with("//")).then(|| redir.to_owned());
    }
    let rest = redir
        .strip_prefix("https://")
        .or_else(|| redir.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let host = host_of(authority).to_ascii_lowercase();
    let own = own_host.map(|h| host_of(h).to_ascii_lowercase());
    let ok = own.as_deref() == Some(host.as_str())
        || allowed.iter().any(|d| match d.strip_prefix('.') {
            Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
            None => host == *d,
        });
    ok.then(|| redir.to_owned())
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_paths_and_allowed_hosts_only() {
        let allowed = vec!["app.example.com".to_owned(), ".example.org".to_owned()];
        let ok = |r: &str| safe_redirect(r, Some("gate.example.com:8443"), &allowed).is_some();
        assert!(ok("/dashboard?x=1"));
        assert!(ok("https://gate.example.com/a"));
        assert!(ok("https://app.example.com/a"));
        assert!(ok("https://deep.sub.example.org/"));
        assert!(ok("http://example.org"));
        assert!(!ok("//evil.com/x"));
        assert!(!ok("/\\evil.com"));
        assert!(!ok("https://evil.com/"));
        assert!(!ok("https://app.example.com@evil.com/"));
        assert!(!ok("https://evilexample.org/"));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("data:text/html,x"));
        assert!(!ok("evil.com"));
        assert!(!ok("https://evil.com\\@app.example.com"));
        assert!(!ok("/a\nb"));
    }
}
