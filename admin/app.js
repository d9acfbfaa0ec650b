// @ts-check
// The admin page: sign in with the admin key, then change the live settings,
// watch the activity and manage tokens through the admin API.
//
// Each card is a panel of its own module with a `mount(root, api)`; the
// panels share no state. A panel announces what happened in it as a DOM
// event (`powgate:settings`, `powgate:stats`, `powgate:preview`,
// `powgate:changed`, `powgate:notice`, `powgate:signed-in`), and this module
// passes it on to the panels that show it.
//
// Every URL is relative because the page may be mounted under a prefix such
// as /.powgate/admin/; the API is a sibling of the page's directory.
//
// Browser tests can wait on document.body.dataset.view
// ('loading' → 'login' | 'dashboard') and document.body.dataset.difficulty
// (the live difficulty, set before the view becomes 'dashboard' and after
// every change).

import { mount as mountActivity } from './activity.js';
import { mount as mountAdaptive } from './adaptive.js';
import { ApiError, createApi, isSessionEnd, messageOf } from './api.js';
import { mount as mountDifficulty } from './difficulty.js';
import { byId, updateScrollStops } from './dom.js';
import { mount as mountLogin } from './login.js';
import { mount as mountSettings } from './settings.js';
import { mount as mountSolveTime } from './solve-time.js';
import { mount as mountTokens } from './tokens.js';

/** @typedef {import('../shared/wire.js').AdminSettings} AdminSettings */
/** @typedef {import('../shared/wire.js').AdminStats} AdminStats */

const ui = {
  loading: byId(document, 'loading'),
  loginView: byId(document, 'login-view'),
  dashboard: byId(document, 'dashboard-view'),
  dashboardTitle: byId(document, 'dashboard-title'),
  logout: byId(document, 'logout'),
  notice: byId(document, 'notice'),
};

/** 'loading', 'login' or 'dashboard'. */
let view = 'loading';
/** The difficulty last shown, to notice a change made elsewhere. @type {number | null} */
let shownDifficulty = null;

const api = createApi('../api/admin/', {
  onSessionEnd: () => {
    if (view === 'dashboard') showLogin('Your session has ended. Sign in again.');
  },
});

const login = mountLogin(ui.loginView, api);
const difficulty = mountDifficulty(byId(document, 'difficulty-card'), api);
const solveTime = mountSolveTime(byId(document, 'solve-time-card'), api);
const adaptive = mountAdaptive(byId(document, 'adaptive-panel'), api);
const settings = mountSettings(byId(document, 'settings-card'), api);
const activity = mountActivity(byId(document, 'stats-card'), api);
const tokens = mountTokens(byId(document, 'tokens-card'), api);

/** @param {string} next */
function setView(next) {
  view = next;
  document.body.dataset.view = next;
  ui.loading.hidden = true;
  ui.loginView.hidden = next !== 'login';
  ui.dashboard.hidden = next !== 'dashboard';
}

/** @param {string} text */
function notice(text) {
  ui.notice.textContent = text;
}

/** @param {string} message why the sign-in form is shown */
function showLogin(message) {
  activity.stop();
  settings.clear();
  solveTime.clear();
  tokens.clear();
  shownDifficulty = null;
  delete document.body.dataset.difficulty;
  setView('login');
  login.show(message);
}

/**
 * Every panel that shows settings draws this answer (GET, PATCH and DELETE
 * all return the same shape).
 *
 * @param {AdminSettings} s
 */
function showSettings(s) {
  shownDifficulty = s.settings.difficulty;
  document.body.dataset.difficulty = String(s.settings.difficulty);
  difficulty.showSettings(s);
  settings.showSettings(s);
  solveTime.showSettings(s);
}

async function loadSettings() {
  showSettings(await api('GET', 'settings'));
}

/**
 * Loads everything the dashboard shows, then switches to it.
 *
 * @param {{focus: boolean}} options
 */
async function enterDashboard({ focus }) {
  login.clearMessage();
  try {
    // Settings first: data-difficulty must be set when data-view says dashboard.
    await loadSettings();
  } catch (err) {
    if (isSessionEnd(err)) {
      showLogin('Your session has ended. Sign in again.');
      return;
    }
    showLogin(`Signed in, but the settings could not be loaded: ${messageOf(err)}`);
    return;
  }
  notice('');
  setView('dashboard');
  if (focus) ui.dashboardTitle.focus();
  await Promise.all([activity.start(), tokens.reload()]);
}

/**
 * A panel's announcement, with the detail it carries.
 *
 * @template T
 * @param {string} name
 * @param {(detail: T) => void} handle
 */
function on(name, handle) {
  document.addEventListener(`powgate:${name}`, (event) => {
    handle(/** @type {CustomEvent<T>} */ (event).detail);
  });
}

on('signed-in', () => enterDashboard({ focus: true }));
on('settings', (/** @type {AdminSettings} */ s) => {
  showSettings(s);
  activity.refresh();
});
on('changed', () => activity.refresh());
on('preview', (/** @type {Record<string, string>} */ values) => solveTime.preview(values));
on('stats', (/** @type {AdminStats} */ stats) => {
  solveTime.showStats(stats);
  difficulty.showStats(stats);
  adaptive.refresh();
  // Someone else (another admin, a restart) changed the difficulty.
  if (Number.isFinite(stats.difficulty) && stats.difficulty !== shownDifficulty) {
    loadSettings().catch((err) => {
      if (!isSessionEnd(err)) notice(`Could not reload the settings: ${messageOf(err)}`);
    });
  }
});
on('notice', (/** @type {{from: string, text: string}} */ { from, text }) => {
  // A panel clears only its own news.
  if (!text && ui.notice.dataset.from !== from) return;
  notice(text);
  if (text) ui.notice.dataset.from = from;
  else delete ui.notice.dataset.from;
});

ui.logout.addEventListener('click', async () => {
  try {
    await api('POST', 'logout');
  } catch (err) {
    // The cookie may be gone already; either way the operator wants out.
    if (!isSessionEnd(err)) console.warn('logout:', messageOf(err));
  }
  showLogin('Signed out.');
});

window.addEventListener('resize', updateScrollStops);
// A table inside <details> can only be measured once it is opened.
for (const d of document.querySelectorAll('details')) d.addEventListener('toggle', updateScrollStops);

async function main() {
  // The session endpoint always answers 200 and says whether we are signed in.
  let session;
  try {
    session = await api('GET', 'session');
  } catch (err) {
    showLogin(err instanceof ApiError && err.status === 401 ? '' : messageOf(err));
    return;
  }
  if (!session || !session.authenticated) {
    showLogin('');
    return;
  }
  await enterDashboard({ focus: false });
}

main();
