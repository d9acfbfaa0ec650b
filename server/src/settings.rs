//! The settings an operator may change while powgate runs: difficulty,
//! challenge timeout, the token rules and the per-network request budgets.
//! Handlers read a snapshot per request, so a change applies to the very
//! next request.
//!
//! [`SPECS`] is the one table of these settings: their names in the admin
//! API, the `settings` table and `config.toml`, their ranges, defaults and
//! descriptions. Config validation, PATCH parsing, the ranges the admin API
//! reports and the admin page's form are all driven from it, so adding a
//! live setting means one entry there plus its field in [`Settings`].

use std::sync::{Arc, RwLock};

use pow::Difficulty;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// One consistent set of live settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Expected hashes for a new token; refreshes cost half.
    pub difficulty: Difficulty,
    /// Minutes a challenge stays solvable.
    pub(crate) challenge_timeout_minutes: u32,
    /// Hours a token is valid after it is solved or refreshed.
    pub token_hours: u32,
    /// Distinct client addresses a token may be used from.
    pub(crate) token_max_ips: u32,
    /// Active tokens per client address before the oldest is expired; 0 = off.
    pub(crate) max_tokens_per_ip: u32,
    /// Passed `/verify-token` requests per minute per token, with a burst
    /// of three minutes' worth (see [`crate::token_usage`]); 0 = off.
    pub(crate) token_requests_per_minute: u32,
    /// Passed `/verify-token` requests per token before it must be
    /// refreshed; 0 = off.
    pub(crate) token_requests_total: u32,
    /// Challenges per minute from one network, by enclosing network (see
    /// [`crate::limits`]); 0 = off.
    pub(crate) challenges_per_minute: NetworkBudgets,
    /// Solution submissions per minute from one network; 0 = off.
    pub(crate) solutions_per_minute: NetworkBudgets,
    /// Difficulty by network reputation and by pressure (see
    /// [`crate::adaptive`]).
    pub(crate) adaptive: AdaptiveSettings,
}

/// The switches and inputs of [`crate::adaptive`]: how far a new
/// challenge's difficulty may rise above the base, and from what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AdaptiveSettings {
    /// Ceiling of the network multiplier; 1 = off. Read as the power of
    /// two at or below it.
    pub network_max: u32,
    /// Ceiling of the pressure multiplier; 1 = off. Read as the power of
    /// two at or below it.
    pub pressure_max: u32,
    /// Minutes for a network score to halve.
    pub half_life_minutes: u32,
    /// Challenges per minute that count as normal traffic.
    pub baseline_per_minute: u32,
    /// Both mechanisms off: the base difficulty for everyone.
    pub pinned: bool,
}

/// A per-minute budget for each network level a client address lies in
/// ([`crate::client_ip::IpKey::enclosing`]); 0 turns a level off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetworkBudgets {
    /// An IPv4 /24.
    pub per_24: u32,
    /// An IPv6 /56, a subscriber's usual delegation.
    pub per_56: u32,
    /// An IPv6 /48, a site's or a hosting customer's block.
    pub per_48: u32,
}

impl NetworkBudgets {
    /// Every level off.
    pub(crate) const OFF: Self = Self {
        per_24: 0,
        per_56: 0,
        per_48: 0,
    };

    /// The budget for networks of prefix length `len`; 0 (off) for a
    /// length that has no level.
    pub(crate) fn for_prefix_len(self, len: u8) -> u32 {
        match len {
            24 => self.per_24,
            56 => self.per_56,
            48 => self.per_48,
            _ => 0,
        }
    }
}

/// How one live setting is named, bounded and explained.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct SettingSpec {
    /// Name in the admin API and in the `settings` table.
    pub name: &'static str,
    /// Key in `config.toml`; the environment variable is the same,
    /// upper-cased, with a `POW_` prefix.
    pub config_key: &'static str,
    /// What the admin page calls it.
    pub label: &'static str,
    /// Unit of the value; empty for a plain count.
    pub unit: &'static str,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
    /// Whether 0 switches the rule off rather than meaning zero.
    pub zero_is_off: bool,
    /// Whether the difficulty preset names (low, medium…) are accepted too.
    pub presets: bool,
    /// The value when neither `config.toml` nor the environment sets it.
    pub default: u64,
    /// One line on what the setting does.
    pub description: &'static str,
    #[serde(skip)]
    get: fn(&Settings) -> u64,
    /// Stores a value already checked against `min..=max`.
    #[serde(skip)]
    put: fn(&mut Settings, u64),
}

