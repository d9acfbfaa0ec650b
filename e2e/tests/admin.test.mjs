// The admin page in real headless Chromium: an operator signs in, changes
// the difficulty with the page's own controls, and the next challenge uses
// it. Also the refresh path of the challenge page: a browser whose token has
// expired (expired here through the admin API) is offered the
// half-difficulty refresh challenge and keeps its token.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  launchBrowser,
  openPage,
  pageStatus,
  startPowgate,
  tokenCookie,
  waitForState,
  withServerLog,
  WAIT_MS,
} from '../lib/harness.mjs';

const ADMIN_KEY = 'e2e-admin-key-0123456789';
const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 60_000;

let browser;
let server;

before(async () => {
  [browser, server] = await Promise.all([
    launchBrowser(),
    startPowgate({ POW_ADMIN_KEY: ADMIN_KEY, POW_DIFFICULTY_LEVEL: '40' }),
  ]);
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), server?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

function e2e(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [server], fn));
}

/** The difficulty of a fresh challenge, as any client would see it. */
async function nextChallengeDifficulty() {
  const res = await fetch(`${server.url}/api/challenge`, { method: 'POST', signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(res.status, 200);
  return (await res.json()).difficulty;
}

async function admin(method, path) {
  const res = await fetch(`${server.url}/api/admin/${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
    signal: AbortSignal.timeout(WAIT_MS),
  });
  assert.equal(res.status, 200, `${method} ${path}`);
  return res.json();
}

describe('the admin page', () => {
  e2e('signs in and changes the difficulty with its own controls', async (t) => {
    const { page, console: consoleLog, pageErrors } = await openPage(t, browser);
    await page.goto(`${server.url}/admin`);
    assert.equal(new URL(page.url()).pathname, '/admin/', '/admin redirects to /admin/');
    await page.waitForFunction(() => document.body.dataset.view === 'login');

    // A wrong key is refused and leaves us on the login view.
    await page.fill('#key', 'not-the-key-at-all');
    await page.click('#login');
    await page.waitForFunction(() => (document.getElementById('login-error')?.textContent || '').trim() !== '');
    assert.equal(await page.evaluate(() => document.body.dataset.view), 'login');

    // Signing in with the keyboard: type the key and press Enter.
    await page.fill('#key', ADMIN_KEY);
    await page.press('#key', 'Enter');
    await page.waitForFunction(() => document.body.dataset.view === 'dashboard');
    await page.waitForFunction(() => document.body.dataset.difficulty === '40');

    // A custom integer.
    await page.fill('#difficulty-custom', '321');
    await page.click('#difficulty-apply');
    await page.waitForFunction(() => document.body.dataset.difficulty === '321');
    assert.equal(await nextChallengeDifficulty(), 321, 'the next challenge uses the new difficulty');

    // A preset button.
    await page.click('#preset-low');
    await page.waitForFunction(() => document.body.dataset.difficulty === '200');
    assert.equal(await nextChallengeDifficulty(), 200);

    // An out-of-range value is refused by the server and changes nothing.
    await page.fill('#difficulty-custom', '0');
    await page.click('#difficulty-apply');
    await page.waitForTimeout(500);
    assert.equal(await nextChallengeDifficulty(), 200);

    const settings = await admin('GET', 'settings');
    assert.deepEqual(settings.overridden, ['difficulty'], 'the change is stored');

    // Put it back for the next test.
    await admin('DELETE', 'settings');
    assert.equal(await nextChallengeDifficulty(), 40);
    assert.deepEqual(pageErrors, [], 'no page errors');
    assert.deepEqual(consoleLog.filter((m) => m.type === 'error' && !/status of 40[01]/.test(m.text)), [], 'no console errors');
  });
});

describe('the adaptive-difficulty panel', () => {
  let adaptive;
  before(async () => {
    // A server of its own: adaptive on, one challenge a minute counted as
    // normal, so two challenges are a 4× surge.
    adaptive = await startPowgate({
      POW_ADMIN_KEY: ADMIN_KEY,
      POW_DIFFICULTY_LEVEL: '40',
      POW_DIFFICULTY_PINNED: '0',
      POW_PRESSURE_BASELINE_PER_MINUTE: '1',
    });
  }, { timeout: HOOK_TIMEOUT_MS });
  after(() => adaptive?.stop(), { timeout: HOOK_TIMEOUT_MS });

  test('shows the pressure and explains why a network pays what it pays', { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [adaptive], async (t) => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${adaptive.url}/api/challenge`, { method: 'POST', signal: AbortSignal.timeout(WAIT_MS) });
      assert.equal(res.status, 200);
    }
    const { page, pageErrors } = await openPage(t, browser);
    await page.goto(`${adaptive.url}/admin/`);
    await page.waitForFunction(() => document.body.dataset.view === 'login');
    await page.fill('#key', ADMIN_KEY);
    await page.press('#key', 'Enter');
    await page.waitForFunction(() => document.body.dataset.view === 'dashboard');
    await page.waitForFunction(() => (document.getElementById('adaptive-pressure')?.textContent || '').startsWith('Pressure ×4'));

    await page.fill('#adaptive-ip', '127.0.0.0/24');
    await page.click('#adaptive-explain');
    await page.waitForFunction(() => (document.getElementById('adaptive-headline')?.textContent || '') !== '');
    assert.equal(await page.textContent('#adaptive-headline'), 'Difficulty 160 for 127.0.0.0/24');
    const reasons = await page.$$eval('#adaptive-reasons li', (lis) => lis.map((li) => li.textContent));
    assert.equal(reasons[0], 'Base difficulty 40.');
    assert.ok(reasons.includes('40 × 1 × 4 = 160.'), reasons.join(' | '));

    // A network wider than those scored is refused with the server's reason.
    await page.fill('#adaptive-ip', '10.0.0.0/8');
    await page.click('#adaptive-explain');
    await page.waitForFunction(() => (document.getElementById('adaptive-error')?.textContent || '').includes('wider'));
    assert.deepEqual(pageErrors, [], 'no page errors');
  }));
});

describe('the challenge page with an expired token', () => {
  e2e('asks for the half-difficulty refresh challenge and keeps the token', async (t) => {
    const { context, page } = await openPage(t, browser);
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solved']);
    const first = await pageStatus(page);
    assert.equal(first.purpose, 'new');
    assert.equal(first.difficulty, 40);
    const cookie = await tokenCookie(context, server);
    assert.equal(await server.verifyStatus(cookie.value), 200);

    const { expired } = await admin('POST', 'tokens/expire-all');
    assert.ok(expired >= 1);
    assert.equal(await server.verifyStatus(cookie.value), 401, 'expired now');

    const solves = [];
    page.on('response', async (r) => {
      if (r.url() === `${server.url}/api/solve`) solves.push(await r.json().catch(() => null));
    });
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solved']);
    const second = await pageStatus(page);
    assert.equal(second.purpose, 'refresh', 'the page asked for a refresh challenge');
    assert.equal(second.difficulty, 20, 'at half the difficulty');
    assert.equal(solves.length, 1);
    assert.equal(solves[0].refreshed, true);
    assert.equal(solves[0].token, cookie.value, 'the same token was extended');
    assert.equal(await server.verifyStatus(cookie.value), 200, 'valid again');
  });
});
