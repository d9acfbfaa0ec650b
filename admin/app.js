// The admin page: sign in with the admin key, then change the live settings,
// watch the activity and manage tokens through the admin API.
//
// Every URL is relative because the page may be mounted under a prefix such
// as /.powgate/admin/; the API is a sibling of the page's directory.
//
// Browser tests can wait on document.body.dataset.view
// ('loading' → 'login' | 'dashboard') and document.body.dataset.difficulty
// (the live difficulty, set before the view becomes 'dashboard' and after
// every change).

import { mount as mountAdaptive } from './adaptive.js';
import { drawBarChart } from './charts.js';
import {
  apiErrorMessage,
  capitalize,
  changedSettings,
  formatDateTime,
  formatDuration,
  formatHashRate,
  formatInt,
  formatMinutes,
  formatMs,
  formatShortDateTime,
  formatWait,
  histogramChart,
  histogramLabels,
  paging,
  parseWholeNumber,
  presetFor,
  previewDeviceClasses,
  relativeTime,
  retryAfterSeconds,
  settingFormFields,
  settingLabel,
  summarizeSolveTimes,
  summarizeTimeline,
  timelineChart,
} from './logic.js';

const API = '../api/admin/';
/** How often the activity refreshes while the page is visible. */
const REFRESH_MS = 10000;
const CHART_HEIGHT = 200;
/** Below this the charts would be unreadable; the box scrolls instead. */
const MIN_CHART_WIDTH = 280;


const $ = (id) => document.getElementById(id);
const ui = {
  loading: $('loading'),
  loginView: $('login-view'),
  loginForm: $('login-form'),
  key: $('key'),
  login: $('login'),
  loginError: $('login-error'),
  dashboard: $('dashboard-view'),
  dashboardTitle: $('dashboard-title'),
  logout: $('logout'),
  notice: $('notice'),

  difficultyCurrent: $('difficulty-current'),
  difficultyPreset: $('difficulty-preset'),
  difficultyOverridden: $('difficulty-overridden'),
  presetButtons: $('preset-buttons'),
  difficultyForm: $('difficulty-form'),
  difficultyCustom: $('difficulty-custom'),
  difficultyApply: $('difficulty-apply'),
  difficultyRange: $('difficulty-range'),
  difficultyError: $('difficulty-error'),
  difficultyStatus: $('difficulty-status'),

  solveTimeCaption: $('solve-time-caption'),
  deviceRows: $('device-rows'),
  solveTimeWarning: $('solve-time-warning'),

  settingsForm: $('settings-form'),
  settingsFields: $('settings-fields'),
  settingsSave: $('settings-save'),
  settingsStatus: $('settings-status'),
  settingsRevert: $('settings-revert'),
  overriddenSummary: $('overridden-summary'),
  serverFacts: $('server-facts'),

  autoRefresh: $('auto-refresh'),
  statsRefresh: $('stats-refresh'),
  statsUpdated: $('stats-updated'),
  timelineChart: $('timeline-chart'),
  timelineRows: $('timeline-rows'),
  histogramChart: $('histogram-chart'),
  histogramRows: $('histogram-rows'),

  tokensWrap: $('tokens-wrap'),
  tokenRows: $('token-rows'),
  tokensPrev: $('tokens-prev'),
  tokensNext: $('tokens-next'),
  tokensSummary: $('tokens-summary'),
  tokensPerPage: $('tokens-per-page'),
  tokensRefresh: $('tokens-refresh'),
  tokensExpireAll: $('tokens-expire-all'),
  tokensRevokeAll: $('tokens-revoke-all'),
  tokensNetwork: $('tokens-network'),
  tokensRevokeNetwork: $('tokens-revoke-network'),
  tokensStatus: $('tokens-status'),

  confirm: $('confirm'),
  confirmTitle: $('confirm-title'),
  confirmMessage: $('confirm-message'),
  confirmOk: $('confirm-ok'),
};

/** What the page knows; replaced wholesale by each answer from the server. */
const state = {
  view: 'loading',
  /** The last GET/PATCH/DELETE settings answer. */
  settings: null,
  /** The settings form's fields, drawn from the server's settings table. */
  formFields: [],
  /** The last GET stats answer. */
  stats: null,
  /** Values last written into the settings form, to spot the operator's edits. */
  shownSettings: {},
  tokens: { page: 1, perPage: 25 },
  /** The last paging facts, so re-enabling buttons keeps the pager's rules. */
  lastTokenPaging: null,
  refreshTimer: null,
  statsInFlight: false,
  /** A refresh was asked for while one was running (say, after a change). */
  statsAgain: false,
  loginLockedUntil: 0,
  /** The adaptive-difficulty panel ({ refresh }), once drawn. */
  adaptive: null,
};

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

const nowSeconds = () => Math.floor(Date.now() / 1000);

function make(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}

function setView(view) {
  state.view = view;
  document.body.dataset.view = view;
  ui.loading.hidden = true;
  ui.loginView.hidden = view !== 'login';
  ui.dashboard.hidden = view !== 'dashboard';
}

function notice(text) {
  ui.notice.textContent = text;
}

