// Solved work is never lost, in real headless Chromium against the real
// powgate binary: an answer found while the server is down is sent once it
// is back, a changed address fetches a new challenge by itself, and tabs
// opened at once solve once between them (issue 19, item 2).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  launchBrowser,
  openPage,
  startPowgate,
  tokenCookie,
  waitForState,
  withServerLog,
  WAIT_MS,
} from '../lib/harness.mjs';
import { english } from '../lib/locales.mjs';

/** A fraction of a second per solve with FAST_ARGON2. */
const DIFFICULTY = '150';
/**
 * How long the server stays down while the page holds a found answer:
 * longer than the 7 s after which the page used to give up and drop it.
 */
const OUTAGE_MS = 10_000;
const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 60_000;

let browser;
let server;

before(async () => {
  const started = await Promise.allSettled([
    launchBrowser().then((b) => { browser = b; }),
    startPowgate({ POW_DIFFICULTY_LEVEL: DIFFICULTY }).then((s) => { server = s; }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), server?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

/** A test whose failure message ends with the server's log. */
function e2e(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [server], fn));
}

/** The POST bodies the pages of `context` send to each API path, in order. */
function countApiPosts(context) {
  const posts = { challenge: [], solve: [] };
  context.on('request', (req) => {
    if (req.method() !== 'POST') return;
    const path = new URL(req.url()).pathname;
    if (path === '/api/challenge') posts.challenge.push(req.postData());
    if (path === '/api/solve') posts.solve.push(req.postData());
  });
  return posts;
}

describe('solved work is never lost', () => {
  e2e('sends an answer found while the server is down once it is back, without solving again', async (t) => {
    const { context, page } = await openPage(t, browser);
    const posts = countApiPosts(context);
    let shownWhileDown = null;
    // The first answer leaves just as the server goes down: it meets a
    // closed port, as after a crash or during a deploy.
    let first = true;
    await page.route('**/api/solve', async (route) => {
      if (!first) return route.continue();
      first = false;
      await server.halt();
      setTimeout(async () => {
        shownWhileDown = await page.textContent('#status').catch(() => null);
        await server.resume();
      }, OUTAGE_MS);
      return route.continue().catch(() => {});
    });
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solved'], { timeout: WAIT_MS + OUTAGE_MS + 30_000 });

    assert.match(shownWhileDown ?? '', /^Your answer is ready, but the server cannot be reached/);
    assert.equal(posts.challenge.length, 1, 'no new challenge: the answer found before the outage was used');
    assert.ok(posts.solve.length >= 2, `sent again after the outage (${posts.solve.length} sends)`);
    assert.ok(posts.solve.every((body) => body === posts.solve[0]), 'the same answer every time');
    const cookie = await tokenCookie(context, server);
    assert.equal(await server.verifyStatus(cookie?.value), 200);
    assert.equal(await page.evaluate(() => localStorage.getItem('powgate.answer')), null,
      'the answer is forgotten once the server has answered it');
  });

  e2e('fetches a new challenge by itself when the address changed, and says why', async (t) => {
    const { context, page } = await openPage(t, browser);
    const posts = countApiPosts(context);
    // 127.0.0.1 is a trusted proxy by default, so X-Real-IP is the visitor's
    // address: the first challenge goes to one, everything after it comes
    // from another, as a phone moving from Wi-Fi to mobile data.
    let address = '203.0.113.5';
    await context.route(/\/api\/(challenge|solve)$/, async (route) => {
      const headers = { ...route.request().headers(), 'x-real-ip': address };
      if (route.request().url().endsWith('/api/challenge')) {
        // Only the first challenge is fetched from the old address.
        const from = address;
        address = '198.51.100.7';
        return route.continue({ headers: { ...headers, 'x-real-ip': from } });
      }
      return route.continue({ headers });
    });
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solved']);

    assert.equal(posts.challenge.length, 2, 'a second challenge, for the new address');
    assert.equal(posts.solve.length, 2);
    assert.equal(await page.textContent('#notice'), english.t('renewAddress'));
  });

  e2e('solves once for three tabs opened at once, and every tab continues to its target', async (t) => {
    const { context, page } = await openPage(t, browser);
    const posts = countApiPosts(context);
    // The answer is held until the other two tabs are seen waiting, so
    // the test does not depend on which tab is quickest.
    let releaseAnswer;
    const answerMayGo = new Promise((resolve) => { releaseAnswer = resolve; });
    await context.route('**/api/solve', async (route) => {
      await answerMayGo;
      return route.continue();
    });
    const pages = [page, await context.newPage(), await context.newPage()];
    const target = `${server.url}/healthz`;
    await Promise.all(pages.map((p) => p.goto(`${server.url}/?redir=%2Fhealthz`)));

    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const states = await Promise.all(pages.map((p) => p.evaluate(() => document.body.dataset.state)));
      if (states.filter((s) => s === 'waiting').length === 2) break;
      assert.ok(Date.now() < deadline, `two tabs should wait for the third, states: ${states}`);
      await sleep(50);
    }
    const waitingText = await Promise.all(pages.map((p) => p.textContent('#status')));
    assert.equal(waitingText.filter((s) => s === english.t('waitingForOtherTab')).length, 2);
    releaseAnswer();

    await Promise.all(pages.map((p) => p.waitForURL(target, { timeout: WAIT_MS })));
    assert.equal(posts.challenge.length, 1, 'one challenge for the three tabs');
    assert.equal(posts.solve.length, 1, 'one answer for the three tabs');
  });
});
