// Pure logic for the challenge page: how many workers to run, how to read
// progress, where it is safe to send the visitor afterwards, and the pool that
// drives the workers. No DOM access here, so Node's test runner can load this
// module as it is (see tests/pool.test.mjs).

// ---------------------------------------------------------------------------
// Worker count
// ---------------------------------------------------------------------------

/** Used when the browser does not report navigator.hardwareConcurrency. */
export const DEFAULT_CORES = 2;

/** More workers than this rarely helps and multiplies memory use. */
export const MAX_WORKERS = 16;

/**
 * Safari and every browser on iPhone/iPad (they all must use WebKit) tolerate
 * few large wasm memories at once: past a handful of workers the tab is
 * killed ("A problem repeatedly occurred") instead of an allocation failing.
 */
export const WEBKIT_MAX_WORKERS = 4;

const KIB_PER_MIB = 1024;
const KIB_PER_GIB = 1024 * 1024;

/** Total argon2 memory for all workers together on a desktop: 1 GiB. */
export const DESKTOP_BUDGET_KIB = 1 * KIB_PER_GIB;

/** On phones and tablets, which reclaim memory from tabs eagerly: 256 MiB. */
export const PHONE_BUDGET_KIB = 256 * KIB_PER_MIB;

/** When navigator.deviceMemory says 2 GiB or less: 128 MiB. */
export const LOW_MEMORY_BUDGET_KIB = 128 * KIB_PER_MIB;

/** navigator.deviceMemory at or below this (GiB) selects LOW_MEMORY_BUDGET_KIB. */
export const LOW_MEMORY_DEVICE_GIB = 2;

/**
 * Share of the reported device memory we allow ourselves. deviceMemory is
 * rounded and capped at 8 GiB by browsers, so 1/8 of it gives 512 MiB on a
 * 4 GiB machine and the full desktop budget on an 8 GiB one.
 */
export const DEVICE_MEMORY_SHARE = 1 / 8;

/**
 * What the user agent tells us about the engine and form factor.
 *
 * Every iOS browser is WebKit underneath whatever its name (CriOS, FxiOS,
 * EdgiOS …). iPadOS in its default "desktop" mode claims to be a Mac, so a
 * "Macintosh" with a touch screen is an iPad: no Mac has one.
 */
export function detectPlatform({ userAgent = '', maxTouchPoints = 0, platform = '' } = {}) {
  const ua = String(userAgent);
  const touch = Number(maxTouchPoints) > 1;
  const ios = /\b(iPhone|iPad|iPod)\b/.test(ua)
    || ((/\bMacintosh\b/.test(ua) || platform === 'MacIntel') && touch);
  // Chrome, Edge, Opera and Android browsers also say "Safari" and
  // "AppleWebKit" for compatibility; only the real Safari (and other WebKit
  // browsers such as GNOME Web) lacks every one of these tokens.
  const desktopSafari = !ios
    && /AppleWebKit/.test(ua)
    && /Safari/.test(ua)
    && !/Chrome|Chromium|CriOS|Edg|OPR|Android/.test(ua);
  const mobile = ios || /Android|Mobi/.test(ua);
  return { ios, webkit: ios || desktopSafari, mobile };
}

/**
 * The device class the workers were sized for, named as the server's
 * solve-time estimates name it. WebKit comes first because its worker cap
 * sets it apart whatever the form factor. The page reports this class in its
 * telemetry, so the server files the solve where the page sized it rather
 * than guessing again from the User-Agent.
 *
 * @param {{webkit: boolean, mobile: boolean}} platform
 * @returns {'desktop' | 'phone' | 'safari_ios'}
 */
export function deviceClass({ webkit, mobile }) {
  if (webkit) return 'safari_ios';
  return mobile ? 'phone' : 'desktop';
}

/**
 * The memory all workers together may use, in KiB.
 *
 * @param {{mobile: boolean, deviceMemory?: number}} info
 */
export function memoryBudgetKiB({ mobile, deviceMemory }) {
  const base = mobile ? PHONE_BUDGET_KIB : DESKTOP_BUDGET_KIB;
  if (typeof deviceMemory !== 'number' || !(deviceMemory > 0)) return base;
  if (deviceMemory <= LOW_MEMORY_DEVICE_GIB) return LOW_MEMORY_BUDGET_KIB;
  const share = Math.floor(deviceMemory * KIB_PER_GIB * DEVICE_MEMORY_SHARE);
  return Math.min(base, Math.max(LOW_MEMORY_BUDGET_KIB, share));
}

