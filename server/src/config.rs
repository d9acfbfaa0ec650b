//! Configuration: built-in defaults, then `config.toml`, then environment
//! variables, each layer overriding the one before.
//!
//! Parsing happens in two passes, as ripgrep does with its flags: figment
//! fills a loosely typed [`RawConfig`], and [`RawConfig::validate`] turns it
//! into a [`Config`] whose every field is known to be in range. Errors name
//! the environment variable and the `config.toml` key, and the allowed range.
//!
//! The live settings have no fields here: [`settings::SPECS`] names their
//! keys, so [`RawConfig::load`] reads each by its spec, and adding a live
//! setting touches only that table. Because serde's `deny_unknown_fields`
//! cannot know those keys, unknown keys are refused by hand, in
//! [`RawConfig::load`], with the same clear error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use pow::Argon2Params;
use serde::{Deserialize, Serialize};

use crate::limits::ConnCaps;
use crate::proxy::upstream::Upstream;
use crate::secret::Secret;
use crate::settings::{SPECS, Settings};
pub use crate::store::postgres::url::PostgresUrl;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that was refused, with the key that carried it.
    #[error("invalid {env} (`{toml}` in config.toml): {message}")]
    Value {
        env: String,
        toml: String,
        message: String,
    },
    /// The file named by `--config` / `POW_CONFIG` is not there: running on
    /// the defaults instead would silently use another database.
    #[error(
        "configuration file {} does not exist; create it (see config.toml.example) or leave out --config / POW_CONFIG",
        .0.display()
    )]
    MissingFile(PathBuf),
}

impl ConfigError {
    pub(crate) fn new(toml: &str, message: impl Into<String>) -> Self {
        Self::Value {
            env: env_name(toml),
            toml: toml.to_owned(),
            message: message.into(),
        }
    }
}

/// The environment variable for a `config.toml` key.
fn env_name(toml_key: &str) -> String {
    match toml_key.strip_prefix("argon2.") {
        Some(k) => format!("ARGON2_{}", k.to_uppercase()),
        None => format!("POW_{}", toml_key.to_uppercase()),
    }
}

/// Waiters in the verification line by default. A waiter is a few dozen
/// bytes plus its open request, so 1 024 cost little, while a line that
/// short of a busy minute's visitors would turn correct answers away to
/// resubmit.
const DEFAULT_VERIFY_QUEUE: u64 = 1024;

/// The ticket bits as operators write them: `auto` or a number. Signed, so
/// that `-1` gets the range message rather than a type error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TicketBitsValue {
    Number(i64),
    Name(String),
}

/// A list given either as a TOML array or as one comma-separated string
/// (the only form an environment variable can take).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StringList {
    List(Vec<String>),
    Joined(String),
}

