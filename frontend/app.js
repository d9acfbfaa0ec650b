// The challenge page: fetch (or resume) a challenge, run the worker pool,
// submit the answer, then show the token and send the visitor back.
//
// Every URL is relative because the page may be mounted under a prefix
// such as /.powgate/.
//
// Browser tests can watch document.body.dataset.state
// ('loading' → 'solving' → 'solved' | 'error'), document.body.dataset.workers
// and window.powgateStatus.
//
// `?solver=scalar` makes the workers load the scalar wasm solver even where
// the browser has wasm SIMD (for comparing the two, or working around a
// broken engine); powgateStatus.solver says which build is in use.

import {
  chooseSolver, describeCaps, etaSeconds, safeRedirect, solveTelemetry, solveTicket,
  successProbability, WorkerPool,
} from './pool.js';
import { queuedAhead, queuedText } from './queue.js';

const STORAGE_KEY = 'powgate.challenge';
/** A stored challenge is reused only while it has this long left to live. */
const REUSE_MARGIN_S = 30;
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

const $ = (id) => document.getElementById(id);
const ui = {
  solver: $('solver'),
  status: $('status'),
  progress: $('progress'),
  fill: $('progress-fill'),
  rate: $('rate'),
  eta: $('eta'),
  workers: $('workers'),
  hashes: $('hashes'),
  workersWhy: $('workers-why'),
  pause: $('pause'),
  notice: $('notice'),
  success: $('success'),
  continueText: $('continue'),
  continueLink: $('continue-link'),
  token: $('token'),
  copy: $('copy'),
  copyStatus: $('copy-status'),
  tokenExpiry: $('token-expiry'),
  error: $('error'),
  errorMessage: $('error-message'),
  retry: $('retry'),
  paste: $('paste'),
  pasteRedir: $('paste-redir'),
  cliCommand: $('cli-command'),
};

/** Read by browser tests; the same object is updated in place. */
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
  redirect: null,
  /** 'simd' or 'scalar': the wasm solver build the workers load. */
  solver: null,
  /** While the answer waits for its turn to be verified: how many are ahead. */
  ahead: null,
};
window.powgateStatus = status;

/** The pool of the challenge being solved, for the pause button. */
let currentPool = null;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setState(state) {
  status.state = state;
  document.body.dataset.state = state;
}

function setWorkers(n) {
  status.workers = n;
  document.body.dataset.workers = String(n);
  ui.workers.textContent = String(n);
}

function say(text) {
  ui.status.textContent = text;
}

function notice(text) {
  ui.notice.textContent = text;
}

