//! Start-up, the purge and usage-flush jobs, and graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::limits::{ConnLimits, ConnSlot};
use crate::linger::Lingering;

use crate::routes::app;
use crate::state::AppState;

/// The largest request header block, and hyper's read buffer: the 32 KiB
/// of nginx's `large_client_header_buffers`, so whatever the proxy in front
/// accepted fits. hyper's own buffer, about 400 KiB, let each half-sent
/// request hold that much memory. A larger header block gets 431 and the
/// connection is closed.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Serves `state` on `listener` until `shutdown` resolves, then stops
/// accepting and gives in-flight requests up to the configured grace period.
///
/// The accept loop is written out (rather than `axum::serve`) because it
/// enforces what axum does not expose: the connection caps, hyper's
/// header-read timeout against slowloris and its header buffer size, and
/// the lingering close that lets a client read an early answer.
///
/// # Errors
/// When the metrics listener cannot bind.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let background = Background::start(&state).await?;
    let tcp_listeners = crate::tcp::bind(&state).await?;
    let (stop_tcp, tcp_stopped) = tokio::sync::watch::channel(false);
    let tcp = tokio::spawn(crate::tcp::run(state.clone(), tcp_listeners, async move {
        let mut stopped = tcp_stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    if let Some(proxy) = &state.config.proxy {
        tracing::info!(upstream = %proxy.upstream, prefix = %proxy.prefix, "proxy mode");
    }
    let limits = state.config.limits;
    let trusted = state.client_ip.clone();
    let conns = ConnLimits::new(
        limits.connections,
        move |ip| trusted.is_trusted(ip),
        state.metrics.http_open.clone(),
    );
    let router = match state.config.proxy {
        Some(_) => crate::proxy::router(state.clone()),
        None => app(state.clone()),
    };
    // hyper-util's GracefulShutdown does not take a connection that can be
    // upgraded (proxy mode tunnels WebSockets), so draining is the same
    // few lines it runs inside: every connection holds a receiver, is told
    // to finish through it, and drops it when done.
    let (drain, draining) = tokio::sync::watch::channel(());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES);

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE; pausing lets connections close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let guard = match conns.admit(peer.ip()) {
            Ok(g) => g,
            Err(refused) => {
                state
                    .metrics
                    .limited
                    .with_label_values(&[refused.label()])
                    .inc();
                tokio::spawn(refuse(stream));
                continue;
            }
        };
        // In proxy mode a request carries its connection's slot, so that a
        // tunnel it upgrades to keeps holding the slot once hyper has let
        // go of the connection (see `proxy::gated`).
        let guard = ConnSlot::new(guard);
        let slot = state
            .config
            .proxy
            .as_ref()
            .map(|_| axum::Extension(guard.clone()));
        let svc = tower::ServiceBuilder::new()
            .layer(axum::Extension(ConnectInfo(peer)))
            .option_layer(slot)
            .service(router.clone());
        let conn = http
            .serve_connection(
                TokioIo::new(Lingering::new(stream)),
                TowerToHyperService::new(svc),
            )
            .with_upgrades();
        let limited = state.metrics.limited.clone();
        let mut stop = draining.clone();
        tokio::spawn(async move {
            let _guard = guard;
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            drop(stop);
            if let Err(e) = ended {
                if e.is_timeout() {
                    limited.with_label_values(&["header_read_timeout"]).inc();
                }
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    // The TCP gates drain alongside, within the same grace period.
    let _ = stop_tcp.send(true);
    let open = conns.open();
    drop(draining);
    let _ = drain.send(());
    tokio::select! {
        () = drain.closed() => tracing::info!(connections = open, "drained; bye"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "grace period over; closing the remaining connections");
        }
    }
    let _ = tcp.await;
    background.stop(&state).await;
    Ok(())
}

/// Runs only the TCP gates of `state` (`powgate tcp`), with the background
/// jobs, until `shutdown` resolves; then drains them as [`serve`] does.
///
/// # Errors
/// When a gate's or the metrics listener cannot bind.
pub async fn serve_tcp(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let background = Background::start(&state).await?;
    let listeners = crate::tcp::bind(&state).await?;
    crate::tcp::run(state.clone(), listeners, shutdown).await;
    background.stop(&state).await;
    Ok(())
}

/// The jobs that run beside the listeners: the purge, the usage flush and
/// the separate metrics listener.
struct Background {
    purge: tokio::task::JoinHandle<()>,
    usage: tokio::task::JoinHandle<()>,
    metrics: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Background {
    async fn start(state: &AppState) -> anyhow::Result<Self> {
        let purge = tokio::spawn(purge_loop(state.clone()));
        let usage = tokio::spawn(usage_loop(state.clone()));
        let metrics = match state.config.metrics_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on POW_METRICS_LISTEN={addr}: {e}")
                })?;
                tracing::info!(address = %addr, "metrics listening");
                let app = crate::routes::metrics::router().with_state(state.clone());
                Some(tokio::spawn(
                    async move { axum::serve(listener, app).await },
                ))
            }
            None => None,
        };
        Ok(Self {
            purge,
            usage,
            metrics,
        })
    }

    /// Stops the jobs after the drain.
    async fn stop(self, state: &AppState) {
        self.purge.abort();
        // Once more after the drain, so a graceful stop loses no counts. The
        // periodic flush may be aborted mid-write (its database call may even
        // still commit after this one): a flush writes whole counts and marks
        // them written only after its commit, so either order loses nothing
        // and counts nothing twice (see `token_usage`).
        self.usage.abort();
        match flush_usage(state).await {
            Ok(n) => tracing::info!(requests = n, "token request counts written"),
            Err(e) => tracing::warn!(error = %e, "cannot write the token request counts"),
        }
        if let Some(m) = self.metrics {
            m.abort();
        }
    }
}

