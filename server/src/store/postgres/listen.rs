//! The other instances' changes: every instance `LISTEN`s on a connection
//! of its own (a pooled one would be recycled, and its notifications lost
//! with it) and turns each notification into [`StoreChange`]s for its
//! caches.
//!
//! PostgreSQL never replays a notification sent while a listener was away.
//! So after a lost connection the listener reconnects, and once it listens
//! again it sends [`StoreChange::Resync`]: every cache is flushed and the
//! settings read again, which covers whatever was missed. Until then the
//! caches' TTL bounds how stale they can be.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Notification};

use super::PostgresUrl;
use crate::store::StoreChange;
use crate::token::HashedToken;

/// The channel powgate notifies and listens on.
pub(super) const CHANNEL: &str = "powgate_changes";

/// More tokens than this in one change are announced as "all tokens": a
/// notification's payload is limited to 8000 bytes, and each hash takes 64.
pub(super) const MAX_TOKENS_PER_NOTIFICATION: usize = 64;

/// The listening connection's `application_name`.
pub(super) const LISTENER_NAME: &str = "powgate listener";

/// How often the listening connection is checked: a connection cut without
/// a word (a firewall dropping it) would otherwise look alive for hours.
const PING_EVERY: Duration = Duration::from_secs(10);

/// How long a reconnection waits at most between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a notification announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Change {
    /// These tokens changed (hashes in hex).
    Tokens {
        #[serde(with = "hex_hashes")]
        hashes: Vec<HashedToken>,
    },
    /// Tokens changed that are not listed.
    AllTokens,
    /// The live settings changed.
    Settings,
    /// A secret changed (the admin key was reset).
    Secrets,
}

/// A notification's payload.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The sending instance, which skips its own.
    from: u64,
    /// When it was sent, in microseconds since the epoch: the lag shown in
    /// `/metrics`, across machines as good as their clocks.
    sent_us: i64,
    change: Change,
}

mod hex_hashes {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::token::HashedToken;

    pub(super) fn serialize<S: Serializer>(v: &[HashedToken], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|h| hex::encode(h.0)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<HashedToken>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(s, &mut h).map_err(serde::de::Error::custom)?;
                Ok(HashedToken(h))
            })
            .collect()
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The payload announcing `change` from `instance`.
pub(super) fn payload(instance: u64, change: &Change) -> String {
    serde_json::to_string(&Payload {
        from: instance,
        sent_us: now_us(),
        change: change.clone(),
    })
    // Plain data with string keys: serde_json cannot fail on it, and the
    // tests below serialise every kind.
    .expect("a change notification serialises")
}

/// The listener's state, shared with `/healthz` and `/metrics`.
#[derive(Debug)]
pub(super) struct Listener {
    /// 1 while notifications can arrive, 0 while reconnecting.
    pub(super) listening: prometheus::IntGauge,
    /// Seconds from a NOTIFY on another instance to its arrival here.
    pub(super) lag: prometheus::Histogram,
    /// Reconnections after a lost listening connection.
    pub(super) resyncs: prometheus::IntCounter,
}

impl Listener {
    /// Listens once, failing if it cannot, then keeps listening in the
    /// background for as long as `changes` has a sender elsewhere.
    ///
    /// # Errors
    /// When the first connection or `LISTEN` fails.
    pub(super) async fn start(
        url: PostgresUrl,
        changes: broadcast::Sender<StoreChange>,
        instance: u64,
    ) -> anyhow::Result<Arc<Self>> {
        let listener = Arc::new(Self {
            listening: prometheus::IntGauge::new(
                "powgate_store_listening",
                "1 while this instance listens for the other instances' changes, 0 while it reconnects",
            )?,
            lag: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "powgate_store_notification_lag_seconds",
                    "Time from another instance's NOTIFY to its arrival here",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            )?,
            resyncs: prometheus::IntCounter::new(
                "powgate_store_resyncs_total",
                "Caches flushed after the listening connection to PostgreSQL was lost",
            )?,
        });
        let session = Session::open(&url).await?;
        listener.listening.set(1);
        tokio::spawn(keep_listening(
            url,
            changes,
            instance,
            Arc::clone(&listener),
            session,
        ));
        Ok(listener)
    }

    fn receive(&self, n: &Notification, instance: u64, changes: &broadcast::Sender<StoreChange>) {
        let Ok(payload) = serde_json::from_str::<Payload>(n.payload()) else {
            // Not understood (a newer powgate's?): flushing is always safe.
            tracing::warn!("unreadable change notification; flushing the caches");
            let _ = changes.send(StoreChange::Resync);
            return;
        };
        if payload.from == instance {
            return;
        }
        #[allow(clippy::cast_precision_loss)] // microseconds, far below 2^52
        self.lag
            .observe(now_us().saturating_sub(payload.sent_us).max(0) as f64 / 1e6);
        // A send fails only when nothing subscribes, which is fine.
        match payload.change {
            Change::Tokens { hashes } => {
                for hash in hashes {
                    let _ = changes.send(StoreChange::Token { hash });
                }
            }
            Change::AllTokens => drop(changes.send(StoreChange::AllTokens)),
            Change::Settings => drop(changes.send(StoreChange::Settings)),
            Change::Secrets => drop(changes.send(StoreChange::Secrets)),
        }
    }
}