function clip(text, max = 200) {
  const s = String(text);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function formatRate(rate) {
  if (!(rate > 0)) return '–';
  const digits = rate < 10 ? 2 : rate < 100 ? 1 : 0;
  return `${rate.toFixed(digits)} hashes/s`;
}

function formatDuration(seconds) {
  if (seconds == null) return 'estimating…';
  if (seconds < 1) return 'under a second';
  if (seconds < 90) return `about ${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `about ${Math.round(seconds / 60)} min`;
  return `about ${Math.round(seconds / 3600)} h`;
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

function retryAfterSeconds(res) {
  const raw = res.headers.get('Retry-After');
  let s = Number.parseInt(raw ?? '', 10);
  if (!Number.isFinite(s) && raw) {
    const at = Date.parse(raw); // the header may also be an HTTP date
    if (Number.isFinite(at)) s = Math.ceil((at - Date.now()) / 1000);
  }
  if (!Number.isFinite(s)) s = DEFAULT_RETRY_AFTER_S;
  return Math.min(MAX_RETRY_AFTER_S, Math.max(1, s));
}

/** One request, retried with backoff only when the network itself fails. */
async function request(path, body) {
  const init = {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      if (attempt >= MAX_NETWORK_ATTEMPTS) {
        throw new UserFacingError('Could not reach the server. Check your connection and try again.');
      }
      await sleep(1000 * 2 ** (attempt - 1));
      continue;
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      // Not JSON (a proxy's error page, say); the status code still counts.
    }
    return { status: res.status, data, res };
  }
}

/**
 * POSTs JSON, sitting out 429/503 answers for as long as Retry-After asks.
 * A queued answer is returned as it is: see postAnswer.
 */
async function post(path, body) {
  for (let busy = 0; ; busy++) {
    const r = await request(path, body);
    if (queuedAhead(r.status, r.data) !== null) return r;
    if ((r.status !== 429 && r.status !== 503) || busy >= MAX_BUSY_RETRIES) return r;
    const wait = retryAfterSeconds(r.res);
    say(`The server is busy; trying again in ${wait} s.`);
    await sleep(wait * 1000);
  }
}

function serverMessage(r, fallback) {
  const m = r.data && typeof r.data.message === 'string' ? r.data.message : '';
  return m || fallback;
}

/** The allowed redirect hosts; on any failure only this page's own host. */
async function loadConfig() {
  const fallback = { redirect_domains: [], public_url: null };
  try {
    const r = await Promise.race([
      request('api/config'),
      sleep(CONFIG_TIMEOUT_MS).then(() => null),
    ]);
    if (!r || r.status !== 200 || !r.data) return fallback;
    return {
      redirect_domains: Array.isArray(r.data.redirect_domains)
        ? r.data.redirect_domains.filter((h) => typeof h === 'string')
        : [],
      public_url: typeof r.data.public_url === 'string' ? r.data.public_url : null,
    };
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------------------
// Challenges and their storage
// ---------------------------------------------------------------------------

function isChallenge(c) {
  const a = c && c.argon2;
  const posInt = (v) => Number.isSafeInteger(v) && v > 0;
  return Boolean(c)
    && typeof c.challenge === 'string' && c.challenge !== ''
    && (c.purpose === 'new' || c.purpose === 'refresh')
    && typeof c.salt === 'string' && /^[0-9a-fA-F]{32}$/.test(c.salt)
    && Boolean(a) && posInt(a.t_cost) && posInt(a.m_cost) && posInt(a.parallelism) && posInt(a.hash_length)
    && posInt(c.difficulty)
    // A challenge stored before the admission ticket existed lacks this and
    // is dropped, so the page fetches one the server still accepts.
    && Number.isInteger(c.ticket_bits) && c.ticket_bits >= 0 && c.ticket_bits <= 32
    && Number.isFinite(c.issued_at) && Number.isFinite(c.expires_at);
}

/**
 * Seconds the challenge has left. Measured from when this browser received
 * it, so a wrong local clock does not matter.
 */
function secondsLeft(c) {
  if (Number.isFinite(c.received_at)) {
    return (c.expires_at - c.issued_at) - (nowSeconds() - c.received_at);
  }
  return c.expires_at - nowSeconds();
}

function clearStored() {
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage disabled: nothing was stored either.
  }
}

function loadStored() {
  let c;
  try {
    c = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
  } catch {
    c = null;
  }
  if (c && isChallenge(c) && secondsLeft(c) > REUSE_MARGIN_S) return c;
  if (c) clearStored();
  return null;
}

function store(c) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(c));
  } catch {
    // Private mode or full storage: a reload just starts over.
  }
}

/**
 * A challenge to work on: the stored one if it still has time left (the
 * search has no memory, so starting it again from nonce 0 loses nothing),
 * else a fresh one. The server decides from the cookie whether it is a
 * refresh.
 */
async function obtainChallenge() {
  const stored = loadStored();
  if (stored) return { challenge: stored, resumed: true };

  say('Getting a challenge from the server…');
  const r = await post('api/challenge', {});
  if (r.status !== 200) {
    throw new UserFacingError(serverMessage(r, `The server refused to hand out a challenge (HTTP ${r.status}).`));
  }
  if (!isChallenge(r.data)) {
    throw new UserFacingError('The server sent a challenge this page does not understand.');
  }
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

function setProgress(p) {
  const pct = Math.min(100, Math.max(0, Math.round(p * 100)));
  // CSSOM writes are allowed by the CSP, unlike style attributes in markup.
  ui.fill.style.transform = `scaleX(${Math.min(1, Math.max(0, p))})`;
  ui.progress.setAttribute('aria-valuenow', String(pct));
  ui.progress.setAttribute('aria-valuetext', `${pct}%`);
}

function render() {
  if (status.state !== 'solving') return;
  setProgress(successProbability(status.hashes, status.difficulty));
  ui.hashes.textContent = String(status.hashes);
  ui.rate.textContent = formatRate(status.rate);
  ui.eta.textContent = status.paused
    ? 'paused'
    : formatDuration(etaSeconds(status.hashes, status.rate, status.difficulty));
}

function navigatorFacts(memoryKiB) {
  return {
    hardwareConcurrency: navigator.hardwareConcurrency,
    userAgent: navigator.userAgent,
    deviceMemory: navigator.deviceMemory,
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
 */
function startTicket(c) {
  return solveTicket({ createWorker, salt: c.salt, bits: c.ticket_bits, solver: status.solver })
    .catch((err) => err);
}

/** Runs the pool on one challenge; resolves with the winning nonce. */
function solve(c) {
  const caps = describeCaps(navigatorFacts(c.argon2.m_cost));
  ui.workersWhy.textContent = `Started ${caps.explanation}`;
  status.hashes = 0;
  status.rate = 0;
  status.dropped = 0;
  setWorkers(caps.workers);

  return new Promise((resolve, reject) => {
    const pool = new WorkerPool({
      createWorker,
      count: caps.workers,
      job: { params: c.argon2, salt: c.salt, difficulty: c.difficulty, solver: status.solver },
      onProgress: ({ hashes, rate, workers }) => {
        status.hashes = hashes;
        status.rate = rate;
        if (workers !== status.workers) setWorkers(workers);
        scheduleRender();
      },
      onWorkerDropped: ({ reason, remaining }) => {
        status.dropped = pool.dropped;
        setWorkers(remaining);
        notice(`One worker stopped (${clip(reason, 120)}); carrying on with ${remaining}.`);
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
        reject(new WorkersFailedError(
          `${err.message} You can use the command line tool instead (see below).`,
        ));
      },
    });
    currentPool = pool;
    if (status.paused) pool.pause();
    pool.start();
  }).finally(() => {
    currentPool = null;
  });
}

function onPauseClick() {
  status.paused = !status.paused;
  ui.pause.textContent = status.paused ? 'Resume' : 'Pause';
  if (currentPool) {
    if (status.paused) currentPool.pause();
    else currentPool.resume();
  }
  say(status.paused ? 'Paused. Press Resume to carry on.' : 'Calculating…');
  render();
}

/**
 * POSTs an answer to api/solve. While the server keeps it queued for
 * verification (its challenge unspent), says how many are ahead and sends
 * the same answer again after Retry-After, which keeps its place in line,
 * for as long as the challenge is valid. Not counted as "busy": the wait is
 * bounded by the challenge's life, and every round is progress.
 */
async function postAnswer(c, body) {
  for (;;) {
    const r = await post('api/solve', body);
    const ahead = queuedAhead(r.status, r.data);
    status.ahead = ahead;
    if (ahead === null || secondsLeft(c) <= 0) return r;
    say(queuedText(ahead));
    await sleep(retryAfterSeconds(r.res) * 1000);
  }
}

/** Sends the answer. Returns the token answer, or null when a new challenge is needed. */
async function submit(c, found, ticketPromise) {
  ui.pause.disabled = true;
  const ticket = await ticketPromise;
  if (ticket instanceof Error) {
    throw new WorkersFailedError(`${ticket.message} You can use the command line tool instead (see below).`);
  }
  say('Checking the answer with the server…');
  const r = await postAnswer(c, {
    challenge: c.challenge,
    nonce: found.nonce,
    ...(ticket === null ? {} : { ticket }),
    telemetry: solveTelemetry(found),
  });
  if (r.status === 200 && r.data && typeof r.data.token === 'string') return r.data;
  if (r.status === 409 || r.status === 410) {
    notice(`${serverMessage(r, 'That challenge has expired or was already used.')} Starting a new one.`);
    return null;
  }
  if (queuedAhead(r.status, r.data) !== null) {
    notice('The challenge expired while your answer waited to be verified. Starting a new one.');
    return null;
  }
  throw new UserFacingError(serverMessage(r, `The server did not accept the answer (HTTP ${r.status}).`));
}

// ---------------------------------------------------------------------------
// Outcome
// ---------------------------------------------------------------------------

async function copyToken() {
  const text = ui.token.value;
  try {
    await navigator.clipboard.writeText(text);
    ui.copyStatus.textContent = 'Copied.';
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
  ui.copyStatus.textContent = copied ? 'Copied.' : 'Selected: press Ctrl+C (⌘C on a Mac) to copy.';
}

async function showSuccess(answer, redir, configPromise) {
  setState('solved');
  setProgress(1);
  ui.pause.disabled = true;
  ui.hashes.textContent = String(status.hashes);
  ui.eta.textContent = '–';
  say(answer.refreshed ? 'Done: your pass has been extended.' : 'Done. You can continue.');

  ui.token.value = answer.token;
  if (Number.isFinite(answer.expires_at)) {
    ui.tokenExpiry.textContent = `Valid until ${new Date(answer.expires_at * 1000).toLocaleString()}.`;
  }
  ui.success.hidden = false;

  const config = await configPromise;
  const target = redir
    ? safeRedirect(redir, {
      currentOrigin: location.origin,
      currentHost: location.host,
      allowedHosts: config.redirect_domains,
    })
    : null;
  status.redirect = target;
  if (target) {
    ui.continueText.textContent = 'Taking you back in a moment…';
    ui.continueLink.href = target;
    ui.continueLink.hidden = false;
    setTimeout(() => location.replace(target), REDIRECT_DELAY_MS);
    return;
  }
  if (redir) {
    notice(`The return address ${clip(redir)} is not on this site, so you stay here.`);
  }
  ui.continueText.textContent = 'You can now go back to the page you wanted; this browser will be let through.';
}

function showError(err) {
  if (currentPool) currentPool.stop();
  // Unless only the workers failed, the next attempt should start from a
  // fresh challenge.
  if (!(err instanceof WorkersFailedError)) clearStored();
  const message = err instanceof UserFacingError
    ? err.message
    : 'Something went wrong on this page. Please try again.';
  if (!(err instanceof UserFacingError)) console.error(err);
  status.error = message;
  setState('error');
  ui.pause.disabled = true;
  ui.eta.textContent = '–';
  say('Stopped.');
  ui.errorMessage.textContent = message;
  ui.error.hidden = false;
  ui.paste.open = true;
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

async function run(redir, configPromise) {
  for (let round = 0; round < MAX_CHALLENGES; round++) {
    setState('loading');
    const { challenge: c, resumed } = await obtainChallenge();
    status.difficulty = c.difficulty;
    status.purpose = c.purpose;
    status.hashes = 0;

    setState('solving');
    ui.pause.disabled = false;
    if (status.paused) say('Paused. Press Resume to carry on.');
    else if (c.purpose === 'refresh') say('Refreshing your pass (expired, or its requests used up) at half the usual cost.');
    else if (resumed) say('Calculating… (continuing the check you started earlier)');
    else say('Calculating…');
    render();

    const ticket = startTicket(c);
    const found = await solve(c);
    const answer = await submit(c, found, ticket);
    if (answer) {
      clearStored();
      await showSuccess(answer, redir, configPromise);
      return;
    }
    clearStored();
  }
  throw new UserFacingError('The server kept refusing fresh answers. Please try again later.');
}

function main() {
  const redir = new URLSearchParams(location.search).get('redir');
  status.solver = chooseSolver({ wasm: globalThis.WebAssembly, search: location.search }).solver;
  ui.pasteRedir.value = redir || '';
  ui.paste.hidden = false;
  ui.solver.hidden = false;
  ui.pause.addEventListener('click', onPauseClick);
  ui.copy.addEventListener('click', copyToken);
  ui.retry.addEventListener('click', () => location.reload());

  const configPromise = loadConfig();
  configPromise.then((config) => {
    const site = config.public_url || `${location.origin}/`;
    ui.cliCommand.textContent = `powgate solve ${site}`;
  });

  if (typeof Worker !== 'function' || typeof WebAssembly !== 'object') {
    showError(new UserFacingError(
      'This browser cannot run the calculation: it needs Web Workers and WebAssembly. '
      + 'You can use the command line tool instead (see below).',
    ));
    return;
  }
  run(redir, configPromise).catch(showError);
}

main();
