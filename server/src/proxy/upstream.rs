//! The application behind powgate in proxy mode: where it is, how to reach
//! it, and whether it answers.
//!
//! Requests go through hyper-util's pooled client, whose connections are
//! kept alive between requests; a unix socket and TLS (rustls, through
//! tokio-rustls) each get a small connector of their own. Only connecting and waiting for response headers are timed: bodies
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
    /// `https://host[:port]`: over TLS, the certificate checked against
    /// the system's roots or `upstream_ca_file`, for `host` (or
    /// `upstream_sni`). The authority always has its port.
    Https { authority: String, host: String },
    /// `unix:/path/to.sock`: a socket file on this machine.
    Unix { path: PathBuf },
}

impl Upstream {
    /// Reads an `upstream` value.
    ///
    /// # Errors
    /// A message that says what to write instead: only `http://host:port`,
    /// `https://host[:port]` and `unix:/absolute/path` are understood, with
    /// no path, query or user after the host.
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
        let (rest, tls) = match (s.strip_prefix("http://"), s.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => {
                return Err(format!(
                    "{s:?} must be http://host:port, https://host[:port] or unix:/path/to.sock"
                ));
            }
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
        if !tls {
            return Ok(Self::Http {
                authority: parsed.as_str().to_owned(),
            });
        }
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
        Ok(Self::Https {
            authority: format!("{}:{}", parsed.host(), parsed.port_u16().unwrap_or(443)),
            host: host.to_owned(),
        })
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http { authority } => write!(f, "http://{authority}"),
            Self::Https { authority, .. } => write!(f, "https://{authority}"),
            Self::Unix { path } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Reads `upstream_ca_file`, or the system's roots.
fn root_store(ca_file: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    crate::tls_roots::root_store(
        ca_file,
        &crate::tls_roots::RootsFor {
            file_label: &|file| format!("POW_UPSTREAM_CA_FILE={}", file.display()),
            no_system_roots: "the https upstream; install ca-certificates or set POW_UPSTREAM_CA_FILE",
        },
    )
}

/// TCP through hyper-util's connector, then a TLS handshake with rustls
/// (tokio-rustls), within the connect timeout as a whole.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    http: HttpConnector,
    tls: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    timeout: Duration,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsConn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let (tls, name, timeout) = (self.tls.clone(), self.server_name.clone(), self.timeout);
        Box::pin(async move {
            let handshake = async {
                let tcp = connecting.await?.into_inner();
                Ok::<_, BoxError>(tls.connect(name, tcp).await?)
            };
            let stream = tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            Ok(TokioIo::new(TlsConn(stream)))
        })
    }
}

/// A TLS connection to the upstream, as hyper-util's client wants it.
#[derive(Debug)]
pub(crate) struct TlsConn(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl hyper_util::client::legacy::connect::Connection for TlsConn {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.0.get_ref().0.connected()
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
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
    Tls(Client<TlsConnector, Body>),
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
    ///
    /// # Errors
    /// For an https upstream: an unreadable `upstream_ca_file`, or no root
    /// certificates at all.
    pub(crate) fn new(config: &ProxyConfig) -> anyhow::Result<Self> {
        let builder = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(POOL_IDLE).pool_timer(TokioTimer::new());
            b
        };
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let (pool, authority) = match &config.upstream {
            Upstream::Http { authority } => (
                Pool::Tcp(builder().build(http)),
                authority
                    .parse()
                    .unwrap_or_else(|_| Authority::from_static("localhost")),
            ),
            Upstream::Https { authority, host } => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(root_store(config.tls.ca_file.as_deref())?)
                    .with_no_client_auth();
                let name = config.tls.sni.as_deref().unwrap_or(host);
                let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())
                    .map_err(|_| anyhow::anyhow!("{name:?} is not a TLS server name"))?;
                // The URI's scheme is https; hyper-util's connector
                // refuses that unless told the TLS is layered on top.
                http.enforce_http(false);
                (
                    Pool::Tls(builder().build(TlsConnector {
                        http,
                        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                        server_name,
                        timeout: config.connect_timeout,
                    })),
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
        Ok(Self {
            pool,
            authority,
            upstream: config.upstream.clone(),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            reachable: AtomicBool::new(false),
            checked_ms: AtomicI64::new(i64::MIN),
            started: Instant::now(),
        })
    }

    /// The outgoing URI: the upstream's authority and the request's own
    /// path and query, unchanged to the byte.
    pub(crate) fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Uri {
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(match self.pool {
            Pool::Tls(_) => Scheme::HTTPS,
            Pool::Tcp(_) | Pool::Unix(_) => Scheme::HTTP,
        });
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
            Pool::Tls(c) => tokio::time::timeout(self.response_timeout, c.request(req)).await,
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
                Upstream::Http { authority } | Upstream::Https { authority, .. } => {
                    tokio::net::TcpStream::connect(authority.as_str())
                        .await
                        .is_ok()
                }
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

    #[test]
    fn an_https_upstream_gets_its_default_port_and_its_host_for_sni() {
        assert_eq!(
            Upstream::parse("https://app.internal").unwrap(),
            Upstream::Https {
                authority: "app.internal:443".into(),
                host: "app.internal".into()
            }
        );
        assert_eq!(
            Upstream::parse("https://[::1]:8443").unwrap(),
            Upstream::Https {
                authority: "[::1]:8443".into(),
                host: "::1".into()
            }
        );
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
