// @ts-check
// The challenge page: fetch (or resume) a challenge, run the worker pool,
// submit the answer, then show the token and send the visitor back.
//
// Every URL is relative because the page may be mounted under a prefix
// such as /.powgate/.
//
// Every word shown comes from the catalog of the visitor's language, which
// the server puts into the page (see i18n.js and messages.js).
//
// Browser tests can watch document.body.dataset.state
// ('loading' → 'solving' → 'solved' | 'error'), document.body.dataset.workers
// and window.powgateStatus.
//
// `?solver=scalar` makes the workers load the scalar wasm solver even where
// the browser has wasm SIMD (for comparing the two, or working around a
// broken engine); powgateStatus.solver says which build is in use.

import { redirectPlan, solveRequest } from './answer.js';
import { describeCaps } from './caps.js';
import { isChallenge, isReusable, secondsLeft } from './challenge.js';
import { parseCatalog, translator } from './i18n.js';
import { visitorErrorKey, workersWhyText } from './messages.js';
import { solveTicket, WorkerPool } from './pool.js';
import {
  etaSeconds, formatElapsed, successProbability, timeEstimateText,
} from './progress.js';
import { queuedAhead, queuedText } from './queue.js';
import { isPendingAnswer, retryDelayMs, solveOutcome } from './resend.js';
import { requestJson, retryAfterSeconds } from './shared/http.js';
import { chooseSolver } from './solver-choice.js';
import { continueTarget, oneTabAtATime, solvedWhileWaiting } from './tabs.js';

/** @typedef {import('./challenge.js').StoredChallenge} StoredChallenge */
/** @typedef {import('./shared/http.js').JsonAnswer} JsonAnswer */

const STORAGE_KEY = 'powgate.challenge';
/** A found answer not yet answered by the server (see resend.js). */
const PENDING_KEY = 'powgate.answer';
/** When (ms) a tab of this browser last got a token (see tabs.js). */
const SOLVED_KEY = 'powgate.solved_at';
/** Long enough to see that it worked, short enough not to be a chore. */
const REDIRECT_DELAY_MS = 1500;
/** Fresh challenges to try after "already spent"/"expired" before giving up. */
const MAX_CHALLENGES = 5;
/** 429/503 answers to sit out before giving up. */
const MAX_BUSY_RETRIES = 20;
const DEFAULT_RETRY_AFTER_S = 5;
const MAX_RETRY_AFTER_S = 300;
/** Attempts for a request that fails at the network level. */
const MAX_NETWORK_ATTEMPTS = 4;
const CONFIG_TIMEOUT_MS = 10000;

/**
 * An element of index.html by id; they are all there, so a missing one is
 * a bug in the page, reported at once rather than as a null later.
 *
 * @template {HTMLElement} [E=HTMLElement]
 * @param {string} id
 * @returns {E}
 */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return /** @type {E} */ (el);
}

/**
 * The page's words in the language the server chose: the tag in <html
 * lang>, the catalog (merged over English) in #messages.
 */
const { t, number } = translator(
  document.documentElement.lang || 'en',
  parseCatalog(document.getElementById('messages')?.textContent),
);

const ui = {
  title: $('title'),
  lead: $('lead'),
  solver: $('solver'),
  status: $('status'),
  progress: $('progress'),
  fill: $('progress-fill'),
  rate: $('rate'),
  elapsed: $('elapsed'),
  estimate: $('estimate'),
  workers: $('workers'),
  hashes: $('hashes'),
  workersWhy: $('workers-why'),
  pause: /** @type {HTMLButtonElement} */ ($('pause')),
  notice: $('notice'),
  success: $('success'),
  continueText: $('continue'),
  successTitle: $('success-title'),
  continueLink: /** @type {HTMLAnchorElement} */ ($('continue-link')),
  goBack: /** @type {HTMLAnchorElement} */ ($('go-back')),
  tokenBox: $('token-box'),
  token: /** @type {HTMLInputElement} */ ($('token')),
  copy: $('copy'),
  copyStatus: $('copy-status'),
  tokenExpiry: $('token-expiry'),
  error: $('error'),
  errorTitle: $('error-title'),
  errorMessage: $('error-message'),
  contact: $('contact'),
  contactLink: /** @type {HTMLAnchorElement} */ ($('contact-link')),
  retry: $('retry'),
  paste: /** @type {HTMLDetailsElement} */ ($('paste')),
  pasteRedir: /** @type {HTMLInputElement} */ ($('paste-redir')),
};

