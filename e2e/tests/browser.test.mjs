// The challenge page in real headless Chromium against the real powgate
// binary: the wasm solver in several workers, the cookie, redirects, worker
// limits per browser, headers, the no-JavaScript form, and reloads.
//
// Argon2 runs with tiny parameters (FAST_ARGON2) so difficulty alone sets the
// pace: at about 1.5k hashes/s for two workers, difficulty 150 solves in a
// fraction of a second.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  holdRequests,
  launchBrowser,
  openPage,
  pageStatus,
  startPowgate,
  tokenCookie,
  waitForState,
  withServerLog,
  WAIT_MS,
} from '../lib/harness.mjs';

/** Expected hashes per solve on the shared server. */
const DIFFICULTY = '150';
/** The only extra host `?redir=` may lead to. */
const ALLOWED_HOST = 'allowed.example';
/** app.js waits this long on the success screen before redirecting. */
const REDIRECT_DELAY_MS = 1500;
const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 60_000;

const WASM = '**/solver/powgate_solver_wasm_bg.wasm';

const UA = {
  desktopChrome:
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36',
  iphoneSafari:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  iphoneChrome:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1',
  // iPadOS Safari in its default "desktop" mode, and real desktop Safari:
  // the same string, told apart only by the touch screen.
  macSafari:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
};

let browser;
let server;