/// A `u32` field's value from a number already checked against a range
/// that lies inside `u32` (the `spec_ranges_fit_their_fields` test).
fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(crate) const DIFFICULTY: SettingSpec = SettingSpec {
    name: "difficulty",
    config_key: "difficulty_level",
    label: "difficulty",
    unit: "expected hashes",
    min: Difficulty::MIN.get(),
    max: Difficulty::MAX.get(),
    zero_is_off: false,
    presets: true,
    default: Difficulty::LOW.get(),
    description: "Expected hashes for a new token; refreshes cost half.",
    get: |s| s.difficulty.get(),
    put: |s, v| {
        if let Ok(d) = Difficulty::new(v) {
            s.difficulty = d;
        }
    },
};

pub(crate) const CHALLENGE_TIMEOUT: SettingSpec = SettingSpec {
    name: "challenge_timeout",
    config_key: "challenge_timeout",
    label: "challenge timeout",
    unit: "minutes",
    min: 1,
    max: 1440,
    zero_is_off: false,
    presets: false,
    default: 30,
    description: "How long a challenge stays solvable.",
    get: |s| s.challenge_timeout_minutes.into(),
    put: |s, v| s.challenge_timeout_minutes = to_u32(v),
};

pub(crate) const TOKEN_HOURS: SettingSpec = SettingSpec {
    name: "token_hours",
    config_key: "token_hours",
    label: "token lifetime",
    unit: "hours",
    min: 1,
    max: 8760,
    zero_is_off: false,
    presets: false,
    default: 24,
    description: "How long a token is valid after it is solved or refreshed.",
    get: |s| s.token_hours.into(),
    put: |s, v| s.token_hours = to_u32(v),
};

pub(crate) const TOKEN_MAX_IPS: SettingSpec = SettingSpec {
    name: "token_max_ips",
    config_key: "token_max_ips",
    label: "addresses per token",
    unit: "",
    min: 1,
    max: 1000,
    zero_is_off: false,
    presets: false,
    default: 2,
    description: "Distinct client addresses one token may be used from.",
    get: |s| s.token_max_ips.into(),
    put: |s, v| s.token_max_ips = to_u32(v),
};

pub(crate) const MAX_TOKENS_PER_IP: SettingSpec = SettingSpec {
    name: "max_tokens_per_ip",
    config_key: "max_tokens_per_ip",
    label: "tokens per address",
    unit: "",
    min: 0,
    max: 100_000,
    zero_is_off: true,
    presets: false,
    default: 0,
    description: "Active tokens per client address before the oldest is expired.",
    get: |s| s.max_tokens_per_ip.into(),
    put: |s, v| s.max_tokens_per_ip = to_u32(v),
};

/// The defaults of the two request budgets come from what a person can
/// read: behind a proxy every subresource of a page asks `/verify-token`,
/// so a first visit to a heavy page is 50–150 requests at once (a restored
/// session of ten tabs 1 000 and more, hence a burst of three minutes'
/// worth), and a reader opens at most about one page per 2 s. README
/// "Request budgets" gives the reasoning.
pub(crate) const TOKEN_REQUESTS_PER_MINUTE: SettingSpec = SettingSpec {
    name: "token_requests_per_minute",
    config_key: "token_requests_per_minute",
    label: "requests per minute per token",
    unit: "per minute",
    min: 0,
    max: 1_000_000,
    zero_is_off: true,
    presets: false,
    default: 600,
    description: "Sustained requests per minute one token may pass, with a burst of three minutes' worth at once (a restored session of many tabs, or several heavy first page loads); the sustained rate is what bounds a scraper.",
    get: |s| s.token_requests_per_minute.into(),
    put: |s, v| s.token_requests_per_minute = to_u32(v),
};

pub(crate) const TOKEN_REQUESTS_TOTAL: SettingSpec = SettingSpec {
    name: "token_requests_total",
    config_key: "token_requests_total",
    label: "requests per token",
    unit: "requests",
    min: 0,
    max: 1_000_000_000,
    zero_is_off: true,
    presets: false,
    default: 50_000,
    description: "Requests one token may pass before it must be refreshed (a solve at the refresh difficulty).",
    get: |s| s.token_requests_total.into(),
    put: |s, v| s.token_requests_total = to_u32(v),
};