impl StringList {
    fn items(&self) -> Vec<String> {
        match self {
            Self::List(v) => v.iter().map(|s| s.trim().to_owned()).collect(),
            Self::Joined(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Configuration as read, before validation. Field names are the
/// `config.toml` keys; environment variables are the same names upper-cased
/// with a `POW_` prefix (`ARGON2_` for the `[argon2]` table).
///
/// Not `deny_unknown_fields`: the live settings' keys are not fields, and
/// [`Self::load`] refuses unknown keys itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawConfig {
    pub listen: String,
    pub database: PathBuf,
    pub public_url: Option<String>,
    pub site_name: Option<String>,
    pub contact_url: Option<String>,
    pub secret: Option<String>,
    pub token_purge_hours: u64,
    pub trusted_proxies: StringList,
    pub client_ip_header: String,
    pub cookie_domain: Option<String>,
    pub redirect_domains: StringList,
    pub allowlist: Vec<crate::allowlist::RawRule>,
    pub admin_key: Option<String>,
    pub metrics_listen: Option<String>,
    pub verify_permits: Option<u64>,
    pub verify_queue: Option<u64>,
    pub verify_nice: u64,
    pub purge_interval_secs: u64,
    pub token_cache_secs: u64,
    pub rate_challenges_per_minute: u64,
    pub rate_solutions_per_minute: u64,
    pub wrong_answer_backoff_secs: u64,
    pub max_open_challenges_per_ip: u64,
    pub max_open_challenges_per_network: u64,
    pub challenge_grace_secs: u64,
    pub ticket_bits: TicketBitsValue,
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
    pub max_connections_per_network: u64,
    pub reserved_proxy_connections: Option<u64>,
    pub max_body_bytes: u64,
    pub header_read_timeout_secs: u64,
    pub upstream: Option<String>,
    pub upstream_ca_file: Option<PathBuf>,
    pub upstream_sni: Option<String>,
    pub upstream_host: Option<String>,
    pub proxy_prefix: String,
    pub proxy_connect_timeout_secs: u64,
    pub proxy_response_timeout_secs: u64,
    pub proxy_max_body_bytes: u64,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// `[[tcp]]`: TCP gates run beside the HTTP service ([`crate::tcp`]).
    pub tcp: Vec<crate::tcp::RawTcpGate>,
    pub argon2: RawArgon2,
    /// The live settings that were set, by `config.toml` key (see
    /// [`settings::SPECS`]), as written: a number, or text such as a
    /// difficulty preset. Unset ones take their spec's default. Public
    /// only so that struct-update syntax works outside the crate; set it
    /// with [`Self::set_live`].
    #[serde(skip)]
    pub live: BTreeMap<&'static str, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgon2 {
    pub time_cost: u64,
    pub memory_kb: u64,
    pub parallelism: u64,
    pub hash_length: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database: "powgate.db".into(),
            public_url: None,
            site_name: None,
            contact_url: None,
            secret: None,
            token_purge_hours: 48,
            trusted_proxies: StringList::List(vec!["127.0.0.0/8".into(), "::1/128".into()]),
            client_ip_header: "X-Real-IP".into(),
            cookie_domain: None,
            redirect_domains: StringList::List(Vec::new()),
            allowlist: crate::allowlist::RawRule::defaults(),
            admin_key: None,
            metrics_listen: None,
            verify_permits: None,
            verify_queue: None,
            verify_nice: 10,
            purge_interval_secs: 60,
            token_cache_secs: 30,
            rate_challenges_per_minute: 60,
            rate_solutions_per_minute: 30,
            wrong_answer_backoff_secs: 5,
            max_open_challenges_per_ip: 32,
            max_open_challenges_per_network: 256,
            challenge_grace_secs: 120,
            ticket_bits: TicketBitsValue::Name("auto".into()),
            max_connections: 4096,
            max_connections_per_ip: 64,
            max_connections_per_network: 256,
            reserved_proxy_connections: None,
            max_body_bytes: 8192,
            header_read_timeout_secs: 10,
            upstream: None,
            upstream_ca_file: None,
            upstream_sni: None,
            upstream_host: None,
            proxy_prefix: DEFAULT_PROXY_PREFIX.into(),
            proxy_connect_timeout_secs: 5,
            proxy_response_timeout_secs: 60,
            proxy_max_body_bytes: 0,
            request_timeout_secs: 30,
            shutdown_grace_secs: 10,
            tcp: Vec::new(),
            argon2: RawArgon2 {
                time_cost: Argon2Params::DEFAULT_TIME_COST.into(),
                memory_kb: Argon2Params::DEFAULT_MEMORY_KIB.into(),
                parallelism: Argon2Params::DEFAULT_PARALLELISM.into(),
                hash_length: Argon2Params::DEFAULT_HASH_LENGTH.into(),
            },
            live: BTreeMap::new(),
        }
    }
}

/// Where powgate keeps its tokens, spent challenges, secrets and settings.
#[derive(Debug, Clone)]
pub enum Database {
    /// An SQLite file, created on first start: one instance, nothing to run.
    Sqlite(PathBuf),
    /// A PostgreSQL server that several instances share (boxed: it is
    /// large, and a path is not).
    Postgres(Box<PostgresUrl>),
}

impl Database {
    /// A `postgres://` or `postgresql://` URL selects PostgreSQL; anything
    /// else is an SQLite file's path.
    fn parse(raw: PathBuf) -> Result<Self, ConfigError> {
        match raw.to_str() {
            Some(s) if PostgresUrl::is_postgres(s) => PostgresUrl::parse(s)
                .map(|url| Self::Postgres(Box::new(url)))
                .map_err(|message| ConfigError::new("database", message)),
            _ => Ok(Self::Sqlite(raw)),
        }
    }
}

impl std::fmt::Display for Database {
    /// The file's path, or the server's URL without its password: safe to log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The SQLite file or the PostgreSQL server.
    pub database: Database,
    /// The public base URL when powgate sits behind a proxy or prefix; decides
    /// whether cookies are `Secure`.
    pub(crate) public_url: Option<String>,
    /// The site's name as visitors know it, shown on the challenge page;
    /// unset: the page names the host it is on.
    pub(crate) site_name: Option<String>,
    /// Where visitors who cannot pass reach the operator (`http`, `https`
    /// or `mailto` only: the page links to it).
    pub(crate) contact_url: Option<String>,
    /// Challenge signing key; generated and stored in the database when unset.
    pub(crate) secret: Option<Secret>,
    /// Start-up values of the settings the admin page can change live.
    pub(crate) settings: Settings,
    /// Hours after expiry during which a token can still be refreshed.
    pub(crate) token_purge_hours: u32,
    pub argon2: Argon2Params,
    /// Peers whose client-IP header is believed.
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// Header carrying the client IP when the peer is a trusted proxy.
    pub(crate) client_ip_header: HeaderName,
    /// `Domain` attribute of the token cookie.
    pub(crate) cookie_domain: Option<String>,
    /// Hosts besides the request's own that `?redir=` may point to; a
    /// leading dot allows subdomains.
    pub(crate) redirect_domains: Vec<String>,
    /// Requests that pass `/verify-token` without a token.
    pub(crate) allowlist: Vec<crate::allowlist::Rule>,
    /// Admin key; generated at first start (only its hash is stored) when unset.
    pub admin_key: Option<Secret>,
    /// Separate address for `/metrics`; on the main listener when unset.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// argon2 verifications running at once.
    pub(crate) verify_permits: usize,
    /// Submissions that may wait for a verification turn (see
    /// [`crate::verifier`]); when full, a better newcomer evicts the worst
    /// waiter and a worse one is told 503 `queued`.
    pub(crate) verify_queue: usize,
    /// Nice value of the argon2 threads, so that a flood of solutions takes
    /// CPU from nothing but itself.
    pub(crate) verify_nice: i32,
    /// How often expired tokens and spent challenges are purged.
    pub(crate) purge_interval: Duration,
    /// How long a token read from a shared store (PostgreSQL) is answered
    /// from memory before it is read again: the backstop for a change whose
    /// notification was lost. `None` with SQLite, which only this process
    /// writes, so its cache is exact without one.
    pub(crate) token_cache_ttl: Option<Duration>,
    /// Limits against floods and slow clients.
    pub(crate) limits: Limits,
    /// Bounds on challenges issued and not yet spent or expired.
    pub(crate) open_challenges: OpenChallengeLimits,
    /// How long after a difficulty change challenges issued at the previous
    /// difficulty are still accepted, so visitors mid-solve finish.
    pub(crate) challenge_grace: Duration,
    /// Leading zero bits of the admission ticket a solution must carry
    /// (`pow::ticket`); 0 asks for none.
    pub ticket_bits: u8,
    /// Proxy mode: the application powgate stands in front of, when set.
    pub(crate) proxy: Option<ProxyConfig>,
    /// TCP gates run beside the HTTP service.
    pub(crate) tcp: Vec<crate::tcp::TcpGate>,
}

/// Where powgate's own routes live in proxy mode unless `proxy_prefix` says
/// otherwise: a dot directory, which applications rarely serve.
pub const DEFAULT_PROXY_PREFIX: &str = "/.powgate/";

/// How an https upstream's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamTls {
    /// PEM file of the CAs to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The name to send and check instead of the upstream URL's host.
    pub sni: Option<String>,
}

