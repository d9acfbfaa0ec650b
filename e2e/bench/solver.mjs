// Solver benchmark driver: native single-thread hashes per second against
// the wasm solver's hashes per second per worker in each browser engine
// (Chromium, Firefox ESR, WebKitGTK; see e2e/lib/engines.mjs), all with the
// default argon2id parameters and measured in one run, so the ratio means
// something on a noisy machine. scripts/bench-solver.sh builds
// what it needs and runs this; see there for the settings.
//
// Order: native, then every wasm case, then native with as many threads at
// once as each multi-worker case has workers, then native again. The two
// single-thread native runs bracket the wasm ones, and their mean is what the
// wasm rates are compared with; how far apart they are shows how much the
// machine drifted. The multi-thread native runs are for reference only: they
// show what the machine itself does with that many concurrent hashes (shared
// L3 cache and memory bandwidth, no idle core left), browser aside.
// Inside that bracket, native runs once more on each side with transparent
// huge pages off (bench_native --small-pages): the page size a browser's
// wasm memory gets, so the report separates what 4 KiB pages cost from what
// each engine costs. The target stays against native as it runs. And
// once more with the crate's own portable argon2id (bench_native
// --portable, also on 4 KiB pages): the same code the scalar wasm build
// runs, so scalar wasm / that is what each engine's compiler costs alone.
//
// The wasm solver is the one powgate really serves. The bench page and its
// worker are not part of powgate: a tap in front of powgate (lib/tap.mjs)
// serves them under /__bench/ on powgate's origin, so the module worker can
// import /solver/… same-origin, exactly as the challenge page's worker does,
// in every engine.
// Every build of the solver that powgate serves (see SOLVER_DIRS, e.g. a
// SIMD one and a scalar one) is measured, and whether its module uses wasm
// SIMD is read from the module itself.

import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const REPO = resolve(BENCH_DIR, '..', '..');

// The harness picks its binary when it is imported, and the benchmark wants
// the optimised one.
process.env.POWGATE_BIN ||= join(REPO, 'target', 'release', 'powgate');
const { startPowgate } = await import('../lib/harness.mjs');
const { ENGINES, launchEngine, unavailable } = await import('../lib/engines.mjs');
const { startTap } = await import('../lib/tap.mjs');

/** Default argon2id parameters (pow::Argon2Params::DEFAULT). */
const PARAMS = Object.freeze({ t_cost: 8, m_cost: 65536, parallelism: 1, hash_length: 32 });
/**
 * The per-worker rate we aim for with the SIMD build, as a fraction of native
 * single-thread, for every worker count (issue #7). The scalar build is the
 * fallback for browsers without wasm SIMD and has no target.
 */
const TARGET_RATIO = 0.8;
/** Files the bench page may load from /__bench/. */
const BENCH_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'page.js': 'text/javascript; charset=utf-8',
  'worker.js': 'text/javascript; charset=utf-8',
};