before(async () => {
  // Both start at once, and each is kept as soon as it is up, so that the
  // after hook can stop whichever did start when the other one failed.
  const started = await Promise.allSettled([
    launchBrowser().then((b) => { browser = b; }),
    startPowgate({ POW_DIFFICULTY_LEVEL: DIFFICULTY, POW_REDIRECT_DOMAINS: ALLOWED_HOST })
      .then((s) => { server = s; }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), server?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

/** A test whose failure message ends with the shared server's log. */
function e2e(name, fn, servers = () => [server]) {
  test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(servers, fn));
}

/** Makes the page see other navigator values, e.g. {hardwareConcurrency: 12}. */
function fakeNavigator(context, facts) {
  return context.addInitScript((f) => {
    for (const [key, value] of Object.entries(f)) {
      Object.defineProperty(Navigator.prototype, key, { get: () => value, configurable: true });
    }
  }, facts);
}

/** The response to the request the browser makes after api/token's redirect. */
function isAfterPaste(response) {
  const from = response.request().redirectedFrom();
  return Boolean(from) && from.url() === `${server.url}/api/token`;
}

/**
 * Workers the page starts beside the search: one computes the admission
 * ticket (issue 14), off the main thread, with the same wasm solver.
 */
const TICKET_WORKERS = 1;

/**
 * Opens the page and lets it solve, checking that exactly `expected` search
 * workers (and the ticket's) were started and that every one of them loaded
 * the wasm solver before any could hash (see holdRequests). Returns the
 * page's final status.
 */
async function solveWithWorkers(page, expected) {
  const started = expected + TICKET_WORKERS;
  const workers = [];
  page.on('worker', (w) => workers.push(w.url()));
  const wasm = await holdRequests(page, WASM);

  await page.goto(`${server.url}/`);
  await waitForState(page, ['solving']);
  assert.equal(await page.evaluate(() => document.body.dataset.workers), String(expected),
    'data-workers while solving');
  await wasm.waitFor(started);
  assert.equal(wasm.held(), started, 'one solver download per worker');
  assert.equal(workers.length, started, `workers started: ${workers.join(', ')}`);
  await wasm.open();

  await waitForState(page, ['solved']);
  const status = await pageStatus(page);
  assert.equal(status.workers, expected, 'no worker dropped out');
  assert.equal(status.dropped, 0);
  assert.equal(workers.length, started, 'no worker was started later');
  return status;
}

describe('the challenge page', () => {
  e2e('solves a real challenge with the wasm solver in several workers and sets the cookie', async (t) => {
    const { context, page } = await openPage(t, browser);
    assert.equal(await server.verifyStatus(undefined), 401, 'no token, no entry');

    // One worker per core (2 on the machine this was written on), up to 16;
    // the 1 MiB argon2 blocks are far below any memory budget.
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    assert.ok(cores >= 2, `this test needs at least 2 cores, Chromium reports ${cores}`);
    const status = await solveWithWorkers(page, Math.min(cores, 16));
    assert.equal(status.purpose, 'new');
    assert.equal(status.difficulty, Number(DIFFICULTY));
    assert.ok(status.hashes >= 1, `hashes: ${status.hashes}`);

    const cookie = await tokenCookie(context, server);
    assert.ok(cookie, 'powgate_token cookie is set');
    assert.equal(cookie.httpOnly, true, 'HttpOnly');
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.path, '/');
    assert.equal(cookie.secure, false, 'plain http, so not Secure');
    assert.ok(cookie.expires > Date.now() / 1000, 'a persistent cookie');
    assert.equal(await page.evaluate(() => document.cookie.includes('powgate_token')), false,
      'scripts cannot read the token cookie');

    assert.equal(await page.inputValue('#token'), cookie.value, '#token shows the cookie value');
    assert.equal(await page.isVisible('#success'), true);
    assert.equal(await page.evaluate(() => localStorage.getItem('powgate.challenge')), null,
      'a spent challenge is not kept');
    assert.equal(await server.verifyStatus(cookie.value), 200);
  });

  e2e('follows a path redirect after solving', async (t) => {
    const { page } = await openPage(t, browser);
    // Deliberately not percent-encoded, the way a proxy often writes it.
    await page.goto(`${server.url}/?redir=/some/path?x=1`);
    await waitForState(page, ['solved']);
    await page.waitForURL(`${server.url}/some/path?x=1`, { timeout: REDIRECT_DELAY_MS + WAIT_MS });
  });

  e2e('follows a redirect to an allowed host', async (t) => {
    const { page } = await openPage(t, browser);
    const hits = [];
    await page.route(`http://${ALLOWED_HOST}/**`, (route) => {
      hits.push(route.request().url());
      return route.fulfill({
        contentType: 'text/html',
        body: '<!doctype html><title>allowed</title><p id="arrived">arrived</p>',
      });
    });
    await page.goto(`${server.url}/?redir=${encodeURIComponent(`http://${ALLOWED_HOST}/x`)}`);
    await waitForState(page, ['solved']);
    await page.waitForURL(`http://${ALLOWED_HOST}/x`, { timeout: REDIRECT_DELAY_MS + WAIT_MS });
    assert.equal(await page.textContent('#arrived'), 'arrived');
    assert.deepEqual(hits, [`http://${ALLOWED_HOST}/x`]);
  });

  e2e('does not follow an off-site redirect', async (t) => {
    const { context, page } = await openPage(t, browser);
    const hits = [];
    // The whole context, any scheme and port: nothing may reach that host.
    await context.route((url) => url.hostname === 'evil.example', (route) => {
      hits.push(route.request().url());
      return route.fulfill({ status: 200, body: 'you were redirected' });
    });
    const redir = 'https://evil.example/';
    await page.goto(`${server.url}/?redir=${encodeURIComponent(redir)}`);
    await waitForState(page, ['solved']);
    await page.waitForFunction(() => document.getElementById('notice').textContent !== '');
    const notice = await page.textContent('#notice');
    assert.match(notice, /is not on this site, so you stay here/);
    assert.ok(notice.includes(redir), notice);
    assert.equal((await pageStatus(page)).redirect, null);
    assert.equal(await page.isHidden('#continue-link'), true);

    // Give a (wrongly) scheduled redirect time to fire before concluding.
    await sleep(REDIRECT_DELAY_MS + 1000);
    assert.equal(page.url(), `${server.url}/?redir=${encodeURIComponent(redir)}`);
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'solved');
    assert.deepEqual(hits, []);
    // The visitor still got a pass.
    const cookie = await tokenCookie(context, server);
    assert.equal(await server.verifyStatus(cookie?.value), 200);
  });

  e2e('says how many are ahead while its answer is queued, and sends the same answer again', async (t) => {
    const { context, page } = await openPage(t, browser);
    // The first submission is answered as a server with every verification
    // thread busy would: 503 queued, challenge unspent. The second goes
    // through to the real server.
    const sent = [];
    let shownWhileQueued = null;
    await page.route('**/api/solve', async (route) => {
      sent.push(route.request().postData());
      if (sent.length === 1) {
        return route.fulfill({
          status: 503,
          headers: { 'Retry-After': '1' },
          contentType: 'application/json',
          body: JSON.stringify({ error: 'queued', message: 'waiting to be verified', ahead: 3 }),
        });
      }
      shownWhileQueued = await page.textContent('#status');
      return route.continue();
    });
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solved']);
    assert.equal(shownWhileQueued, 'Verifying your answer: 3 ahead of you.');
    assert.equal(sent.length, 2, 'one resubmission');
    assert.equal(sent[1], sent[0], 'the same answer, not a new challenge');
    assert.equal((await pageStatus(page)).ahead, null);
    const cookie = await tokenCookie(context, server);
    assert.equal(await server.verifyStatus(cookie?.value), 200);
  });

  e2e('runs more than 4 workers on a 12-thread desktop, at most 4 on WebKit', async (t) => {
    // Headless Chromium here has 2 cores, so every case pretends to have 12:
    // only then can the WebKit cap (not the core count) be what limits it.
    const cases = [
      { name: 'desktop Chrome', ua: UA.desktopChrome, expected: 12, why: /one per CPU thread \(12\)/ },
      { name: 'iPhone Safari', ua: UA.iphoneSafari, expected: 4 },
      { name: 'Chrome on iPhone (CriOS)', ua: UA.iphoneChrome, expected: 4 },
      { name: 'iPad in desktop mode', ua: UA.macSafari, touch: 5, expected: 4 },
      { name: 'desktop Safari', ua: UA.macSafari, expected: 4 },
    ];
    for (const c of cases) {
      await t.test(c.name, async (st) => {
        const { context, page } = await openPage(st, browser, { userAgent: c.ua });
        await fakeNavigator(context, { hardwareConcurrency: 12, maxTouchPoints: c.touch ?? 0 });
        await solveWithWorkers(page, c.expected);
        const why = await page.textContent('#workers-why');
        assert.match(why, c.why ?? /at most 4 in Safari and on iPhone and iPad/);
        const cookie = await tokenCookie(context, server);
        assert.equal(await server.verifyStatus(cookie?.value), 200);
      });
    }
  });

  e2e('serves wasm as application/wasm and solves without CSP violations', async (t) => {
    const wasmRes = await fetch(`${server.url}/solver/powgate_solver_wasm_bg.wasm`, {
      signal: AbortSignal.timeout(WAIT_MS),
    });
    const bytes = new Uint8Array(await wasmRes.arrayBuffer());
    assert.equal(wasmRes.status, 200);
    assert.equal(wasmRes.headers.get('content-type'), 'application/wasm');
    assert.deepEqual([...bytes.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d], 'the wasm magic number');

    const { page, console: messages, pageErrors } = await openPage(t, browser);
    // Violations in the document fire this event even when nothing is logged.
    // The workers are not covered by it, nor by the page's policy: a worker
    // runs under the CSP of its own script's response, and powgate sends
    // none with scripts. A policy there that blocked wasm would show up as
    // a failed solve.
    await page.addInitScript(() => {
      window.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    const wasmTypes = [];
    page.on('response', (r) => {
      if (r.url().endsWith('/powgate_solver_wasm_bg.wasm')) wasmTypes.push(r.headers()['content-type']);
    });

    const res = await page.goto(`${server.url}/`);
    const csp = res.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src [^;]*'wasm-unsafe-eval'/, csp);
    assert.doesNotMatch(csp, /'unsafe-eval'|'unsafe-inline'/, csp);
    await waitForState(page, ['solved']);

    // The workers fetched the solver themselves, with the right type, so the
    // glue's streaming compile worked (it warns when it has to fall back).
    assert.ok(wasmTypes.length >= 1, 'a worker loaded the wasm');
    assert.deepEqual([...new Set(wasmTypes)], ['application/wasm']);
    assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
    const noisy = messages.filter((m) => m.type === 'error' || m.type === 'warning');
    assert.deepEqual(noisy, [], 'console errors or warnings');
    assert.deepEqual(pageErrors, []);
  });

  e2e('accepts a token from the command line in the no-JavaScript form', async (t) => {
    const token = await server.solveWithCli();
    assert.match(token, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/, token);

    const { context, page } = await openPage(t, browser, { javaScriptEnabled: false });
    await page.goto(`${server.url}/?redir=%2Fhealthz`);
    assert.equal(await page.isVisible('#noscript-token'), true, 'the <noscript> form shows');
    assert.equal(await page.isHidden('#solver'), true, 'the solver UI stays hidden');
    // The server filled in the real address and the return address.
    assert.match(await page.textContent('noscript, main'), new RegExp(`powgate solve ${server.url}/`));
    assert.doesNotMatch(await page.content(), /this-site|\{\{/);
    assert.equal(await page.inputValue('form:has(#noscript-token) input[name=redir]'), '/healthz');
    const submit = page.locator('form:has(#noscript-token) button[type=submit]');

    // A wrong token is refused, on a styled page, and sets nothing.
    await page.fill('#noscript-token', 'not-a-token');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.url}/api/token`),
      submit.click(),
    ]);
    assert.equal(refused.status(), 401);
    assert.match(await page.textContent('h1'), /That token did not work/);
    assert.match(await page.textContent('body'), /not a valid token/);
    assert.equal(await page.locator('link[rel=stylesheet][href="../shared/base.css"]').count(), 1, 'styled like the page');
    assert.equal(await tokenCookie(context, server), undefined);
    // Regression: relative links from api/token once said "./", which is /api/.
    assert.equal(await page.getAttribute('a', 'href').then((h) => new URL(h, page.url()).href),
      `${server.url}/?redir=%2Fhealthz`, 'the refusal page links back to the challenge page, return address kept');

    // A good token leads to the return address.
    await page.goto(`${server.url}/?redir=%2Fhealthz`);
    await page.fill('#noscript-token', token);
    const [landing] = await Promise.all([
      page.waitForResponse(isAfterPaste),
      submit.click(),
    ]);
    assert.equal((await landing.request().redirectedFrom().response()).status(), 303);
    assert.equal(landing.url(), `${server.url}/healthz`, 'on to the return address');
    const cookie = await tokenCookie(context, server);
    assert.equal(cookie?.value, token);
    assert.equal(cookie.httpOnly, true);
    assert.equal(await server.verifyStatus(cookie.value), 200);

    // Without one, a page says it worked (the challenge page again would not).
    await page.goto(`${server.url}/`);
    await page.fill('#noscript-token', token);
    const [done] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.url}/api/token`),
      submit.click(),
    ]);
    assert.equal(done.status(), 200);
    assert.match(await page.textContent('h1'), /You can continue/);
  });

  e2e('finishes a challenge that was in progress before a reload', async (t) => {
    const { context, page } = await openPage(t, browser);
    const challengePosts = [];
    const solvePosts = [];
    page.on('request', (r) => {
      if (r.method() !== 'POST') return;
      if (r.url() === `${server.url}/api/challenge`) challengePosts.push(r);
      if (r.url() === `${server.url}/api/solve`) solvePosts.push(r);
    });

    // Freeze the first load mid-solve: challenge fetched and stored, workers
    // started, but their solver download held so none can finish it.
    const wasm = await holdRequests(page, WASM);
    await page.goto(`${server.url}/`);
    await waitForState(page, ['solving']);
    // Every worker's request must be held before the others may pass, or a
    // late one from this page could still load the solver and win.
    await wasm.waitFor(Number(await page.evaluate(() => document.body.dataset.workers)));
    const stored = JSON.parse(await page.evaluate(() => localStorage.getItem('powgate.challenge')));
    assert.equal(typeof stored?.challenge, 'string');
    assert.equal(challengePosts.length, 1);

    // The first page's workers never get their solver; the reloaded page's do.
    wasm.passLater();
    await page.reload();
    await waitForState(page, ['solved']);
    assert.equal(challengePosts.length, 1, 'no new challenge was requested after the reload');
    assert.equal(solvePosts.length, 1);
    assert.equal(solvePosts[0].postDataJSON().challenge, stored.challenge,
      'the stored challenge was the one solved');
    assert.ok(stored.ticket_bits > 0, 'the server asks for an admission ticket');
    assert.ok(Number.isSafeInteger(solvePosts[0].postDataJSON().ticket),
      'the page sends the admission ticket with its answer');
    assert.equal(await page.evaluate(() => localStorage.getItem('powgate.challenge')), null);
    const cookie = await tokenCookie(context, server);
    assert.equal(await server.verifyStatus(cookie?.value), 200);
  });

  // The refresh path (an expired token leads to a half-difficulty challenge)
  // is in admin.test.mjs, which expires tokens through the admin API.
});

describe('a slow challenge', () => {
  /** Far more than the test ever hashes, so it is still unsolved at the reload. */
  const SLOW_DIFFICULTY = '100000000';
  let slow;

  before(async () => {
    slow = await startPowgate({ POW_DIFFICULTY_LEVEL: SLOW_DIFFICULTY });
  }, { timeout: HOOK_TIMEOUT_MS });

  after(async () => {
    await slow?.stop();
  }, { timeout: HOOK_TIMEOUT_MS });

  e2e('pauses, and after a reload carries on with the same challenge', async (t) => {
    const { page } = await openPage(t, browser);
    let challengePosts = 0;
    page.on('request', (r) => {
      if (r.method() === 'POST' && r.url() === `${slow.url}/api/challenge`) challengePosts += 1;
    });
    const hashes = async () => (await pageStatus(page)).hashes;

    await page.goto(`${slow.url}/`);
    await waitForState(page, ['solving']);
    await page.waitForFunction(() => window.powgateStatus.hashes > 0);
    const stored = JSON.parse(await page.evaluate(() => localStorage.getItem('powgate.challenge')));
    assert.equal(typeof stored?.challenge, 'string', 'the challenge is stored while it is being solved');

    await page.click('#pause');
    assert.equal(await page.textContent('#pause'), 'Resume');
    assert.equal((await pageStatus(page)).paused, true);
    // Steps already running when the pause arrived may still report.
    await sleep(1000);
    const paused = await hashes();
    await sleep(500);
    assert.equal(await hashes(), paused, 'no hashing while paused');

    await page.reload();
    await waitForState(page, ['solving']);
    await page.waitForFunction(() => window.powgateStatus.hashes > 0);
    assert.equal(challengePosts, 1, 'no new challenge was requested after the reload');
    const afterReload = JSON.parse(await page.evaluate(() => localStorage.getItem('powgate.challenge')));
    assert.equal(afterReload.challenge, stored.challenge);
    assert.match(await page.textContent('#status'), /continuing the check you started earlier/);
    assert.equal((await pageStatus(page)).difficulty, Number(SLOW_DIFFICULTY));
  }, () => [slow]);
});