/// Proxy mode: powgate serves its own routes under `prefix` and passes
/// every other request that the gate lets through to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyConfig {
    pub upstream: Upstream,
    /// How an https upstream's certificate is checked.
    pub tls: UpstreamTls,
    /// The `Host` sent to the upstream instead of the visitor's, when the
    /// application expects its own name (`X-Forwarded-Host` keeps the
    /// visitor's).
    pub host: Option<HeaderValue>,
    /// Starts and ends with `/`, such as `/.powgate/`.
    pub prefix: String,
    /// Time to open a connection to the upstream.
    pub connect_timeout: Duration,
    /// Time the upstream has to send its response headers. Bodies have no
    /// time limit: downloads, long polls and event streams stay open.
    pub response_timeout: Duration,
    /// Largest proxied request body; `None` for no limit.
    pub max_body_bytes: Option<u64>,
}

/// Most challenges that may be open (issued, not yet spent, not expired) at
/// once. 0 turns a bound off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenChallengeLimits {
    /// Per client address (IPv6 by /64).
    pub per_ip: u32,
    /// Per network: IPv4 /24, IPv6 /48.
    pub per_network: u32,
}

/// Limits against floods, garbage and slow clients. A rate of 0 turns that
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Challenges per client address (IPv6 by /64) per minute.
    pub challenges_per_minute: u32,
    /// Solution submissions per client address per minute.
    pub solutions_per_minute: u32,
    /// Seconds an address may not submit after a wrong answer.
    pub wrong_answer_backoff: Duration,
    /// Open connections: in total, per peer and network, and the share
    /// kept for trusted proxies.
    pub connections: ConnCaps,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Time a request may take, body included.
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

fn ranged(key: &str, v: u64, min: u64, max: u64, unit: &str) -> Result<u64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(
            key,
            format!("{v} is out of range: allowed {min}..={max}{unit}"),
        ))
    }
}

fn ranged_u32(key: &str, v: u64, min: u32, max: u32, unit: &str) -> Result<u32, ConfigError> {
    ranged(key, v, min.into(), max.into(), unit).map(|v| u32::try_from(v).unwrap_or(max))
}

/// The error for a key that is neither a field of [`RawConfig`] nor a live
/// setting's: named with where it was set, and the keys there are.
fn unknown_key(figment: &Figment, key: &str, fields: &serde_json::Value) -> ConfigError {
    let source = figment
        .find_metadata(key)
        .map_or_else(String::new, |m| match &m.source {
            Some(path) => format!(" (set in {} {path})", m.name),
            None => format!(" (set in {})", m.name),
        });
    let mut known: Vec<&str> = fields
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    known.extend(SPECS.iter().map(|s| s.config_key));
    known.sort_unstable();
    ConfigError::new(
        key,
        format!(
            "unknown key{source}; remove it or correct its spelling. Known keys: {}",
            known.join(", ")
        ),
    )
}

/// `auto` is the bits whose SHA-256 work matches one argon2 hash at the
/// configured parameters, so a ticket keeps costing a garbage sender what
/// its verification would cost powgate when the parameters change.
fn ticket_bits(v: &TicketBitsValue, argon2: Argon2Params) -> Result<u8, ConfigError> {
    let max = pow::ticket::MAX_BITS;
    let bits = match v {
        TicketBitsValue::Name(n) if n.trim().eq_ignore_ascii_case("auto") => {
            return Ok(pow::ticket::bits_for(argon2));
        }
        TicketBitsValue::Name(n) => n.trim().parse::<i64>().map_err(|_| {
            ConfigError::new(
                "ticket_bits",
                format!("{n:?} is neither auto nor a number of bits 0..={max} (0 = off)"),
            )
        })?,
        TicketBitsValue::Number(b) => *b,
    };
    u8::try_from(bits)
        .ok()
        .filter(|b| *b <= max)
        .ok_or_else(|| {
            ConfigError::new(
                "ticket_bits",
                format!("{bits} is out of range: allowed 0..={max} bits (0 = off), or auto"),
            )
        })
}

impl RawConfig {
    /// Reads the layers. `file` is the path given with `--config` /
    /// `POW_CONFIG`, which must exist; without one, `config.toml` in the
    /// working directory is read if it is there.
    ///
    /// # Errors
    /// [`ConfigError::MissingFile`], or a [`ConfigError`] naming the key
    /// whose value has the wrong type.
    pub(crate) fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(path) = file.filter(|p| !p.exists()) {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        let figment = Self::figment(file);
        let extract_error = |e: figment::Error| {
            let key = e.path.join(".");
            ConfigError::new(if key.is_empty() { "config" } else { &key }, e.to_string())
        };
        let mut raw: Self = figment.extract().map_err(extract_error)?;
        let fields = serde_json::to_value(Self::default())
            .map_err(|e| ConfigError::new("config", format!("cannot read: {e}")))?;
        let is_field = |key: &str| fields.get(key).is_some();
        let keys: figment::value::Dict = figment.extract().map_err(extract_error)?;
        for key in keys.keys().filter(|k| !is_field(k)) {
            let Some(spec) = SPECS.iter().find(|s| s.config_key == key) else {
                return Err(unknown_key(&figment, key, &fields));
            };
            let value = figment
                .extract_inner::<serde_json::Value>(key)
                .map_err(extract_error)?;
            raw.live.insert(spec.config_key, value);
        }
        Ok(raw)
    }