/** Runs `work` with `buttons` disabled, so a double click sends one request. */
async function busy(buttons, work) {
  const list = buttons.filter(Boolean);
  for (const b of list) b.disabled = true;
  try {
    return await work();
  } finally {
    for (const b of list) b.disabled = false;
    // Some buttons have their own rules for being enabled.
    if (state.settings) renderRevertButton();
    if (state.lastTokenPaging) renderPager(state.lastTokenPaging);
  }
}

/**
 * Gives the rows of a table that collapses on narrow screens (class
 * "collapse") the explicit roles that keep it a table for screen readers
 * once CSS changes its display, and a data-label per cell, taken from the
 * column header, which the collapsed layout shows before the value.
 */
function labelCollapsedRows(tbody) {
  const headers = [...tbody.closest('table').querySelectorAll('thead th')].map((th) => th.textContent.trim());
  for (const tr of tbody.rows) {
    tr.setAttribute('role', 'row');
    [...tr.cells].forEach((cell, i) => {
      cell.setAttribute('role', cell.tagName === 'TH' ? 'rowheader' : 'cell');
      // A cell spanning the row (an empty-table message) and the unlabelled
      // actions column get no label.
      if (cell.colSpan === 1 && headers[i] && headers[i] !== 'Actions') {
        cell.dataset.label = headers[i];
        // One box for the value, so the collapsed grid keeps it in one column.
        const value = document.createElement('div');
        value.append(...cell.childNodes);
        cell.append(value);
      }
    });
  }
}

/**
 * A table box that scrolls sideways gets a tab stop, so keyboard users can
 * scroll it; one that fits does not, to keep the tab order short. The tokens
 * box keeps tabindex -1 either way: focus is parked there after a revoke.
 */
function updateScrollStops() {
  for (const box of document.querySelectorAll('.table-wrap')) {
    if (box.offsetParent === null) continue; // hidden: measure it when shown
    if (box.scrollWidth > box.clientWidth + 1) box.tabIndex = 0;
    else if (box === ui.tokensWrap) box.tabIndex = -1;
    else box.removeAttribute('tabindex');
  }
}

function setFieldError(input, errorEl, message) {
  errorEl.textContent = message || '';
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

// ---------------------------------------------------------------------------
// Server calls
// ---------------------------------------------------------------------------

/** A refused or failed API call, with a message written for the operator. */
class ApiError extends Error {
  constructor(message, { status = 0, field = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

/**
 * One API call. Resolves with the parsed JSON body (null for 204); throws an
 * ApiError otherwise. A 401 outside the login call means the session has
 * ended, which sends the page back to the sign-in form.
 */
async function api(method, path, body) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch {
    throw new ApiError('Could not reach the server. Check the connection and try again.');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      // Empty or not JSON (a proxy's error page, say): the status still counts.
    }
  }
  if (res.ok) return data;
  const err = new ApiError(apiErrorMessage(res.status, data), {
    status: res.status,
    field: data && typeof data.field === 'string' ? data.field : null,
    retryAfter: res.status === 429 ? retryAfterSeconds(res.headers.get('Retry-After'), Date.now()) : null,
  });
  if (res.status === 401 && path !== 'login' && path !== 'session') {
    sessionEnded();
  }
  throw err;
}

/** For handlers: a 401 has already switched the view, so stay quiet about it. */
function isSessionEnd(err) {
  return err instanceof ApiError && err.status === 401;
}

// ---------------------------------------------------------------------------
// Confirmation
// ---------------------------------------------------------------------------

/** Asks before something that cannot be undone; resolves true to go ahead. */
function confirmAction({ title, message, ok }) {
  const dialog = ui.confirm;
  if (typeof dialog.showModal !== 'function') {
    // Very old browsers: the built-in prompt does the same job.
    return Promise.resolve(window.confirm(`${title}\n\n${message}`));
  }
  const opener = document.activeElement;
  ui.confirmTitle.textContent = title;
  ui.confirmMessage.textContent = message;
  ui.confirmOk.textContent = ok;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener && typeof opener.focus === 'function' && document.contains(opener)) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
  });
}

// ---------------------------------------------------------------------------
// Sign in and out
// ---------------------------------------------------------------------------

function showLogin(message = '') {
  stopRefresh();
  state.statsAgain = false;
  state.lastTokenPaging = null;
  state.settings = null;
  state.stats = null;
  state.shownSettings = {};
  delete document.body.dataset.difficulty;
  ui.loginError.textContent = message;
  setView('login');
  ui.key.value = '';
  ui.key.focus();
}

function sessionEnded() {
  if (state.view === 'dashboard') showLogin('Your session has ended. Sign in again.');
}

function lockLogin(seconds) {
  state.loginLockedUntil = Date.now() + seconds * 1000;
  ui.login.disabled = true;
  setTimeout(() => {
    if (Date.now() >= state.loginLockedUntil) ui.login.disabled = false;
  }, seconds * 1000 + 50);
}

async function onLogin(event) {
  event.preventDefault();
  if (Date.now() < state.loginLockedUntil) return;
  const key = ui.key.value;
  if (!key) {
    ui.loginError.textContent = 'Enter the admin key.';
    ui.key.focus();
    return;
  }
  ui.loginError.textContent = '';
  ui.login.disabled = true;
  try {
    await api('POST', 'login', { key });
  } catch (err) {
    if (err.status === 401) {
      ui.loginError.textContent = 'That key is not right.';
    } else if (err.status === 429) {
      ui.loginError.textContent = `Too many attempts. Try again in ${formatWait(err.retryAfter)}.`;
      lockLogin(err.retryAfter);
      return;
    } else {
      ui.loginError.textContent = err.message;
    }
    ui.key.select();
    ui.key.focus();
    return;
  } finally {
    if (Date.now() >= state.loginLockedUntil) ui.login.disabled = false;
  }
  ui.key.value = '';
  await enterDashboard({ focus: true });
}