/**
 * Chooses the number of workers and says which limit decided it.
 *
 * N = min(cores, MAX_WORKERS, WEBKIT_MAX_WORKERS on WebKit,
 *         floor(budget / memoryKiB)), and never less than 1.
 *
 * @param {object} env navigator-like facts plus the challenge's memory cost:
 *   {hardwareConcurrency, userAgent, deviceMemory, memoryKiB, maxTouchPoints, platform}
 * @returns {{workers: number, limit: string, explanation: string, cores: number,
 *            webkit: boolean, mobile: boolean, deviceClass: string,
 *            budgetKiB: number, memoryKiB: number}}
 */
export function describeCaps(env = {}) {
  const hc = Number(env.hardwareConcurrency);
  const cores = Number.isFinite(hc) && hc >= 1 ? Math.floor(hc) : DEFAULT_CORES;
  const { webkit, mobile } = detectPlatform(env);
  const budgetKiB = memoryBudgetKiB({ mobile, deviceMemory: env.deviceMemory });
  const mk = Number(env.memoryKiB);
  const memoryKiB = Number.isFinite(mk) && mk > 0 ? mk : 0;

  const mib = (kib) => `${Math.round(kib / KIB_PER_MIB)} MiB`;
  // Candidate limits in order; on a tie the first one is named.
  const limits = [
    ['cores', cores, `one per CPU thread (${cores})`],
    ['max', MAX_WORKERS, `at most ${MAX_WORKERS}`],
  ];
  if (webkit) {
    limits.push(['webkit', WEBKIT_MAX_WORKERS,
      `at most ${WEBKIT_MAX_WORKERS} in Safari and on iPhone and iPad`]);
  }
  if (memoryKiB > 0) {
    limits.push(['memory', Math.floor(budgetKiB / memoryKiB),
      `each needs ${mib(memoryKiB)} and this device gets ${mib(budgetKiB)} in all`]);
  }
  let [limit, value, reason] = limits[0];
  for (const l of limits) {
    if (l[1] < value) [limit, value, reason] = l;
  }
  const workers = Math.max(1, value);
  const explanation = value < 1
    ? `1 worker: ${reason}, but one is always tried.`
    : `${workers} worker${workers === 1 ? '' : 's'}: ${reason}.`;
  return {
    workers, limit, explanation, cores, webkit, mobile,
    deviceClass: deviceClass({ webkit, mobile }), budgetKiB, memoryKiB,
  };
}

/** The worker count alone; see describeCaps for the rules. */
export function chooseWorkerCount(env = {}) {
  return describeCaps(env).workers;
}

/**
 * The optional `telemetry` of POST /api/solve: what the search took, and the
 * device class it was sized for (see deviceClass).
 *
 * @param {{hashes: number, elapsedMs: number, workers: number, deviceClass: string}} found
 */
export function solveTelemetry({ hashes, elapsedMs, workers, deviceClass: cls }) {
  return {
    hashes: Math.round(hashes),
    elapsed_ms: Math.round(elapsedMs),
    workers,
    class: cls,
  };
}

// ---------------------------------------------------------------------------
// Progress maths
// ---------------------------------------------------------------------------

/**
 * Chance that at least one of `hashes` tries has succeeded when each wins
 * with probability 1/difficulty: 1 - (1 - 1/D)^hashes. Written with
 * log1p/expm1 because (1 - 1/D) rounds badly for large D.
 */
export function successProbability(hashes, difficulty) {
  if (!(hashes > 0)) return 0;
  if (!(difficulty > 1)) return 1;
  return -Math.expm1(hashes * Math.log1p(-1 / difficulty));
}

/**
 * Expected seconds until a solution, or null while the rate is unknown.
 *
 * Every nonce wins independently with probability 1/D, so the search has no
 * memory: however many hashes have already failed, the expected number still
 * to go is D. `hashesSoFar` is accepted for symmetry with the progress bar but
 * deliberately does not shorten the estimate.
 */
export function etaSeconds(hashesSoFar, rate, difficulty) {
  void hashesSoFar;
  if (!(rate > 0) || !(difficulty > 0)) return null;
  return difficulty / rate;
}