    /// Sets a live setting as `config.toml` or the environment would, by
    /// its `config_key` (for example `"difficulty_level"`, to `4` or
    /// `"high"`).
    ///
    /// # Panics
    /// When no spec has that key: a typo in the caller, not input.
    pub fn set_live(&mut self, config_key: &str, value: impl Into<serde_json::Value>) {
        let spec = SPECS
            .iter()
            .find(|s| s.config_key == config_key)
            .unwrap_or_else(|| panic!("no live setting is read from `{config_key}`"));
        self.live.insert(spec.config_key, value.into());
    }

    /// The figment layers, in order of precedence (later wins).
    pub(crate) fn figment(file: Option<&Path>) -> Figment {
        let file = file.map_or_else(|| PathBuf::from("config.toml"), Path::to_path_buf);
        Figment::from(Serialized::defaults(Self::default()))
            .merge(Toml::file(file))
            .merge(
                // POW_CONFIG names the file itself, so it is not a setting.
                Env::prefixed("POW_").ignore(&["config"]),
            )
            .merge(Env::prefixed("ARGON2_").map(|k| format!("argon2.{k}").into()))
    }

    /// The start-up values of the live settings: each one set is read as
    /// its [`settings::SettingSpec`] says and checked against its range;
    /// the others keep the table's default.
    fn live_settings(&self) -> Result<Settings, ConfigError> {
        let mut settings = Settings::defaults();
        for (&key, value) in &self.live {
            let Some(spec) = SPECS.iter().find(|s| s.config_key == key) else {
                return Err(ConfigError::new(key, "not a live setting's key"));
            };
            match value {
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .ok_or_else(|| {
                        format!("{n} is not a whole number in {}..={}", spec.min, spec.max)
                    }),
                serde_json::Value::String(s) => spec.parse_text(s).map(i128::from),
                other => Err(format!("expected a whole number, got {other}")),
            }
            .and_then(|v| spec.set(&mut settings, v))
            .map_err(|message| ConfigError::new(key, message))?;
        }
        Ok(settings)
    }

