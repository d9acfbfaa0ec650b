// The core of the challenge page in all three browser engines (see
// lib/engines.mjs): Chromium, Firefox ESR and WebKitGTK, each in one
// browser session, against one real powgate. Every scenario is written once:
//
//   - solve on the page, then land on the redirect target;
//   - the SIMD solver build where the engine has wasm SIMD, the scalar one
//     where SIMD is refused (a stand-in for an engine without it) or when
//     forced with ?solver=scalar;
//   - a reload mid-solve finishes the challenge it had started;
//   - the no-JavaScript form, with scripting really turned off;
//   - the WebKit worker cap: 4 workers in WebKit however many cores it
//     claims, one per core elsewhere.
//
// The network is watched, and held where a scenario needs a solve frozen, by
// a tap in front of powgate (lib/tap.mjs), the same way in each engine. An
// engine that is not installed is skipped with the reason, never passed.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { ENGINES, launchEngine, unavailable, unselected } from '../lib/engines.mjs';
import { startPowgate, WAIT_MS, withServerLog } from '../lib/harness.mjs';
import { startTap, TARGET_PREFIX } from '../lib/tap.mjs';

const DIFFICULTY = '150';
const TEST_TIMEOUT_MS = 120_000;
const HOOK_TIMEOUT_MS = 60_000;
/** app.js waits this long on the success screen before redirecting. */
const REDIRECT_DELAY_MS = 1500;

const SIMD_WASM = '/solver/powgate_solver_wasm_bg.wasm';
const SCALAR_WASM = '/solver/scalar/powgate_solver_wasm_bg.wasm';
const isSolverWasm = (path) => path.endsWith('_bg.wasm');

/**
 * Whether each engine here has wasm SIMD: Chromium since 91, Firefox since
 * 89, WebKit since Safari 16.4 (WebKitGTK 2.40). The page must pick the SIMD
 * build in all three; an engine without it would get the scalar one.
 */
const HAS_WASM_SIMD = { chromium: true, firefox: true, webkit: true };

/** Makes the page's WebAssembly.validate refuse modules with SIMD instructions. */
const WITHOUT_WASM_SIMD = `{
  const validate = WebAssembly.validate.bind(WebAssembly);
  WebAssembly.validate = (bytes) => {
    const view = ArrayBuffer.isView(bytes)
      ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      : new Uint8Array(bytes);
    return view.includes(0xfd) ? false : validate(bytes);
  };
}`;

/** pool.js's WEBKIT_MAX_WORKERS: WebKit gets at most this many workers. */
const WEBKIT_MAX_WORKERS = 4;
/** Cores the page is told it has in the worker-cap scenario, far above the cap. */
const CLAIMED_CORES = 12;
/** The page also starts a worker for the admission ticket (issue 14). */
const TICKET_WORKERS = 1;

let server;
const taps = [];

before(async () => {
  server = await startPowgate({ POW_DIFFICULTY_LEVEL: DIFFICULTY });
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all(taps.map((t) => t.close()));
  await server?.stop();
}, { timeout: HOOK_TIMEOUT_MS });

/** A fresh tap (own host: no cookies or storage yet) in front of the server. */
async function tap(options) {
  const t = await startTap(server, options);
  taps.push(t);
  return t;
}

