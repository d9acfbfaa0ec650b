//! Everything a request handler needs, built once at start-up.

use std::sync::Arc;

use anyhow::Context as _;

use crate::adaptive::Adaptive;
use crate::admin_auth::AdminAuth;
use crate::challenge_ledger::ChallengeLedger;
use crate::client_ip::ClientIpResolver;
use crate::clock::Clock;
use crate::config::Config;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::open_challenges::OpenChallenges;
use crate::proxy::upstream::UpstreamClient;
use crate::reputation::Reputation;
use crate::secret::random_key;
use crate::settings::LiveSettings;
use crate::stats::Stats;
use crate::store::{self, Store, StoreChange};
use crate::token_store::TokenStore;
use crate::token_usage::TokenUsage;
use crate::verifier::Verifier;

/// Shared application state; cloning is cheap.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub struct Inner {
    /// Validated start-up configuration.
    pub config: Config,
    /// Time source; a manual clock in tests.
    pub(crate) clock: Arc<dyn Clock>,
    /// HMAC-SHA256 key for challenges: `POW_SECRET`, or generated once and
    /// kept in the database so open challenges survive a restart.
    pub challenge_key: Vec<u8>,
    /// Settings an operator can change while running.
    pub settings: LiveSettings,
    /// Tokens, cached in front of the database.
    pub(crate) tokens: TokenStore,
    /// Requests each token passed, against its rate and lifetime budgets.
    pub(crate) token_usage: TokenUsage,
    /// Spent challenges.
    pub(crate) challenge_ledger: ChallengeLedger,
    /// Bounded argon2 verification, granting turns best reputation first.
    pub verifier: Verifier,
    /// Recent wrong answers per address and network: the order of turns.
    pub(crate) reputation: Reputation,
    /// Believes forwarded-IP headers only from trusted proxies.
    pub(crate) client_ip: ClientIpResolver,
    /// Admin key, sessions and login rate limit.
    pub(crate) admin: AdminAuth,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Recent activity for the admin page.
    pub(crate) stats: Stats,
    /// Per-address rate limits and the wrong-answer back-off.
    pub(crate) rate_limits: RateLimits,
    /// Challenges issued and not yet spent or expired, bounded per address
    /// and network.
    pub(crate) open_challenges: OpenChallenges,
    /// Network scores and challenge pressure: the difficulty each new
    /// challenge is quoted.
    pub(crate) adaptive: Adaptive,
    /// Proxy mode's client to the application, when `upstream` is set.
    pub(crate) upstream: Option<UpstreamClient>,
    /// The store itself, for `/healthz`; everything else reaches it
    /// through the domain stores above.
    pub(crate) store: Arc<dyn Store>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Name of the generated challenge key in the `secrets` table.
const CHALLENGE_KEY: &str = "challenge_hmac_key";

/// Enough cached tokens for a busy site, at about 200 bytes each.
const TOKEN_CACHE_CAPACITY: usize = 200_000;

impl AppState {
    /// Opens the store and assembles the state; with a store that other
    /// instances share, also starts following their changes.
    ///
    /// # Errors
    /// When the store cannot be opened or migrated.
    pub async fn new(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // Readers on the hot path plus writers; SQLite serialises writes itself.
        let connections = u32::try_from(config.verify_permits * 2 + 8).unwrap_or(32);
        let store = store::open(&config.database, connections).await?;
        Self::with_store(config, clock, store).await
    }