// ---------------------------------------------------------------------------
// Solver build: wasm SIMD or scalar (used by app.js and worker.js)
// ---------------------------------------------------------------------------

/**
 * The two builds of the wasm solver, by directory relative to worker.js. The
 * SIMD build (pow's hand-vectorised argon2id) is about 1.5 times as fast;
 * the scalar one is for browsers without wasm SIMD, such as Safari before
 * 16.4.
 */
export const SOLVER_DIRS = Object.freeze({ simd: './solver/', scalar: './solver/scalar/' });

/**
 * The smallest module that uses wasm SIMD: one function returning a v128
 * made by i32x4.splat. An engine without SIMD refuses to validate it.
 *   (module (func (result v128) i32.const 0 i32x4.splat))
 */
export const SIMD_PROBE = Object.freeze([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one, of type 0
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x0b, // code: i32.const 0; i32x4.splat; end
]);

/**
 * Which solver build to load: 'simd' when the engine validates
 * {@link SIMD_PROBE}, else 'scalar'. The page's `?solver=scalar` forces the
 * scalar build, an operator's and tester's switch for comparing the two or
 * working around a broken SIMD engine.
 *
 * @param {{wasm?: {validate: (bytes: Uint8Array) => boolean}, search?: string}} [env]
 *   the WebAssembly object and the page's location.search
 * @returns {{solver: 'simd'|'scalar', reason: string}}
 */
export function chooseSolver({ wasm = globalThis.WebAssembly, search = '' } = {}) {
  let forced = null;
  try {
    forced = new URLSearchParams(search).get('solver');
  } catch {
    forced = null;
  }
  if (forced === 'scalar') return { solver: 'scalar', reason: 'forced by ?solver=scalar' };
  let simd = false;
  try {
    simd = Boolean(wasm && typeof wasm.validate === 'function' && wasm.validate(new Uint8Array(SIMD_PROBE)));
  } catch {
    simd = false;
  }
  return simd
    ? { solver: 'simd', reason: 'this browser has wasm SIMD' }
    : { solver: 'scalar', reason: 'this browser lacks wasm SIMD' };
}

// ---------------------------------------------------------------------------
// Worker step sizing (used by worker.js)
// ---------------------------------------------------------------------------

/** A worker step should last long enough to be cheap to report, short
 * enough that pause and progress feel immediate. */
export const STEP_MIN_MS = 100;
export const STEP_TARGET_MS = 150;
export const STEP_MAX_MS = 250;
/** Only reached with toy parameters; keeps one step from running away. */
export const MAX_BATCH = 1 << 20;

/**
 * Next number of hashes per step, given how long the last `batch` took.
 * Grows at most fourfold per step, because the first timings (JIT warm-up,
 * page faults in the fresh memory block) overstate the speed.
 */
export function nextBatchSize(batch, elapsedMs) {
  const b = Math.max(1, Math.floor(batch));
  if (!(elapsedMs >= 0)) return b;
  if (elapsedMs < STEP_MIN_MS) {
    const scaled = elapsedMs > 0 ? Math.floor((b * STEP_TARGET_MS) / elapsedMs) : b * 4;
    return Math.min(MAX_BATCH, b * 4, Math.max(b + 1, scaled));
  }
  if (elapsedMs > STEP_MAX_MS) {
    return Math.max(1, Math.floor((b * STEP_TARGET_MS) / elapsedMs));
  }
  return b;
}

// ---------------------------------------------------------------------------
// Redirect check
// ---------------------------------------------------------------------------

/**
 * True when the URL's hostname is allowed by one `redirect_domains` entry.
 * Entries are hostnames; ports are not compared, as on the server
 * (server/src/redirect.rs).
 */
function hostMatches(hostname, entry) {
  const e = String(entry).trim().toLowerCase().replace(/\.$/, '');
  if (e === '' || e === '.') return false;
  if (e.startsWith('.')) {
    // ".example.com": example.com itself and any subdomain, as for cookies.
    const domain = e.slice(1);
    return hostname === domain || hostname.endsWith(`.${domain}`);
  }
  return hostname === e;
}