async function onLogout() {
  try {
    await api('POST', 'logout');
  } catch (err) {
    // The cookie may be gone already; either way the operator wants out.
    if (!isSessionEnd(err)) console.warn('logout:', err.message);
  }
  showLogin('Signed out.');
}

// ---------------------------------------------------------------------------
// Settings and difficulty
// ---------------------------------------------------------------------------

/** What the page calls the setting `name`. */
function fieldLabel(name) {
  return settingLabel(name, state.settings && state.settings.specs);
}

/**
 * Draws the settings form's fields from the server's settings table, once,
 * and again only if the table changes (a server upgraded under the page).
 */
function renderSettingFields(specs) {
  const fields = settingFormFields(specs);
  if (JSON.stringify(fields) === JSON.stringify(state.formFields)) return;
  state.formFields = fields;
  state.shownSettings = {};
  ui.settingsFields.replaceChildren(...fields.map((f) => {
    const label = make('label', { attrs: { for: f.id } }, [`${f.label} `]);
    if (f.unit) label.append(make('span', { cls: 'unit', text: `(${f.unit})` }), ' ');
    label.append(make('span', {
      cls: 'badge badge-override',
      text: 'set here',
      attrs: { 'data-override': f.name, hidden: '' },
    }));
    const input = make('input', {
      attrs: {
        id: f.id,
        name: f.name,
        type: 'number',
        inputmode: 'numeric',
        min: f.min,
        max: f.max,
        step: 1,
        title: f.description,
        'aria-describedby': `${f.id}-hint ${f.id}-error`,
      },
    });
    return make('div', { cls: 'field' }, [
      label,
      input,
      make('p', { cls: 'small hint', text: f.hint, attrs: { id: `${f.id}-hint`, 'data-range': f.name } }),
      make('p', { cls: 'field-error', attrs: { id: `${f.id}-error`, 'data-error': f.name } }),
    ]);
  }));
}

function isOverridden(name) {
  const list = state.settings && Array.isArray(state.settings.overridden) ? state.settings.overridden : [];
  return list.includes(name);
}

function currentDifficulty() {
  return state.settings ? state.settings.settings.difficulty : null;
}

function difficultyText(s) {
  const preset = s.difficulty_preset ?? presetFor(s.settings.difficulty, s.presets);
  return preset
    ? `${formatInt(s.settings.difficulty)} (${preset})`
    : formatInt(s.settings.difficulty);
}

/** Keeps the preset buttons in step with the server's list of presets. */
function renderPresets(s) {
  const active = s.difficulty_preset ?? presetFor(s.settings.difficulty, s.presets);
  for (const [name, value] of Object.entries(s.presets || {})) {
    let button = ui.presetButtons.querySelector(`[data-preset="${CSS.escape(name)}"]`);
    if (!button) {
      button = make('button', {
        cls: 'secondary preset',
        attrs: { type: 'button', id: `preset-${name}`, 'data-preset': name, 'aria-pressed': 'false' },
      });
      ui.presetButtons.append(button);
    }
    button.replaceChildren(`${capitalize(name)} `, make('span', { cls: 'preset-value', text: formatInt(value) }));
    button.setAttribute('aria-pressed', String(name === active));
  }
}

function renderRevertButton() {
  const overridden = state.settings && state.settings.overridden;
  ui.settingsRevert.disabled = !(Array.isArray(overridden) && overridden.length);
}

/** Draws a settings answer (GET, PATCH and DELETE all return the same shape). */
function renderSettings(s) {
  state.settings = s;
  const cur = s.settings;
  document.body.dataset.difficulty = String(cur.difficulty);

  ui.difficultyCurrent.textContent = formatInt(cur.difficulty);
  const preset = s.difficulty_preset ?? presetFor(cur.difficulty, s.presets);
  ui.difficultyPreset.textContent = preset ? `${preset} preset` : 'custom';
  ui.difficultyOverridden.hidden = !isOverridden('difficulty');
  renderPresets(s);

  const ranges = s.ranges || {};
  if (ranges.difficulty) {
    const [min, max] = ranges.difficulty;
    ui.difficultyCustom.min = String(min);
    ui.difficultyCustom.max = String(max);
    ui.difficultyRange.textContent = `(${formatInt(min)} – ${formatInt(max)})`;
  }
  ui.difficultyCustom.placeholder = String(cur.difficulty);

  renderSettingFields(s.specs);
  for (const f of state.formFields) {
    const input = $(f.id);
    // Leave a value the operator has started to edit alone; a background
    // reload (another admin changed something) must not undo their typing.
    const shown = state.shownSettings[f.name];
    const edited = shown !== undefined && input.value !== String(shown);
    if (!edited) input.value = String(cur[f.name]);
    state.shownSettings[f.name] = cur[f.name];
    document.querySelector(`[data-override="${f.name}"]`).hidden = !isOverridden(f.name);
  }

  const overridden = Array.isArray(s.overridden) ? s.overridden : [];
  ui.overriddenSummary.textContent = overridden.length
    ? `Set on this page and kept across restarts, ahead of the configuration: ${overridden.map((n) => fieldLabel(n)).join(', ')}. Reverting puts every setting back to the configured value.`
    : 'Every setting has its configured value (from config.toml or the environment).';
  renderRevertButton();

  const facts = [];
  if (s.argon2) {
    const a = s.argon2;
    facts.push(`Argon2id: ${a.t_cost} passes, ${formatInt(a.m_cost / 1024)} MiB, ${a.parallelism} lane${a.parallelism === 1 ? '' : 's'}, ${a.hash_length}-byte hash.`);
  }
  if (Number.isFinite(s.token_purge_hours)) {
    facts.push(`Expired tokens can be refreshed for ${formatInt(s.token_purge_hours)} h before they are purged.`);
  }
  facts.push('These come from the configuration only.');
  ui.serverFacts.textContent = facts.join(' ');

  renderDeviceClasses();
}

