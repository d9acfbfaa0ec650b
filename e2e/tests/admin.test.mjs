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
import { assertAccessible } from '../lib/axe.mjs';

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
  return adminAt(server, method, path);
}

/** An admin API call to `srv` with the key. */
async function adminAt(srv, method, path) {
  const res = await fetch(`${srv.url}/api/admin/${path}`, {
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

/** Signs in with the page's own form and waits for the dashboard. */
async function signIn(page, url) {
  await page.goto(`${url}/admin/`);
  await page.waitForFunction(() => document.body.dataset.view === 'login');
  await page.fill('#key', ADMIN_KEY);
  await page.press('#key', 'Enter');
  await page.waitForFunction(() => document.body.dataset.view === 'dashboard');
}

// Issue 19: presets applied in one click, and `extreme` at the default
// argon2 parameters takes a phone about 18 min on average and 54 min for
// 95 in 100 visitors, past the 30-minute challenge timeout.
describe('presets at the default argon2 parameters', () => {
  let real;
  before(async () => {
    real = await startPowgate({
      POW_ADMIN_KEY: ADMIN_KEY,
      POW_DIFFICULTY_LEVEL: 'medium',
      // The real cost, so the reference rates are the real ones: nothing
      // is solved on this server.
      ARGON2_TIME_COST: '8',
      ARGON2_MEMORY_KB: '65536',
    });
  }, { timeout: HOOK_TIMEOUT_MS });
  after(() => real?.stop(), { timeout: HOOK_TIMEOUT_MS });

  test('are previewed per device class, and extreme asks before it applies', { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [real], async (t) => {
    const { page, pageErrors } = await openPage(t, browser);
    await signIn(page, real.url);
    await page.waitForSelector('#preset-preview-table');
    const rows = await page.$$eval('#preset-preview-table tbody tr', (trs) => trs.map((tr) => tr.textContent));
    assert.deepEqual(rows.map((r) => r.split(' (')[0]), ['Low', 'Medium', 'High', 'Extreme'], 'cheapest first');
    const extremeRow = rows[3];
    assert.match(extremeRow, /^Extreme \(4,000\)/);
    assert.ok(extremeRow.includes('typical 18 min') && extremeRow.includes('95 in 100 within 54 min'), extremeRow);
    assert.ok(extremeRow.includes('over the timeout'), extremeRow);

    // Cancel leaves the difficulty alone.
    await page.click('#preset-extreme');
    await page.waitForSelector('#confirm[open]');
    const message = await page.textContent('#confirm-message');
    assert.ok(message.includes('54 min') && message.includes('30 min challenge timeout'), message);
    await assertAccessible(assert, page, 'confirm dialog');
    await page.click('#confirm-cancel');
    await page.waitForSelector('#confirm', { state: 'hidden' });
    await page.waitForFunction(() => (document.getElementById('difficulty-status')?.textContent || '').includes('not changed'));
    assert.equal(await page.evaluate(() => document.body.dataset.difficulty), '900');
    assert.equal((await adminAt(real, 'GET', 'settings')).settings.difficulty, 900);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'preset-extreme', 'focus back on the preset');

    // "Apply anyway" applies it.
    await page.click('#preset-extreme');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => document.body.dataset.difficulty === '4000');
    assert.equal((await adminAt(real, 'GET', 'settings')).settings.difficulty, 4000);

    // A preset that phones finish in time applies without a question.
    await page.click('#preset-low');
    await page.waitForFunction(() => document.body.dataset.difficulty === '200');
    assert.equal(await page.isVisible('#confirm'), false);
    assert.deepEqual(pageErrors, [], 'no page errors');
  }));
});

describe('the admin page with axe-core (WCAG 2.2 AA)', () => {
  e2e('has no violation when signing in, on the dashboard, with a field error and on the tokens list', async (t) => {
    const { page, pageErrors } = await openPage(t, browser);
    await page.goto(`${server.url}/admin/`);
    await page.waitForFunction(() => document.body.dataset.view === 'login');
    await assertAccessible(assert, page, 'login');
    await page.fill('#key', 'not-the-key-at-all');
    await page.click('#login');
    await page.waitForFunction(() => (document.getElementById('login-error')?.textContent || '').trim() !== '');
    await assertAccessible(assert, page, 'login with a wrong key');

    // A token for the list, then the dashboard with everything loaded.
    const { page: visitor } = await openPage(t, browser);
    await visitor.goto(`${server.url}/`);
    await waitForState(visitor, ['solved']);
    await page.fill('#key', ADMIN_KEY);
    await page.press('#key', 'Enter');
    await page.waitForFunction(() => document.body.dataset.view === 'dashboard');
    await page.waitForSelector('#token-rows button[data-revoke]');
    await page.waitForSelector('#preset-preview-table');
    await assertAccessible(assert, page, 'dashboard with the tokens list');

    // A settings field with an error.
    const field = page.locator('#settings-fields input[type="number"]').first();
    await field.fill('-5');
    await page.click('#settings-save');
    await page.waitForSelector('#settings-fields [aria-invalid="true"]');
    await assertAccessible(assert, page, 'settings with a field error');

    // The token search with an error.
    await page.fill('#token-search-input', 'abc');
    await page.click('#token-search-find');
    await page.waitForSelector('#token-search-input[aria-invalid="true"]');
    await assertAccessible(assert, page, 'token search with an error');

    // A confirm dialog.
    await page.click('#tokens-expire-all');
    await page.waitForSelector('#confirm[open]');
    await assertAccessible(assert, page, 'confirm dialog');
    await page.click('#confirm-cancel');
    assert.deepEqual(pageErrors, [], 'no page errors');
  });

  e2e('finds a token by its full value', async (t) => {
    const { context: visitorContext, page: visitor } = await openPage(t, browser);
    await visitor.goto(`${server.url}/`);
    await waitForState(visitor, ['solved']);
    const cookie = await tokenCookie(visitorContext, server);
    const { page, pageErrors } = await openPage(t, browser);
    await signIn(page, server.url);
    await page.fill('#token-search-input', cookie.value);
    await page.click('#token-search-find');
    await page.waitForFunction(() => !(document.getElementById('token-search-clear')?.hidden ?? true));
    assert.equal(await page.locator('#token-rows tr').count(), 1);
    const row = await page.textContent('#token-rows tr');
    assert.ok(row.includes('just now') || row.includes('min ago'), row);
    assert.ok(!row.includes('in under a minute'), row);
    assert.equal(await page.inputValue('#token-search-input'), '', 'the token is not left in the field');

    await page.fill('#token-search-input', '0b0c3a8e-7d7b-4c1e-9a55-2f3b6c1d0e9f');
    await page.click('#token-search-find');
    await page.waitForFunction(() => (document.getElementById('token-search-error')?.textContent || '').startsWith('No token matches'));
    await page.click('#token-search-clear');
    await page.waitForFunction(() => document.getElementById('token-search-clear')?.hidden === true);
    assert.deepEqual(pageErrors, [], 'no page errors');
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