/**
 * Read by browser tests as window.powgateStatus; the same object is updated
 * in place.
 *
 * @type {{
 *   state: string, workers: number, hashes: number, difficulty: number | null,
 *   purpose: string | null, dropped: number, rate: number, paused: boolean,
 *   error: string | null, redirect: string | null,
 *   solver: 'simd' | 'scalar' | null, ahead: number | null,
 * }}
 */
const status = {
  state: 'loading',
  workers: 0,
  hashes: 0,
  difficulty: null,
  purpose: null,
  dropped: 0,
  rate: 0,
  paused: false,
  error: null,
  /** Where the server said to send the visitor, as an absolute URL. */
  redirect: null,
  /** 'simd' or 'scalar': the wasm solver build the workers load. */
  solver: null,
  /** While the answer waits for its turn to be verified: how many are ahead. */
  ahead: null,
};
/** @type {any} */ (window).powgateStatus = status;

/** The pool of the challenge being solved, for the pause button. @type {WorkerPool | null} */
let currentPool = null;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

const nowSeconds = () => Math.floor(Date.now() / 1000);
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** @param {string} state */
function setState(state) {
  status.state = state;
  document.body.dataset.state = state;
}

/** @param {number} n */
function setWorkers(n) {
  status.workers = n;
  document.body.dataset.workers = String(n);
  ui.workers.textContent = String(n);
}

/** @param {string} text */
function say(text) {
  ui.status.textContent = text;
}

/** @param {string} text */
function notice(text) {
  ui.notice.textContent = text;
}

/** @param {unknown} text @param {number} [max] */
function clip(text, max = 200) {
  const s = String(text);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

// ---------------------------------------------------------------------------
// Server calls
// ---------------------------------------------------------------------------

/** An error whose message is written for the visitor and shown as it is. */
class UserFacingError extends Error {}

/**
 * The browser's workers failed, not the challenge: it stays stored for the
 * next load to resume. WebKit fails the workers' pending solver downloads as
 * soon as a reload starts, before pagehide, so this is also what a page
 * reloaded mid-download sees last.
 */
class WorkersFailedError extends UserFacingError {}

/** @param {Response} res */
function retryAfter(res) {
  return retryAfterSeconds(res.headers.get('Retry-After'), Date.now(), DEFAULT_RETRY_AFTER_S, MAX_RETRY_AFTER_S);
}

/**
 * One request, retried with backoff only when the network itself fails.
 *
 * @param {string} path
 * @param {unknown} [body] POSTed as JSON when given
 * @returns {Promise<JsonAnswer>}
 */
async function request(path, body) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await requestJson(path, { body });
    } catch {
      if (attempt >= MAX_NETWORK_ATTEMPTS) throw new UserFacingError(t('unreachable'));
      await sleep(1000 * 2 ** (attempt - 1));
    }
  }
}

/**
 * POSTs JSON, sitting out 429/503 answers for as long as Retry-After asks.
 * A queued answer is returned as it is: see postAnswer.
 *
 * @param {string} path
 * @param {unknown} body
 * @returns {Promise<JsonAnswer>}
 */
async function post(path, body) {
  for (let busy = 0; ; busy++) {
    const r = await request(path, body);
    if (queuedAhead(r.status, r.data) !== null) return r;
    if ((r.status !== 429 && r.status !== 503) || busy >= MAX_BUSY_RETRIES) return r;
    const wait = retryAfter(r.res);
    say(t('busy', { seconds: wait }));
    await sleep(wait * 1000);
  }
}

