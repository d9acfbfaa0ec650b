//! The TCP gate: proof of work in front of a service that does not speak
//! HTTP. Each connection is greeted with a challenge line
//! (`pow::tcp`, the protocol told in the `pow` crate docs); a client that
//! answers with a solution or a token is connected to the upstream and its
//! bytes are piped both ways until either side closes. Anything else gets
//! one `ERR` line and the connection is closed.
//!
//! Nothing is judged here. The challenge is made by
//! [`challenge::issue_signed`], a solution checked and its token minted by
//! [`solve::redeem`], and a token judged by [`gate::judge_token`]: the
//! functions behind `POST /api/challenge`, `POST /api/solve` and
//! `/verify-token`, so a TCP client meets the same rate limits, open
//! challenge bounds, verification line, single-use ledger, adaptive
//! difficulty, address limit and budgets as an HTTP one, and a token works
//! on both. What this module adds is what a raw connection needs: the
//! connection caps, a deadline for the whole handshake (a silent or slow
//! client holds a slot only that long), a bound on the line length, the
//! PROXY protocol header to the upstream, and a drain on shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pow::tcp::{Answer, Greeting, MAX_LINE, Offer, Reply};
use pow::wire::SolveRequest;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::client_ip::{IpKey, canonical};
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::gate::{Decision, judge_token};
use crate::limits::ConnLimits;
use crate::linger::Lingering;
use crate::routes::challenge::issue_signed;
use crate::routes::extract::ClientIp;
use crate::routes::solve::{Presenter, redeem};
use crate::state::AppState;

/// The handshake deadline when a gate sets none: time to solve a challenge
/// at the default difficulty on a slow machine, while a silent client holds
/// its slot no longer than this.
const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 60;

/// Each direction's buffer of a pipe. tokio's default, 8 KiB, costs a pair
/// of system calls per 8 KiB, which on a busy 2-CPU machine held a stream
/// to about half the rate of a direct connection (`just bench`, part f);
/// 32 KiB per direction bounds the pipes' buffers at 4096 open connections
/// (the default `max_connections`) to 256 MiB.
const PIPE_BUFFER: usize = 32 * 1024;

/// Longest a refused connection is drained after its `ERR` line.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Time the upstream has to accept the connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which PROXY protocol header the upstream gets, telling it the client's
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyProtocol {
    /// The text header, `PROXY TCP4 … \r\n`.
    V1,
    /// The binary header.
    V2,
}

/// One `[[tcp]]` entry of `config.toml`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpGate {
    /// Address:port the gate listens on.
    pub listen: String,
    /// host:port of the service behind it.
    pub upstream: String,
    /// `"v1"` or `"v2"` to send the PROXY protocol header to the upstream.
    #[serde(default)]
    pub proxy_protocol: Option<String>,
    /// Time a client has from connecting to sending its answer line.
    #[serde(default)]
    pub handshake_timeout_secs: Option<u64>,
}

/// A validated TCP gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpGate {
    pub listen: SocketAddr,
    /// `host:port`, resolved at each connection so a name may move.
    pub upstream: String,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub handshake_timeout: Duration,
}

impl RawTcpGate {
    /// Checks the entry, the `index`-th (from 0) of `[[tcp]]`.
    ///
    /// # Errors
    /// The first bad field, as a [`ConfigError`] naming `tcp[index].field`.
    pub(crate) fn validate(&self, index: usize) -> Result<TcpGate, ConfigError> {
        let key = |field: &str| format!("tcp[{index}].{field}");
        let listen = self.listen.trim().parse().map_err(|_| {
            ConfigError::new(
                &key("listen"),
                format!(
                    "{:?} is not an address:port such as 0.0.0.0:7000",
                    self.listen
                ),
            )
        })?;
        let upstream = self.upstream.trim();
        let host_port = upstream.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !host_port {
            return Err(ConfigError::new(
                &key("upstream"),
                format!(
                    "{:?} is not host:port such as 127.0.0.1:7001",
                    self.upstream
                ),
            ));
        }
        let proxy_protocol = match self.proxy_protocol.as_deref().map(str::trim) {
            None | Some("" | "off") => None,
            Some("v1") => Some(ProxyProtocol::V1),
            Some("v2") => Some(ProxyProtocol::V2),
            Some(other) => {
                return Err(ConfigError::new(
                    &key("proxy_protocol"),
                    format!("{other:?} is none of \"v1\", \"v2\" or \"off\""),
                ));
            }
        };
        let secs = self
            .handshake_timeout_secs
            .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT_SECS);
        if !(1..=3600).contains(&secs) {
            return Err(ConfigError::new(
                &key("handshake_timeout_secs"),
                format!("{secs} is out of range: allowed 1..=3600 seconds"),
            ));
        }
        Ok(TcpGate {
            listen,
            upstream: upstream.to_owned(),
            proxy_protocol,
            handshake_timeout: Duration::from_secs(secs),
        })
    }
}