/// A per-network budget's spec (see [`crate::limits`]): requests per
/// minute, 0 = off. The defaults are generous enough for a carrier-grade
/// NAT or a university behind one /24, while a client that rotates through
/// a network's addresses gets only the network's budget; the README
/// ("Rates per network") gives the reasoning.
macro_rules! network_budget {
    ($name:literal, $label:literal, $default:expr, $what:literal, $net:literal, $field:ident . $level:ident) => {
        SettingSpec {
            name: $name,
            config_key: $name,
            label: $label,
            unit: "per minute",
            min: 0,
            max: 1_000_000,
            zero_is_off: true,
            presets: false,
            default: $default,
            description: concat!(
                $what,
                " per minute from one ",
                $net,
                ", on top of the per-address rate."
            ),
            get: |s| s.$field.$level.into(),
            put: |s, v| s.$field.$level = to_u32(v),
        }
    };
}

pub(crate) const CHALLENGES_PER_24: SettingSpec = network_budget!(
    "challenges_per_minute_per_24",
    "challenges per IPv4 /24",
    600,
    "Challenges",
    "IPv4 /24",
    challenges_per_minute.per_24
);
pub(crate) const CHALLENGES_PER_56: SettingSpec = network_budget!(
    "challenges_per_minute_per_56",
    "challenges per IPv6 /56",
    240,
    "Challenges",
    "IPv6 /56",
    challenges_per_minute.per_56
);
pub(crate) const CHALLENGES_PER_48: SettingSpec = network_budget!(
    "challenges_per_minute_per_48",
    "challenges per IPv6 /48",
    600,
    "Challenges",
    "IPv6 /48",
    challenges_per_minute.per_48
);
pub(crate) const SOLUTIONS_PER_24: SettingSpec = network_budget!(
    "solutions_per_minute_per_24",
    "solutions per IPv4 /24",
    120,
    "Solution submissions",
    "IPv4 /24",
    solutions_per_minute.per_24
);
pub(crate) const SOLUTIONS_PER_56: SettingSpec = network_budget!(
    "solutions_per_minute_per_56",
    "solutions per IPv6 /56",
    60,
    "Solution submissions",
    "IPv6 /56",
    solutions_per_minute.per_56
);
pub(crate) const SOLUTIONS_PER_48: SettingSpec = network_budget!(
    "solutions_per_minute_per_48",
    "solutions per IPv6 /48",
    120,
    "Solution submissions",
    "IPv6 /48",
    solutions_per_minute.per_48
);

pub(crate) const NETWORK_DIFFICULTY_MAX: SettingSpec = SettingSpec {
    name: "network_difficulty_max",
    config_key: "network_difficulty_max",
    label: "network multiplier ceiling",
    unit: "×",
    min: 1,
    // 2^7: the largest ceiling whose saturated score still decays below
    // the first step within three half-lives (see crate::adaptive).
    max: 128,
    zero_is_off: false,
    presets: false,
    default: 16,
    description: "Most a network's recent behaviour may multiply the difficulty by (a power of two; 1 = off).",
    get: |s| s.adaptive.network_max.into(),
    put: |s, v| s.adaptive.network_max = to_u32(v),
};

pub(crate) const PRESSURE_DIFFICULTY_MAX: SettingSpec = SettingSpec {
    name: "pressure_difficulty_max",
    config_key: "pressure_difficulty_max",
    label: "pressure multiplier ceiling",
    unit: "×",
    min: 1,
    max: 1024,
    zero_is_off: false,
    presets: false,
    default: 8,
    description: "Most a surge of challenges may multiply the difficulty by (a power of two; 1 = off).",
    get: |s| s.adaptive.pressure_max.into(),
    put: |s, v| s.adaptive.pressure_max = to_u32(v),
};

pub(crate) const NETWORK_HALF_LIFE: SettingSpec = SettingSpec {
    name: "network_half_life_minutes",
    config_key: "network_half_life_minutes",
    label: "network score half-life",
    unit: "minutes",
    min: 1,
    max: 1440,
    zero_is_off: false,
    presets: false,
    default: 30,
    description: "How fast a network's score fades once it behaves; back to base within three half-lives.",
    get: |s| s.adaptive.half_life_minutes.into(),
    put: |s, v| s.adaptive.half_life_minutes = to_u32(v),
};