/**
 * The site's name and contact link (`site_name`, `contact_url`), as
 * /api/config gives them; nulls when unset or unreadable.
 *
 * @returns {Promise<{siteName: string | null, contactUrl: string | null}>}
 */
async function loadIdentity() {
  const none = { siteName: null, contactUrl: null };
  try {
    const r = await Promise.race([
      request('api/config'),
      sleep(CONFIG_TIMEOUT_MS).then(() => null),
    ]);
    if (!r || r.status !== 200 || !r.data || typeof r.data !== 'object') return none;
    const { site_name: name, contact_url: contact } = /** @type {Partial<import('./shared/wire.js').PageConfig>} */ (r.data);
    return {
      siteName: typeof name === 'string' && name !== '' ? name : null,
      // The server accepts only http, https and mailto; checked again here
      // since the link is put in the page.
      contactUrl: typeof contact === 'string' && /^(https?:\/\/|mailto:)/i.test(contact) ? contact : null,
    };
  } catch {
    return none;
  }
}

/**
 * Names the site in the lead, and links its operator when there is a
 * contact link. Text only, never markup.
 *
 * @param {{siteName: string | null, contactUrl: string | null}} identity
 */
function showIdentity({ siteName, contactUrl }) {
  const site = siteName ?? location.hostname;
  ui.lead.textContent = t('lead', { site });
  if (contactUrl) {
    ui.contactLink.href = contactUrl;
    ui.contactLink.textContent = t('contact', { site });
    ui.contact.hidden = false;
  }
}

// ---------------------------------------------------------------------------
// Challenges and their storage
// ---------------------------------------------------------------------------

function clearStored() {
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage disabled: nothing was stored either.
  }
}

/** @returns {StoredChallenge | null} */
function loadStored() {
  /** @type {unknown} */
  let c;
  try {
    c = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
  } catch {
    c = null;
  }
  if (isReusable(c, nowSeconds())) return c;
  if (c) clearStored();
  return null;
}

/** @param {StoredChallenge} c */
function store(c) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(c));
  } catch {
    // Private mode or full storage: a reload just starts over.
  }
}

/** @returns {import('./resend.js').PendingAnswer | null} */
function loadPending() {
  /** @type {unknown} */
  let p;
  try {
    p = JSON.parse(localStorage.getItem(PENDING_KEY) || 'null');
  } catch {
    p = null;
  }
  if (isPendingAnswer(p, nowSeconds())) return p;
  if (p) clearPending();
  return null;
}

/** @param {import('./resend.js').PendingAnswer} p */
function storePending(p) {
  try {
    localStorage.setItem(PENDING_KEY, JSON.stringify(p));
  } catch {
    // Private mode or full storage: the answer lives as long as this page.
  }
}

function clearPending() {
  try {
    localStorage.removeItem(PENDING_KEY);
  } catch {
    // Storage disabled: nothing was stored either.
  }
}

/**
 * A challenge to work on: the stored one if it still has time left (the
 * search has no memory, so starting it again from nonce 0 loses nothing),
 * else a fresh one. The server decides from the cookie whether it is a
 * refresh.
 *
 * @returns {Promise<{challenge: StoredChallenge, resumed: boolean}>}
 */
async function obtainChallenge() {
  const stored = loadStored();
  if (stored) return { challenge: stored, resumed: true };

  say(t('fetchingChallenge'));
  const r = await post('api/challenge', {});
  if (r.status !== 200) throw new UserFacingError(t(visitorErrorKey(r.status, r.data)));
  if (!isChallenge(r.data)) throw new UserFacingError(t('badChallenge'));
  const c = { ...r.data, received_at: nowSeconds() };
  store(c);
  return { challenge: c, resumed: false };
}

// ---------------------------------------------------------------------------
// Solving
// ---------------------------------------------------------------------------

let renderQueued = false;