    /// Checks every value and builds the typed configuration.
    ///
    /// # Errors
    /// The first out-of-range value, as a [`ConfigError`] naming its key.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen = self.listen.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:8080",
                    self.listen
                ),
            )
        })?;
        let a = &self.argon2;
        let param = |key: &str, v: u64, min: u32, max: u32| ranged_u32(key, v, min, max, "");
        let argon2 = Argon2Params::new(
            param(
                "argon2.time_cost",
                a.time_cost,
                Argon2Params::MIN_TIME_COST,
                Argon2Params::MAX_TIME_COST,
            )?,
            param(
                "argon2.memory_kb",
                a.memory_kb,
                Argon2Params::MIN_MEMORY_KIB,
                Argon2Params::MAX_MEMORY_KIB,
            )?,
            param(
                "argon2.parallelism",
                a.parallelism,
                Argon2Params::MIN_PARALLELISM,
                Argon2Params::MAX_PARALLELISM,
            )?,
            param(
                "argon2.hash_length",
                a.hash_length,
                Argon2Params::MIN_HASH_LENGTH,
                Argon2Params::MAX_HASH_LENGTH,
            )?,
        )
        .map_err(|e| ConfigError::new("argon2.memory_kb", e.to_string()))?;

        let settings = self.live_settings()?;
        let ticket_bits = ticket_bits(&self.ticket_bits, argon2)?;

        let trusted_proxies = self
            .trusted_proxies
            .items()
            .iter()
            .map(|s| {
                crate::client_ip::parse_net(s).ok_or_else(|| {
                    ConfigError::new(
                        "trusted_proxies",
                        format!("{s:?} is not an IP address or CIDR such as 10.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let connections = self.connection_caps(!trusted_proxies.is_empty())?;
        let proxy = self.proxy_config()?;
        let tcp = self
            .tcp
            .iter()
            .enumerate()
            .map(|(i, g)| g.validate(i))
            .collect::<Result<Vec<_>, _>>()?;
        let client_ip_header =
            HeaderName::try_from(self.client_ip_header.trim()).map_err(|_| {
                ConfigError::new(
                    "client_ip_header",
                    format!("{:?} is not a valid header name", self.client_ip_header),
                )
            })?;

        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new(
                    "public_url",
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
            // Its path becomes the admin cookie's Path and the page's
            // address: a query, fragment or cookie separator would break both.
            if url.contains(['?', '#', ';', ',', ' ']) {
                return Err(ConfigError::new(
                    "public_url",
                    format!(
                        "{url:?} must be a plain base URL such as https://example.com/.powgate, without ?, #, ;, comma or space"
                    ),
                ));
            }
        }
        let site_name = validate_site_name(self.site_name)?;
        let contact_url = validate_contact_url(self.contact_url)?;
        let secret = match self.secret {
            Some(s) if s.len() < 32 => {
                return Err(ConfigError::new(
                    "secret",
                    "must be at least 32 characters; leave it unset to have one generated and stored in the database",
                ));
            }
            other => other.map(Secret::new),
        };

        let admin_key = match self.admin_key {
            Some(k) if k.len() < 16 => {
                return Err(ConfigError::new(
                    "admin_key",
                    "must be at least 16 characters; leave it unset to have one generated at first start",
                ));
            }
            other => other.map(Secret::new),
        };
        let metrics_listen = self
            .metrics_listen
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    ConfigError::new(
                        "metrics_listen",
                        format!("{s:?} is not an address:port such as 127.0.0.1:9090"),
                    )
                })
            })
            .transpose()?;
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
        let verify_permits = ranged(
            "verify_permits",
            self.verify_permits.unwrap_or(cpus),
            1,
            256,
            "",
        )?;
        let verify_queue = ranged(
            "verify_queue",
            self.verify_queue.unwrap_or(DEFAULT_VERIFY_QUEUE),
            0,
            65536,
            "",
        )?;
        let verify_nice = ranged("verify_nice", self.verify_nice, 0, 19, "")?;
        let purge_interval_secs = ranged(
            "purge_interval_secs",
            self.purge_interval_secs,
            1,
            60,
            " seconds",
        )?;

        let token_cache_secs = ranged(
            "token_cache_secs",
            self.token_cache_secs,
            1,
            3600,
            " seconds",
        )?;
        let database = Database::parse(self.database)?;

        Ok(Config {
            listen,
            token_cache_ttl: matches!(database, Database::Postgres(_))
                .then(|| Duration::from_secs(token_cache_secs)),
            database,
            public_url: self.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            site_name,
            contact_url,
            secret,
            settings,
            token_purge_hours: ranged_u32(
                "token_purge_hours",
                self.token_purge_hours,
                0,
                87600,
                " hours",
            )?,
            argon2,
            trusted_proxies,
            client_ip_header,
            cookie_domain: self.cookie_domain.filter(|d| !d.is_empty()),
            allowlist: self
                .allowlist
                .iter()
                .map(crate::allowlist::Rule::compile)
                .collect::<Result<_, _>>()
                .map_err(|m| ConfigError::new("allowlist", m))?,
            redirect_domains: self
                .redirect_domains
                .items()
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            admin_key,
            metrics_listen,
            verify_permits: usize::try_from(verify_permits).unwrap_or(1),
            verify_queue: usize::try_from(verify_queue).unwrap_or(0),
            verify_nice: i32::try_from(verify_nice).unwrap_or(19),
            purge_interval: Duration::from_secs(purge_interval_secs),
            open_challenges: OpenChallengeLimits {
                per_ip: ranged_u32(
                    "max_open_challenges_per_ip",
                    self.max_open_challenges_per_ip,
                    0,
                    1_000_000,
                    " (0 = off)",
                )?,
                per_network: ranged_u32(
                    "max_open_challenges_per_network",
                    self.max_open_challenges_per_network,
                    0,
                    1_000_000,
                    " (0 = off)",
                )?,
            },
            ticket_bits,
            proxy,
            tcp,
            challenge_grace: Duration::from_secs(ranged(
                "challenge_grace_secs",
                self.challenge_grace_secs,
                0,
                3600,
                " seconds",
            )?),
            limits: Limits {
                challenges_per_minute: ranged_u32(
                    "rate_challenges_per_minute",
                    self.rate_challenges_per_minute,
                    0,
                    1_000_000,
                    " (0 = off)",
                )?,
                solutions_per_minute: ranged_u32(
                    "rate_solutions_per_minute",
                    self.rate_solutions_per_minute,
                    0,
                    1_000_000,
                    " (0 = off)",
                )?,
                wrong_answer_backoff: Duration::from_secs(ranged(
                    "wrong_answer_backoff_secs",
                    self.wrong_answer_backoff_secs,
                    0,
                    3600,
                    " seconds (0 = off)",
                )?),
                connections,
                max_body_bytes: usize::try_from(ranged(
                    "max_body_bytes",
                    self.max_body_bytes,
                    1024,
                    1 << 20,
                    " bytes",
                )?)
                .unwrap_or(8192),
                header_read_timeout: Duration::from_secs(ranged(
                    "header_read_timeout_secs",
                    self.header_read_timeout_secs,
                    1,
                    300,
                    " seconds",
                )?),
                request_timeout: Duration::from_secs(ranged(
                    "request_timeout_secs",
                    self.request_timeout_secs,
                    1,
                    600,
                    " seconds",
                )?),
                shutdown_grace: Duration::from_secs(ranged(
                    "shutdown_grace_secs",
                    self.shutdown_grace_secs,
                    0,
                    600,
                    " seconds",
                )?),
            },
        })
    }

    /// Proxy mode's settings, when `upstream` is set. The prefix must be a
    /// plain directory: powgate's routes are found by comparing it with the
    /// raw request path, so a `..`, `%` or `?` would let the two disagree
    /// about where powgate ends and the application starts.
    fn proxy_config(&self) -> Result<Option<ProxyConfig>, ConfigError> {
        let Some(upstream) = self.upstream.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let upstream = Upstream::parse(upstream).map_err(|m| ConfigError::new("upstream", m))?;
        let tls = UpstreamTls {
            ca_file: self
                .upstream_ca_file
                .clone()
                .filter(|f| !f.as_os_str().is_empty()),
            sni: self.upstream_sni.clone().filter(|s| !s.is_empty()),
        };
        if !matches!(upstream, Upstream::Https { .. }) {
            let key = match (&tls.ca_file, &tls.sni) {
                (Some(_), _) => Some("upstream_ca_file"),
                (None, Some(_)) => Some("upstream_sni"),
                (None, None) => None,
            };
            if let Some(key) = key {
                return Err(ConfigError::new(
                    key,
                    "applies to an https upstream only; remove it or make upstream https://",
                ));
            }
        }
        let host = self
            .upstream_host
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(|h| {
                h.parse::<axum::http::uri::Authority>()
                    .ok()
                    .filter(|a| a.as_str() == h)
                    .and_then(|_| HeaderValue::from_str(h).ok())
                    .ok_or_else(|| {
                        ConfigError::new(
                            "upstream_host",
                            format!("{h:?} is not a host[:port] such as app.internal"),
                        )
                    })
            })
            .transpose()?;
        let prefix = self.proxy_prefix.trim();
        let plain = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b));
        if prefix.len() < 3
            || !prefix.starts_with('/')
            || !prefix.ends_with('/')
            || prefix.contains("..")
            || prefix.contains("//")
            || !plain
        {
            return Err(ConfigError::new(
                "proxy_prefix",
                format!(
                    "{prefix:?} must be a directory path that starts and ends with /, such as {DEFAULT_PROXY_PREFIX}, without .., // or characters other than letters, digits and ._-~"
                ),
            ));
        }
        Ok(Some(ProxyConfig {
            upstream,
            tls,
            host,
            prefix: prefix.to_owned(),
            connect_timeout: Duration::from_secs(ranged(
                "proxy_connect_timeout_secs",
                self.proxy_connect_timeout_secs,
                1,
                300,
                " seconds",
            )?),
            response_timeout: Duration::from_secs(ranged(
                "proxy_response_timeout_secs",
                self.proxy_response_timeout_secs,
                1,
                86400,
                " seconds",
            )?),
            max_body_bytes: (self.proxy_max_body_bytes != 0).then_some(self.proxy_max_body_bytes),
        }))
    }

    /// The connection caps. Unless set, a quarter of the slots is kept for
    /// trusted proxies when there are any: enough for the proxy's bursts,
    /// while direct clients keep the rest.
    fn connection_caps(&self, has_trusted_proxies: bool) -> Result<ConnCaps, ConfigError> {
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let total = ranged("max_connections", self.max_connections, 1, 1_000_000, "")?;
        let per_peer = ranged(
            "max_connections_per_ip",
            self.max_connections_per_ip,
            1,
            1_000_000,
            "",
        )?;
        let per_network = ranged(
            "max_connections_per_network",
            self.max_connections_per_network,
            1,
            1_000_000,
            "",
        )?;
        let default_reserve = if has_trusted_proxies { total / 4 } else { 0 };
        // Direct clients keep at least one slot.
        let reserved = ranged(
            "reserved_proxy_connections",
            self.reserved_proxy_connections.unwrap_or(default_reserve),
            0,
            total - 1,
            " (below max_connections)",
        )?;
        Ok(ConnCaps {
            total: to_usize(total),
            reserved_for_trusted: to_usize(reserved),
            per_peer: to_usize(per_peer),
            per_network: to_usize(per_network),
        })
    }
}