pub(crate) const PRESSURE_BASELINE: SettingSpec = SettingSpec {
    name: "pressure_baseline_per_minute",
    config_key: "pressure_baseline_per_minute",
    label: "normal challenges",
    unit: "per minute",
    min: 1,
    max: 1_000_000,
    zero_is_off: false,
    presets: false,
    default: 60,
    description: "Challenges per minute that are normal here; twice as many doubles the difficulty.",
    get: |s| s.adaptive.baseline_per_minute.into(),
    put: |s, v| s.adaptive.baseline_per_minute = to_u32(v),
};

pub(crate) const DIFFICULTY_PINNED: SettingSpec = SettingSpec {
    name: "difficulty_pinned",
    config_key: "difficulty_pinned",
    label: "difficulty pinned (1 = yes)",
    unit: "",
    min: 0,
    max: 1,
    zero_is_off: false,
    presets: false,
    default: 0,
    description: "1 turns both multipliers off: the base difficulty for everyone.",
    get: |s| s.adaptive.pinned.into(),
    put: |s, v| s.adaptive.pinned = v == 1,
};

/// Every live setting, in the order the admin page shows them.
pub(crate) const SPECS: &[SettingSpec] = &[
    DIFFICULTY,
    CHALLENGE_TIMEOUT,
    TOKEN_HOURS,
    TOKEN_MAX_IPS,
    MAX_TOKENS_PER_IP,
    TOKEN_REQUESTS_PER_MINUTE,
    TOKEN_REQUESTS_TOTAL,
    CHALLENGES_PER_24,
    CHALLENGES_PER_56,
    CHALLENGES_PER_48,
    SOLUTIONS_PER_24,
    SOLUTIONS_PER_56,
    SOLUTIONS_PER_48,
    NETWORK_DIFFICULTY_MAX,
    PRESSURE_DIFFICULTY_MAX,
    NETWORK_HALF_LIFE,
    PRESSURE_BASELINE,
    DIFFICULTY_PINNED,
];

impl SettingSpec {
    /// The spec of the setting the admin API calls `name`.
    pub(crate) fn by_name(name: &str) -> Option<&'static Self> {
        SPECS.iter().find(|s| s.name == name)
    }

    /// The names of all live settings, for messages that list them.
    pub(crate) fn names() -> String {
        SPECS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
    }

    /// `value` if it lies in this setting's range.
    ///
    /// # Errors
    /// A message naming the allowed range. It quotes `value` as sent: a
    /// negative number must not be reported as what it became after a
    /// conversion (issue 12, item 4).
    pub(crate) fn check(&self, value: impl Into<i128> + Copy) -> Result<u64, String> {
        let sent: i128 = value.into();
        u64::try_from(sent)
            .ok()
            .filter(|v| (self.min..=self.max).contains(v))
            .ok_or_else(|| {
                let unit = if self.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.unit)
                };
                let off = if self.zero_is_off { " (0 = off)" } else { "" };
                format!(
                    "{sent} is out of range: allowed {}..={}{unit}{off}",
                    self.min, self.max
                )
            })
    }

    /// A value written as text: a preset name (or a number) for the
    /// difficulty.
    ///
    /// # Errors
    /// A message naming what is accepted; also when this setting takes
    /// numbers only.
    pub(crate) fn parse_text(&self, text: &str) -> Result<u64, String> {
        if self.presets {
            text.parse::<Difficulty>()
                .map(Difficulty::get)
                .map_err(|e| e.to_string())
        } else {
            Err(format!(
                "expected an integer in {}..={}, got {text:?}",
                self.min, self.max
            ))
        }
    }

    /// This setting's value in `s`.
    pub(crate) fn get(&self, s: &Settings) -> u64 {
        (self.get)(s)
    }

    /// Sets this setting in `s` after checking its range.
    ///
    /// # Errors
    /// As [`Self::check`]; `s` is unchanged then.
    pub(crate) fn set(
        &self,
        s: &mut Settings,
        value: impl Into<i128> + Copy,
    ) -> Result<(), String> {
        let v = self.check(value)?;
        (self.put)(s, v);
        Ok(())
    }
}