/// One listening connection: its client (dropping it closes the
/// connection) and the notifications its driver task forwards.
struct Session {
    client: tokio_postgres::Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
}

impl Session {
    async fn open(url: &PostgresUrl) -> anyhow::Result<Self> {
        let mut config = url.config().clone();
        // Told apart from the pool's in pg_stat_activity.
        config.application_name(LISTENER_NAME);
        let (client, mut connection) = config.connect(url.connector()?).await?;
        let (tx, notifications) = mpsc::unbounded_channel();
        // The connection does its I/O only while polled: this task polls it
        // and ends, closing the channel, when the connection ends.
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx.send(n).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the PostgreSQL listening connection failed");
                        return;
                    }
                    None => return,
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(Self {
            client,
            notifications,
        })
    }

    /// Forwards notifications until the connection is lost.
    async fn run(
        &mut self,
        listener: &Arc<Listener>,
        instance: u64,
        changes: &broadcast::Sender<StoreChange>,
    ) {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                n = self.notifications.recv() => match n {
                    Some(n) => listener.receive(&n, instance, changes),
                    None => return,
                },
                _ = ping.tick() => {
                    if Arc::strong_count(listener) == 1 {
                        return; // the store is gone
                    }
                    let alive = tokio::time::timeout(PING_EVERY, self.client.simple_query("")).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        tracing::warn!("the PostgreSQL listening connection stopped answering");
                        return;
                    }
                }
            }
        }
    }
}

async fn keep_listening(
    url: PostgresUrl,
    changes: broadcast::Sender<StoreChange>,
    instance: u64,
    listener: Arc<Listener>,
    mut session: Session,
) {
    loop {
        session.run(&listener, instance, &changes).await;
        drop(session);
        listener.listening.set(0);
        if Arc::strong_count(&listener) == 1 {
            return; // the store is gone
        }
        let mut backoff = Duration::from_millis(100);
        session = loop {
            if Arc::strong_count(&listener) == 1 {
                return; // the store is gone
            }
            match Session::open(&url).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, database = %url, "cannot listen for changes; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        listener.listening.set(1);
        listener.resyncs.inc();
        tracing::info!(database = %url, "listening for changes again; flushing the caches");
        // Anything sent while nobody listened is lost: start afresh.
        let _ = changes.send(StoreChange::Resync);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_of_the_most_hashes_one_notification_carries_fits_in_8000_bytes() {
        let hashes = vec![HashedToken([0xab; 32]); MAX_TOKENS_PER_NOTIFICATION];
        let p = payload(
            u64::MAX,
            &Change::Tokens {
                hashes: hashes.clone(),
            },
        );
        assert!(p.len() < 8000, "{}", p.len());
        let back: Payload = serde_json::from_str(&p).unwrap();
        assert_eq!(back.change, Change::Tokens { hashes });
    }

    #[test]
    fn every_kind_of_change_goes_through_a_payload_and_back() {
        for change in [Change::AllTokens, Change::Settings, Change::Secrets] {
            let back: Payload = serde_json::from_str(&payload(7, &change)).unwrap();
            assert_eq!((back.from, back.change), (7, change));
        }
    }
}