/// Binds every gate, so that a taken port stops start-up with its name.
///
/// # Errors
/// The first address that cannot be bound.
pub(crate) async fn bind(state: &AppState) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(state.config.tcp.len());
    for gate in &state.config.tcp {
        let l = TcpListener::bind(gate.listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (a [[tcp]] gate): {e}", gate.listen)
        })?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Runs the gates of `state.config.tcp` on `listeners` (from [`bind`], in
/// the same order) until `shutdown` resolves; then stops accepting and
/// gives open connections, pipes included, up to the shutdown grace period
/// to end by themselves before closing them.
pub(crate) async fn run(
    state: AppState,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let trusted = state.client_ip.clone();
    // One set of caps for all gates, apart from the HTTP listener's: a
    // flood of raw connections cannot take the slots of the web side.
    let conns = ConnLimits::new(
        state.config.limits.connections,
        move |ip| trusted.is_trusted(ip),
        state.metrics.tcp_open.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut gates = JoinSet::new();
    for (gate, listener) in state.config.tcp.iter().zip(listeners) {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(address = %addr, upstream = %gate.upstream, "tcp gate listening");
        }
        gates.spawn(accept_loop(
            state.clone(),
            Arc::new(gate.clone()),
            listener,
            conns.clone(),
            stopped.clone(),
        ));
    }
    shutdown.await;
    let _ = stop.send(true);
    while gates.join_next().await.is_some() {}
}

/// Accepts on one gate until told to stop, then drains its connections.
async fn accept_loop(
    state: AppState,
    gate: Arc<TcpGate>,
    listener: TcpListener,
    conns: Arc<ConnLimits>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut open = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE; pausing lets connections close.
                    tracing::warn!(error = %e, "tcp gate: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reaps finished connections, so the set holds open ones only.
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            () = stopped(&mut stop) => break,
        };
        state.metrics.tcp_connections.inc();
        let guard = match conns.admit(peer.ip()) {
            Ok(g) => g,
            Err(refused) => {
                state
                    .metrics
                    .limited
                    .with_label_values(&[refused.label()])
                    .inc();
                state
                    .metrics
                    .tcp_handshakes
                    .with_label_values(&["busy"])
                    .inc();
                open.spawn(refuse(stream));
                continue;
            }
        };
        let (state, gate) = (state.clone(), gate.clone());
        open.spawn(async move {
            let _guard = guard;
            serve_connection(&state, &gate, stream, peer).await;
        });
    }
    drop(listener);
    let grace = state.config.limits.shutdown_grace;
    let remaining = open.len();
    let drained =
        tokio::time::timeout(grace, async { while open.join_next().await.is_some() {} }).await;
    match drained {
        Ok(()) => tracing::info!(connections = remaining, "tcp gate drained"),
        Err(_) => {
            tracing::warn!(grace = ?grace, open = open.len(), "tcp gate: grace period over; closing the remaining connections");
            open.shutdown().await;
        }
    }
}

/// Resolves once the gates are told to stop. (The `Ref` that `wait_for`
/// returns holds a lock guard, which must not live across the accept
/// loop's awaits.)
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A connection over the caps: one `ERR busy` line, then closed.
async fn refuse(mut stream: TcpStream) {
    let line = Reply::Err {
        code: "busy".into(),
        message: "too many connections; retry shortly".into(),
    }
    .to_line();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(line.as_bytes())).await;
}

/// Why a handshake did not pass: the `ERR` line's code and message, or
/// nothing to send when the client went away.
#[derive(Debug)]
enum Refusal {
    Err { code: &'static str, message: String },
    Closed,
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        if let ApiError::Internal(cause) = &e {
            tracing::error!(error = %cause, "tcp gate: internal error");
        }
        Self::Err {
            code: e.code(),
            message: e.public_message(),
        }
    }
}