impl Settings {
    /// Every setting at its [`SettingSpec::default`].
    pub(crate) fn defaults() -> Self {
        let mut s = Self {
            difficulty: Difficulty::LOW,
            challenge_timeout_minutes: 0,
            token_hours: 0,
            token_max_ips: 0,
            max_tokens_per_ip: 0,
            token_requests_per_minute: 0,
            token_requests_total: 0,
            challenges_per_minute: NetworkBudgets::OFF,
            solutions_per_minute: NetworkBudgets::OFF,
            adaptive: AdaptiveSettings {
                network_max: 1,
                pressure_max: 1,
                half_life_minutes: 1,
                baseline_per_minute: 1,
                pinned: false,
            },
        };
        for spec in SPECS {
            (spec.put)(&mut s, spec.default);
        }
        s
    }

    /// A field's value by its API name.
    pub(crate) fn field(&self, name: &str) -> Option<i64> {
        SettingSpec::by_name(name).map(|spec| i64::try_from(spec.get(self)).unwrap_or(i64::MAX))
    }

    /// Sets a field by its API name after checking its range; the tests'
    /// way in (a PATCH goes through [`SettingSpec`] itself).
    ///
    /// # Errors
    /// A message naming the allowed range, or the known names.
    #[cfg(test)]
    fn set_field(&mut self, name: &str, value: i64) -> Result<(), String> {
        match SettingSpec::by_name(name) {
            Some(spec) => spec.set(self, value),
            None => Err(format!("unknown setting; known: {}", SettingSpec::names())),
        }
    }
}

/// When the difficulty last changed, and from what: challenges issued at
/// the previous value stay acceptable for a short grace period (see
/// [`crate::acceptance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DifficultyChange {
    /// The difficulty in force before the change.
    pub previous: Difficulty,
    /// Unix seconds of the change.
    pub at: i64,
}