/** The hostname of "host", "host:port" or "[v6]:port", lower-cased. */
function hostnameOf(host) {
  const h = String(host).toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/**
 * Decides where `?redir=` may send the visitor after solving.
 *
 * Allowed: a path on this site ("/x", not "//x") or an absolute http(s) URL
 * whose hostname is this page's or matches `allowedHosts` (an exact
 * hostname, or ".example.com" for the domain and its subdomains), on any
 * port, the same rules as the server's own check.
 * Refused: other schemes (javascript:, data: …), protocol-relative URLs,
 * anything with a backslash, whitespace or control character (browsers read
 * "\" as "/" and drop tabs, which smuggles in a foreign host), and URLs with
 * userinfo ("https://good.example@evil.example/").
 *
 * @returns {string|null} the absolute URL to go to, or null.
 */
export function safeRedirect(redir, { currentOrigin, currentHost, allowedHosts = [] } = {}) {
  if (typeof redir !== 'string' || redir === '' || redir.length > 4096) return null;
  if (/[\\\s\u0000-\u001f\u007f]/.test(redir)) return null;

  let base;
  try {
    base = new URL(currentOrigin);
  } catch {
    return null;
  }

  if (redir.startsWith('/')) {
    if (redir.startsWith('//')) return null;
    let url;
    try {
      url = new URL(redir, base.origin);
    } catch {
      return null;
    }
    // Belt and braces: a path can only resolve to our own origin.
    return url.origin === base.origin ? url.href : null;
  }

  if (!/^https?:\/\//i.test(redir)) return null;
  let url;
  try {
    url = new URL(redir);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username !== '' || url.password !== '') return null;

  // The URL parser has already lower-cased, IDNA-encoded and percent-decoded
  // the host, so the comparison sees the host the browser would really visit.
  const hostname = url.hostname.replace(/\.$/, '');
  if (hostname === hostnameOf(currentHost || base.host)) return url.href;
  const hosts = Array.isArray(allowedHosts) ? allowedHosts : [];
  return hosts.some((h) => hostMatches(hostname, h)) ? url.href : null;
}

// ---------------------------------------------------------------------------
// Worker pool
// ---------------------------------------------------------------------------

/** How far back the hash rate looks; long enough to smooth one-hash steps. */
export const RATE_WINDOW_MS = 8000;

const defaultNow = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

function errorText(err) {
  if (err == null) return 'unknown error';
  if (typeof err === 'string') return err;
  if (err.message) return String(err.message);
  // A bare error event, e.g. a worker script that failed to load.
  if (typeof err.type === 'string') return 'the worker failed to load or crashed';
  return String(err);
}

/**
 * Computes the challenge's admission ticket (about one argon2 hash of
 * SHA-256, see pow/src/ticket.rs) in a worker of its own, beside the
 * search: on the main thread it would freeze the page for that long.
 * Resolves with the ticket, or with null at once when `bits` is 0 (the
 * server asks for none); rejects when the worker fails.
 *
 * Protocol (see worker.js):
 *   pool → worker  {cmd:'ticket', salt, bits, solver}
 *   worker → pool  {type:'ticket', ticket} | {type:'error', message}
 *
 * @param {object} o
 * @param {() => object} o.createWorker as for WorkerPool
 * @param {string} o.salt the challenge's salt, 32 hex digits
 * @param {number} o.bits the challenge's ticket_bits
 * @param {'simd'|'scalar'} [o.solver] the wasm build to load
 * @returns {Promise<number|null>}
 */
export function solveTicket({ createWorker, salt, bits, solver }) {
  if (!(Number(bits) > 0)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    let worker = null;
    let settled = false;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      try {
        if (worker) worker.terminate();
      } catch {
        // Already gone.
      }
      fn(value);
    };
    try {
      worker = createWorker();
    } catch (err) {
      settle(reject, new Error(`could not start the ticket worker: ${errorText(err)}`));
      return;
    }
    worker.onmessage = (event) => {
      const msg = event ? event.data : undefined;
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'ticket' && Number.isSafeInteger(msg.ticket) && msg.ticket >= 0) {
        settle(resolve, msg.ticket);
      } else if (msg.type === 'ticket' || msg.type === 'error' || msg.type === 'alloc-failed') {
        settle(reject, new Error(`the ticket could not be computed: ${msg.message || 'bad answer'}`));
      }
    };
    worker.onerror = (event) => {
      if (event && typeof event.preventDefault === 'function') event.preventDefault();
      settle(reject, new Error(`the ticket could not be computed: ${errorText(event)}`));
    };
    worker.postMessage({ cmd: 'ticket', salt, bits, ...(solver ? { solver } : {}) });
  });
}

