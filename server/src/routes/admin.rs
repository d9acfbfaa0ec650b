//! The admin API under `/api/admin/` and the admin page at `/admin/`.
//!
//! Authentication is either `Authorization: Bearer <admin key>` (for
//! scripts) or the session cookie set by `POST /api/admin/login` (for the
//! page). Both are checked by [`crate::admin_auth::AdminAuth::authenticate`],
//! which also limits key guessing. Cookie-authenticated requests that change
//! state must come from this origin ([`crate::origin`]): browsers always
//! send `Origin` on such requests, so a missing or foreign `Origin` is
//! refused (CSRF).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ipnet::IpNet;
use pow::Difficulty;
use serde::{Deserialize, Serialize};

use crate::adaptive::{Holder, HolderScore, Quote};
use crate::admin_auth::{Credential, SESSION_SECS};
use crate::cookies;
use crate::error::{ApiError, Result};
use crate::origin::{self, RequestOrigin};
use crate::routes::extract::{ClientIp, JsonBody, PathParams, QueryParams};
use crate::routes::pages;
use crate::settings::{Persist, SPECS, SettingSpec, Settings};
use crate::state::AppState;
use crate::stats::{ClassEstimate, Counts, DeviceClass, SolveTimes, Timeline};
use crate::token::PlainToken;
use crate::token_store::{RevokeScope, RevokedById, TokenRecord, TokenState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("admin/") }))
        .route(
            "/admin/",
            get(|headers: HeaderMap| async move { pages::serve("admin/index.html", &headers) }),
        )
        .route("/api/admin/login", post(login))
        .route("/api/admin/logout", post(logout))
        .route("/api/admin/session", get(session))
        .route(
            "/api/admin/settings",
            get(get_settings)
                .patch(patch_settings)
                .delete(reset_settings),
        )
        .route("/api/admin/stats", get(stats))
        .route("/api/admin/difficulty", get(difficulty))
        .route("/api/admin/tokens", get(list_tokens))
        .route("/api/admin/tokens/find", post(find_token))
        .route("/api/admin/tokens/expire-all", post(expire_all))
        .route("/api/admin/tokens/revoke", post(revoke_many))
        .route("/api/admin/tokens/{id}/revoke", post(revoke))
}

/// Proof that the request is from an administrator.
#[derive(Debug)]
pub(crate) struct Admin;

/// Whether a cookie-authenticated state change may proceed: only from a
/// page of this origin. Browsers always send `Origin` on such requests, so a
/// missing one is refused too.
fn same_origin(parts: &Parts, state: &AppState, client: &ClientIp) -> bool {
    origin::request_origin(
        &parts.headers,
        state.config.public_url.as_deref(),
        client.via_trusted_proxy,
    ) == RequestOrigin::Same
}