/// What an update writes to the `settings` table.
#[derive(Debug)]
pub(crate) enum Persist {
    /// Store these fields as overrides of the configuration.
    Overrides(Vec<(&'static str, i64)>),
    /// Remove every override, so the configuration applies again.
    ClearOverrides,
}

/// The settings in force, the last difficulty change and the names of the
/// stored overrides, swapped together.
#[derive(Debug)]
struct Current {
    settings: Arc<Settings>,
    change: Option<DifficultyChange>,
    /// Names of the settings stored in the `settings` table, sorted; kept
    /// here so the admin page need not read the table.
    overridden: Arc<[&'static str]>,
}

/// The current settings, swapped whole on change.
///
/// Readers take a snapshot under a short `RwLock` read (one `Arc` clone), so
/// the hot path never waits for the database. Writers queue on an async
/// mutex held across read, modify, persist and swap: two admins changing
/// different fields at once both see their change survive. Clones share
/// one set of settings, so a module that reads them outside a request
/// ([`crate::adaptive`]) holds a clone.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    current: Arc<RwLock<Current>>,
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Where overrides are stored: the settings own their table, so no
    /// route reaches the store for them.
    store: Arc<dyn Store>,
    /// The configuration's settings, under the overrides; kept to read the
    /// overrides again when another instance changes them.
    configured: Settings,
}

/// The configured settings with `rows` (stored overrides) on top, and the
/// names of the overrides that applied. Each stored value that is unknown
/// or out of range is logged and ignored; each configured value that loses
/// is logged when `warn_overridden`.
fn with_overrides(
    configured: Settings,
    rows: Vec<(String, i64)>,
    warn_overridden: bool,
) -> (Settings, Vec<&'static str>) {
    let mut s = configured;
    let mut overridden = Vec::new();
    for (name, value) in rows {
        let Some(spec) = SettingSpec::by_name(&name) else {
            continue;
        };
        if let Err(e) = spec.set(&mut s, value) {
            tracing::warn!(setting = %name, value, error = %e, "ignoring invalid stored setting");
            continue;
        }
        overridden.push(spec.name);
        if warn_overridden && configured.field(&name) != Some(value) {
            tracing::warn!(
                setting = %name,
                configured = configured.field(&name),
                stored = value,
                "the value set on the admin page overrides the configured one; \
                 revert it there (or DELETE /api/admin/settings) to use the configuration"
            );
        }
    }
    overridden.sort_unstable();
    overridden.dedup();
    (s, overridden)
}

impl LiveSettings {
    /// The configured settings with the admin API's stored overrides on
    /// top. Overrides win, because an operator who turned difficulty up
    /// during an attack must not have a restart silently undo it; each
    /// configured value that loses is logged, and each stored value that
    /// is unknown or out of range is logged and ignored.
    ///
    /// # Errors
    /// The store error.
    pub(crate) async fn load(
        store: Arc<dyn Store>,
        configured: Settings,
    ) -> Result<Self, StoreError> {
        let rows = store.load_settings().await?;
        let (s, overridden) = with_overrides(configured, rows, true);
        Ok(Self {
            current: Arc::new(RwLock::new(Current {
                settings: Arc::new(s),
                change: None,
                overridden: overridden.into(),
            })),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            store,
            configured,
        })
    }

    /// Reads the stored overrides again and applies them, after another
    /// instance changed them (a [`crate::store::StoreChange::Settings`]).
    /// Queued with the writers, so it cannot undo an update here.
    ///
    /// # Errors
    /// The store error; the settings in force stay then.
    pub(crate) async fn reload(&self, now: i64) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let rows = self.store.load_settings().await?;
        let (next, overridden) = with_overrides(self.configured, rows, false);
        let mut cur = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if next.difficulty != cur.settings.difficulty {
            cur.change = Some(DifficultyChange {
                previous: cur.settings.difficulty,
                at: now,
            });
        }
        cur.settings = Arc::new(next);
        cur.overridden = overridden.into();
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A poisoned lock only means a writer panicked after a whole-value
        // swap, so the value inside is still consistent.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A snapshot; cheap (one `Arc` clone).
    pub fn get(&self) -> Arc<Settings> {
        self.read().settings.clone()
    }

    /// What `f` reads from the current settings, without taking a snapshot:
    /// for the hot path, which needs two numbers per request and would pay
    /// an `Arc` clone and drop for a snapshot.
    pub(crate) fn peek<T>(&self, f: impl FnOnce(&Settings) -> T) -> T {
        f(&self.read().settings)
    }

    /// A snapshot together with the last difficulty change, read at once so
    /// the two agree.
    pub(crate) fn get_with_change(&self) -> (Arc<Settings>, Option<DifficultyChange>) {
        let cur = self.read();
        (cur.settings.clone(), cur.change)
    }

    /// The names of the settings set through the admin API, which win over
    /// the configuration at start-up; sorted.
    pub(crate) fn overridden(&self) -> Arc<[&'static str]> {
        self.read().overridden.clone()
    }

    /// Applies `change` to the current settings and stores what it returns,
    /// as one step that no other update can interleave with. Readers see the
    /// new settings only once they are stored. Once the write has started,
    /// the swap happens even if the caller is cancelled (a client that hangs
    /// up), so the live and the stored settings cannot drift apart.
    ///
    /// # Errors
    /// Whatever `change` refuses (nothing is stored or swapped then), or the
    /// database error.
    pub(crate) async fn update<E: From<StoreError>>(
        &self,
        now: i64,
        change: impl FnOnce(&mut Settings) -> Result<Persist, E>,
    ) -> Result<Settings, E> {
        let writer = self.writer.clone().lock_owned().await;
        let before = *self.get();
        let mut next = before;
        let persist = change(&mut next)?;
        let current = self.current.clone();
        let store = self.store.clone();
        // Store and swap in a task of its own, which runs to the end even
        // when this future is dropped; the writers' lock goes with it.
        let stored = tokio::spawn(async move {
            let _writer = writer;
            let overridden: Option<Vec<&'static str>> = match persist {
                Persist::Overrides(fields) => {
                    let names = fields.iter().map(|(name, _)| *name).collect();
                    store.store_settings(fields, now).await?;
                    Some(names)
                }
                Persist::ClearOverrides => {
                    store.clear_settings().await?;
                    None
                }
            };
            let mut cur = current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if next.difficulty != before.difficulty {
                cur.change = Some(DifficultyChange {
                    previous: before.difficulty,
                    at: now,
                });
            }
            cur.settings = Arc::new(next);
            cur.overridden = match overridden {
                Some(added) => {
                    let mut all: Vec<&'static str> =
                        cur.overridden.iter().copied().chain(added).collect();
                    all.sort_unstable();
                    all.dedup();
                    all.into()
                }
                None => Arc::from([]),
            };
            Ok::<_, StoreError>(())
        });
        stored.await.map_err(|e| {
            StoreError::Fault(anyhow::anyhow!("settings update task failed: {e}"))
        })??;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings {
            difficulty: Difficulty::MEDIUM,
            challenge_timeout_minutes: 30,
            token_hours: 24,
            token_max_ips: 2,
            max_tokens_per_ip: 0,
            ..Settings::defaults()
        }
    }

    #[test]
    fn fields_round_trip_and_ranges_hold() {
        let mut s = base();
        for spec in SPECS {
            let name = spec.name;
            let v = s.field(name).unwrap();
            s.set_field(name, v).unwrap();
        }
        assert_eq!(s, base());
        assert!(s.set_field("difficulty", 0).unwrap_err().contains("1..="));
        assert!(
            s.set_field("token_hours", -1)
                .unwrap_err()
                .contains("1..=8760")
        );
        assert!(s.set_field("nope", 1).is_err());
        s.set_field("max_tokens_per_ip", 0).unwrap();
    }

    /// Issue 12, item 4: `-5` was reported as `0`.
    #[test]
    fn negative_difficulty_is_reported_as_sent() {
        let mut s = base();
        let e = s.set_field("difficulty", -5).unwrap_err();
        assert!(e.starts_with("-5 is out of range: allowed 1..="), "{e}");
        let e = s.set_field("difficulty", i64::MIN).unwrap_err();
        assert!(e.starts_with(&i64::MIN.to_string()), "{e}");
        let e = s.set_field("difficulty", 0).unwrap_err();
        assert!(e.starts_with("0 is out of range"), "{e}");
        assert_eq!(s, base());
    }

    /// The table must describe values its fields can hold, or a spec's
    /// range would be cut short when stored.
    #[test]
    fn every_spec_default_lies_in_its_range_and_fits_its_field() {
        let mut names: Vec<_> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SPECS.len(), "names are unique");
        for spec in SPECS {
            assert!(
                (spec.min..=spec.max).contains(&spec.default),
                "{}: default {} outside {}..={}",
                spec.name,
                spec.default,
                spec.min,
                spec.max
            );
            let mut s = Settings::defaults();
            assert_eq!(spec.get(&s), spec.default, "{}", spec.name);
            for v in [spec.min, spec.max] {
                spec.set(&mut s, v).unwrap();
                assert_eq!(spec.get(&s), v, "{} holds {v}", spec.name);
            }
            let over = i128::from(spec.max) + 1;
            assert!(
                spec.set(&mut s, over).is_err(),
                "{} refuses {over}",
                spec.name
            );
            if spec.min > 0 {
                assert!(spec.set(&mut s, spec.min - 1).is_err(), "{}", spec.name);
            }
        }
    }