/**
 * Runs N solver workers on one challenge.
 *
 * Worker i of N searches nonces i, i+N, i+2N, … (start=i, stride=N), so no
 * two workers ever hash the same nonce.
 *
 * When a worker drops out (it could not allocate its memory block, failed to
 * load, or crashed), the others keep their strides and its residue class is
 * simply left unsearched. That costs nothing: each untried nonce wins
 * independently with probability 1/D, so the survivors' nonces are exactly as
 * good as the abandoned ones and the expected work left stays D; only the
 * speed drops. Restarting the survivors with a new stride would instead
 * discard their in-flight steps and repeat nonces already tried.
 *
 * Protocol (see worker.js):
 *   pool → worker  {cmd:'start', params, salt, difficulty, start, stride, solver}
 *                  {cmd:'pause'} | {cmd:'resume'}; stopping is terminate().
 *   worker → pool  {type:'ready'}, {type:'progress', hashes},
 *                  {type:'found', nonce, hashes},
 *                  {type:'alloc-failed', message}, {type:'error', message};
 *                  `hashes` is that worker's running total.
 *
 * `createWorker(index)` must return something shaped like a Worker:
 * postMessage(msg), an assignable onmessage (called with {data}), optionally
 * an assignable onerror, and terminate().
 */
export class WorkerPool {
  /**
   * @param {object} o
   * @param {(index: number) => object} o.createWorker
   * @param {number} o.count workers to start (at least 1)
   * @param {{params: object, salt: string, difficulty: number, solver?: 'simd'|'scalar'}} o.job
   *   `solver` is the wasm build the workers load (see chooseSolver)
   * @param {(p: {hashes: number, rate: number, workers: number}) => void} [o.onProgress]
   * @param {(f: {nonce: number, hashes: number, workers: number}) => void} [o.onFound]
   *   called once, after every worker has been terminated; `workers` is how
   *   many were still searching
   * @param {(d: {reason: string, remaining: number, index: number}) => void} [o.onWorkerDropped]
   * @param {(err: Error) => void} [o.onFatal]
   * @param {() => number} [o.now] milliseconds, monotonic
   */
  constructor({ createWorker, count, job, onProgress, onFound, onWorkerDropped, onFatal,
    now = defaultNow, rateWindowMs = RATE_WINDOW_MS }) {
    if (typeof createWorker !== 'function') throw new TypeError('createWorker must be a function');
    this._createWorker = createWorker;
    this._count = Math.max(1, Math.floor(Number(count) || 1));
    this._job = job;
    this._onProgress = onProgress || (() => {});
    this._onFound = onFound || (() => {});
    this._onWorkerDropped = onWorkerDropped || (() => {});
    this._onFatal = onFatal || (() => {});
    this._now = now;
    this._rateWindowMs = rateWindowMs;

    /** One entry per started worker: {index, worker, hashes, live}. */
    this._slots = [];
    this._phase = 'idle'; // idle → running → stopped
    this._paused = false;
    this._activeMs = 0; // time spent running and not paused, before _activeSince
    this._activeSince = null;
    this._samples = []; // [{t, h}] for the hash rate
    this._rate = 0;
    this._dropped = 0;
  }

  /** Live workers (started and not dropped). */
  get workers() {
    return this._slots.filter((s) => s.live).length;
  }

  /** Workers that dropped out so far. */
  get dropped() {
    return this._dropped;
  }

  /** Hashes done by all workers, including ones that later dropped out. */
  get hashes() {
    return this._slots.reduce((sum, s) => sum + s.hashes, 0);
  }

  /** Hashes per second over the last few seconds; 0 until known. */
  get rate() {
    return this._rate;
  }

  get paused() {
    return this._paused;
  }

  /** 'idle', 'running' or 'stopped'. */
  get phase() {
    return this._phase;
  }

  /** Milliseconds spent searching, not counting pauses. */
  get activeMs() {
    const running = this._activeSince == null ? 0 : this._now() - this._activeSince;
    return this._activeMs + running;
  }