async function loadSettings() {
  renderSettings(await api('GET', 'settings'));
}

/** PATCHes the difficulty; `value` is a preset name or an integer. */
async function applyDifficulty(value, trigger) {
  setFieldError(ui.difficultyCustom, ui.difficultyError, '');
  ui.difficultyStatus.textContent = '';
  const controls = [ui.difficultyApply, ...ui.presetButtons.querySelectorAll('button')];
  await busy(controls, async () => {
    try {
      const s = await api('PATCH', 'settings', { difficulty: value });
      ui.difficultyCustom.value = '';
      renderSettings(s);
      ui.difficultyStatus.textContent = `Difficulty set to ${difficultyText(s)}. New challenges use it from now on.`;
      refreshStats();
    } catch (err) {
      if (isSessionEnd(err)) return;
      if (err.status === 400) {
        setFieldError(ui.difficultyCustom, ui.difficultyError, err.message);
        ui.difficultyStatus.textContent = 'The difficulty was not changed.';
      } else {
        ui.difficultyStatus.textContent = `The difficulty was not changed: ${err.message}`;
      }
    }
  });
  if (trigger && document.contains(trigger)) trigger.focus();
}

function onPresetClick(event) {
  const button = event.target.closest('button[data-preset]');
  if (!button) return;
  applyDifficulty(button.dataset.preset, button);
}

function onDifficultySubmit(event) {
  event.preventDefault();
  const range = (state.settings && state.settings.ranges && state.settings.ranges.difficulty) || [1, 1e9];
  const parsed = parseWholeNumber(ui.difficultyCustom.value, range);
  if ('error' in parsed) {
    // A number input hands back "" for text it cannot read, such as "1e".
    setFieldError(ui.difficultyCustom, ui.difficultyError, ui.difficultyCustom.validity.badInput ? 'Enter a whole number (digits only).' : parsed.error);
    ui.difficultyCustom.focus();
    return;
  }
  applyDifficulty(parsed.value, ui.difficultyCustom);
}

async function onSettingsSubmit(event) {
  event.preventDefault();
  if (!state.settings) return;
  const wanted = {};
  let firstBad = null;
  for (const f of state.formFields) {
    const input = $(f.id);
    const errorEl = document.querySelector(`[data-error="${f.name}"]`);
    const parsed = parseWholeNumber(input.value, [f.min, f.max]);
    if ('error' in parsed) {
      setFieldError(input, errorEl, input.validity.badInput ? 'Enter a whole number (digits only).' : parsed.error);
      firstBad = firstBad || input;
    } else {
      setFieldError(input, errorEl, '');
      wanted[f.name] = parsed.value;
    }
  }
  if (firstBad) {
    ui.settingsStatus.textContent = 'Nothing was saved: check the highlighted field.';
    firstBad.focus();
    return;
  }
  const body = changedSettings(state.settings.settings, wanted);
  if (!Object.keys(body).length) {
    ui.settingsStatus.textContent = 'Nothing to save: the values are unchanged.';
    return;
  }
  ui.settingsStatus.textContent = '';
  await busy([ui.settingsSave], async () => {
    try {
      const s = await api('PATCH', 'settings', body);
      // The saved values are now the shown ones.
      state.shownSettings = {};
      renderSettings(s);
      const names = Object.keys(body).map((n) => fieldLabel(n)).join(', ');
      ui.settingsStatus.textContent = `Saved: ${names}.`;
      refreshStats();
    } catch (err) {
      if (isSessionEnd(err)) return;
      const f = state.formFields.find((x) => x.name === err.field);
      if (f) {
        setFieldError($(f.id), document.querySelector(`[data-error="${f.name}"]`), err.message);
        $(f.id).focus();
        ui.settingsStatus.textContent = 'Nothing was saved: check the highlighted field.';
      } else {
        ui.settingsStatus.textContent = `Nothing was saved: ${err.message}`;
      }
    }
  });
}

