// @ts-check
// Module worker: searches one share of the nonces (start, start + stride, …)
// with the wasm solver and reports back. The pool in pool.js drives it:
//
//   in   {cmd:'start', params:{t_cost, m_cost, parallelism, hash_length},
//         salt, difficulty, start, stride, solver}
//        solver: 'simd' or 'scalar', the wasm build to load (the page
//        decides, see chooseSolver in solver-choice.js; without it the worker checks
//        for wasm SIMD itself)
//        {cmd:'pause'} | {cmd:'resume'}      (stopping is terminate())
//        {cmd:'ticket', salt, bits, solver}  compute the admission ticket
//        instead of searching (see solveTicket in pool.js)
//   out  {type:'ready'}                      solver built, memory allocated
//        {type:'progress', hashes}           after every step; running total
//        {type:'found', nonce, hashes}       then the worker closes itself
//        {type:'alloc-failed', message}      Solver could not be built; closes
//        {type:'ticket', ticket}             the admission ticket; closes
//        {type:'error', message}             anything else; closes

import { nextBatchSize } from './batch.js';
import { chooseSolver, SOLVER_DIRS } from './solver-choice.js';

/**
 * @typedef {object} StartJob the search's share of the nonces
 * @property {'start'} cmd
 * @property {import('./shared/wire.js').Argon2Params} params
 * @property {string} salt
 * @property {number} difficulty
 * @property {number} start
 * @property {number} stride
 * @property {'simd' | 'scalar'} [solver]
 */

/**
 * @typedef {object} TicketJob the admission ticket instead of a search
 * @property {'ticket'} cmd
 * @property {string} salt
 * @property {number} bits
 * @property {'simd' | 'scalar'} [solver]
 */

/** @typedef {StartJob | TicketJob | {cmd: 'pause' | 'resume'}} Command */

/**
 * The wasm-bindgen glue of solver-wasm, as this worker uses it. u64 values
 * may come back as BigInt.
 *
 * @typedef {object} SolverModule
 * @property {(init: {module_or_path: URL}) => Promise<unknown>} default
 * @property {(salt: string, bits: number) => number | bigint} ticket
 * @property {new (t: number, m: number, p: number, l: number, salt: string,
 *   difficulty: number, start: number, stride: number) => WasmSolver} Solver
 */

/**
 * @typedef {object} WasmSolver
 * @property {(batch: number) => {found: boolean, nonce: number | bigint,
 *   hashes: number | bigint, free?: () => void}} step
 * @property {() => void} free
 */

let started = false;
let paused = false;
/** Resolves the wait in the search loop when a resume arrives. @type {(() => void) | null} */
let wakeUp = null;

self.onmessage = (event) => {
  /** @type {Command} */
  const msg = event.data || {};
  switch (msg.cmd) {
    case 'start':
      if (started) return;
      started = true;
      search(msg).catch((err) => finish({ type: 'error', message: describe(err) }));
      break;
    case 'ticket':
      if (started) return;
      started = true;
      ticket(msg).catch((err) => finish({ type: 'error', message: describe(err) }));
      break;
    case 'pause':
      paused = true;
      break;
    case 'resume':
      paused = false;
      if (wakeUp) {
        wakeUp();
        wakeUp = null;
      }
      break;
    default:
      break;
  }
};

/** @param {unknown} err */
function describe(err) {
  if (err instanceof Error && err.message) return err.message;
  return String(err);
}

/**
 * Number() accepts both numbers and BigInts, in case the glue hands u64
 * values back as BigInt; nonces and counts stay far below 2^53.
 */
const toNumber = Number;

/** @param {import('./pool.js').WorkerReport} msg the last one */
function finish(msg) {
  self.postMessage(msg);
  self.close();
}

/**
 * Lets queued messages (pause, resume) run between steps. A step is a
 * synchronous wasm call, so without this the worker would never see them.
 */
function yieldToEvents() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * The wasm solver build `job.solver`, or null after reporting why it could
 * not be loaded. Loaded here rather than with a static import so that a
 * missing or blocked solver becomes a message the page can show.
 *
 * @param {{solver?: 'simd' | 'scalar'}} job
 * @returns {Promise<SolverModule | null>}
 */
async function loadSolver(job) {
  // The page's choice when it made one it knows, else this worker's own.
  const solver = job.solver === 'simd' || job.solver === 'scalar' ? job.solver : chooseSolver().solver;
  const dir = SOLVER_DIRS[solver];
  try {
    /** @type {SolverModule} */
    const wasm = await import(`${dir}powgate_solver_wasm.js`);
    // The glue is generated without a default .wasm location (the
    // wasm-bindgen library, unlike its CLI, omits it unless told otherwise),
    // so name the file next to the glue explicitly.
    await wasm.default({
      module_or_path: new URL(`${dir}powgate_solver_wasm_bg.wasm`, import.meta.url),
    });
    return wasm;
  } catch (err) {
    finish({ type: 'error', message: `could not load the solver: ${describe(err)}` });
    return null;
  }
}

/**
 * One SHA-256 search of about one argon2 hash's work, then done.
 *
 * @param {TicketJob} job
 */
async function ticket(job) {
  const wasm = await loadSolver(job);
  if (!wasm) return;
  finish({ type: 'ticket', ticket: toNumber(wasm.ticket(job.salt, job.bits)) });
}

/** @param {StartJob} job */
async function search(job) {
  const wasm = await loadSolver(job);
  if (!wasm) return;

  const p = job.params;
  let solver;
  try {
    solver = new wasm.Solver(
      p.t_cost, p.m_cost, p.parallelism, p.hash_length,
      job.salt, job.difficulty, job.start, job.stride,
    );
  } catch (err) {
    // The usual cause is that the browser refused another m_cost block.
    finish({ type: 'alloc-failed', message: describe(err) });
    return;
  }
  self.postMessage({ type: 'ready' });

  // Start with one hash: with real parameters a single argon2 hash can take
  // longer than a whole step should, and nextBatchSize grows it if not.
  let batch = 1;
  for (;;) {
    if (paused) {
      await new Promise((resolve) => {
        wakeUp = () => resolve(undefined);
      });
      continue;
    }
    const t0 = performance.now();
    const step = solver.step(batch);
    const elapsed = performance.now() - t0;
    const found = Boolean(step.found);
    const nonce = toNumber(step.nonce);
    const hashes = toNumber(step.hashes);
    if (typeof step.free === 'function') step.free();

    if (found) {
      solver.free();
      finish({ type: 'found', nonce, hashes });
      return;
    }
    self.postMessage({ type: 'progress', hashes });
    batch = nextBatchSize(batch, elapsed);
    await yieldToEvents();
  }
}