    /// Assembles the state on an opened store.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub(crate) async fn with_store(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let now = clock.now();
        let challenge_key = match &config.secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => store
                .get_or_create_secret(CHALLENGE_KEY, random_key(), now)
                .await
                .context("cannot read or store the challenge key")?,
        };
        let settings = LiveSettings::load(store.clone(), config.settings)
            .await
            .context("cannot read stored settings")?;
        let admin = AdminAuth::load(&config, &*store, now).await?;
        let tokens = TokenStore::new(store.clone(), TOKEN_CACHE_CAPACITY, config.token_cache_ttl);
        let challenge_ledger = ChallengeLedger::new(store.clone());
        let changes = store.changes();
        let metrics = Metrics::new();
        for collector in store.collectors() {
            metrics.register(collector);
        }
        let verifier = Verifier::new(
            config.verify_permits,
            config.verify_queue,
            config.verify_nice,
        )
        .context("cannot start the argon2 verification threads")?;
        let client_ip = ClientIpResolver::new(
            config.trusted_proxies.clone(),
            config.client_ip_header.clone(),
        );
        let rate_limits = RateLimits::new(&config.limits);
        let open_challenges = OpenChallenges::new(config.open_challenges);
        let adaptive = Adaptive::new(settings.clone());
        let upstream = config.proxy.as_ref().map(UpstreamClient::new).transpose()?;
        let state = Self {
            inner: Arc::new(Inner {
                config,
                clock,
                challenge_key,
                settings,
                tokens,
                token_usage: TokenUsage::default(),
                challenge_ledger,
                verifier,
                reputation: Reputation::default(),
                client_ip,
                admin,
                metrics,
                stats: Stats::default(),
                rate_limits,
                open_challenges,
                adaptive,
                upstream,
                store,
            }),
        };
        if let Some(changes) = changes {
            tokio::spawn(follow_changes(Arc::downgrade(&state.inner), changes));
        }
        Ok(state)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Applies the changes other instances make to the shared store to this