/** DOM updates at most once a frame; powgateStatus is always current. */
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

/** @param {number} p the chance that the search is done, 0 to 1 */
function setProgress(p) {
  const pct = Math.min(100, Math.max(0, Math.round(p * 100)));
  // CSSOM writes are allowed by the CSP, unlike style attributes in markup.
  ui.fill.style.transform = `scaleX(${Math.min(1, Math.max(0, p))})`;
  ui.progress.setAttribute('aria-valuenow', String(pct));
  ui.progress.setAttribute('aria-valuetext', number(pct / 100, { style: 'percent' }));
}

function render() {
  if (status.state !== 'solving') return;
  setProgress(successProbability(status.hashes, status.difficulty ?? 0));
  ui.hashes.textContent = number(status.hashes);
  ui.rate.textContent = hashRateText(status.rate);
  const elapsedS = (currentPool ? currentPool.activeMs : 0) / 1000;
  ui.elapsed.textContent = formatElapsed(t, elapsedS);
  ui.estimate.textContent = status.paused
    ? ''
    : timeEstimateText(t, elapsedS, etaSeconds(status.hashes, status.rate, status.difficulty ?? 0));
}

/**
 * Hashes a second, to two or three significant figures ("0.75", "12.0",
 * "1,400" in English); "–" while unknown.
 *
 * @param {number} rate
 */
function hashRateText(rate) {
  if (!(Number.isFinite(rate) && rate > 0)) return '–';
  const digits = rate < 10 ? 2 : rate < 100 ? 1 : 0;
  return t('hashRate', { rate: number(rate, { minimumFractionDigits: digits, maximumFractionDigits: digits }) });
}

/**
 * @param {number} memoryKiB
 * @returns {import('./caps.js').Environment}
 */
function navigatorFacts(memoryKiB) {
  return {
    hardwareConcurrency: navigator.hardwareConcurrency,
    userAgent: navigator.userAgent,
    // Chromium only, and not in the DOM typings.
    deviceMemory: /** @type {{deviceMemory?: number}} */ (navigator).deviceMemory,
    maxTouchPoints: navigator.maxTouchPoints,
    platform: navigator.platform,
    memoryKiB,
  };
}

/** A module worker running worker.js, for the search and the ticket alike. */
function createWorker() {
  return new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
}

/**
 * Starts computing the admission ticket in its own worker, beside the
 * search. Never rejects: a failure comes back as an Error for submit() to
 * throw, so it is not reported as unhandled while the search still runs.
 *
 * @param {StoredChallenge} c
 * @returns {Promise<number | null | Error>}
 */
function startTicket(c) {
  return solveTicket({ createWorker, salt: c.salt, bits: c.ticket_bits, solver: status.solver ?? undefined })
    .catch((err) => (err instanceof Error ? err : new Error(String(err))));
}

/** @typedef {{nonce: number, hashes: number, workers: number, elapsedMs: number, deviceClass: string}} Found */

/**
 * Runs the pool on one challenge; resolves with the winning nonce.
 *
 * @param {StoredChallenge} c
 * @returns {Promise<Found>}
 */
