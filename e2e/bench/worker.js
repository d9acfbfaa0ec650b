// Benchmark module worker: hashes with the real wasm solver for a fixed wall
// time and reports how many hashes it finished. Served by the bench driver at
// /__bench/worker.js on powgate's own origin, so it can import the solver
// that powgate serves (at whatever URL the page names: a later SIMD build can
// sit beside the scalar one).
//
//   in   {cmd:'load', solverUrl, wasmUrl,
//         params:{t_cost, m_cost, parallelism, hash_length},
//         salt, difficulty, start, stride}
//        {cmd:'go', measureFrom, measureUntil}
//        (epoch milliseconds, the same for all the page's workers, so they
//        warm up together and measure over the same interval)
//   out  {type:'ready', loadMs, buildMs}         solver loaded and built
//        {type:'done', warmHashes, hashes, seconds, stepMs:[…]}
//        {type:'error', message}

/** Epoch milliseconds, comparable across the page and its workers. */
const now = () => performance.timeOrigin + performance.now();

function describe(err) {
  return err && err.message ? String(err.message) : String(err);
}

let solver = null;

self.onmessage = (event) => {
  const msg = event.data || {};
  const fail = (err) => self.postMessage({ type: 'error', message: describe(err) });
  if (msg.cmd === 'load') {
    load(msg).catch(fail);
  } else if (msg.cmd === 'go') {
    try {
      measure(msg);
    } catch (err) {
      fail(err);
    }
  }
};

async function load(job) {
  const t0 = now();
  const wasm = await import(job.solverUrl);
  await wasm.default({ module_or_path: job.wasmUrl });
  const t1 = now();
  const p = job.params;
  solver = new wasm.Solver(
    p.t_cost, p.m_cost, p.parallelism, p.hash_length,
    job.salt, job.difficulty, job.start, job.stride,
  );
  self.postMessage({ type: 'ready', loadMs: t1 - t0, buildMs: now() - t1 });
}

function measure(job) {
  if (!solver) throw new Error("'go' before the solver was loaded");

  const step = () => {
    const r = solver.step(1);
    // A win at difficulty 10^9 is as good as impossible; if it happens the
    // hash was still done, so it still counts.
    if (typeof r.free === 'function') r.free();
  };

  // Warm-up, not counted: at least one hash (the first one pays for touching
  // the freshly grown memory, and for tiering up the wasm code), then until
  // the shared start.
  let warmHashes = 0;
  do {
    step();
    warmHashes += 1;
  } while (now() < job.measureFrom);

  // Measured from one hash boundary to another, so no partial hash counts;
  // at least one hash even if the warm-up overran the whole interval.
  const stepMs = [];
  const start = now();
  let end = start;
  do {
    step();
    const t = now();
    stepMs.push(t - end);
    end = t;
  } while (end < job.measureUntil);
  solver.free();
  solver = null;
  self.postMessage({
    type: 'done',
    warmHashes,
    hashes: stepMs.length,
    seconds: (end - start) / 1000,
    stepMs,
  });
}
