// Both wasm solver builds checked bit for bit against the `argon2` crate
// inside a Web Worker of each browser engine: Chromium (V8), Firefox ESR
// (SpiderMonkey) and WebKitGTK (JavaScriptCore). pow/tests/wasm/ does the
// same in Node; a worker is where the page's solver really runs, and each
// engine compiles the module with its own compiler (and its own lowering of
// the simd128 shuffles).
//
// The module is pow/examples/wasm_crosscheck.rs, built as pow/tests/wasm/
// builds it: it holds our argon2id and the argon2 crate's, so each case is
// hashed by both in the same engine, and the RFC 9106 vector is checked
// against its published tag as well. The same seed and case count as in
// Node. An engine that is not installed is skipped with the reason.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';

import { build, BUILD_TIMEOUT_MS, BUILDS } from '../../pow/tests/wasm/build.mjs';
import { ENGINES, launchEngine, unavailable, unselected } from '../lib/engines.mjs';
import { freePort } from '../lib/harness.mjs';

const CASES = 240;
const SEED = process.env.CROSSCHECK_SEED ?? '0x706f776761746521';
/** pow/src/ticket.rs's known answer: the ticket for [7; 16] at 12 bits. */
const TICKET_7_12 = '3569';
const CHECK_TIMEOUT_MS = 10 * 60_000;

/**
 * Runs in the worker: instantiates the module it is sent, runs every check,
 * and posts the counts of mismatches with the first one's description.
 */
const WORKER = `
self.onmessage = async ({ data: { wasm, seed, cases } }) => {
  try {
    const { instance } = await WebAssembly.instantiateStreaming(fetch(wasm), {});
    const e = instance.exports;
    const report = () => new TextDecoder().decode(
      new Uint8Array(e.memory.buffer, e.report_ptr(), e.report_len()));
    const check = (n) => ({ mismatches: n, first: n ? report() : '' });
    self.postMessage({
      inWorker: typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope,
      simd128: e.uses_simd128(),
      rfc9106: check(e.rfc9106()),
      crosscheck: check(e.crosscheck(BigInt(seed), cases)),
      solver: check(e.solver_agrees_with_verifier()),
      ticket: String(e.ticket_solve(7, 12)),
    });
  } catch (err) {
    self.postMessage({ error: String(err && err.stack || err) });
  }
};
`;

let site;
let siteUrl;
const modules = {};

before(async () => {
  for (const variant of BUILDS) modules[variant.name] = build(variant);
  site = createServer((req, res) => {
    const name = req.url.match(/^\/(\w+)\.wasm$/)?.[1];
    if (name && modules[name]) {
      res.writeHead(200, { 'content-type': 'application/wasm' });
      res.end(modules[name]);
    } else if (req.url === '/worker.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(WORKER);
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>cross-check</title>');
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await freePort();
  await new Promise((resolve) => site.listen(port, '127.0.0.1', resolve));
  siteUrl = `http://127.0.0.1:${port}`;
}, { timeout: BUILD_TIMEOUT_MS });

after(() => new Promise((resolve) => (site ? site.close(resolve) : resolve())));

for (const engine of ENGINES) {
  describe(`argon2id in a ${engine} worker`, () => {
    const skip = unselected(engine) ?? unavailable(engine);
    let session;

    before(async () => {
      if (skip) return;
      session = await launchEngine(engine);
      await session.goto(`${siteUrl}/`);
    }, { timeout: 60_000 });

    after(async () => {
      await session?.close();
    }, { timeout: 60_000 });

    for (const variant of BUILDS) {
      test(`${variant.name} build matches RFC 9106 and the argon2 crate on ${CASES} random inputs (seed ${SEED})`,
        { timeout: CHECK_TIMEOUT_MS }, async (t) => {
          if (skip) {
            t.skip(skip);
            return;
          }
          const r = await session.evaluate((args) => new Promise((resolve) => {
            const w = new Worker('/worker.js');
            w.onmessage = (e) => {
              w.terminate();
              resolve(e.data);
            };
            w.onerror = (e) => resolve({ error: `worker error: ${e.message}` });
            w.postMessage(args);
          }), { wasm: `/${variant.name}.wasm`, seed: SEED, cases: CASES });
          assert.equal(r.error, undefined, r.error);
          assert.equal(r.inWorker, true, 'ran in a Web Worker');
          assert.equal(r.simd128, variant.simd, `compresses with ${variant.simd ? 'simd128' : 'the portable code'}`);
          assert.deepEqual(r.rfc9106, { mismatches: 0, first: '' }, 'RFC 9106 vector');
          assert.deepEqual(r.crosscheck, { mismatches: 0, first: '' }, 'random inputs against the argon2 crate');
          assert.deepEqual(r.solver, { mismatches: 0, first: '' }, 'the stepped solver finds what the verifier accepts');
          assert.equal(r.ticket, TICKET_7_12, 'the admission ticket');
        });
    }
  });
}
