//! Start-up, the purge job, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::db;
use crate::routes::app;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let purge = tokio::spawn(purge_loop(state.clone()));
    let metrics = match state.config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on POW_METRICS_LISTEN={addr}: {e}"))?;
            tracing::info!(address = %addr, "metrics listening");
            let app = crate::routes::metrics::router().with_state(state.clone());
            Some(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ))
        }
        None => None,
    };
    let result = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    purge.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    result.map_err(Into::into)
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
    let window = i64::from(state.config.token_purge_hours) * 3600;
    let tokens = state.tokens.purge(now, window).await?;
    state
        .metrics
        .tokens
        .with_label_values(&["purged"])
        .inc_by(tokens as u64);
    state.admin.forget_idle();
    let challenges = state
        .db
        .call(move |c| db::challenges::purge_expired(c, now))
        .await?;
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

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
