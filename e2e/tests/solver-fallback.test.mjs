// The two wasm solver builds: Chromium has wasm SIMD and gets the SIMD
// build from /solver/; a browser without it (simulated by a WebAssembly
// whose validate refuses SIMD instructions, as Safari before 16.4 does)
// falls back to the scalar build from /solver/scalar/ and still solves, and
// so does a page opened with the operator's ?solver=scalar switch.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  launchBrowser,
  openPage,
  pageStatus,
  startPowgate,
  tokenCookie,
  waitForState,
  withServerLog,
} from '../lib/harness.mjs';

const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 60_000;

let browser;
let server;

before(async () => {
  [browser, server] = await Promise.all([
    launchBrowser(),
    startPowgate({ POW_DIFFICULTY_LEVEL: '60' }),
  ]);
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), server?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

/** Makes this context's pages look like an engine without wasm SIMD. */
function withoutWasmSimd(context) {
  return context.addInitScript(() => {
    const validate = WebAssembly.validate.bind(WebAssembly);
    // Every SIMD instruction starts with the 0xfd prefix byte; an engine
    // without SIMD refuses modules containing it.
    WebAssembly.validate = (bytes) => {
      const view = ArrayBuffer.isView(bytes)
        ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        : new Uint8Array(bytes);
      return view.includes(0xfd) ? false : validate(bytes);
    };
  });
}

/**
 * Opens `path`, lets the page solve, and returns its status and the solver
 * modules its workers downloaded (paths).
 */
async function solve(t, { path = '/', noSimd = false } = {}) {
  const { context, page } = await openPage(t, browser);
  if (noSimd) await withoutWasmSimd(context);
  const modules = [];
  context.on('request', (r) => {
    const { pathname } = new URL(r.url());
    if (pathname.endsWith('_bg.wasm')) modules.push(pathname);
  });
  await page.goto(`${server.url}${path}`);
  await waitForState(page, ['solved']);
  const status = await pageStatus(page);
  const cookie = await tokenCookie(context, server);
  assert.ok(cookie, 'the token cookie is set');
  assert.equal(await server.verifyStatus(cookie.value), 200, 'the token lets the browser through');
  return { status, modules: [...new Set(modules)] };
}

test('falls back to the scalar solver without wasm SIMD, and uses the SIMD one with it', { timeout: TEST_TIMEOUT_MS },
  withServerLog(() => [server], async (t) => {
    const simd = await solve(t);
    assert.equal(simd.status.solver, 'simd', 'Chromium has wasm SIMD');
    assert.deepEqual(simd.modules, ['/solver/powgate_solver_wasm_bg.wasm']);

    const fallback = await solve(t, { noSimd: true });
    assert.equal(fallback.status.solver, 'scalar', 'no SIMD, so the scalar build');
    assert.deepEqual(fallback.modules, ['/solver/scalar/powgate_solver_wasm_bg.wasm']);
    assert.equal(fallback.status.dropped, 0, 'no worker failed to load its solver');

    const forced = await solve(t, { path: '/?solver=scalar' });
    assert.equal(forced.status.solver, 'scalar', '?solver=scalar forces the scalar build');
    assert.deepEqual(forced.modules, ['/solver/scalar/powgate_solver_wasm_bg.wasm']);
  }));