function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}=${raw}: expected a positive number`);
  return v;
}

/** Where powgate may serve builds of the solver; the ones it answers for are measured. */
const SOLVER_DIRS = ['/solver/', '/solver/simd/', '/solver/scalar/'];
const GLUE = 'powgate_solver_wasm.js';

/** The .wasm that wasm-bindgen puts beside `glue` (the bench page derives it the same way). */
const wasmBeside = (glue) => glue.replace(/\.js$/, '_bg.wasm');

/**
 * BENCH_SOLVER_VARIANTS: comma-separated `name=glue-url` pairs, e.g.
 * `simd=/solver/powgate_solver_wasm.js,scalar=/solver/scalar/powgate_solver_wasm.js`.
 * Unset: every build found under SOLVER_DIRS, named by its directory.
 */
function configuredVariants() {
  const raw = process.env.BENCH_SOLVER_VARIANTS;
  if (!raw) return null;
  return raw.split(',').map((item) => {
    const [name, url] = item.trim().split('=');
    if (!name || !url || !url.startsWith('/')) {
      throw new Error(`BENCH_SOLVER_VARIANTS item ${JSON.stringify(item)}: expected name=/path/to/glue.js`);
    }
    return { name, url };
  });
}

/**
 * The features a wasm module was compiled with, from the `target_features`
 * custom section that rustc/LLVM writes (and wasm-bindgen keeps): e.g.
 * ['+bulk-memory', '+simd128', …]. null when the section is missing.
 */
function wasmTargetFeatures(bytes) {
  let pos = 8; // magic and version
  const leb = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[pos++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) return v;
    }
  };
  const text = (len) => new TextDecoder().decode(bytes.subarray(pos, (pos += len)));
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const size = leb();
    const end = pos + size;
    if (id === 0 && text(leb()) === 'target_features') {
      const features = [];
      for (let n = leb(); n > 0; n--) {
        const prefix = String.fromCharCode(bytes[pos++]);
        features.push(prefix + text(leb()));
      }
      return features;
    }
    pos = end;
  }
  return null;
}

/** Fetches a solver build from powgate: null if not served, else its size and features. */
async function probeSolver(origin, glue) {
  const get = (path) => fetch(`${origin}${path}`, { signal: AbortSignal.timeout(10_000) });
  const [js, wasm] = await Promise.all([get(glue), get(wasmBeside(glue))]);
  const bytes = new Uint8Array(await wasm.arrayBuffer());
  await js.arrayBuffer();
  if (!js.ok || !wasm.ok) return null;
  const features = wasmTargetFeatures(bytes);
  return { bytes: bytes.length, features, simd128: features ? features.includes('+simd128') : null };
}

/** The solver builds to measure, each with what probeSolver found. */
async function solverVariants(origin) {
  const wanted = configuredVariants()
    ?? SOLVER_DIRS.map((dir) => ({ name: dir, url: `${dir}${GLUE}` }));
  const found = [];
  for (const v of wanted) {
    const info = await probeSolver(origin, v.url);
    if (info) found.push({ ...v, ...info });
    else if (configuredVariants()) throw new Error(`powgate does not serve ${v.url} or its .wasm`);
  }
  if (!found.length) throw new Error(`powgate serves no solver under ${SOLVER_DIRS.join(', ')}`);
  return found;
}

const config = {
  seconds: envNumber('BENCH_SOLVER_SECONDS', 20),
  warmup: envNumber('BENCH_SOLVER_WARMUP_SECONDS', 2),
  workers: (process.env.BENCH_SOLVER_WORKERS || '1,2').split(',').map((w) => {
    const n = Number(w);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_SOLVER_WORKERS: ${w} is not a worker count`);
    return n;
  }),
  engines: (process.env.BENCH_SOLVER_ENGINES || ENGINES.join(',')).split(',').map((e) => {
    if (!ENGINES.includes(e)) throw new Error(`BENCH_SOLVER_ENGINES: ${e} is not one of ${ENGINES.join(', ')}`);
    return e;
  }),
  nativeBin: process.env.BENCH_SOLVER_NATIVE_BIN || join(REPO, 'target', 'release', 'examples', 'bench_native'),
  out: process.env.BENCH_SOLVER_OUT || join(REPO, 'bench-results', 'solver.json'),
};

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

