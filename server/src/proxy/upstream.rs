//! The application behind powgate in proxy mode: where it is, how to reach
//! it, and whether it answers.

use std::path::PathBuf;

/// Where the application listens, as `upstream` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// `http://host:port`: the authority requests are sent to.
    Http { authority: String },
    /// `unix:/path/to.sock`: a socket file on this machine.
    Unix { path: PathBuf },
}

impl Upstream {
    /// Reads an `upstream` value.
    ///
    /// # Errors
    /// A message that says what to write instead: only `http://host:port`
    /// and `unix:/absolute/path` are understood; https is refused outright
    /// (it is not implemented yet) rather than sent in clear text.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!(
                    "{s:?}: a unix socket upstream needs an absolute path, such as unix:/run/app.sock"
                ));
            }
            return Ok(Self::Unix { path });
        }
        if s.starts_with("https://") {
            return Err(format!(
                "{s:?}: https upstreams are not supported yet; use http://host:port or unix:/path/to.sock on the same machine or network"
            ));
        }
        let Some(rest) = s.strip_prefix("http://") else {
            return Err(format!(
                "{s:?} must be http://host:port or unix:/path/to.sock"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        // Only an authority: a path here would have to be joined to every
        // request's own path, which the proxy does not do.
        let parsed: axum::http::uri::Authority = authority.parse().map_err(|_| {
            format!("{s:?}: {authority:?} is not a host:port such as 127.0.0.1:3000")
        })?;
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{s:?} must be only http://host:port, without a path, query or user"
            ));
        }
        Ok(Self::Http {
            authority: parsed.as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_unix_upstreams_are_read() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:3000/").unwrap(),
            Upstream::Http {
                authority: "127.0.0.1:3000".into()
            }
        );
        assert_eq!(
            Upstream::parse("unix:/run/app.sock").unwrap(),
            Upstream::Unix {
                path: "/run/app.sock".into()
            }
        );
    }

    /// https would otherwise be sent as plain http to port 443, or not at
    /// all: the message must say it is not there yet.
    #[test]
    fn an_https_upstream_is_refused_with_a_message_saying_so() {
        let e = Upstream::parse("https://app.internal").unwrap_err();
        assert!(e.contains("not supported yet"), "{e}");
    }

    #[test]
    fn an_upstream_with_a_path_or_no_scheme_is_refused() {
        for bad in [
            "http://127.0.0.1:3000/app",
            "127.0.0.1:3000",
            "ftp://x",
            "unix:relative.sock",
            "http://",
            "http://user@host:1",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