async function onRevert() {
  const names = (state.settings && state.settings.overridden || []).map((n) => fieldLabel(n));
  const ok = await confirmAction({
    title: 'Revert to configured values?',
    message: `This drops the values set on this page (${names.join(', ') || 'none'}) and goes back to what the configuration says.`,
    ok: 'Revert',
  });
  if (!ok) return;
  await busy([ui.settingsRevert], async () => {
    try {
      const s = await api('DELETE', 'settings');
      state.shownSettings = {};
      for (const f of state.formFields) setFieldError($(f.id), document.querySelector(`[data-error="${f.name}"]`), '');
      renderSettings(s);
      ui.settingsStatus.textContent = `Reverted to the configured values; difficulty is ${difficultyText(s)}.`;
      refreshStats();
    } catch (err) {
      if (!isSessionEnd(err)) ui.settingsStatus.textContent = `Nothing was reverted: ${err.message}`;
    }
  });
}

// ---------------------------------------------------------------------------
// Expected solve time per device class
// ---------------------------------------------------------------------------

/**
 * The difficulty and timeout being previewed: a valid value typed into the
 * custom difficulty or the timeout field and not yet applied. Null when
 * the server's own numbers apply.
 */
function previewInputs() {
  const s = state.settings;
  if (!s) return null;
  const dRange = (s.ranges && s.ranges.difficulty) || [1, 1e9];
  const tRange = (s.ranges && s.ranges.challenge_timeout) || [1, 1440];
  const d = parseWholeNumber(ui.difficultyCustom.value, dRange);
  const t = parseWholeNumber($('challenge-timeout')?.value, tRange);
  const difficulty = 'value' in d ? d.value : s.settings.difficulty;
  const timeoutMinutes = 'value' in t ? t.value : s.settings.challenge_timeout;
  if (difficulty === s.settings.difficulty && timeoutMinutes === s.settings.challenge_timeout) return null;
  return { difficulty, timeoutMinutes };
}

function renderDeviceClasses() {
  const s = state.settings;
  const stats = state.stats;
  if (!s || !stats) return;
  const preview = previewInputs();
  let classes = Array.isArray(stats.device_classes) ? stats.device_classes : [];
  let timeoutSeconds = Number.isFinite(stats.challenge_timeout_seconds)
    ? stats.challenge_timeout_seconds
    : s.settings.challenge_timeout * 60;
  let difficulty = Number.isFinite(stats.difficulty) ? stats.difficulty : s.settings.difficulty;
  if (preview) {
    difficulty = preview.difficulty;
    timeoutSeconds = preview.timeoutMinutes * 60;
    classes = previewDeviceClasses(classes, difficulty, timeoutSeconds);
    ui.solveTimeCaption.textContent = `Preview, not applied yet: difficulty ${formatInt(difficulty)} and a ${formatMinutes(preview.timeoutMinutes)} challenge timeout.`;
  } else {
    ui.solveTimeCaption.textContent = `At the current difficulty of ${formatInt(difficulty)} and the ${formatMinutes(timeoutSeconds / 60)} challenge timeout. 95 % of visitors finish within the second time.`;
  }

  const rows = classes.map((c) => {
    const source = c.source === 'measured'
      ? `measured from ${formatInt(c.samples)} ${c.samples === 1 ? 'solve' : 'solves'}`
      : 'reference value (too few real solves)';
    const timeout = c.exceeds_timeout
      ? make('span', { cls: 'state state-warn', text: '⚠ 95th percentile over the timeout' })
      : make('span', { cls: 'state state-ok', text: '✓ fits' });
    return make('tr', {}, [
      make('th', { attrs: { scope: 'row' }, text: c.label || c.class }),
      make('td', {}, [formatHashRate(c.hash_rate), make('span', { cls: 'sub', text: source })]),
      make('td', { cls: 'num', text: formatDuration(c.mean_seconds) }),
      make('td', { cls: 'num', text: formatDuration(c.p95_seconds) }),
      make('td', {}, [timeout]),
    ]);
  });
  if (!rows.length) {
    rows.push(make('tr', {}, [make('td', { cls: 'empty', attrs: { colspan: 5 }, text: 'The server reported no device classes.' })]));
  }
  ui.deviceRows.replaceChildren(...rows);
  labelCollapsedRows(ui.deviceRows);
  updateScrollStops();

  const slow = classes.filter((c) => c.exceeds_timeout);
  if (slow.length) {
    const names = slow.map((c) => c.label || c.class).join(', ');
    ui.solveTimeWarning.textContent = `Warning: on ${names}, more than 1 visitor in 20 would need longer than the ${formatMinutes(timeoutSeconds / 60)} challenge timeout, so their challenge expires before they finish. Lower the difficulty or raise the challenge timeout.`;
    ui.solveTimeWarning.hidden = false;
  } else {
    ui.solveTimeWarning.textContent = '';
    ui.solveTimeWarning.hidden = true;
  }
}

// ---------------------------------------------------------------------------
// Activity
// ---------------------------------------------------------------------------

function timelineRange() {
  const checked = document.querySelector('input[name="timeline-range"]:checked');
  return checked && checked.value === 'minutes' ? 'minutes' : 'hours';
}

function chartWidth(box) {
  return Math.max(MIN_CHART_WIDTH, Math.floor(box.clientWidth || 0));
}