/// Answers a connection over the caps with a bare 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let body = r#"{"error":"busy","message":"too many connections; retry shortly"}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(resp.as_bytes())).await;
}

/// What one purge pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub tokens: usize,
    pub challenges: usize,
}

/// Deletes tokens whose refresh window has closed and records of challenges
/// that have expired.
///
/// # Errors
/// Database errors.
pub async fn purge_once(state: &AppState) -> anyhow::Result<Purged> {
    let now = state.now();
    let window = state.config.refresh_window_secs();
    let tokens = state.tokens.purge(now, window).await?;
    state
        .metrics
        .tokens
        .with_label_values(&["purged"])
        .inc_by(tokens as u64);
    // Walking the keyed limiters' maps takes as long as a flood has spread
    // over addresses; off the async workers, it cannot delay /verify-token.
    let limiters = state.clone();
    tokio::task::spawn_blocking(move || {
        limiters.admin.forget_idle(now);
        limiters.rate_limits.forget_idle();
        limiters.open_challenges.forget_expired(now);
    })
    .await?;
    let challenges = state.challenge_ledger.purge_expired(now).await?;
    Ok(Purged { tokens, challenges })
}

async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.config.purge_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match purge_once(&state).await {
            Ok(p) if p.tokens + p.challenges > 0 => {
                tracing::info!(tokens = p.tokens, challenges = p.challenges, "purged");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed; will retry"),
        }
    }
}

/// Writes the request counts of tokens ([`crate::token_usage`]) to the
/// database and forgets idle ones; returns how many requests were written.
///
/// # Errors
/// Database errors; the counts stay in memory for the next attempt.
pub async fn flush_usage(state: &AppState) -> anyhow::Result<u64> {
    Ok(state
        .token_usage
        .flush(&state.tokens, state.now(), &state.metrics)
        .await?)
}

async fn usage_loop(state: AppState) {
    let mut tick = tokio::time::interval(crate::token_usage::FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = flush_usage(&state).await {
            tracing::warn!(error = %e, "cannot write the token request counts; will retry");
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed by this call,
/// not when the future is first polled: the accept loop may take a queued
/// connection before it polls its shutdown future, and a SIGTERM in that
/// window (systemd stopping a unit that has just started) would kill the
/// process instead of draining it. Call it inside the runtime, before
/// announcing that powgate listens.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (term, interrupt) = signals;
            tokio::select! {
                () = next_signal(term, "SIGTERM") => {}
                () = next_signal(interrupt, "Ctrl-C") => {}
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down; finishing in-flight requests");
    }
}

/// Waits for the next delivery of an installed signal, or forever when it
/// could not be installed.
#[cfg(unix)]
async fn next_signal(installed: std::io::Result<tokio::signal::unix::Signal>, name: &str) {
    match installed {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}