impl From<Decision> for Refusal {
    fn from(d: Decision) -> Self {
        Self::Err {
            code: d.label(),
            message: d
                .message()
                .replace("at challenge_url", "by solving a challenge"),
        }
    }
}

/// A client let through: its token, and any bytes it sent after its
/// answer line, which belong to the upstream.
struct Passed {
    token: String,
    early: Vec<u8>,
}

async fn serve_connection(
    state: &AppState,
    gate: &TcpGate,
    mut client: TcpStream,
    peer: SocketAddr,
) {
    let started = Instant::now();
    let ip = canonical(peer.ip());
    let who = ClientIp {
        ip,
        key: IpKey::of(ip),
        via_trusted_proxy: false,
    };
    let answered =
        tokio::time::timeout(gate.handshake_timeout, handshake(state, &who, &mut client)).await;
    let passed = match answered {
        Ok(Ok(p)) => connect_upstream(state, gate, &mut client, peer, p).await,
        Ok(Err(r)) => Err(r),
        Err(_) => Err(Refusal::Err {
            code: "timeout",
            message: "no answer line within the handshake timeout".into(),
        }),
    };
    let elapsed = started.elapsed().as_secs_f64();
    state.metrics.tcp_handshake_seconds.observe(elapsed);
    let (upstream, token) = match passed {
        Ok(p) => p,
        Err(refusal) => {
            let outcome = match &refusal {
                Refusal::Err { code, .. } => *code,
                Refusal::Closed => "closed",
            };
            state
                .metrics
                .tcp_handshakes
                .with_label_values(&[outcome])
                .inc();
            if let Refusal::Err { code, message } = refusal {
                let line = Reply::Err {
                    code: code.into(),
                    message,
                }
                .to_line();
                tracing::debug!(ip = %who.key, code, "tcp gate: refused");
                // Closed with unread bytes (an overlong line), the socket
                // would be reset and the client might lose the ERR line:
                // half-close and discard what still comes, briefly.
                let mut client = Lingering::bounded(client, REFUSAL_LINGER, 64 * 1024);
                let _ = tokio::time::timeout(REFUSAL_LINGER, async {
                    client.write_all(line.as_bytes()).await?;
                    client.shutdown().await
                })
                .await;
            }
            return;
        }
    };
    state
        .metrics
        .tcp_handshakes
        .with_label_values(&["passed"])
        .inc();
    pipe(state, client, upstream, &token).await;
}

/// Greets, reads the answer, and judges it; bounded by the caller's
/// deadline.
async fn handshake(
    state: &AppState,
    who: &ClientIp,
    client: &mut TcpStream,
) -> Result<Passed, Refusal> {
    let greeting = greet(state, who)?;
    client
        .write_all(greeting.to_line().as_bytes())
        .await
        .map_err(|_| Refusal::Closed)?;
    let (line, early) = read_line(client).await?;
    let offered = match &greeting {
        Greeting::Challenge(o) => Some(o.salt),
        Greeting::NoChallenge { .. } => None,
    };
    let answer = Answer::parse(&line).map_err(|e| Refusal::Err {
        code: "bad_line",
        message: format!("{e}; expected NONCE <challenge> <nonce> <ticket> or TOKEN <token>"),
    })?;
    let token = match answer {
        Answer::Nonce {
            challenge,
            nonce,
            ticket,
        } => {
            let req = SolveRequest {
                challenge,
                nonce,
                ticket: Some(ticket),
                refresh_token: None,
                telemetry: None,
                redir: None,
            };
            let minted = submit(state, who, req).await?;
            minted.token.expose()
        }
        Answer::Token(token) => {
            match judge_token(state, Some(token.as_str()), who).await? {
                Decision::Valid => {}
                refused => return Err(refused.into()),
            }
            token
        }
    };
    // The greeting's challenge, unless it was the one answered (spent and
    // closed then), will not be answered on this connection: it need not
    // hold one of the address's open-challenge slots.
    if let Some(id) = offered {
        state.open_challenges.close(who.key, &id);
    }
    Ok(Passed { token, early })
}