/// The admin credential a request carries: a `Bearer` key if present, else
/// the session cookie. Any other `Authorization` (HTTP Basic from a proxy
/// in front of the admin page) is not ours: it neither hides the session
/// nor counts as a wrong key, or such a site would lock its operator out.
fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    match cookies::bearer(headers) {
        Ok(Some(key)) => Some(Credential::Key(key)),
        Ok(None) | Err(_) => {
            cookies::cookie_str(headers, cookies::SESSION_COOKIE).map(Credential::Session)
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = ClientIp::from_request_parts(parts, state).await?;
        let Some(credential) = credential(&parts.headers) else {
            return Err(ApiError::Unauthorized(
                "log in at /admin/ or send Authorization: Bearer <admin key>".into(),
            ));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if matches!(credential, Credential::Session(_))
            && !safe
            && !same_origin(parts, state, &client)
        {
            return Err(ApiError::Forbidden(
                "cross-origin request refused (CSRF protection)".into(),
            ));
        }
        state
            .admin
            .authenticate(client.ip, credential, state.now(), &state.metrics)?;
        Ok(Self)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    key: String,
}

async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response> {
    // A login form posted from another site would log the victim into the
    // attacker's session; browsers send Origin, scripts usually none.
    if origin::request_origin(
        &headers,
        state.config.public_url.as_deref(),
        client.via_trusted_proxy,
    ) == RequestOrigin::Foreign
    {
        return Err(ApiError::Forbidden("cross-origin login refused".into()));
    }
    state.admin.authenticate(
        client.ip,
        Credential::Key(&body.key),
        state.now(),
        &state.metrics,
    )?;
    let id = state.admin.open_session(state.now());
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = cookies::session_cookie(&state.config, &id, SESSION_SECS) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    tracing::info!(ip = %client.key, "admin logged in");
    Ok(resp)
}

async fn logout(State(state): State<AppState>, _admin: Admin, headers: HeaderMap) -> Response {
    if let Some(id) = cookies::cookie_str(&headers, cookies::SESSION_COOKIE) {
        state.admin.close_session(id);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = cookies::session_cookie(&state.config, "", 0) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Whether this browser holds a live admin session (or the request a
/// valid Bearer key). 200 either way, so the login page can ask without a
/// failed request in the console; but a Bearer key is checked like
/// everywhere else, so a limited client gets 429 and this is no free
/// oracle for the key.
async fn session(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>> {
    let authenticated = match credential(&headers).map(|c| {
        state
            .admin
            .authenticate(client.ip, c, state.now(), &state.metrics)
    }) {
        Some(Ok(())) => true,
        Some(Err(ApiError::Unauthorized(_))) | None => false,
        Some(Err(other)) => return Err(other),
    };
    Ok(Json(serde_json::json!({ "authenticated": authenticated })))
}

#[derive(Debug, Serialize)]
struct SettingsView {
    settings: serde_json::Map<String, serde_json::Value>,
    /// The values from configuration, which a revert restores.
    configured: serde_json::Map<String, serde_json::Value>,
    difficulty_preset: Option<&'static str>,
    presets: serde_json::Map<String, serde_json::Value>,
    /// `[min, max]` of each setting, from the settings table.
    ranges: serde_json::Map<String, serde_json::Value>,
    /// The settings table itself, in display order: what the admin page
    /// builds its form from.
    specs: &'static [SettingSpec],
    /// Fields set through this API; they win over config and env at start-up.
    overridden: Vec<&'static str>,
    argon2: pow::Argon2Params,
    token_purge_hours: u32,
}

/// Each setting's value in `s`, by API name.
fn values(s: &Settings) -> serde_json::Map<String, serde_json::Value> {
    SPECS
        .iter()
        .map(|spec| (spec.name.to_owned(), spec.get(s).into()))
        .collect()
}

fn settings_view(state: &AppState) -> SettingsView {
    let s = state.settings.get();
    SettingsView {
        settings: values(&s),
        configured: values(&state.config.settings),
        difficulty_preset: s.difficulty.preset_name(),
        presets: Difficulty::PRESETS
            .iter()
            .map(|(n, d)| ((*n).to_owned(), d.get().into()))
            .collect(),
        ranges: SPECS
            .iter()
            .map(|spec| {
                (
                    spec.name.to_owned(),
                    serde_json::json!([spec.min, spec.max]),
                )
            })
            .collect(),
        specs: SPECS,
        overridden: state.settings.overridden().to_vec(),
        argon2: state.config.argon2,
        token_purge_hours: state.config.token_purge_hours,
    }
}

async fn get_settings(State(state): State<AppState>, _admin: Admin) -> Json<SettingsView> {
    Json(settings_view(&state))
}

/// Reads one PATCH value: an integer, or for the difficulty also a preset
/// name.
fn patch_value(spec: &SettingSpec, v: &serde_json::Value) -> Result<i64> {
    let invalid = |message: String| ApiError::InvalidField {
        field: spec.name,
        message,
    };
    let (min, max) = (spec.min, spec.max);
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| invalid(format!("{n} is not a whole number in {min}..={max}"))),
        serde_json::Value::String(s) if spec.presets => spec
            .parse_text(s)
            .map(|d| i64::try_from(d).unwrap_or(i64::MAX))
            .map_err(invalid),
        other => Err(invalid(format!(
            "expected {} in {min}..={max}, got {other}",
            if spec.presets {
                "low, medium, high, extreme or an integer"
            } else {
                "an integer"
            }
        ))),
    }
}

async fn patch_settings(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<SettingsView>> {
    if body.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "send at least one of: {}",
            SettingSpec::names()
        )));
    }
    // Checked and applied inside the settings' write lock, so a concurrent
    // PATCH of another field cannot be undone by this one (issue 12, item 2).
    let next = state
        .settings
        .update(state.now(), |next| {
            let mut changed: Vec<(&'static str, i64)> = Vec::new();
            for (name, value) in &body {
                let Some(spec) = SettingSpec::by_name(name) else {
                    return Err(ApiError::BadRequest(format!(
                        "unknown setting {name:?}; known: {}",
                        SettingSpec::names()
                    )));
                };
                let v = patch_value(spec, value)?;
                spec.set(next, v)
                    .map_err(|message| ApiError::InvalidField {
                        field: spec.name,
                        message,
                    })?;
                changed.push((spec.name, v));
            }
            Ok(Persist::Overrides(changed))
        })
        .await?;
    tracing::info!(settings = ?next, "settings changed by admin");
    Ok(Json(settings_view(&state)))
}

async fn reset_settings(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<SettingsView>> {
    let configured = state.config.settings;
    state
        .settings
        .update(state.now(), |s| {
            *s = configured;
            Ok::<_, ApiError>(Persist::ClearOverrides)
        })
        .await?;
    tracing::info!("settings reverted to configuration by admin");
    Ok(Json(settings_view(&state)))
}

#[derive(Debug, Serialize)]
struct StatsView {
    difficulty: u64,
    challenge_timeout_seconds: u64,
    challenges: Counts,
    active_tokens: i64,
    solve_time: SolveTimes,
    timeline: Timeline,
    timeline_minutes: Timeline,
    /// The browser classes: what visitors wait.
    device_classes: Vec<ClassEstimate>,
    /// `powgate solve` and other non-browser clients, kept out of
    /// `device_classes` and `solve_time`.
    other_clients: ClassEstimate,
}

async fn stats(State(state): State<AppState>, _admin: Admin) -> Result<Json<StatsView>> {
    let now = state.now();
    let s = state.settings.get();
    let active_tokens = state.tokens.count_active(now).await?;
    let timeout = u64::from(s.challenge_timeout_minutes) * 60;
    #[allow(clippy::cast_precision_loss)]
    let timeout_secs = timeout as f64;
    let device_classes =
        state
            .stats
            .estimates(now, s.difficulty, state.config.argon2, timeout_secs);
    let other_clients = state.stats.estimate(
        now,
        DeviceClass::Other,
        s.difficulty,
        state.config.argon2,
        timeout_secs,
    );
    Ok(Json(StatsView {
        difficulty: s.difficulty.get(),
        challenge_timeout_seconds: timeout,
        challenges: state.stats.counts(now),
        active_tokens,
        solve_time: state.stats.solve_times(now),
        timeline: state.stats.timeline(now, 3600, 24),
        timeline_minutes: state.stats.timeline(now, 60, 60),
        device_classes,
        other_clients,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DifficultyQuery {
    /// An address or a network; without it, the quote for a client
    /// nobody scored (base and pressure only).
    ip: Option<String>,
}

/// Why a client gets the difficulty it gets.
#[derive(Debug, Serialize)]
struct DifficultyView {
    /// What was asked about, as typed (trimmed); `null` for nobody.
    ip: Option<String>,
    /// Each score holder of the query, shown as a CIDR computed from the
    /// query: nothing here is read back from memory as an address.
    holders: Vec<HolderScore>,
    #[serde(flatten)]
    quote: Quote,
}

/// `GET /api/admin/difficulty?ip=203.0.113.0/24`: the quote a new
/// challenge from there gets now, with every input that made it.
async fn difficulty(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(q): QueryParams<DifficultyQuery>,
) -> Result<Json<DifficultyView>> {
    let holders = match q.ip.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            Holder::parse_query(text).map_err(ApiError::BadRequest)?
        }
        _ => Vec::new(),
    };
    let now = state.now();
    let s = state.settings.get();
    let params = state.config.argon2;
    let mut quote = state
        .adaptive
        .quote(holders.iter().copied(), &s, now, &state.stats, params);
    // The admin asks "why"; the cap is part of the answer even when it
    // did not bind.
    quote.phone_cap = Some(state.adaptive.phone_cap(&s, now, &state.stats, params));
    Ok(Json(DifficultyView {
        ip: q.ip.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        holders: state.adaptive.scores(&holders, &s, now),
        quote,
    }))
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default = "one")]
    page: u64,
    #[serde(default = "twenty_five")]
    per_page: u32,
}
fn one() -> u64 {
    1
}
fn twenty_five() -> u32 {
    25
}

#[derive(Debug, Serialize)]
struct TokenView {
    /// The token's id, which `POST /api/admin/tokens/{id}/revoke` takes.
    id: i64,
    created_at: i64,
    expires_at: i64,
    ips: Vec<String>,
    status: &'static str,
    refresh_count: i64,
    /// Requests passed since issue or the last refresh, unwritten ones too.
    requests_used: u64,
    /// The lifetime budget in force (`token_requests_total`, 0 = none).
    requests_total: u32,
    /// Requests per minute over the last few seconds.
    requests_per_minute: u64,
}

impl TokenView {
    /// How the admin sees `r` at `now`: one rule for the list and the search.
    fn of(state: &AppState, r: TokenRecord, now: i64) -> Self {
        let budget = state.settings.get().token_requests_total;
        let usage = state.token_usage.view(&r);
        let status = match r.state(now, state.config.refresh_window_secs()) {
            TokenState::Active if usage.exhausts(budget) => "exhausted",
            s => s.label(),
        };
        Self {
            id: r.id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            status,
            refresh_count: r.refresh_count,
            requests_used: usage.used,
            requests_total: budget,
            requests_per_minute: usage.recent_per_minute,
            ips: r.ips,
        }
    }
}

async fn list_tokens(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(p): QueryParams<Page>,
) -> Result<Json<serde_json::Value>> {
    if p.page == 0 || !(1..=500).contains(&p.per_page) {
        return Err(ApiError::BadRequest(
            "page starts at 1; per_page is 1..=500".into(),
        ));
    }
    let (per_page, offset) = (
        p.per_page,
        (p.page - 1).saturating_mul(u64::from(p.per_page)),
    );
    let (rows, total) = state.tokens.list(per_page, offset).await?;
    let now = state.now();
    let tokens: Vec<TokenView> = rows
        .into_iter()
        .map(|r| TokenView::of(&state, r, now))
        .collect();
    Ok(Json(
        serde_json::json!({ "tokens": tokens, "page": p.page, "per_page": p.per_page, "total": total }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindToken {
    token: String,
}

impl std::fmt::Debug for FindToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FindToken(***)")
    }
}

/// `POST /api/admin/tokens/find` `{"token": …}`: the row of a full token a
/// visitor or a log handed the operator. POST, so the token stays out of
/// access logs; only its hash is looked up, and it is never logged.
async fn find_token(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<FindToken>,
) -> Result<Json<serde_json::Value>> {
    let token = PlainToken::parse(body.token.trim())
        .map_err(|e| ApiError::BadRequest(format!("{e}: paste the whole token")))?;
    let Some(rec) = state.tokens.lookup(token.hashed()).await? else {
        return Err(ApiError::NotFound(
            "no token matches; it may have been purged after expiring".into(),
        ));
    };
    let view = TokenView::of(&state, TokenRecord::clone(&rec), state.now());
    Ok(Json(serde_json::json!({ "token": view })))
}

async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
) -> Result<Json<serde_json::Value>> {
    let token_id: i64 =
        id.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::BadRequest("token id is a positive number, as listed".into())
        })?;
    let now = state.now();
    let revoked = match state.tokens.revoke_by_id(token_id, now).await? {
        RevokedById::Revoked(_) => 1,
        // Asked twice (a double click, a retry): done already, not an error.
        RevokedById::AlreadyRevoked => 0,
        RevokedById::Unknown => {
            return Err(ApiError::NotFound(format!("no token with id {token_id}")));
        }
    };
    state
        .metrics
        .tokens
        .with_label_values(&["revoked"])
        .inc_by(revoked);
    tracing::info!(id = token_id, "token revoked by admin");
    Ok(Json(serde_json::json!({ "revoked": revoked })))
}

async fn expire_all(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>> {
    let now = state.now();
    let n = state.tokens.expire_all(now).await?;
    state
        .metrics
        .tokens
        .with_label_values(&["expired"])
        .inc_by(n as u64);
    tracing::info!(count = n, "all tokens expired by admin");
    Ok(Json(serde_json::json!({ "expired": n })))
}

/// What `POST /api/admin/tokens/revoke` takes: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRevoke {
    #[serde(default)]
    all: bool,
    network: Option<String>,
}

impl BulkRevoke {
    fn scope(&self) -> Result<RevokeScope> {
        match (self.all, self.network.as_deref()) {
            (true, None) => Ok(RevokeScope::All),
            (false, Some(net)) => net
                .trim()
                .parse::<IpNet>()
                .map(|n| RevokeScope::Network(n.trunc()))
                .map_err(|_| ApiError::InvalidField {
                    field: "network",
                    message: format!(
                        "{net:?} is not a network; expected CIDR such as 203.0.113.0/24 or 2001:db8::/48"
                    ),
                }),
            _ => Err(ApiError::BadRequest(
                "send {\"all\": true} or {\"network\": \"2001:db8::/48\"}".into(),
            )),
        }
    }
}

/// Revokes tokens in bulk. Unlike expire-all, revoked tokens cannot be
/// refreshed, so this is the answer to an attacker's stockpile.
async fn revoke_many(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<BulkRevoke>,
) -> Result<Json<serde_json::Value>> {
    let scope = body.scope()?;
    let n = state.tokens.revoke(scope, state.now()).await?;
    state
        .metrics
        .tokens
        .with_label_values(&["revoked"])
        .inc_by(n as u64);
    tracing::info!(?scope, count = n, "tokens revoked in bulk by admin");
    Ok(Json(serde_json::json!({ "revoked": n })))
}
