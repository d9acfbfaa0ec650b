//! The application behind powgate in proxy mode: where it is, how to reach
//! it, and whether it answers.
//!
//! Requests go through hyper-util's pooled client, whose connections are
//! kept alive between requests; a unix socket gets a small connector of its
//! own. Only connecting and waiting for response headers are timed: bodies
//! have no limit, since downloads, long polls and event streams stay open.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::UnixStream;

use crate::config::ProxyConfig;
use crate::error::ApiError;

/// How long a reachability answer for `/healthz` is reused, so a monitor
/// polling it (or a flood of it) costs at most one connection attempt per
/// interval to the upstream.
const HEALTH_CACHE: Duration = Duration::from_secs(5);

/// How long an idle kept-alive connection to the upstream stays open.
/// Below the usual 60 s or more of application servers, so powgate closes
/// first and never sends on a connection the upstream is closing.
const POOL_IDLE: Duration = Duration::from_secs(30);

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

/// A unix socket connector for hyper-util's client: the request's URI only
/// names the pool, every connection goes to `path`.
#[derive(Debug, Clone)]
pub(crate) struct UnixConnector {
    path: Arc<Path>,
    timeout: Duration,
}

impl tower::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (path, timeout) = (self.path.clone(), self.timeout);
        Box::pin(async move {
            tokio::time::timeout(timeout, UnixStream::connect(&*path))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
                .map(TokioIo::new)
        })
    }
}

/// One pooled client per kind of upstream: the client's type names its
/// connector.
#[derive(Debug, Clone)]
enum Pool {
    Tcp(Client<HttpConnector, Body>),
    Unix(Client<UnixConnector, Body>),
}

/// The upstream's client: sends requests, and remembers whether the
/// upstream answered lately, for `/healthz`.
#[derive(Debug)]
pub(crate) struct UpstreamClient {
    pool: Pool,
    /// The authority written into the outgoing request URI; for a unix
    /// socket a placeholder that only keys the pool.
    authority: Authority,
    upstream: Upstream,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// Whether the last connection attempt or request reached the upstream.
    reachable: AtomicBool,
    /// When `reachable` was last learnt, in ms since `started`.
    checked_ms: AtomicI64,
    started: Instant,
}

impl UpstreamClient {
    /// A client for `config.upstream`. Builds no connection yet.
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        let builder = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(POOL_IDLE).pool_timer(TokioTimer::new());
            b
        };
        let (pool, authority) = match &config.upstream {
            Upstream::Http { authority } => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(config.connect_timeout));
                http.set_nodelay(true);
                (
                    Pool::Tcp(builder().build(http)),
                    authority
                        .parse()
                        .unwrap_or_else(|_| Authority::from_static("localhost")),
                )
            }
            Upstream::Unix { path } => (
                Pool::Unix(builder().build(UnixConnector {
                    path: path.as_path().into(),
                    timeout: config.connect_timeout,
                })),
                Authority::from_static("localhost"),
            ),
        };
        Self {
            pool,
            authority,
            upstream: config.upstream.clone(),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            reachable: AtomicBool::new(false),
            checked_ms: AtomicI64::new(i64::MIN),
            started: Instant::now(),
        }
    }

    /// The outgoing URI: the upstream's authority and the request's own
    /// path and query, unchanged to the byte.
    pub(crate) fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Uri {
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(
            path_and_query
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// Sends `req` and waits for the response headers, within the response
    /// timeout; the body then streams with no limit of time.
    ///
    /// # Errors
    /// [`ApiError::UpstreamUnavailable`] when the upstream cannot be
    /// reached or breaks off, [`ApiError::UpstreamTimeout`] when its headers
    /// are late.
    pub(crate) async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, ApiError> {
        let sent = match &self.pool {
            Pool::Tcp(c) => tokio::time::timeout(self.response_timeout, c.request(req)).await,
            Pool::Unix(c) => tokio::time::timeout(self.response_timeout, c.request(req)).await,
        };
        match sent {
            Ok(Ok(resp)) => {
                self.learn(true);
                Ok(resp)
            }
            Ok(Err(e)) => {
                if e.is_connect() {
                    self.learn(false);
                }
                tracing::debug!(error = ?e, "upstream request failed");
                Err(ApiError::UpstreamUnavailable)
            }
            Err(_) => Err(ApiError::UpstreamTimeout),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn learn(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
        self.checked_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether the upstream accepts connections: what traffic or a probe
    /// learnt within [`HEALTH_CACHE`], else a fresh probe (a bare connect,
    /// no request, so the application logs nothing).
    pub(crate) async fn is_reachable(&self) -> bool {
        let age = self
            .now_ms()
            .saturating_sub(self.checked_ms.load(Ordering::Relaxed));
        if u128::try_from(age).unwrap_or(0) < HEALTH_CACHE.as_millis() {
            return self.reachable.load(Ordering::Relaxed);
        }
        // Whoever finds the answer stale probes; others meanwhile get the
        // last answer rather than a probe each.
        self.checked_ms.store(self.now_ms(), Ordering::Relaxed);
        let probe = async {
            match &self.upstream {
                Upstream::Http { authority } => tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .is_ok(),
                Upstream::Unix { path } => UnixStream::connect(path).await.is_ok(),
            }
        };
        let reachable = tokio::time::timeout(self.connect_timeout, probe)
            .await
            .unwrap_or(false);
        self.learn(reachable);
        reachable
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