/// What the flags of `powgate serve` and `powgate tcp` set, over every
/// other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--upstream`.
    pub upstream: Option<String>,
    /// `powgate tcp`: this one gate instead of the `[[tcp]]` entries.
    pub tcp: Option<crate::tcp::RawTcpGate>,
}

impl Config {
    /// Loads and validates in one go.
    ///
    /// # Errors
    /// See [`RawConfig::load`] and [`RawConfig::validate`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, Overrides::default())
    }

    /// Loads, applies the command line's `overrides`, and validates.
    ///
    /// # Errors
    /// See [`RawConfig::load`] and [`RawConfig::validate`].
    pub fn load_with(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut raw = RawConfig::load(file)?;
        if let Some(upstream) = overrides.upstream {
            raw.upstream = Some(upstream);
        }
        if let Some(gate) = overrides.tcp {
            raw.tcp = vec![gate];
        }
        raw.validate()
    }

    /// Seconds after expiry during which a token can still be refreshed.
    pub(crate) fn refresh_window_secs(&self) -> i64 {
        i64::from(self.token_purge_hours) * 3600
    }

    /// The challenge page's address as browsers see it: under the public
    /// URL when set, else proxy mode's prefix, else the root. Ends with `/`,
    /// since the page loads its scripts and API by relative URLs.
    pub(crate) fn page_url(&self) -> String {
        match (&self.public_url, &self.proxy) {
            (Some(url), _) => format!("{url}/"),
            (None, Some(proxy)) => proxy.prefix.clone(),
            (None, None) => "/".to_owned(),
        }
    }

    /// Whether the public URL is https, so cookies must be `Secure`.
    pub(crate) fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;
    use pow::Difficulty;

    #[test]
    fn proxy_mode_is_off_without_an_upstream_and_reads_its_prefix() {
        assert_eq!(RawConfig::default().validate().unwrap().proxy, None);
        let raw = RawConfig {
            upstream: Some("http://127.0.0.1:3000".into()),
            ..RawConfig::default()
        };
        let proxy = raw.validate().unwrap().proxy.unwrap();
        assert_eq!(proxy.prefix, DEFAULT_PROXY_PREFIX);
        assert_eq!(proxy.max_body_bytes, None, "unlimited by default");
    }

    /// A prefix is compared with raw request paths: one that is not a plain
    /// directory would let powgate and the application disagree on whose
    /// a path is (`/a/../` is the application's root to most servers).
    #[test]
    fn a_proxy_prefix_that_is_not_a_plain_directory_stops_start_up() {
        for bad in [
            "/",
            "",
            ".powgate/",
            "/.powgate",
            "/a/../b/",
            "/a//",
            "/a%2F/",
            "/a?b/",
        ] {
            let raw = RawConfig {
                upstream: Some("http://127.0.0.1:3000".into()),
                proxy_prefix: bad.into(),
                ..RawConfig::default()
            };
            let e = raw.validate().unwrap_err().to_string();
            assert!(
                e.contains("POW_PROXY_PREFIX") && e.contains("/.powgate/"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn tls_settings_without_an_https_upstream_stop_start_up_naming_the_key() {
        let raw = RawConfig {
            upstream: Some("http://127.0.0.1:3000".into()),
            upstream_sni: Some("app.internal".into()),
            ..RawConfig::default()
        };
        let e = raw.validate().unwrap_err().to_string();
        assert!(e.contains("POW_UPSTREAM_SNI") && e.contains("https"), "{e}");
        let raw = RawConfig {
            upstream: Some("https://127.0.0.1:3000".into()),
            upstream_host: Some("bad host/".into()),
            ..RawConfig::default()
        };
        let e = raw.validate().unwrap_err().to_string();
        assert!(e.contains("POW_UPSTREAM_HOST"), "{e}");
    }

    #[test]
    fn the_upstream_flag_overrides_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("POW_UPSTREAM", "http://127.0.0.1:1");
            let c = Config::load(None).unwrap();
            assert_eq!(
                c.proxy.unwrap().upstream,
                Upstream::Http {
                    authority: "127.0.0.1:1".into()
                }
            );
            let c = Config::load_with(
                None,
                Overrides {
                    upstream: Some("unix:/run/app.sock".into()),
                    ..Overrides::default()
                },
            )
            .unwrap();
            assert_eq!(
                c.proxy.unwrap().upstream,
                Upstream::Unix {
                    path: "/run/app.sock".into()
                }
            );
            Ok(())
        });
    }

    /// The default was `medium` (900 hashes), about four minutes for a
    /// visitor on a slow machine; the design's default is `low`.
    #[test]
    fn the_default_difficulty_is_low() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.settings.difficulty, Difficulty::LOW);
        assert_eq!(Difficulty::DEFAULT, Difficulty::LOW);
    }

    /// The live settings' config keys and defaults come from the settings
    /// table: every spec is read from a real `config.toml` key, and the
    /// built-in defaults are the table's.
    #[test]
    fn live_settings_default_to_the_table_and_read_its_keys() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.settings, Settings::defaults());
        for spec in SPECS {
            let mut raw = RawConfig::default();
            raw.set_live(spec.config_key, spec.max + 1);
            let e = raw.validate().unwrap_err().to_string();
            let env = format!("POW_{}", spec.config_key.to_uppercase());
            assert!(
                e.contains(&env) && e.contains(&format!("{}..={}", spec.min, spec.max)),
                "{e}"
            );
        }
    }

    /// A query in the public URL gave the admin cookie an invalid Path, and
    /// sign-in answered 204 without setting any cookie.
    #[test]
    fn a_public_url_with_a_query_or_fragment_is_refused() {
        for url in ["https://example.com/.powgate?x=1", "https://example.com/#a"] {
            let raw = RawConfig {
                public_url: Some(url.into()),
                ..RawConfig::default()
            };
            let e = raw.validate().unwrap_err().to_string();
            assert!(
                e.contains("POW_PUBLIC_URL") && e.contains("plain base URL"),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults_validate() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.argon2, Argon2Params::DEFAULT);
        assert_eq!(c.settings.token_max_ips, 2);
        assert_eq!(c.client_ip_header, "x-real-ip");
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "config.toml",
                "difficulty_level = \"high\"\ntoken_hours = 5\n[argon2]\nmemory_kb = 1024\n",
            )?;
            jail.set_env("POW_TOKEN_HOURS", "7");
            jail.set_env("ARGON2_TIME_COST", "2");
            jail.set_env("POW_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1");
            let c = Config::load(None).unwrap();
            assert_eq!(c.settings.difficulty, Difficulty::HIGH);
            assert_eq!(c.settings.token_hours, 7);
            assert_eq!(c.argon2.m_cost_kib(), 1024);
            assert_eq!(c.argon2.t_cost(), 2);
            assert_eq!(c.trusted_proxies.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_env_key_and_range() {
        Jail::expect_with(|jail| {
            jail.set_env("POW_TOKEN_MAX_IPS", "0");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("POW_TOKEN_MAX_IPS") && e.contains("1..="), "{e}");
            jail.set_env("POW_TOKEN_MAX_IPS", "2");
            jail.set_env("ARGON2_MEMORY_KB", "4");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("ARGON2_MEMORY_KB") && e.contains("8..="), "{e}");
            jail.set_env("ARGON2_MEMORY_KB", "64");
            jail.set_env("POW_DIFFICULTY_LEVEL", "insane");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("POW_DIFFICULTY_LEVEL") && e.contains("low, medium"),
                "{e}"
            );
            jail.set_env("POW_DIFFICULTY_LEVEL", "1234");
            assert_eq!(Config::load(None).unwrap().settings.difficulty.get(), 1234);
            jail.set_env("POW_CHALLENGE_TIMEOUT", "soon");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("POW_CHALLENGE_TIMEOUT"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_named_file_must_exist_and_the_default_one_need_not() {
        Jail::expect_with(|jail| {
            let e = Config::load(Some(Path::new("other.toml"))).unwrap_err();
            assert!(matches!(e, ConfigError::MissingFile(_)), "{e}");
            assert!(Config::load(None).is_ok());
            jail.create_file("other.toml", "token_hours = 5\n")?;
            let c = Config::load(Some(Path::new("other.toml"))).unwrap();
            assert_eq!(c.settings.token_hours, 5);
            Ok(())
        });
    }

    #[test]
    fn a_quarter_of_the_connections_is_kept_for_trusted_proxies_unless_set() {
        Jail::expect_with(|jail| {
            jail.set_env("POW_MAX_CONNECTIONS", "100");
            let c = Config::load(None).unwrap();
            assert_eq!(c.limits.connections.reserved_for_trusted, 25);
            jail.set_env("POW_TRUSTED_PROXIES", "");
            let c = Config::load(None).unwrap();
            assert_eq!(c.limits.connections.reserved_for_trusted, 0);
            jail.set_env("POW_RESERVED_PROXY_CONNECTIONS", "10");
            let c = Config::load(None).unwrap();
            assert_eq!(c.limits.connections.reserved_for_trusted, 10);
            jail.set_env("POW_RESERVED_PROXY_CONNECTIONS", "100");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("POW_RESERVED_PROXY_CONNECTIONS"), "{e}");
            jail.set_env("POW_RESERVED_PROXY_CONNECTIONS", "10");
            jail.set_env("POW_MAX_CONNECTIONS_PER_NETWORK", "0");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("POW_MAX_CONNECTIONS_PER_NETWORK"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn ticket_bits_default_to_auto_and_refuse_nonsense() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.ticket_bits, pow::ticket::bits_for(c.argon2));
            jail.set_env("ARGON2_TIME_COST", "1");
            let cheaper = Config::load(None).unwrap();
            assert!(cheaper.ticket_bits < c.ticket_bits, "auto follows argon2");
            jail.set_env("POW_TICKET_BITS", "0");
            assert_eq!(Config::load(None).unwrap().ticket_bits, 0);
            jail.set_env("POW_TICKET_BITS", "AUTO");
            assert_eq!(Config::load(None).unwrap().ticket_bits, cheaper.ticket_bits);
            for bad in ["33", "lots", "-1"] {
                jail.set_env("POW_TICKET_BITS", bad);
                let e = Config::load(None).unwrap_err().to_string();
                assert!(e.contains("POW_TICKET_BITS") && e.contains("0..=32"), "{e}");
            }
            Ok(())
        });
    }

    /// Unknown keys are refused by hand now that `RawConfig` cannot deny
    /// them itself: from the file and from the environment, naming the key,
    /// where it was set and the fix, while every live setting's key (none of
    /// which is a field any more) is read.
    #[test]
    fn unknown_keys_are_refused_from_the_file_and_the_environment() {
        Jail::expect_with(|jail| {
            jail.create_file("config.toml", "token_houres = 5\n")?;
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("POW_TOKEN_HOURES")
                    && e.contains("`token_houres` in config.toml")
                    && e.contains("TOML file")
                    && e.contains("remove it")
                    && e.contains("token_hours"),
                "{e}"
            );
            jail.create_file("config.toml", "")?;
            jail.set_env("POW_TOKEN_HOURES", "5");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(
                e.contains("POW_TOKEN_HOURES") && e.contains("environment"),
                "{e}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("config.toml", "[argon2]\ntime_kost = 2\n")?;
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("time_kost"), "{e}");
            Ok(())
        });
    }

    /// Every live setting is read from its spec's key, in the file and in
    /// the environment, with no field of its own in `RawConfig`: adding one
    /// used to need a field here as well as its entry in the table (issue
    /// 13's remaining gap).
    #[test]
    fn every_live_setting_is_read_by_its_spec_from_the_file_and_the_environment() {
        let fields = serde_json::to_value(RawConfig::default()).unwrap();
        for spec in SPECS {
            assert!(
                fields.get(spec.config_key).is_none(),
                "`{}` is a RawConfig field as well as a spec",
                spec.config_key
            );
        }
        for spec in SPECS {
            Jail::expect_with(|jail| {
                let key = spec.config_key;
                jail.create_file("config.toml", &format!("{key} = {}\n", spec.max))?;
                let c = Config::load(None).unwrap();
                assert_eq!(spec.get(&c.settings), spec.max, "{key} from the file");
                jail.set_env(format!("POW_{}", key.to_uppercase()), spec.min);
                let c = Config::load(None).unwrap();
                assert_eq!(spec.get(&c.settings), spec.min, "{key} from the env");
                Ok(())
            });
        }
    }
}