/// instance's caches, until the state is dropped or the store stops
/// feeding. A receiver that fell behind has lost changes, so it is
/// treated as a [`StoreChange::Resync`]. Holds the state weakly: the state
/// owns the store, whose sender keeps this loop waiting.
async fn follow_changes(
    state: std::sync::Weak<Inner>,
    mut changes: tokio::sync::broadcast::Receiver<StoreChange>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "store changes were missed; flushing every cache");
                StoreChange::Resync
            }
            Err(RecvError::Closed) => return,
        };
        let Some(state) = state.upgrade() else {
            return;
        };
        state.tokens.apply(&change);
        if matches!(change, StoreChange::Settings | StoreChange::Resync)
            && let Err(e) = state.settings.reload(state.clock.now()).await
        {
            tracing::warn!(error = %e, "cannot read the settings another instance changed");
        }
        if matches!(change, StoreChange::Secrets | StoreChange::Resync)
            && let Err(e) = state.admin.reload(&*state.store).await
        {
            tracing::warn!(error = %e, "cannot read the admin key another process reset");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::broadcast;

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{
        AddIp, Extended, Issued, RequestCount, RevokeScope, RevokedById, StoreError, TokenRecord,
    };
    use crate::token::{HashedToken, PlainToken};

    /// The real SQLite store, with a change feed the test publishes on: what
    /// a shared store's notifications from another instance look like.
    #[derive(Debug)]
    struct Fed {
        inner: SqliteStore,
        feed: broadcast::Sender<StoreChange>,
    }

    #[async_trait]
    impl Store for Fed {
        async fn spend_challenge(
            &self,
            id: [u8; 16],
            now: i64,
            exp: i64,
        ) -> Result<bool, StoreError> {
            self.inner.spend_challenge(id, now, exp).await
        }
        async fn purge_spent_challenges(&self, now: i64) -> Result<usize, StoreError> {
            self.inner.purge_spent_challenges(now).await
        }
        async fn issue_token(
            &self,
            hash: HashedToken,
            now: i64,
            expires_at: i64,
            issuer_ip: String,
            difficulty: u64,
            max_tokens_per_ip: u32,
        ) -> Result<Issued, StoreError> {
            self.inner
                .issue_token(
                    hash,
                    now,
                    expires_at,
                    issuer_ip,
                    difficulty,
                    max_tokens_per_ip,
                )
                .await
        }
        async fn find_token(&self, hash: HashedToken) -> Result<Option<TokenRecord>, StoreError> {
            self.inner.find_token(hash).await
        }
        async fn find_token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
            self.inner.find_token_by_id(id).await
        }
        async fn add_token_address(
            &self,
            token_id: i64,
            ip: String,
            now: i64,
            max: u32,
        ) -> Result<AddIp, StoreError> {
            self.inner.add_token_address(token_id, ip, now, max).await
        }
        async fn refresh_token(
            &self,
            token_id: i64,
            ip: String,
            now: i64,
            expires_at: i64,
            max_ips: u32,
            max_tokens_per_ip: u32,
        ) -> Result<Option<Extended>, StoreError> {
            self.inner
                .refresh_token(token_id, ip, now, expires_at, max_ips, max_tokens_per_ip)
                .await
        }
        async fn write_request_counts(&self, counts: Vec<RequestCount>) -> Result<(), StoreError> {
            self.inner.write_request_counts(counts).await
        }
        async fn revoke(
            &self,
            scope: RevokeScope,
            now: i64,
        ) -> Result<Vec<HashedToken>, StoreError> {
            self.inner.revoke(scope, now).await
        }
        async fn revoke_by_id(&self, id: i64, now: i64) -> Result<RevokedById, StoreError> {
            self.inner.revoke_by_id(id, now).await
        }
        async fn expire_all(&self, now: i64) -> Result<usize, StoreError> {
            self.inner.expire_all(now).await
        }
        async fn list_tokens(
            &self,
            limit: u32,
            offset: u64,
        ) -> Result<(Vec<TokenRecord>, i64), StoreError> {
            self.inner.list_tokens(limit, offset).await
        }
        async fn count_active_tokens(&self, now: i64) -> Result<i64, StoreError> {
            self.inner.count_active_tokens(now).await
        }
        async fn purge_tokens(&self, now: i64, after: i64) -> Result<Vec<HashedToken>, StoreError> {
            self.inner.purge_tokens(now, after).await
        }
        async fn get_or_create_secret(
            &self,
            name: &str,
            candidate: Vec<u8>,
            now: i64,
        ) -> Result<Vec<u8>, StoreError> {
            self.inner.get_or_create_secret(name, candidate, now).await
        }
        async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get_secret(name).await
        }
        async fn set_secret(&self, name: &str, value: Vec<u8>, now: i64) -> Result<(), StoreError> {
            self.inner.set_secret(name, value, now).await
        }
        async fn load_settings(&self) -> Result<Vec<(String, i64)>, StoreError> {
            self.inner.load_settings().await
        }
        async fn store_settings(
            &self,
            values: Vec<(&'static str, i64)>,
            now: i64,
        ) -> Result<(), StoreError> {
            self.inner.store_settings(values, now).await
        }
        async fn clear_settings(&self) -> Result<(), StoreError> {
            self.inner.clear_settings().await
        }
        fn changes(&self) -> Option<broadcast::Receiver<StoreChange>> {
            Some(self.feed.subscribe())
        }
    }

    const NOW: i64 = 1_700_000_000;

    /// This instance's state on a fed store, another instance's store on
    /// the same file, and the feed that carries the other's changes here.
    async fn two_instances() -> (
        tempfile::TempDir,
        AppState,
        SqliteStore,
        broadcast::Sender<StoreChange>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("powgate.db");
        let raw = crate::config::RawConfig {
            database: path.clone(),
            ..crate::config::RawConfig::default()
        };
        let (feed, _) = broadcast::channel(16);
        let here = Fed {
            inner: SqliteStore::open(&path, 2).unwrap(),
            feed: feed.clone(),
        };
        let clock = Arc::new(crate::clock::ManualClock::new());
        let state = AppState::with_store(raw.validate().unwrap(), clock, Arc::new(here))
            .await
            .unwrap();
        let other = SqliteStore::open(&path, 2).unwrap();
        (dir, state, other, feed)
    }

    /// Polls `f` for up to a second: the change is applied by a task.
    async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..100 {
            if f().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    async fn issue_here(state: &AppState) -> HashedToken {
        let hash = PlainToken::generate().hashed();
        state
            .tokens
            .issue(hash, NOW, NOW + 3_600, "192.0.2.1".into(), 1, 0)
            .await
            .unwrap();
        hash
    }

    async fn state_of(state: &AppState, hash: HashedToken) -> Option<TokenState> {
        let rec = state.tokens.lookup(hash).await.unwrap()?;
        Some(rec.state(NOW, 60))
    }

    use crate::store::TokenState;

    /// Without the feed, a token revoked on another instance would keep
    /// passing here from the cache until it expired.
    #[tokio::test]
    async fn a_revocation_on_another_instance_reaches_this_cache() {
        let (_dir, state, other, feed) = two_instances().await;
        let hash = issue_here(&state).await;
        assert_eq!(state_of(&state, hash).await, Some(TokenState::Active));
        let id = other.find_token(hash).await.unwrap().unwrap().id;
        other.revoke_by_id(id, NOW).await.unwrap();
        assert_eq!(
            state_of(&state, hash).await,
            Some(TokenState::Active),
            "cached: this instance does not read the store for it"
        );

        feed.send(StoreChange::Token { hash }).unwrap();
        assert!(
            eventually(async || state_of(&state, hash).await == Some(TokenState::Revoked)).await
        );
    }

    /// A token issued on another instance whose hash was looked up here
    /// before (remembered as absent) must be found once its change arrives.
    #[tokio::test]
    async fn a_token_issued_on_another_instance_is_no_longer_absent_here() {
        let (_dir, state, other, feed) = two_instances().await;
        let hash = PlainToken::generate().hashed();
        assert_eq!(state_of(&state, hash).await, None);
        other
            .issue_token(hash, NOW, NOW + 3_600, "192.0.2.1".into(), 1, 0)
            .await
            .unwrap();
        assert_eq!(state_of(&state, hash).await, None, "remembered as absent");

        feed.send(StoreChange::Token { hash }).unwrap();
        assert!(
            eventually(async || state_of(&state, hash).await == Some(TokenState::Active)).await
        );
    }

    /// Expire-all on another instance names no token: `AllTokens` (and a
    /// `Resync` after missed changes) must drop the whole cache, and the
    /// absent hashes with it.
    #[tokio::test]
    async fn all_tokens_and_resync_flush_the_whole_cache() {
        for change in [StoreChange::AllTokens, StoreChange::Resync] {
            let (_dir, state, other, feed) = two_instances().await;
            let hash = issue_here(&state).await;
            assert_eq!(state_of(&state, hash).await, Some(TokenState::Active));
            let unknown = PlainToken::generate().hashed();
            assert_eq!(state_of(&state, unknown).await, None);
            other.expire_all(NOW).await.unwrap();
            other
                .issue_token(unknown, NOW - 10, NOW + 3_600, "192.0.2.2".into(), 1, 0)
                .await
                .unwrap();

            feed.send(change.clone()).unwrap();
            let expired = TokenState::Expired { refreshable: true };
            assert!(
                eventually(async || state_of(&state, hash).await == Some(expired)).await,
                "{change:?}"
            );
            assert_eq!(
                state_of(&state, unknown).await,
                Some(TokenState::Active),
                "{change:?}"
            );
        }
    }

    /// A difficulty raised on another instance must apply to the next
    /// challenge here, and so must a return to the configuration.
    #[tokio::test]
    async fn a_settings_change_on_another_instance_is_read_again() {
        for change in [StoreChange::Settings, StoreChange::Resync] {
            let (_dir, state, other, feed) = two_instances().await;
            let configured = state.settings.get().difficulty.get();
            let raised = configured + 1;
            other
                .store_settings(vec![("difficulty", i64::try_from(raised).unwrap())], NOW)
                .await
                .unwrap();
            feed.send(change.clone()).unwrap();
            assert!(
                eventually(async || state.settings.get().difficulty.get() == raised).await,
                "{change:?}"
            );
            assert_eq!(&*state.settings.overridden(), ["difficulty"]);
            let (_, last) = state.settings.get_with_change();
            assert_eq!(last.map(|c| c.previous.get()), Some(configured));

            other.clear_settings().await.unwrap();
            feed.send(change.clone()).unwrap();
            assert!(eventually(async || state.settings.get().difficulty.get() == configured).await);
            assert!(state.settings.overridden().is_empty());
        }
    }

    /// A receiver that fell behind has lost changes it can never get back:
    /// it must flush as for a `Resync` rather than go on with stale caches.
    #[tokio::test]
    async fn a_lagging_feed_flushes_every_cache() {
        let (_dir, state, other, feed) = two_instances().await;
        let hash = issue_here(&state).await;
        assert_eq!(state_of(&state, hash).await, Some(TokenState::Active));
        other.expire_all(NOW).await.unwrap();
        // More settings changes than the channel holds, none naming tokens,
        // sent before the follower can run: it lags.
        for _ in 0..64 {
            let _ = feed.send(StoreChange::Settings);
        }
        let expired = TokenState::Expired { refreshable: true };
        assert!(eventually(async || state_of(&state, hash).await == Some(expired)).await);
    }
}