/// The greeting: a challenge, or, over the challenge rate or the open
/// challenge bound, none (a token may still pass).
fn greet(state: &AppState, who: &ClientIp) -> Result<Greeting, Refusal> {
    let refused = |e: ApiError| match e {
        ApiError::RateLimited(retry_after) => Ok(Greeting::NoChallenge {
            code: "rate_limited".into(),
            retry_after,
        }),
        other => Err(Refusal::from(other)),
    };
    if let Err(limited) =
        state
            .rate_limits
            .check_challenge(who.key, &state.settings.get(), &state.metrics)
    {
        return refused(limited.into());
    }
    let resp = match issue_signed(state, who, None) {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let salt = hex::decode(&resp.salt)
        .ok()
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or_else(|| {
            Refusal::from(ApiError::Internal(anyhow::anyhow!(
                "challenge salt is not 16 bytes"
            )))
        })?;
    let difficulty = pow::Difficulty::new(resp.difficulty)
        .map_err(|e| Refusal::from(ApiError::Internal(e.into())))?;
    Ok(Greeting::Challenge(Offer {
        challenge: resp.challenge,
        salt,
        params: resp.argon2,
        difficulty,
        ticket_bits: resp.ticket_bits,
    }))
}

/// [`redeem`], waiting out `queued` answers: the answer keeps its place in
/// the verification line and is sent again after the wait, as `powgate
/// solve` does over HTTP, within the handshake deadline.
async fn submit(
    state: &AppState,
    who: &ClientIp,
    req: SolveRequest,
) -> Result<crate::routes::solve::Minted, Refusal> {
    loop {
        match redeem(state, who, Ok(req.clone()), Presenter::default()).await {
            Err(ApiError::Queued { retry_after, .. }) => {
                tokio::time::sleep(Duration::from_secs(retry_after)).await;
            }
            other => return other.map_err(Refusal::from),
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; returns it and whatever
/// followed it in the same reads.
async fn read_line(client: &mut TcpStream) -> Result<(String, Vec<u8>), Refusal> {
    let mut buf = vec![0u8; MAX_LINE];
    let mut filled = 0;
    loop {
        let n = client
            .read(&mut buf[filled..])
            .await
            .map_err(|_| Refusal::Closed)?;
        if n == 0 {
            return Err(Refusal::Closed);
        }
        let start = filled;
        filled += n;
        if let Some(i) = buf[start..filled].iter().position(|&b| b == b'\n') {
            let end = start + i + 1;
            let early = buf[end..filled].to_vec();
            let line = String::from_utf8(buf[..end].to_vec()).map_err(|_| Refusal::Err {
                code: "bad_line",
                message: "the line is not UTF-8".into(),
            })?;
            return Ok((line, early));
        }
        if filled == MAX_LINE {
            return Err(Refusal::Err {
                code: "line_too_long",
                message: format!("no line end within {MAX_LINE} bytes"),
            });
        }
    }
}

/// Connects to the upstream, sends it the PROXY header and the client's
/// early bytes, then tells the client `OK`.
async fn connect_upstream(
    state: &AppState,
    gate: &TcpGate,
    client: &mut TcpStream,
    peer: SocketAddr,
    passed: Passed,
) -> Result<(TcpStream, String), Refusal> {
    let unavailable = |e: std::io::Error| {
        tracing::warn!(upstream = %gate.upstream, error = %e, "tcp gate: upstream unavailable");
        Refusal::from(ApiError::UpstreamUnavailable)
    };
    let mut upstream = tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(gate.upstream.as_str()),
    )
    .await
    .map_err(|_| Refusal::from(ApiError::UpstreamTimeout))?
    .map_err(unavailable)?;
    let _ = upstream.set_nodelay(true);
    if let Some(version) = gate.proxy_protocol {
        let local = client.local_addr().map_err(|_| Refusal::Closed)?;
        let header = proxy_header(version, peer, local)
            .map_err(|e| Refusal::from(ApiError::Internal(e.into())))?;
        upstream.write_all(&header).await.map_err(unavailable)?;
    }
    if !passed.early.is_empty() {
        upstream
            .write_all(&passed.early)
            .await
            .map_err(unavailable)?;
        state
            .metrics
            .tcp_bytes
            .with_label_values(&["to_upstream"])
            .inc_by(passed.early.len() as u64);
    }
    client
        .write_all(Reply::Ok(passed.token.clone()).to_line().as_bytes())
        .await
        .map_err(|_| Refusal::Closed)?;
    Ok((upstream, passed.token))
}

/// Pipes both ways until either side closes (each direction's end is passed
/// on as a half-close, so a request-then-EOF protocol works).
async fn pipe(state: &AppState, mut client: TcpStream, mut upstream: TcpStream, token: &str) {
    let _ = client.set_nodelay(true);
    let result = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        PIPE_BUFFER,
        PIPE_BUFFER,
    )
    .await;
    let (up, down) = match result {
        Ok(counts) => counts,
        Err(e) => {
            tracing::debug!(error = %e, "tcp gate: pipe ended with an error");
            return;
        }
    };
    state
        .metrics
        .tcp_bytes
        .with_label_values(&["to_upstream"])
        .inc_by(up);
    state
        .metrics
        .tcp_bytes
        .with_label_values(&["to_client"])
        .inc_by(down);
    tracing::debug!(token = %token.get(..8).unwrap_or_default(), up, down, "tcp gate: pipe closed");
}

/// The PROXY protocol header for a connection from `client` to `local`.
/// Addresses of different families (an IPv4 client on an IPv6 socket)
/// are both written as IPv6, which the protocol requires to match.
fn proxy_header(
    version: ProxyProtocol,
    client: SocketAddr,
    local: SocketAddr,
) -> std::io::Result<Vec<u8>> {
    let (client, local) = same_family(client, local);
    Ok(match version {
        ProxyProtocol::V1 => ppp::v1::Addresses::from((client, local))
            .to_string()
            .into_bytes(),
        ProxyProtocol::V2 => ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, local),
        )
        .build()?,
    })
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let plain = |s: SocketAddr| SocketAddr::new(canonical(s.ip()), s.port());
    let (a, b) = (plain(a), plain(b));
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(upstream: &str) -> RawTcpGate {
        RawTcpGate {
            listen: "127.0.0.1:7000".into(),
            upstream: upstream.into(),
            proxy_protocol: None,
            handshake_timeout_secs: None,
        }
    }

    #[test]
    fn a_gate_names_its_bad_field() {
        let e = raw("no-port").validate(2).unwrap_err();
        assert!(e.to_string().contains("tcp[2].upstream"), "{e}");
        let e = RawTcpGate {
            proxy_protocol: Some("v3".into()),
            ..raw("x:1")
        }
        .validate(0)
        .unwrap_err();
        assert!(e.to_string().contains("tcp[0].proxy_protocol"), "{e}");
        let ok = raw("localhost:7001").validate(0).unwrap();
        assert_eq!(ok.handshake_timeout, Duration::from_secs(60));
        assert_eq!(ok.proxy_protocol, None);
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The v1 example of the PROXY protocol specification (haproxy
    /// doc/proxy-protocol.txt, section 2.1).
    #[test]
    fn proxy_v1_is_the_specifications_text_line() {
        let h = proxy_header(
            ProxyProtocol::V1,
            addr("192.168.0.1:56324"),
            addr("192.168.0.11:443"),
        )
        .unwrap();
        assert_eq!(h, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    }

    /// Section 2.2 of the specification: the 12-byte signature, version 2
    /// PROXY (0x21), TCP over IPv4 (0x11), 12 address bytes, then source
    /// and destination addresses and ports in network order.
    #[test]
    fn proxy_v2_is_the_specifications_binary_header() {
        let h = proxy_header(
            ProxyProtocol::V2,
            addr("192.0.2.1:56324"),
            addr("198.51.100.2:443"),
        )
        .unwrap();
        let mut expected = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        expected.extend([0x21, 0x11, 0, 12]);
        expected.extend([192, 0, 2, 1, 198, 51, 100, 2]);
        expected.extend(56324u16.to_be_bytes());
        expected.extend(443u16.to_be_bytes());
        assert_eq!(h, expected);
    }

    /// An IPv4 client accepted on a dual-stack socket arrives as a mapped
    /// IPv6 address; the header must not say `UNKNOWN` for it.
    #[test]
    fn a_mapped_client_gets_a_tcp4_header() {
        let h = proxy_header(
            ProxyProtocol::V1,
            addr("[::ffff:192.0.2.1]:1000"),
            addr("127.0.0.1:7000"),
        )
        .unwrap();
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 7000\r\n");
    }
}
