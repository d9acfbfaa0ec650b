//! Everything a request handler needs, built once at start-up.

use std::sync::Arc;

use anyhow::Context as _;

use crate::adaptive::Adaptive;
use crate::admin_auth::AdminAuth;
use crate::challenge_ledger::ChallengeLedger;
use crate::client_ip::ClientIpResolver;
use crate::clock::Clock;
use crate::config::{Config, Database};
use crate::db::{self, Db};
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::open_challenges::OpenChallenges;
use crate::proxy::upstream::UpstreamClient;
use crate::reputation::Reputation;
use crate::secret::random_key;
use crate::settings::LiveSettings;
use crate::stats::Stats;
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
    /// Opens the database and assembles the state.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // Readers on the hot path plus writers; SQLite serialises writes itself.
        let connections = u32::try_from(config.verify_permits * 2 + 8).unwrap_or(32);
        let db = match &config.database {
            Database::Sqlite(path) => Db::open(path, connections)?,
            Database::Postgres(url) => {
                anyhow::bail!("database {url}: the PostgreSQL store is not wired in yet")
            }
        };
        let now = clock.now();
        let challenge_key = match &config.secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => db
                .call_blocking(|c| db::secrets::get_or_create(c, CHALLENGE_KEY, now, random_key))
                .context("cannot read or store the challenge key")?,
        };
        let settings =
            LiveSettings::load(&db, config.settings).context("cannot read stored settings")?;
        let admin = AdminAuth::load(&config, &db, now)?;
        let tokens = TokenStore::new(db.clone(), TOKEN_CACHE_CAPACITY);
        let challenge_ledger = ChallengeLedger::new(db.clone());
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
        Ok(Self {
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
                metrics: Metrics::new(),
                stats: Stats::default(),
                rate_limits,
                open_challenges,
                adaptive,
                upstream,
            }),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
