// The challenge page's words and screens in real headless Chromium against
// the real powgate binary (issue 19, item 3): the operator's site name and
// contact link, a clean Done screen that takes focus, server errors in
// visitor words, and "Try again" inside the page.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  launchBrowser,
  openPage,
  startPowgate,
  waitForState,
  withServerLog,
} from '../lib/harness.mjs';
import { ERROR_KEY } from '../../frontend/messages.js';
import { english } from '../lib/locales.mjs';

const DIFFICULTY = '150';
const SITE_NAME = 'Example <Shop>';
const CONTACT_URL = 'mailto:webmaster@example.com';
const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 60_000;

let browser;
let server;

before(async () => {
  const started = await Promise.allSettled([
    launchBrowser().then((b) => { browser = b; }),
    startPowgate({
      POW_DIFFICULTY_LEVEL: DIFFICULTY, POW_SITE_NAME: SITE_NAME, POW_CONTACT_URL: CONTACT_URL,
    }).then((s) => { server = s; }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), server?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

function e2e(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [server], fn));
}

describe('the challenge page speaks to visitors', () => {
  e2e('names the site, links its operator, and ends on a clean Done screen that takes focus', async (t) => {
    const { page } = await openPage(t, browser);
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solved']);

    // As text: the name's markup characters stay characters.
    assert.match(await page.textContent('#lead'), /^Example <Shop> checks that visitors are people/);
    assert.equal(await page.getAttribute('#contact-link', 'href'), CONTACT_URL);
    assert.equal(await page.isVisible('#contact-link'), true);

    assert.equal(await page.isHidden('#pause'), true, 'no disabled Pause left on the Done screen');
    assert.equal(await page.textContent('#success-title'), 'You can continue');
    assert.doesNotMatch(await page.textContent('main'), /Done.*Done/s, 'not "Done" twice');
    assert.equal(await page.getAttribute('#token', 'type'), 'password', 'the pass is not shown in clear');
    assert.equal(await page.isHidden('#token'), true, 'and only under "Other ways"');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'success-title');
  });

  e2e('shows a refused answer in visitor words, focuses it, and tries again inside the page', async (t) => {
    const { page } = await openPage(t, browser);
    let refuse = true;
    await page.route('**/api/solve', (route) => {
      if (!refuse) return route.continue();
      return route.fulfill({
        status: 403,
        contentType: 'application/json',
        body: JSON.stringify({ error: 'wrong_answer', message: 'the answer does not meet the target' }),
      });
    });
    let loads = 0;
    page.on('load', () => { loads += 1; });
    await page.goto(`${server.url}/`);
    await waitForState(page, ['error']);
    assert.equal(await page.textContent('#error-message'), english.t(ERROR_KEY.wrong_answer));
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-title');

    refuse = false;
    await page.click('#retry');
    await waitForState(page, ['solved']);
    assert.equal(loads, 1, 'Try again did not reload the page');
  });
});