function solve(c) {
  const caps = describeCaps(navigatorFacts(c.argon2.m_cost));
  ui.workersWhy.textContent = workersWhyText(t, caps);
  status.hashes = 0;
  status.rate = 0;
  status.dropped = 0;
  setWorkers(caps.workers);
  // The time so far moves on between progress reports, which a slow device
  // sends seconds apart.
  const ticker = setInterval(scheduleRender, 1000);

  return new Promise((resolve, reject) => {
    const pool = new WorkerPool({
      createWorker,
      count: caps.workers,
      job: { params: c.argon2, salt: c.salt, difficulty: c.difficulty, solver: status.solver ?? undefined },
      onProgress: ({ hashes, rate, workers }) => {
        status.hashes = hashes;
        status.rate = rate;
        if (workers !== status.workers) setWorkers(workers);
        scheduleRender();
      },
      onWorkerDropped: ({ reason, remaining }) => {
        status.dropped = pool.dropped;
        setWorkers(remaining);
        console.warn(`powgate: a worker stopped: ${clip(reason, 120)}`);
        notice(t('workerStopped', { count: remaining }));
      },
      onFound: ({ nonce, hashes, workers }) => {
        status.hashes = hashes;
        resolve({
          nonce, hashes, workers, elapsedMs: pool.activeMs, deviceClass: caps.deviceClass,
        });
      },
      onFatal: (err) => {
        // The last worker's drop comes with the fatal error, not onWorkerDropped.
        status.dropped = pool.dropped;
        setWorkers(0);
        reject(new WorkersFailedError(t('workersFailed', { why: clip(err.message, 120) })));
      },
    });
    currentPool = pool;
    if (status.paused) pool.pause();
    pool.start();
  }).finally(() => {
    clearInterval(ticker);
    currentPool = null;
  });
}

function onPauseClick() {
  status.paused = !status.paused;
  ui.pause.textContent = status.paused ? t('resume') : t('pause');
  if (currentPool) {
    if (status.paused) currentPool.pause();
    else currentPool.resume();
  }
  say(status.paused ? t('paused') : t('calculating'));
  render();
}

/**
 * Waits `ms`, or less if the browser says it is back online.
 *
 * @param {number} ms
 */
function waitForRetry(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      resolve(undefined);
    };
    const timer = setTimeout(done, ms);
    window.addEventListener('online', done);
  });
}

/** @type {Record<import('./resend.js').RenewReason, string>} */
const RENEW_KEY = {
  expired: 'renewExpired',
  spent: 'renewSpent',
  address: 'renewAddress',
};

/**
 * Sends the answer, with the `?redir=` for the server to check, until the
 * server has answered it: a network failure, a busy server or a queued
 * answer is waited out (with backoff, or Retry-After) for as long as the
 * challenge lives. The answer stays stored meanwhile, so a reload sends it
 * too. Returns the token answer, or null when a new challenge is needed.
 *
 * @param {StoredChallenge} c
 * @param {import('./resend.js').PendingAnswer['found']} found
 * @param {number | null} ticket
 * @param {string | null} redir
 * @returns {Promise<import('./shared/wire.js').SolveResponse | null>}
 */
async function sendAnswer(c, found, ticket, redir) {
  storePending({ challenge: c, found, ticket });
  const body = solveRequest(c, found, ticket, redir);
  for (let failed = 0; ;) {
    if (secondsLeft(c, nowSeconds()) <= 0) {
      clearPending();
      notice(t('renewExpired'));
      return null;
    }
    /** @type {JsonAnswer} */
    let r;
    try {
      r = await requestJson('api/solve', { body });
    } catch {
      failed += 1;
      const wait = retryDelayMs(failed);
      say(t('answerWaitingForNetwork', { seconds: Math.round(wait / 1000) }));
      await waitForRetry(wait);
      continue;
    }
    failed = 0;
    const outcome = solveOutcome(r.status, r.data);
    status.ahead = outcome.kind === 'queued' ? outcome.ahead : null;
    switch (outcome.kind) {
      case 'token':
        clearPending();
        return /** @type {import('./shared/wire.js').SolveResponse} */ (r.data);
      case 'queued':
        say(queuedText(t, outcome.ahead));
        await sleep(retryAfter(r.res) * 1000);
        break;
      case 'busy': {
        const wait = retryAfter(r.res);
        say(t('busy', { seconds: wait }));
        await waitForRetry(wait * 1000);
        break;
      }
      case 'renew':
        clearPending();
        notice(t(RENEW_KEY[outcome.reason]));
        return null;
      default:
        clearPending();
        throw new UserFacingError(t(visitorErrorKey(r.status, r.data)));
    }
  }
}