    #[test]
    fn only_the_difficulty_takes_preset_names() {
        assert_eq!(DIFFICULTY.parse_text("high"), Ok(Difficulty::HIGH.get()));
        assert!(DIFFICULTY.parse_text("insane").is_err());
        assert!(TOKEN_HOURS.parse_text("high").is_err());
    }

    #[tokio::test]
    async fn overridden_follows_updates_without_reading_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let db: Arc<dyn Store> =
            Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"), 2).unwrap());
        let live = LiveSettings::load(db.clone(), base()).await.unwrap();
        assert!(live.overridden().is_empty());
        let set = |name: &'static str, v: i64| {
            move |s: &mut Settings| {
                s.set_field(name, v).unwrap();
                Ok::<_, StoreError>(Persist::Overrides(vec![(name, v)]))
            }
        };
        live.update(1, set("token_hours", 5)).await.unwrap();
        live.update(2, set("difficulty", 1234)).await.unwrap();
        live.update(3, set("token_hours", 6)).await.unwrap();
        assert_eq!(&*live.overridden(), ["difficulty", "token_hours"]);
        // A restart finds the same list in the table.
        let reloaded = LiveSettings::load(db.clone(), base()).await.unwrap();
        assert_eq!(reloaded.overridden(), live.overridden());
        assert_eq!(reloaded.get().token_hours, 6);
        live.update(4, |s| {
            *s = base();
            Ok::<_, StoreError>(Persist::ClearOverrides)
        })
        .await
        .unwrap();
        assert!(live.overridden().is_empty());
        assert!(
            LiveSettings::load(db.clone(), base())
                .await
                .unwrap()
                .overridden()
                .is_empty()
        );
    }
}