async function cpuModel() {
  try {
    const info = await readFile('/proc/cpuinfo', 'utf8');
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the native example on `threads` threads at once (on 4 KiB pages with
 * `smallPages`) and returns its key=value figures.
 */
function runNative(label, threads = 1, { smallPages = false, portable = false } = {}) {
  log(`${label}: native${portable ? ' portable argon2id' : ''}, ${threads === 1 ? 'one thread' : `${threads} threads at once`}${smallPages ? ', huge pages off' : ''}, ${config.seconds} s`);
  return new Promise((done, fail) => {
    const args = ['--seconds', String(config.seconds), '--warmup', String(config.warmup), '--threads', String(threads)];
    if (smallPages) args.push('--small-pages');
    if (portable) args.push('--portable');
    const child = spawn(config.nativeBin, args, {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.on('error', (err) => fail(new Error(`cannot run ${config.nativeBin}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code !== 0) {
        fail(new Error(`${config.nativeBin} exited with ${code ?? signal}:\n${stdout}`));
        return;
      }
      const figures = Object.fromEntries(
        [...stdout.matchAll(/^(native_\w+)=(\S+)$/gm)].map(([, k, v]) => [k, Number(v)]),
      );
      if (!(figures.native_per_thread_hps > 0) || figures.native_threads !== threads) {
        fail(new Error(`no native_per_thread_hps for ${threads} thread(s) in the output of ${config.nativeBin}:\n${stdout}`));
        return;
      }
      for (const line of stdout.split('\n')) if (line && !line.includes('=')) log(`  ${line}`);
      done({
        label,
        threads,
        hps: figures.native_per_thread_hps,
        totalHps: figures.native_total_hps,
        hashes: figures.native_hashes,
        seconds: figures.native_seconds,
        medianMs: figures.native_median_ms,
        // What the kernel really gave: -1 when it does not say.
        hugePagesKib: figures.native_anon_huge_kib ?? -1,
      });
    });
  });
}

/** The bench page's files, for the tap to serve under /__bench/ of powgate's origin. */
async function benchFile(path) {
  if (!path.startsWith('/__bench/')) return null;
  const name = path.slice('/__bench/'.length);
  if (!Object.hasOwn(BENCH_FILES, name)) return null;
  return { type: BENCH_FILES[name], body: await readFile(join(BENCH_DIR, name)) };
}

/** One wasm measurement in a fresh browser session of `engine` (so no memory carries over). */
async function runWasm(engine, origin, variant, workers) {
  log(`${engine}: wasm '${variant.name}' (${variant.url}), ${workers} worker(s), ${config.seconds} s`);
  const session = await launchEngine(engine);
  try {
    const q = new URLSearchParams({
      solver: variant.url,
      workers: String(workers),
      warmup: String(config.warmup),
      seconds: String(config.seconds),
      t: String(PARAMS.t_cost),
      m: String(PARAMS.m_cost),
      p: String(PARAMS.parallelism),
      len: String(PARAMS.hash_length),
    });
    await session.goto(`${origin}/__bench/index.html?${q}`);
    const timeout = (config.warmup + config.seconds) * 1000 + 120_000;
    const { result, error } = await session.waitFor(
      () => (window.benchResult || window.benchError ? { result: window.benchResult, error: window.benchError } : null),
      null,
      { timeout, what: 'the benchmark result' },
    );
    if (error) throw new Error(error);
    log(`  ${result.totalHps.toFixed(3)} hashes/s in total, ${result.perWorkerHps.toFixed(3)} per worker, median ${result.medianMs.toFixed(1)} ms per hash`);
    return { engine, variant: variant.name, ...result };
  } catch (err) {
    err.message = `${engine}: wasm '${variant.name}' with ${workers} worker(s): ${err.message}`;
    throw err;
  } finally {
    await session.close().catch(() => {});
  }
}

const fmt = (v, digits = 3) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

function table(rows) {
  const head = ['run', 'workers', 'hashes', 'seconds', 'H/s total', 'H/s/worker', 'median ms', 'vs native'];
  const cells = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  '))
    .join('\n');
}

/** [engine, its user agent as its workers saw it] for each engine measured. */
function engineVersions(wasm) {
  return [...new Map(wasm.map((w) => [w.engine, w.userAgent])).entries()];
}

/**
 * One row per engine: for each solver build and worker count, hashes/s per
 * worker and its ratio to native single-thread, e.g. "0.41 (0.83x)".
 */
function engineTable(wasm, variants, workerCounts) {
  const name = (v) => (v.simd128 === null ? v.name : v.simd128 ? `simd ${v.name}` : `scalar ${v.name}`);
  const head = ['engine'];
  for (const v of variants) for (const n of workerCounts) head.push(`${name(v)}, ${n}w`);
  const rows = [...new Set(wasm.map((w) => w.engine))].map((engine) => {
    const row = [engine];
    for (const v of variants) {
      for (const n of workerCounts) {
        const w = wasm.find((x) => x.engine === engine && x.variant === v.name && x.workers === n);
        row.push(w ? `${fmt(w.perWorkerHps)} (${fmt(w.ratio, 2)}x)` : '-');
      }
    }
    return row;
  });
  const cells = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  '))
    .join('\n');
}

async function main() {
  const started = new Date();
  const load = [loadavg()[0]];
  const natives = [];
  const smallPages = [];
  const portables = [];
  const concurrent = [];
  const wasm = [];
  const skipped = [];
  let variants;

  natives.push(await runNative('native (before)'));
  smallPages.push(await runNative('native on 4 KiB pages (before)', 1, { smallPages: true }));
  portables.push(await runNative('native portable argon2id (before)', 1, { smallPages: true, portable: true }));

  const server = await startPowgate({
    ARGON2_TIME_COST: String(PARAMS.t_cost),
    ARGON2_MEMORY_KB: String(PARAMS.m_cost),
    ARGON2_PARALLELISM: String(PARAMS.parallelism),
    ARGON2_HASH_LENGTH: String(PARAMS.hash_length),
  });
  const tap = await startTap(server, { serve: benchFile });
  try {
    log(`powgate ${process.env.POWGATE_BIN} on ${server.url}, its bench origin ${tap.url}`);
    variants = await solverVariants(server.url);
    for (const v of variants) {
      log(`solver ${v.name}: ${v.url}, ${v.bytes} bytes of wasm, simd128 ${v.simd128 ?? 'unknown'}`);
    }
    for (const engine of config.engines) {
      const why = unavailable(engine);
      if (why) {
        log(`skipping ${engine}: ${why}`);
        skipped.push({ engine, why });
        continue;
      }
      for (const variant of variants) {
        for (const workers of config.workers) {
          wasm.push(await runWasm(engine, tap.url, variant, workers));
        }
      }
    }
  } finally {
    await tap.close();
    await server.stop();
  }

  for (const threads of new Set(config.workers.filter((w) => w > 1))) {
    concurrent.push(await runNative(`native (${threads} threads)`, threads));
  }
  portables.push(await runNative('native portable argon2id (after)', 1, { smallPages: true, portable: true }));
  smallPages.push(await runNative('native on 4 KiB pages (after)', 1, { smallPages: true }));
  natives.push(await runNative('native (after)'));
  load.push(loadavg()[0]);
  if (smallPages.some((n) => n.hugePagesKib > 0)) {
    log('warning: a --small-pages run still held huge pages; its figures are not on 4 KiB pages');
  }

  const nativeHps = natives.reduce((s, n) => s + n.hps, 0) / natives.length;
  const nativeMedianMs = natives.reduce((s, n) => s + n.medianMs, 0) / natives.length;
  const drift = Math.abs(natives[0].hps - natives[1].hps) / nativeHps;
  const smallPagesHps = smallPages.reduce((s, n) => s + n.hps, 0) / smallPages.length;
  const portableHps = portables.reduce((s, n) => s + n.hps, 0) / portables.length;
  for (const w of wasm) {
    w.ratio = w.perWorkerHps / nativeHps;
    w.smallPagesRatio = w.perWorkerHps / smallPagesHps;
    w.portableRatio = w.perWorkerHps / portableHps;
    // The same comparison from median hash times, less moved by bursts of load.
    w.medianRatio = nativeMedianMs / w.medianMs;
    // null: no target for this build (the scalar fallback).
    w.targetMet = variants.find((v) => v.name === w.variant).simd128 === false ? null : w.ratio >= TARGET_RATIO;
  }
  const targeted = wasm.filter((w) => w.targetMet !== null);

  const simdNote = (v) => (v.simd128 === null ? '' : v.simd128 ? ', simd128' : ', no simd');
  const label = (w) => `${w.engine} wasm ${w.variant}${simdNote(variants.find((v) => v.name === w.variant))}`;
  const rows = [
    ...natives.map((n) => [n.label, '1 thread', n.hashes, fmt(n.seconds, 1), fmt(n.hps), fmt(n.hps), fmt(n.medianMs, 1), '']),
    ['native (mean)', '', '', '', fmt(nativeHps), fmt(nativeHps), fmt(nativeMedianMs, 1), '1.00x'],
    ...[...smallPages, ...portables].map((n) => [n.label, '1 thread', n.hashes, fmt(n.seconds, 1), fmt(n.hps), fmt(n.hps), fmt(n.medianMs, 1), `${fmt(n.hps / nativeHps, 2)}x`]),
    ...concurrent.map((n) => [
      `${n.label}, for reference`, `${n.threads} threads`, n.hashes, fmt(n.seconds, 1), fmt(n.totalHps), fmt(n.hps),
      fmt(n.medianMs, 1), `${fmt(n.hps / nativeHps, 2)}x`,
    ]),
    ...wasm.map((w) => [
      label(w),
      w.workers,
      w.perWorker.reduce((s, p) => s + p.hashes, 0),
      fmt(Math.max(...w.perWorker.map((p) => p.seconds)), 1),
      fmt(w.totalHps),
      fmt(w.perWorkerHps),
      fmt(w.medianMs, 1),
      `${fmt(w.ratio, 2)}x`,
    ]),
  ];

  const cores = availableParallelism();
  const cpu = await cpuModel();
  const lines = [
    '',
    `powgate solver benchmark: argon2id t=${PARAMS.t_cost} m=${PARAMS.m_cost} KiB p=${PARAMS.parallelism} len=${PARAMS.hash_length}`,
    `machine: nproc=${cores}, ${cpu}, load average ${fmt(load[0], 2)} before, ${fmt(load[1], 2)} after`,
    ...engineVersions(wasm).map(([e, ua]) => `${e}: ${ua}`),
    ...skipped.map((s) => `${s.engine}: not measured, ${s.why}`),
    `each run: ${config.warmup} s warm-up (not counted), ${config.seconds} s measured`,
    '',
    table(rows),
    '',
    'per engine: hashes/s per worker, and per worker / native',
    '',
    engineTable(wasm, variants, config.workers),
    '',
    `native drift between its two runs: ${fmt(drift * 100, 1)}%`,
    `native on 4 KiB pages / native: ${fmt(smallPagesHps / nativeHps, 2)}x (huge pages held: ${natives.map((n) => `${n.hugePagesKib} KiB`).join(', ')}; with them off: ${smallPages.map((n) => `${n.hugePagesKib} KiB`).join(', ')})`,
    `native portable argon2id (the scalar wasm build's code) on 4 KiB pages / native: ${fmt(portableHps / nativeHps, 2)}x`,
    ...concurrent.map((n) => `native per thread with ${n.threads} threads at once / one thread alone: ${fmt(n.hps / nativeHps, 2)}x (reference, not a target)`),
    ...wasm.map((w) => `${label(w)} per worker / native, ${w.workers} worker${w.workers > 1 ? 's' : ''}: ${fmt(w.ratio, 2)}x`
      + ` (by median hash time ${fmt(w.medianRatio, 2)}x; / native on 4 KiB pages ${fmt(w.smallPagesRatio, 2)}x;`
      + ` / native portable argon2id ${fmt(w.portableRatio, 2)}x); `
      + (w.targetMet === null ? 'no target (scalar fallback)' : `target >= ${TARGET_RATIO}x ${w.targetMet ? 'met' : 'NOT met'}`)),
    ...(targeted.length
      ? [...new Set(targeted.map((w) => w.engine))].map((engine) => {
        const met = targeted.filter((w) => w.engine === engine).every((w) => w.targetMet);
        return `issues #7 and #18, SIMD per worker >= ${TARGET_RATIO}x native for every worker count in ${engine}: ${met ? 'met' : 'NOT met'}`;
      })
      : ['issue #7: no SIMD build was measured']),
  ];
  if (wasm.some((w) => w.workers > cores)) lines.push(`note: more workers than the ${cores} cores; their per-worker rate is bound to drop`);
  process.stdout.write(`${lines.join('\n')}\n`);

  const json = {
    started: started.toISOString(),
    finished: new Date().toISOString(),
    params: PARAMS,
    target_ratio: TARGET_RATIO,
    machine: { nproc: cores, cpu, loadavg_before: load[0], loadavg_after: load[1] },
    engines: Object.fromEntries(engineVersions(wasm)),
    skipped_engines: skipped,
    solvers: variants.map((v) => ({
      name: v.name,
      solver_url: v.url,
      wasm_bytes: v.bytes,
      simd128: v.simd128,
      target_features: v.features,
    })),
    warmup_seconds: config.warmup,
    measure_seconds: config.seconds,
    native: {
      single_thread_hps: nativeHps,
      median_ms: nativeMedianMs,
      drift,
      runs: natives,
      small_pages_hps: smallPagesHps,
      small_pages_runs: smallPages,
      portable_hps: portableHps,
      portable_runs: portables,
      concurrent: concurrent.map((n) => ({
        threads: n.threads,
        per_thread_hps: n.hps,
        total_hps: n.totalHps,
        median_ms: n.medianMs,
        ratio_to_single_thread: n.hps / nativeHps,
        hashes: n.hashes,
        seconds: n.seconds,
      })),
    },
    wasm: wasm.map((w) => ({
      engine: w.engine,
      variant: w.variant,
      solver_url: new URL(w.solverUrl).pathname,
      wasm_url: new URL(w.wasmUrl).pathname,
      workers: w.workers,
      total_hps: w.totalHps,
      per_worker_hps: w.perWorkerHps,
      median_ms: w.medianMs,
      ratio_to_native: w.ratio,
      median_ratio_to_native: w.medianRatio,
      ratio_to_native_small_pages: w.smallPagesRatio,
      ratio_to_native_portable: w.portableRatio,
      target_met: w.targetMet,
      per_worker: w.perWorker,
      hardware_concurrency: w.hardwareConcurrency,
      user_agent: w.userAgent,
    })),
  };
  await mkdir(dirname(config.out), { recursive: true });
  await writeFile(config.out, `${JSON.stringify(json, null, 2)}\n`);
  log(`results written to ${config.out}`);
}

try {
  await main();
  process.exit(0);
} catch (err) {
  log(`failed: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
}