/**
 * Waits for the admission ticket, then sends the answer (see sendAnswer).
 *
 * @param {StoredChallenge} c
 * @param {Found} found
 * @param {Promise<number | null | Error>} ticketPromise
 * @param {string | null} redir
 * @returns {Promise<import('./shared/wire.js').SolveResponse | null>}
 */
async function submit(c, found, ticketPromise, redir) {
  ui.pause.disabled = true;
  const ticket = await ticketPromise;
  if (ticket instanceof Error) {
    throw new WorkersFailedError(t('workersFailed', { why: clip(ticket.message, 120) }));
  }
  say(t('answerSending'));
  return sendAnswer(c, found, ticket, redir);
}

// ---------------------------------------------------------------------------
// Outcome
// ---------------------------------------------------------------------------

async function copyToken() {
  const text = ui.token.value;
  try {
    await navigator.clipboard.writeText(text);
    ui.copyStatus.textContent = t('copied');
    return;
  } catch {
    // No clipboard API (plain http, older browser) or permission refused.
  }
  ui.token.focus();
  ui.token.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  ui.copyStatus.textContent = copied ? t('copied') : t('copySelected');
}

/**
 * The Done screen: one heading, where to go next, and focus on it. The
 * progress card goes (no disabled Pause left behind); the pass itself is
 * only under "Other ways", masked, for the command line.
 *
 * @param {string} title
 * @param {string | null} target where to go, absolute; null: stay
 * @param {string} stayText what to say when staying
 */
function showDone(title, target, stayText) {
  setState('solved');
  setProgress(1);
  ui.pause.disabled = true;
  ui.solver.hidden = true;
  say('');
  ui.successTitle.textContent = title;
  ui.success.hidden = false;
  status.redirect = target;
  if (target) {
    ui.continueText.textContent = t('takingYouBack');
    ui.continueLink.href = target;
    ui.continueLink.hidden = false;
    ui.continueLink.focus();
    setTimeout(() => location.replace(target), REDIRECT_DELAY_MS);
    return;
  }
  ui.continueText.textContent = stayText;
  if (history.length > 1) ui.goBack.hidden = false;
  ui.successTitle.focus();
}

/**
 * @param {import('./shared/wire.js').SolveResponse} answer
 * @param {string | null} redir the page's `?redir=`
 */
function showSuccess(answer, redir) {
  try {
    localStorage.setItem(SOLVED_KEY, String(Date.now()));
  } catch {
    // Storage disabled: waiting tabs solve for themselves.
  }
  ui.hashes.textContent = number(status.hashes);
  ui.estimate.textContent = '';
  ui.token.value = answer.token;
  ui.tokenBox.hidden = false;
  if (Number.isFinite(answer.expires_at)) {
    const when = new Date(answer.expires_at * 1000).toLocaleString(document.documentElement.lang || undefined);
    ui.tokenExpiry.textContent = t('passValidUntil', { when });
  }
  // Only where the server says: it checked `redir` with its one rule.
  const { target, refused } = redirectPlan(answer, redir);
  if (refused) notice(t('redirectRefused', { address: clip(redir) }));
  showDone(
    answer.refreshed ? t('doneRefreshedTitle') : t('doneTitle'),
    target ? new URL(target, location.href).href : null,
    t('goBackYourself'),
  );
}