function renderCharts() {
  const stats = state.stats;
  if (!stats || state.view !== 'dashboard') return;

  const minutes = timelineRange() === 'minutes';
  const timeline = (minutes ? stats.timeline_minutes : stats.timeline) || { buckets: [] };
  const span = minutes ? '60 minutes' : '24 hours';
  let width = chartWidth(ui.timelineChart);
  drawBarChart(ui.timelineChart, timelineChart(timeline, { width, height: CHART_HEIGHT }), {
    id: 'timeline-svg',
    title: `Challenges issued, solved and failed over the last ${span}, per ${minutes ? 'minute' : 'hour'}`,
    desc: summarizeTimeline(timeline, span),
    width,
    height: CHART_HEIGHT,
    series: (bar) => [
      { cls: 'bar-issued', ...bar.issued },
      { cls: 'bar-solved', ...bar.solved },
      { cls: 'bar-failed', ...bar.failed },
    ],
  });

  const solveTime = stats.solve_time || {};
  width = chartWidth(ui.histogramChart);
  drawBarChart(ui.histogramChart, histogramChart(solveTime.histogram, { width, height: CHART_HEIGHT }), {
    id: 'histogram-svg',
    title: 'How long recent solves took',
    desc: summarizeSolveTimes(solveTime),
    width,
    height: CHART_HEIGHT,
    series: (bar) => [{ cls: 'bar-histogram', y: bar.y, height: bar.height }],
  });
}

function renderStatTables() {
  const stats = state.stats;
  const minutes = timelineRange() === 'minutes';
  const timeline = (minutes ? stats.timeline_minutes : stats.timeline) || { buckets: [] };
  const buckets = Array.isArray(timeline.buckets) ? timeline.buckets : [];
  // Newest first: the table is read from the top.
  ui.timelineRows.replaceChildren(...buckets.slice().reverse().map((b) => make('tr', {}, [
    make('th', { attrs: { scope: 'row' }, text: formatDateTime(b.start) }),
    make('td', { cls: 'num', text: formatInt(b.issued) }),
    make('td', { cls: 'num', text: formatInt(b.solved) }),
    make('td', { cls: 'num', text: formatInt(b.failed) }),
  ])));

  const histogram = (stats.solve_time && stats.solve_time.histogram) || [];
  const labels = histogramLabels(histogram);
  ui.histogramRows.replaceChildren(...histogram.map((h, i) => make('tr', {}, [
    make('th', { attrs: { scope: 'row' }, text: labels[i] }),
    make('td', { cls: 'num', text: formatInt(h.count) }),
  ])));
  updateScrollStops();
}

function renderStats(stats) {
  state.stats = stats;
  const c = stats.challenges || {};
  for (const kind of ['issued', 'solved', 'failed']) {
    const k = c[kind] || {};
    $(`stat-${kind}-hour`).textContent = formatInt(k.hour);
    $(`stat-${kind}-day`).textContent = formatInt(k.day);
  }
  $('stat-active-tokens').textContent = formatInt(stats.active_tokens);
  const st = stats.solve_time || {};
  $('stat-p50').textContent = st.p50_ms == null ? '–' : formatMs(st.p50_ms);
  $('stat-p95').textContent = st.p95_ms == null ? '–' : formatMs(st.p95_ms);
  $('stat-samples').textContent = formatInt(st.samples);
  ui.statsUpdated.textContent = `Updated at ${new Date().toLocaleTimeString()}.`;

  renderCharts();
  renderStatTables();
  renderDeviceClasses();
  updateScrollStops();
}

/** The adaptive-difficulty panel, drawn on first use. */
function adaptivePanel() {
  state.adaptive ??= mountAdaptive($('adaptive-panel'), api);
  return state.adaptive;
}

/** Fetches the stats now; reschedules itself while auto-refresh is on. */
async function refreshStats() {
  if (state.view !== 'dashboard') return;
  if (state.statsInFlight) {
    state.statsAgain = true;
    return;
  }
  clearTimeout(state.refreshTimer);
  state.statsInFlight = true;
  try {
    const stats = await api('GET', 'stats');
    if (state.view !== 'dashboard') return;
    renderStats(stats);
    await adaptivePanel().refresh();
    if (ui.notice.dataset.from === 'stats') {
      notice('');
      delete ui.notice.dataset.from;
    }
    // Someone else (another admin, a restart) changed the difficulty.
    if (Number.isFinite(stats.difficulty) && stats.difficulty !== currentDifficulty()) {
      loadSettings().catch((err) => {
        if (!isSessionEnd(err)) notice(`Could not reload the settings: ${err.message}`);
      });
    }
  } catch (err) {
    if (!isSessionEnd(err)) {
      notice(`Could not refresh the activity: ${err.message} The figures shown may be out of date.`);
      ui.notice.dataset.from = 'stats';
    }
  } finally {
    state.statsInFlight = false;
    if (state.statsAgain) {
      state.statsAgain = false;
      refreshStats();
    } else {
      scheduleRefresh();
    }
  }
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
  if (state.view !== 'dashboard' || !ui.autoRefresh.checked || document.visibilityState !== 'visible') return;
  state.refreshTimer = setTimeout(refreshStats, REFRESH_MS);
}

function stopRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
}

