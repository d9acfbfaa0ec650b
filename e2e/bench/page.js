// Solver benchmark page: starts N module workers (worker.js), each with its
// own wasm Solver on a disjoint stride of nonces, lets them warm up together,
// then has them hash over one shared interval and adds up what they did.
//
// Query parameters (all optional):
//   solver   URL of the wasm-bindgen glue    default /solver/powgate_solver_wasm.js
//   wasm     URL of the .wasm                default: the glue's URL with .js -> _bg.wasm
//   workers  number of workers               default 1
//   warmup   seconds of warm-up, not counted default 2
//   seconds  seconds measured                default 20
//   t, m, p, len   argon2id parameters       default 8, 65536 (KiB), 1, 32
//   salt     32 hex digits                   default the native benchmark's salt
//
// Result: window.benchResult = {workers, totalHps, perWorkerHps, …} or
// window.benchError = 'message'.

/** Difficulty::MAX: unreachable in practice, so workers hash all the time. */
const DIFFICULTY = 1_000_000_000;
/** b"powgate-bench-01", the salt of pow/examples/bench_native.rs. */
const DEFAULT_SALT = '706f77676174652d62656e63682d3031';
/** Time allowed for every worker to load the solver and allocate its memory. */
const LOAD_TIMEOUT_MS = 60_000;

const now = () => performance.timeOrigin + performance.now();
const out = document.getElementById('out');

function numberParam(q, name, fallback) {
  const raw = q.get(name);
  if (raw === null || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new Error(`query parameter ${name}=${raw} is not a number`);
  return v;
}

function settings() {
  const q = new URLSearchParams(location.search);
  const solverUrl = new URL(q.get('solver') || '/solver/powgate_solver_wasm.js', location.href);
  const wasmUrl = q.get('wasm')
    ? new URL(q.get('wasm'), location.href)
    : new URL(solverUrl.pathname.replace(/\.js$/, '_bg.wasm'), solverUrl);
  const s = {
    solverUrl: solverUrl.href,
    wasmUrl: wasmUrl.href,
    workers: numberParam(q, 'workers', 1),
    warmupMs: numberParam(q, 'warmup', 2) * 1000,
    measureMs: numberParam(q, 'seconds', 20) * 1000,
    params: {
      t_cost: numberParam(q, 't', 8),
      m_cost: numberParam(q, 'm', 65536),
      parallelism: numberParam(q, 'p', 1),
      hash_length: numberParam(q, 'len', 32),
    },
    salt: q.get('salt') || DEFAULT_SALT,
  };
  if (!Number.isInteger(s.workers) || s.workers < 1) throw new Error('workers must be a whole number ≥ 1');
  if (s.measureMs <= 0) throw new Error('seconds must be more than 0');
  return s;
}

/** Resolves with the next message of `type` from `worker`; rejects on an error message or a timeout. */
function nextMessage(worker, type, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no '${type}' from a worker within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (event) => {
      const msg = event.data || {};
      if (msg.type === type) {
        cleanup();
        resolve(msg);
      } else if (msg.type === 'error') {
        cleanup();
        reject(new Error(`worker: ${msg.message}`));
      }
    };
    const onError = (event) => {
      cleanup();
      reject(new Error(`worker failed to start: ${event.message || 'unknown error (wrong URL or MIME type?)'}`));
    };
    function cleanup() {
      clearTimeout(timer);
      worker.removeEventListener('message', onMessage);
      worker.removeEventListener('error', onError);
    }
    worker.addEventListener('message', onMessage);
    worker.addEventListener('error', onError);
  });
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : NaN;
}

async function bench(s) {
  const workers = [];
  try {
    for (let i = 0; i < s.workers; i++) {
      workers.push(new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
    }
    const ready = workers.map((w) => nextMessage(w, 'ready', LOAD_TIMEOUT_MS));
    workers.forEach((w, i) => w.postMessage({
      cmd: 'load',
      solverUrl: s.solverUrl,
      wasmUrl: s.wasmUrl,
      params: s.params,
      salt: s.salt,
      difficulty: DIFFICULTY,
      start: i,
      stride: s.workers,
    }));
    const loads = await Promise.all(ready);

    const measureFrom = now() + s.warmupMs;
    const measureUntil = measureFrom + s.measureMs;
    const deadline = s.warmupMs + s.measureMs + LOAD_TIMEOUT_MS;
    const done = workers.map((w) => nextMessage(w, 'done', deadline));
    for (const w of workers) w.postMessage({ cmd: 'go', measureFrom, measureUntil });
    const results = await Promise.all(done);

    const perWorker = results.map((r, i) => ({
      hashes: r.hashes,
      seconds: r.seconds,
      hps: r.hashes / r.seconds,
      medianMs: median(r.stepMs),
      warmHashes: r.warmHashes,
      loadMs: loads[i].loadMs,
      buildMs: loads[i].buildMs,
    }));
    const totalHps = perWorker.reduce((sum, w) => sum + w.hps, 0);
    return {
      solverUrl: s.solverUrl,
      wasmUrl: s.wasmUrl,
      params: s.params,
      workers: s.workers,
      warmupSeconds: s.warmupMs / 1000,
      measureSeconds: s.measureMs / 1000,
      totalHps,
      perWorkerHps: totalHps / s.workers,
      // The median hash time of all workers, a figure less moved by a
      // stray burst of load on the machine than the mean rate is.
      medianMs: median(results.flatMap((r) => r.stepMs)),
      perWorker,
      hardwareConcurrency: navigator.hardwareConcurrency,
      userAgent: navigator.userAgent,
    };
  } finally {
    for (const w of workers) w.terminate();
  }
}

try {
  const result = await bench(settings());
  window.benchResult = result;
  out.textContent = JSON.stringify(result, null, 2);
} catch (err) {
  window.benchError = String(err && err.message ? err.message : err);
  out.textContent = `error: ${window.benchError}`;
}