/** @param {unknown} err */
function showError(err) {
  if (currentPool) currentPool.stop();
  // Unless only the workers failed, the next attempt should start from a
  // fresh challenge.
  if (!(err instanceof WorkersFailedError)) {
    clearStored();
    clearPending();
  }
  const message = err instanceof UserFacingError ? err.message : t('pageBug');
  if (!(err instanceof UserFacingError)) console.error(err);
  status.error = message;
  setState('error');
  ui.pause.disabled = true;
  ui.estimate.textContent = '';
  say(t('stopped'));
  ui.errorMessage.textContent = message;
  ui.error.hidden = false;
  ui.paste.open = true;
  ui.errorTitle.focus();
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

/**
 * Fetches (or resumes) challenges and solves them until the server hands
 * out a token. A found answer not yet answered (kept by sendAnswer, say
 * across a reload while offline) is sent first, without solving again.
 *
 * @param {string | null} redir the page's `?redir=`
 */
async function run(redir) {
  const pending = loadPending();
  if (pending) {
    setState('solving');
    status.difficulty = pending.challenge.difficulty;
    status.purpose = pending.challenge.purpose;
    status.hashes = pending.found.hashes;
    say(t('answerResumed'));
    const answer = await sendAnswer(pending.challenge, pending.found, pending.ticket, redir);
    clearStored();
    if (answer) {
      showSuccess(answer, redir);
      return;
    }
  }
  for (let round = 0; round < MAX_CHALLENGES; round++) {
    setState('loading');
    const { challenge: c, resumed } = await obtainChallenge();
    status.difficulty = c.difficulty;
    status.purpose = c.purpose;
    status.hashes = 0;

    setState('solving');
    ui.pause.disabled = false;
    if (status.paused) say(t('paused'));
    else if (c.purpose === 'refresh') say(t('calculatingRefresh'));
    else if (resumed) say(t('calculatingResumed'));
    else say(t('calculating'));
    render();

    const ticket = startTicket(c);
    const found = await solve(c);
    const answer = await submit(c, found, ticket, redir);
    clearStored();
    if (answer) {
      showSuccess(answer, redir);
      return;
    }
  }
  throw new UserFacingError(t('keptRefusing'));
}

/**
 * This tab's turn (see tabs.js): it waits while another tab of this browser
 * solves, and continues to its own target, without solving, if that tab
 * got the pass meanwhile.
 *
 * @param {string | null} redir the page's `?redir=`
 */
function runInTurn(redir) {
  /** @type {number | null} */
  let waitingSince = null;
  const locks = 'locks' in navigator ? navigator.locks : undefined;
  return oneTabAtATime(locks, async () => {
    let noted = null;
    try {
      noted = localStorage.getItem(SOLVED_KEY);
    } catch {
      // Storage disabled: solve here too.
    }
    if (solvedWhileWaiting(noted, waitingSince)) {
      showSolvedElsewhere(redir);
      return;
    }
    await run(redir);
  }, () => {
    waitingSince = Date.now();
    setState('waiting');
    say(t('waitingForOtherTab'));
  });
}

/**
 * Another tab got the pass for this browser: go on to this tab's own
 * target when it is on this site, else say so and stay.
 *
 * @param {string | null} redir the page's `?redir=`
 */
function showSolvedElsewhere(redir) {
  notice(t('doneInOtherTab'));
  showDone(t('doneTitle'), continueTarget(redir, location.href), t('doneInOtherTabStay'));
}

/**
 * Starts (again, after an error: inside the page, since a reload while
 * offline would land on the browser's error page).
 *
 * @param {string | null} redir the page's `?redir=`
 */
function start(redir) {
  ui.error.hidden = true;
  ui.solver.hidden = false;
  status.error = null;
  setState('loading');
  runInTurn(redir).catch(showError);
}

function main() {
  const redir = new URLSearchParams(location.search).get('redir');
  status.solver = chooseSolver({ wasm: globalThis.WebAssembly, search: location.search }).solver;
  ui.pasteRedir.value = redir || '';
  ui.paste.hidden = false;
  ui.solver.hidden = false;
  ui.pause.addEventListener('click', onPauseClick);
  ui.copy.addEventListener('click', copyToken);
  ui.retry.addEventListener('click', () => {
    start(redir);
    // Try again goes away with the error; without this, focus would fall
    // back to <body> and a keyboard or screen reader user would start over
    // from the top of the page.
    ui.title.focus();
  });
  ui.goBack.addEventListener('click', (event) => {
    event.preventDefault();
    history.back();
  });
  loadIdentity().then(showIdentity);


  if (typeof Worker !== 'function' || typeof WebAssembly !== 'object') {
    showError(new UserFacingError(t('noWorkers')));
    return;
  }
  start(redir);
}

main();