function onVisibilityChange() {
  if (document.visibilityState === 'visible') {
    if (state.view === 'dashboard' && ui.autoRefresh.checked) refreshStats();
  } else {
    stopRefresh();
  }
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

function timeCell(unix) {
  const time = make('time', { text: formatShortDateTime(unix) });
  if (Number.isFinite(unix)) time.dateTime = new Date(unix * 1000).toISOString();
  return make('td', {}, [time, make('span', { cls: 'sub', text: relativeTime(unix, nowSeconds()) })]);
}

/** Requests used against the budget (0 = no budget), and the recent rate. */
function usageCell(t) {
  const used = formatInt(t.requests_used);
  const budget = t.requests_total > 0 ? ` / ${formatInt(t.requests_total)}` : '';
  return make('td', { cls: 'num' }, [
    make('span', { text: `${used}${budget}` }),
    make('span', { cls: 'sub', text: `${formatInt(t.requests_per_minute)}/min now` }),
  ]);
}

function tokenRow(t) {
  const ips = Array.isArray(t.ips) ? t.ips : [];
  // The token's number, which the revoke endpoint takes.
  const id = String(t.id);
  const actions = make('td');
  // Expired tokens can still be refreshed until purged, so they can be revoked too.
  if (t.status !== 'revoked') {
    actions.append(make('button', {
      cls: 'danger-outline',
      text: 'Revoke',
      attrs: { type: 'button', 'data-revoke': id, 'aria-label': `Revoke token ${id}` },
    }));
  }
  return make('tr', {}, [
    make('th', { attrs: { scope: 'row' } }, [make('code', { text: id })]),
    timeCell(t.created_at),
    timeCell(t.expires_at),
    make('td', {}, [ips.length
      ? make('ul', { cls: 'ips' }, ips.map((ip) => make('li', {}, [make('code', { text: ip })])))
      : make('span', { cls: 'sub', text: 'not used yet' })]),
    make('td', {}, [make('span', { cls: `state state-${t.status}`, text: t.status })]),
    make('td', { cls: 'num', text: formatInt(t.refresh_count) }),
    usageCell(t),
    actions,
  ]);
}

function renderPager(p) {
  ui.tokensPrev.disabled = !p.hasPrev;
  ui.tokensNext.disabled = !p.hasNext;
}

async function loadTokens() {
  const { page, perPage } = state.tokens;
  const data = await api('GET', `tokens?page=${page}&per_page=${perPage}`);
  const tokens = Array.isArray(data.tokens) ? data.tokens : [];
  const total = Number.isFinite(data.total) ? data.total : tokens.length;
  const p = paging(data.page ?? page, data.per_page ?? perPage, total, tokens.length);
  // A page emptied by revocations elsewhere: step back to the last real one.
  if (!tokens.length && total > 0 && p.page > p.pages) {
    state.tokens.page = p.pages;
    return loadTokens();
  }
  state.tokens.page = p.page;
  state.lastTokenPaging = p;
  ui.tokenRows.replaceChildren(...(tokens.length
    ? tokens.map(tokenRow)
    : [make('tr', {}, [make('td', { cls: 'empty', attrs: { colspan: 8 }, text: 'No tokens.' })])]));
  labelCollapsedRows(ui.tokenRows);
  updateScrollStops();
  ui.tokensSummary.textContent = p.summary;
  renderPager(p);
  return p;
}

async function reloadTokens() {
  try {
    await loadTokens();
  } catch (err) {
    if (!isSessionEnd(err)) ui.tokensStatus.textContent = `Could not load the tokens: ${err.message}`;
  }
}

async function goToPage(delta) {
  const before = state.tokens.page;
  state.tokens.page = Math.max(1, before + delta);
  ui.tokensStatus.textContent = '';
  try {
    await loadTokens();
  } catch (err) {
    state.tokens.page = before;
    if (!isSessionEnd(err)) ui.tokensStatus.textContent = `Could not load that page: ${err.message}`;
  }
  // Keep focus on the pager button if it is still usable, else on the table.
  const button = delta < 0 ? ui.tokensPrev : ui.tokensNext;
  if (button.disabled) ui.tokensWrap.focus();
}

async function onTokenClick(event) {
  const button = event.target.closest('button[data-revoke]');
  if (!button) return;
  const id = button.dataset.revoke;
  const ok = await confirmAction({
    title: `Revoke token ${id}?`,
    message: 'The browser holding it will have to solve a new challenge on its next request. This cannot be undone.',
    ok: 'Revoke',
  });
  if (!ok) return;
  button.disabled = true;
  try {
    await api('POST', `tokens/${encodeURIComponent(id)}/revoke`);
    ui.tokensStatus.textContent = `Token ${id} revoked.`;
  } catch (err) {
    if (isSessionEnd(err)) return;
    ui.tokensStatus.textContent = err.status === 404
      ? `Token ${id} no longer exists (it may have been purged).`
      : `Token ${id} was not revoked: ${err.message}`;
  }
  await reloadTokens();
  // The row was redrawn; put focus somewhere stable inside the table.
  ui.tokensWrap.focus();
  refreshStats();
}

async function onExpireAll() {
  const ok = await confirmAction({
    title: 'Expire all tokens?',
    message: 'Every browser will have to solve a challenge again on its next request (an expired token can be refreshed at half the cost until it is purged). This cannot be undone.',
    ok: 'Expire all',
  });
  if (!ok) return;
  await busy([ui.tokensExpireAll], async () => {
    try {
      const r = await api('POST', 'tokens/expire-all');
      const n = r && Number.isFinite(r.expired) ? r.expired : 0;
      ui.tokensStatus.textContent = `Expired ${formatInt(n)} ${n === 1 ? 'token' : 'tokens'}.`;
    } catch (err) {
      if (!isSessionEnd(err)) ui.tokensStatus.textContent = `Tokens were not expired: ${err.message}`;
      return;
    }
    await reloadTokens();
    refreshStats();
  });
}

/**
 * Revokes tokens in bulk: all of them, or those used from one network.
 * Unlike expiring, revoked tokens cannot be refreshed.
 * @param {{all: true} | {network: string}} scope
 */
async function onRevokeMany(scope) {
  const what = 'network' in scope ? `every token used from ${scope.network}` : 'every token';
  const ok = await confirmAction({
    title: 'Revoke tokens?',
    message: `This revokes ${what}. Revoked tokens cannot be refreshed: their browsers must solve a full challenge again. This cannot be undone.`,
    ok: 'Revoke',
  });
  if (!ok) return;
  await busy([ui.tokensRevokeAll, ui.tokensRevokeNetwork], async () => {
    try {
      const r = await api('POST', 'tokens/revoke', scope);
      const n = r && Number.isFinite(r.revoked) ? r.revoked : 0;
      ui.tokensStatus.textContent = `Revoked ${formatInt(n)} ${n === 1 ? 'token' : 'tokens'}.`;
    } catch (err) {
      if (!isSessionEnd(err)) ui.tokensStatus.textContent = `Tokens were not revoked: ${err.message}`;
      return;
    }
    await reloadTokens();
    refreshStats();
  });
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

/** Loads everything the dashboard shows, then switches to it. */
async function enterDashboard({ focus }) {
  ui.loginError.textContent = '';
  try {
    // Settings first: data-difficulty must be set when data-view says dashboard.
    await loadSettings();
  } catch (err) {
    if (isSessionEnd(err) || err.status === 401) {
      showLogin('Your session has ended. Sign in again.');
      return;
    }
    showLogin(`Signed in, but the settings could not be loaded: ${err.message}`);
    return;
  }
  notice('');
  setView('dashboard');
  if (focus) ui.dashboardTitle.focus();
  ui.statsUpdated.textContent = 'Loading…';
  await Promise.all([refreshStats(), reloadTokens()]);
}

function watchChartWidth() {
  window.addEventListener('resize', updateScrollStops);
  // A table inside <details> can only be measured once it is opened.
  for (const d of document.querySelectorAll('details')) d.addEventListener('toggle', updateScrollStops);
  if (typeof ResizeObserver !== 'function') {
    window.addEventListener('resize', () => renderCharts());
    return;
  }
  let queued = false;
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    const w = ui.timelineChart.clientWidth;
    if (queued || w === lastWidth) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      lastWidth = ui.timelineChart.clientWidth;
      renderCharts();
    });
  });
  observer.observe(ui.timelineChart);
}