  start() {
    if (this._phase !== 'idle') return;
    this._phase = 'running';
    const n = this._count;
    const { params, salt, difficulty, solver } = this._job;
    for (let i = 0; i < n; i++) {
      const slot = { index: i, worker: null, hashes: 0, live: true };
      this._slots.push(slot);
    }
    if (!this._paused) this._markActive();
    for (const slot of this._slots) {
      if (this._phase !== 'running') break; // a fatal error ended it already
      let worker;
      try {
        worker = this._createWorker(slot.index);
      } catch (err) {
        this._drop(slot, `could not start a worker: ${errorText(err)}`);
        continue;
      }
      slot.worker = worker;
      worker.onmessage = (event) => this._handle(slot, event ? event.data : undefined);
      worker.onerror = (event) => {
        // Keep the browser from also logging it as uncaught; we report it.
        if (event && typeof event.preventDefault === 'function') event.preventDefault();
        this._drop(slot, errorText(event));
      };
      worker.postMessage({
        cmd: 'start',
        params,
        salt,
        difficulty,
        start: slot.index,
        stride: n,
        ...(solver ? { solver } : {}),
      });
      if (this._paused) worker.postMessage({ cmd: 'pause' });
    }
  }

  pause() {
    if (this._paused || this._phase === 'stopped') return;
    this._paused = true;
    this._markInactive();
    this._broadcast({ cmd: 'pause' });
  }

  resume() {
    if (!this._paused || this._phase === 'stopped') return;
    this._paused = false;
    if (this._phase === 'running') this._markActive();
    this._broadcast({ cmd: 'resume' });
  }

  /** Terminates every worker. Safe to call more than once. */
  stop() {
    if (this._phase === 'stopped') return;
    this._markInactive();
    this._phase = 'stopped';
    for (const slot of this._slots) {
      if (slot.worker) {
        try {
          slot.worker.terminate();
        } catch {
          // Already gone; nothing to clean up.
        }
      }
      slot.live = false;
    }
  }

  _broadcast(msg) {
    for (const slot of this._slots) {
      if (slot.live && slot.worker) slot.worker.postMessage(msg);
    }
  }

  _markActive() {
    const t = this._now();
    this._activeSince = t;
    // A fresh rate window: time spent paused must not dilute the rate.
    this._samples = [{ t, h: this.hashes }];
  }

  _markInactive() {
    if (this._activeSince != null) {
      this._activeMs += this._now() - this._activeSince;
      this._activeSince = null;
    }
  }

  _handle(slot, msg) {
    if (this._phase !== 'running' || !slot.live || !msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'ready':
        break;
      case 'progress':
        slot.hashes = Math.max(slot.hashes, Number(msg.hashes) || 0);
        this._progress();
        break;
      case 'found':
        slot.hashes = Math.max(slot.hashes, Number(msg.hashes) || 0);
        this._found(Number(msg.nonce));
        break;
      case 'alloc-failed':
        this._drop(slot, `not enough memory: ${msg.message || 'allocation failed'}`);
        break;
      case 'error':
        this._drop(slot, msg.message || 'worker error');
        break;
      default:
        break;
    }
  }

  _progress() {
    const t = this._now();
    const h = this.hashes;
    if (!this._paused) {
      this._samples.push({ t, h });
      // Keep the newest sample older than the window as the anchor, so the
      // window always spans about rateWindowMs once that much has passed.
      while (this._samples.length > 2 && t - this._samples[1].t >= this._rateWindowMs) {
        this._samples.shift();
      }
      const first = this._samples[0];
      const dt = t - first.t;
      this._rate = dt > 0 ? ((h - first.h) * 1000) / dt : 0;
    }
    this._onProgress({ hashes: h, rate: this._rate, workers: this.workers });
  }

  _found(nonce) {
    const { hashes, workers } = this;
    this.stop();
    this._onFound({ nonce, hashes, workers });
  }

  _drop(slot, reason) {
    if (!slot.live || this._phase !== 'running') return;
    slot.live = false;
    this._dropped += 1;
    if (slot.worker) {
      try {
        slot.worker.terminate();
      } catch {
        // Already gone.
      }
    }
    const remaining = this.workers;
    if (remaining === 0) {
      this.stop();
      this._onFatal(new Error(`No worker could run the calculation (${reason}).`));
      return;
    }
    this._onWorkerDropped({ reason, remaining, index: slot.index });
  }
}