/** Polls `cond()` (which may be async) in Node until it is truthy. */
async function until(cond, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeout} ms`);
    await sleep(50);
  }
}

/** The solver modules the page's workers downloaded through `t`. */
const solverModules = (t) => [...new Set(t.requests.filter((r) => isSolverWasm(r.path)).map((r) => r.path))];

/** Checks the browser holds an HttpOnly powgate_token for `t` that powgate accepts; returns it. */
async function assertPass(session, t) {
  const cookie = await session.cookie(t.url, 'powgate_token');
  assert.ok(cookie, `${session.engine} holds a powgate_token cookie`);
  assert.equal(cookie.httpOnly, true, 'HttpOnly');
  assert.equal(await server.verifyStatus(cookie.value), 200, 'powgate accepts the token');
  return cookie.value;
}

for (const engine of ENGINES) {
  describe(engine, () => {
    const skip = unselected(engine) ?? unavailable(engine);
    let session;

    before(async () => {
      if (!skip) session = await launchEngine(engine);
    }, { timeout: HOOK_TIMEOUT_MS });

    after(async () => {
      await session?.close();
    }, { timeout: HOOK_TIMEOUT_MS });

    /** A test that is skipped, with the reason, when the engine is missing or not selected. */
    function scenario(name, fn) {
      test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [server], async (t) => {
        if (skip) {
          t.skip(skip);
          return;
        }
        await fn(t);
      }));
    }

    scenario('solves on the page with the SIMD build and lands on the redirect target', async () => {
      const t = await tap();
      const target = `${TARGET_PREFIX}landed?x=1`;
      await session.goto(`${t.url}/?redir=${encodeURIComponent(target)}`);
      await session.waitForState('solved');
      const status = await session.status();
      assert.equal(status.purpose, 'new');
      assert.equal(status.solver, HAS_WASM_SIMD[engine] ? 'simd' : 'scalar');
      assert.deepEqual(solverModules(t), [HAS_WASM_SIMD[engine] ? SIMD_WASM : SCALAR_WASM]);
      assert.equal(status.dropped, 0, 'no worker failed');
      await assertPass(session, t);

      await session.waitFor((href) => location.href === href, `${t.url}${target}`,
        { timeout: REDIRECT_DELAY_MS + WAIT_MS, what: 'landing on the target' });
      assert.equal(await session.evaluate(() => document.getElementById('arrived')?.textContent), 'arrived');
    });

    scenario('solves with the scalar build where wasm SIMD is refused, or when ?solver=scalar forces it', async (st) => {
      const cases = [
        // An engine without SIMD, as Safari before 16.4: its validate refuses
        // every module with a SIMD instruction (they all start with 0xfd).
        { name: 'SIMD refused', path: '/', initScript: WITHOUT_WASM_SIMD },
        { name: 'forced', path: '/?solver=scalar' },
      ];
      for (const c of cases) {
        await st.test(c.name, async () => {
          const t = await tap({ initScript: c.initScript });
          await session.goto(`${t.url}${c.path}`);
          await session.waitForState('solved');
          const status = await session.status();
          assert.equal(status.solver, 'scalar');
          assert.deepEqual(solverModules(t), [SCALAR_WASM]);
          assert.equal(status.dropped, 0, 'no worker failed to load the scalar build');
          await assertPass(session, t);
        });
      }
    });

    scenario('finishes the challenge it had started after a reload mid-solve', async () => {
      const t = await tap();
      // Freeze the first load mid-solve: challenge fetched and stored,
      // workers started, but the solver download held so none can finish.
      // (Chromium and Firefox send one request for the module and keep the
      // other workers' identical ones waiting on it in their HTTP cache;
      // WebKit sends one per worker. Either way no worker gets it.)
      const wasm = t.hold(isSolverWasm);
      await session.goto(`${t.url}/`);
      await session.waitForState('solving');
      await wasm.waitFor(1);
      const stored = await session.evaluate(() => JSON.parse(localStorage.getItem('powgate.challenge')));
      assert.equal(typeof stored?.challenge, 'string', 'the challenge is stored while it is solved');

      // The reload ends the first page and its workers before they got the
      // solver; the reloaded page's workers get it. (WebKit fails the old
      // workers' downloads while the old page still runs: regression, that
      // page's error once dropped the stored challenge.)
      await session.reload();
      wasm.open();
      await session.waitForState('solved');
      assert.equal(t.seen('POST', '/api/challenge').length, 1, 'no new challenge after the reload');
      const solves = t.seen('POST', '/api/solve');
      assert.equal(solves.length, 1);
      assert.equal(JSON.parse(solves[0].body).challenge, stored.challenge, 'the stored challenge was solved');
      assert.equal(await session.evaluate(() => localStorage.getItem('powgate.challenge')), null);
      await assertPass(session, t);
    });

    scenario(`starts ${WEBKIT_MAX_WORKERS} workers at most in WebKit, one per core elsewhere`, async () => {
      // Every engine is told it has 12 cores (WebKit reports 4 whatever the
      // machine has), so only the WebKit cap can stop the page short of 12.
      // Workers are counted as the page constructs them.
      const t = await tap({
        initScript: `Object.defineProperty(Navigator.prototype, 'hardwareConcurrency',
          { get: () => ${CLAIMED_CORES}, configurable: true });
        window.workersStarted = 0;
        window.Worker = class extends window.Worker {
          constructor(...args) { super(...args); window.workersStarted += 1; }
        };`,
      });
      const expected = engine === 'webkit' ? WEBKIT_MAX_WORKERS : CLAIMED_CORES;
      await session.goto(`${t.url}/`);
      await session.waitForState('solved');
      assert.equal(await session.evaluate(() => navigator.hardwareConcurrency), CLAIMED_CORES);
      assert.equal(await session.evaluate(() => document.body.dataset.workers), String(expected));
      assert.equal(await session.evaluate(() => window.workersStarted), expected + TICKET_WORKERS,
        'workers constructed: the search\'s and the ticket\'s');
      const status = await session.status();
      assert.equal(status.workers, expected, 'no worker dropped out');
      assert.equal(status.dropped, 0);
      const why = await session.evaluate(() => document.getElementById('workers-why').textContent);
      if (engine === 'webkit') assert.match(why, /at most 4 in Safari and on iPhone and iPad/);
      else assert.match(why, /one per CPU thread \(12\)/);
      await assertPass(session, t);
    });

    scenario('accepts a command-line token in the no-JavaScript form, with scripting off', async (t) => {
      const token = await server.solveWithCli();
      const noJs = await launchEngine(engine, { javaScript: false });
      t.after(() => noJs.close());
      const tp = await tap();
      await noJs.goto(`${tp.url}/`);
      // The form is inside <noscript>: its fields exist only when scripting
      // is really off, so filling one proves it is.
      await noJs.fill('#noscript-token', 'not-a-token');
      await noJs.submitFrom('#noscript-token');
      await until(() => tp.seen('POST', '/api/token').some((r) => r.status !== null), 'the form post');
      assert.equal(tp.seen('POST', '/api/token')[0].status, 401, 'a wrong token is refused');
      assert.equal(await noJs.cookie(tp.url, 'powgate_token'), undefined, 'and sets nothing');

      await noJs.goto(`${tp.url}/`);
      await noJs.fill('#noscript-token', token);
      await noJs.submitFrom('#noscript-token');
      await until(() => tp.seen('POST', '/api/token').filter((r) => r.status !== null).length === 2, 'the second post');
      assert.equal(tp.seen('POST', '/api/token')[1].status, 200, 'a page that says it worked');
      // The tap sees the answer before the browser commits the navigation
      // (Firefox's URL lags it), so wait for the browser to show that page.
      await until(async () => (await noJs.url()) === `${tp.url}/api/token`, 'the browser showing the result page');
      assert.equal(await assertPass(noJs, tp), token);
      assert.equal(tp.seen('GET', '/app.js').length, 0, 'no script was loaded');
    });
  });
}