async function main() {
  ui.loginForm.addEventListener('submit', onLogin);
  ui.logout.addEventListener('click', onLogout);
  ui.presetButtons.addEventListener('click', onPresetClick);
  ui.difficultyForm.addEventListener('submit', onDifficultySubmit);
  ui.difficultyCustom.addEventListener('input', () => {
    setFieldError(ui.difficultyCustom, ui.difficultyError, '');
    renderDeviceClasses();
  });
  // The fields are drawn later, from the server's settings table.
  ui.settingsFields.addEventListener('input', (event) => {
    if (event.target.name === 'challenge_timeout') renderDeviceClasses();
  });
  ui.settingsForm.addEventListener('submit', onSettingsSubmit);
  ui.settingsRevert.addEventListener('click', onRevert);

  ui.statsRefresh.addEventListener('click', () => refreshStats());
  ui.autoRefresh.addEventListener('change', () => {
    if (ui.autoRefresh.checked) refreshStats();
    else stopRefresh();
  });
  for (const radio of document.querySelectorAll('input[name="timeline-range"]')) {
    radio.addEventListener('change', () => {
      if (!state.stats) return;
      renderCharts();
      renderStatTables();
    });
  }
  document.addEventListener('visibilitychange', onVisibilityChange);
  watchChartWidth();

  ui.tokenRows.addEventListener('click', onTokenClick);
  ui.tokensPrev.addEventListener('click', () => goToPage(-1));
  ui.tokensNext.addEventListener('click', () => goToPage(1));
  ui.tokensRefresh.addEventListener('click', () => {
    ui.tokensStatus.textContent = '';
    reloadTokens();
  });
  ui.tokensPerPage.addEventListener('change', () => {
    state.tokens.perPage = Number(ui.tokensPerPage.value) || 25;
    state.tokens.page = 1;
    reloadTokens();
  });
  ui.tokensExpireAll.addEventListener('click', onExpireAll);
  ui.tokensRevokeAll.addEventListener('click', () => onRevokeMany({ all: true }));
  ui.tokensRevokeNetwork.addEventListener('click', () => {
    const network = ui.tokensNetwork.value.trim();
    if (!network) {
      ui.tokensStatus.textContent = 'Enter a network such as 203.0.113.0/24 or 2001:db8::/48.';
      ui.tokensNetwork.focus();
      return;
    }
    onRevokeMany({ network });
  });

  // The session endpoint always answers 200 and says whether we are signed in.
  let session;
  try {
    session = await api('GET', 'session');
  } catch (err) {
    showLogin(err.status === 401 ? '' : err.message);
    return;
  }
  if (!session || !session.authenticated) {
    showLogin('');
    return;
  }
  await enterDashboard({ focus: false });
}

main();