/// Longest `site_name`: a heading, not a paragraph.
const MAX_SITE_NAME_CHARS: usize = 80;
/// Longest `contact_url`.
const MAX_CONTACT_URL_CHARS: usize = 2048;

/// `site_name`, trimmed: 1 to [`MAX_SITE_NAME_CHARS`] characters, no
/// control characters. The page sets it as text, never as markup.
fn validate_site_name(name: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(name) = name else { return Ok(None) };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_SITE_NAME_CHARS {
        return Err(ConfigError::new(
            "site_name",
            format!("must be 1 to {MAX_SITE_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ConfigError::new(
            "site_name",
            "must not contain control characters",
        ));
    }
    Ok(Some(name.to_owned()))
}

/// `contact_url`: an `http://`, `https://` or `mailto:` URL without spaces
/// or control characters. Any other scheme (`javascript:` above all) would
/// put the operator's link to work against visitors.
fn validate_contact_url(url: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = url else { return Ok(None) };
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let scheme_ok = ["http://", "https://", "mailto:"]
        .iter()
        .any(|s| lower.starts_with(s) && lower.len() > s.len());
    if !scheme_ok {
        return Err(ConfigError::new(
            "contact_url",
            format!("{url:?} must be an http://, https:// or mailto: URL"),
        ));
    }
    if url.chars().count() > MAX_CONTACT_URL_CHARS
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ConfigError::new(
            "contact_url",
            format!(
                "must be at most {MAX_CONTACT_URL_CHARS} characters, without spaces or control characters"
            ),
        ));
    }
    Ok(Some(url.to_owned()))
}

