// @ts-check
// The worker pool that drives the solver workers over one challenge, and the
// admission ticket's own worker. No DOM access, so Node's test runner loads
// this module as it is with fake workers (see tests/pool.test.mjs).

/** How far back the hash rate looks; long enough to smooth one-hash steps. */
export const RATE_WINDOW_MS = 8000;

const defaultNow = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

/**
 * What a worker sends (see worker.js); `hashes` is its running total.
 *
 * @typedef {object} WorkerReport
 * @property {'ready' | 'progress' | 'found' | 'alloc-failed' | 'error' | 'ticket'} type
 * @property {number} [hashes]
 * @property {number} [nonce]
 * @property {number} [ticket]
 * @property {string} [message]
 */

/**
 * The report in a worker's message event, or null for anything else.
 *
 * @param {MessageEvent | undefined} event
 * @returns {WorkerReport | null}
 */
function reportOf(event) {
  const msg = event ? event.data : undefined;
  return msg && typeof msg === 'object' ? msg : null;
}

/**
 * Text for whatever a worker failed with: an Error, a message, or a bare
 * error event (a worker script that failed to load).
 *
 * @param {unknown} err
 * @returns {string}
 */
function errorText(err) {
  if (err == null) return 'unknown error';
  if (typeof err === 'string') return err;
  if (typeof err === 'object') {
    const { message, type } = /** @type {{message?: unknown, type?: unknown}} */ (err);
    if (message) return String(message);
    if (typeof type === 'string') return 'the worker failed to load or crashed';
  }
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
 * @param {() => Worker} o.createWorker as for WorkerPool
 * @param {string} o.salt the challenge's salt, 32 hex digits
 * @param {number} o.bits the challenge's ticket_bits
 * @param {'simd'|'scalar'} [o.solver] the wasm build to load
 * @returns {Promise<number|null>}
 */
export function solveTicket({ createWorker, salt, bits, solver }) {
  if (!(Number(bits) > 0)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    /** @type {Worker | null} */
    let worker = null;
    let settled = false;
    /**
     * @template T
     * @param {(value: T) => void} fn
     * @param {T} value
     */
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
      const msg = reportOf(event);
      if (!msg) return;
      if (msg.type === 'ticket' && typeof msg.ticket === 'number' && Number.isSafeInteger(msg.ticket) && msg.ticket >= 0) {
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
 * `createWorker(index)` returns a Worker, or for tests something shaped like
 * one: postMessage(msg), an assignable onmessage (called with {data}),
 * optionally an assignable onerror, and terminate().
 */
export class WorkerPool {
  /**
   * @param {object} o
   * @param {(index: number) => Worker} o.createWorker
   * @param {number} o.count workers to start (at least 1)
   * @param {{params: import('./shared/wire.js').Argon2Params, salt: string, difficulty: number,
   *   solver?: 'simd'|'scalar'}} o.job
   *   `solver` is the wasm build the workers load (see chooseSolver)
   * @param {(p: {hashes: number, rate: number, workers: number}) => void} [o.onProgress]
   * @param {(f: {nonce: number, hashes: number, workers: number}) => void} [o.onFound]
   *   called once, after every worker has been terminated; `workers` is how
   *   many were still searching
   * @param {(d: {reason: string, remaining: number, index: number}) => void} [o.onWorkerDropped]
   * @param {(err: Error) => void} [o.onFatal]
   * @param {() => number} [o.now] milliseconds, monotonic
   * @param {number} [o.rateWindowMs] how far back the hash rate looks
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

    /**
     * One entry per started worker.
     * @type {Array<{index: number, worker: Worker | null, hashes: number, live: boolean}>}
     */
    this._slots = [];
    /** @type {'idle' | 'running' | 'stopped'} */
    this._phase = 'idle';
    this._paused = false;
    this._activeMs = 0; // time spent running and not paused, before _activeSince
    /** @type {number | null} */
    this._activeSince = null;
    /** Hashes done (h) by time (t), for the hash rate. @type {Array<{t: number, h: number}>} */
    this._samples = []
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
    if (!this._paused) this._markActive({ warmingUp: true });
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
      worker.onmessage = (event) => this._handle(slot, reportOf(event));
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

  /** @param {{cmd: string}} msg */
  _broadcast(msg) {
    for (const slot of this._slots) {
      if (slot.live && slot.worker) slot.worker.postMessage(msg);
    }
  }

  /**
   * @param {{warmingUp?: boolean}} [o] `warmingUp`: the workers are only
   *   starting, so the rate window opens at their first report instead of
   *   now. Loading the solver and allocating its memory take seconds on a
   *   phone; counted as search time, they made the first estimates several
   *   times too long.
   */
  _markActive({ warmingUp = false } = {}) {
    const t = this._now();
    this._activeSince = t;
    // A fresh rate window: time spent paused must not dilute the rate.
    this._samples = warmingUp ? [] : [{ t, h: this.hashes }];
  }

  _markInactive() {
    if (this._activeSince != null) {
      this._activeMs += this._now() - this._activeSince;
      this._activeSince = null;
    }
  }

  /**
   * @param {WorkerPool['_slots'][number]} slot
   * @param {WorkerReport | null} msg
   */
  _handle(slot, msg) {
    if (this._phase !== 'running' || !slot.live || !msg) return;
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
      // Reports that arrive together with the first one belong to the
      // window's start: their hashes were done before it opened.
      if (this._samples.length === 1 && this._samples[0].t === t) this._samples.pop();
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

  /** @param {number} nonce */
  _found(nonce) {
    const { hashes, workers } = this;
    this.stop();
    this._onFound({ nonce, hashes, workers });
  }

  /**
   * @param {WorkerPool['_slots'][number]} slot
   * @param {string} reason
   */
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