#[cfg(test)]
mod contact_tests {
    use super::*;

    /// A `javascript:` (or `data:`) contact link would run script in the
    /// visitor's page at a click; only web and mail links are accepted.
    #[test]
    fn a_contact_url_other_than_http_https_or_mailto_is_refused() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "ftp://example.com/",
            "//example.com/help",
            "https://",
            "https://example.com/a b",
            "mailto:ops@example.com\nBcc:x@example.com",
        ] {
            let raw = RawConfig {
                contact_url: Some(url.into()),
                ..RawConfig::default()
            };
            let e = raw.validate().unwrap_err().to_string();
            assert!(e.contains("POW_CONTACT_URL"), "{url}: {e}");
        }
    }

    #[test]
    fn a_contact_url_over_http_https_or_mailto_is_kept() {
        for url in [
            "https://example.com/contact",
            "http://example.com/",
            "mailto:ops@example.com",
        ] {
            let raw = RawConfig {
                contact_url: Some(format!(" {url} ")),
                ..RawConfig::default()
            };
            assert_eq!(raw.validate().unwrap().contact_url.as_deref(), Some(url));
        }
    }

    #[test]
    fn a_site_name_is_trimmed_and_bounded() {
        let named = |name: &str| {
            RawConfig {
                site_name: Some(name.into()),
                ..RawConfig::default()
            }
            .validate()
        };
        assert_eq!(
            named("  Example Shop ").unwrap().site_name.as_deref(),
            Some("Example Shop")
        );
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(81)] {
            let e = named(bad).unwrap_err().to_string();
            assert!(e.contains("POW_SITE_NAME"), "{bad:?}: {e}");
        }
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example must parse and must state the real defaults.
    #[test]
    #[allow(clippy::result_large_err)]
    fn config_example_matches_the_defaults() {
        let example = include_str!("../../config.toml.example");
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.toml", example)?;
            let from_example = Config::load(None).unwrap();
            let defaults = RawConfig::default().validate().unwrap();
            assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
            Ok(())
        });
    }
}
