// Issue 15 item 1 behind real reverse proxies, configured by the recipes in
// deploy/ (nginx.conf and Caddyfile): a token over its request rate shows
// the visitor a 429 with Retry-After through each proxy (nginx maps
// powgate's 403 + X-Powgate-Status: rate_limited to it; Caddy passes
// powgate's 429 through), and a token past its lifetime budget sends a
// browser to the challenge page, where a refresh makes it pass again.
// Traefik is not installed here, so deploy/traefik.yml is not exercised.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import {
  POWGATE_BIN, freePort, launchBrowser, openPage, pageStatus, solveAt, startPowgate, tokenCookie, waitForState, withLogs,
} from '../lib/harness.mjs';
import { CADDY_BIN, NGINX_BIN, http, startCaddy, startNginx, startUpstream } from '../lib/proxies.mjs';

const DIFFICULTY = '60';
const ADMIN_KEY = 'budget-test-admin-key-0123456789';
const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 60_000;
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const JSON_ACCEPT = 'application/json';
/** The small rate the test sets. */
const PER_MINUTE = 5;
/** Its burst: three minutes' worth, 15 requests at once. */
const BURST = 3 * PER_MINUTE;
/** The small lifetime budget the test sets. */
const TOTAL = 3;

const PROXIES = [
  { name: 'nginx', bin: NGINX_BIN, start: startNginx },
  { name: 'caddy', bin: CADDY_BIN, start: startCaddy },
];

/** `powgate solve --refresh token url`: the refreshed token (the same one). */
function refreshAt(url, token) {
  return new Promise((resolve, reject) => {
    execFile(POWGATE_BIN, ['solve', '--quiet', '--refresh', token, url], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`powgate solve --refresh failed: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** app.js waits this long on the success screen before redirecting. */
const REDIRECT_DELAY_MS = 1500;

let browser;

before(async () => {
  browser = await launchBrowser();
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await browser?.close();
}, { timeout: HOOK_TIMEOUT_MS });

for (const kind of PROXIES) {
  describe(`request budgets behind ${kind.name}`, () => {
    let upstream;
    let powgate;
    let proxy;
    let site;

    before(async () => {
      assert.ok(existsSync(kind.bin), `${kind.bin} is missing: apt-get install ${kind.name}`);
      upstream = await startUpstream();
      const port = await freePort();
      site = `http://127.0.0.1:${port}`;
      powgate = await startPowgate({
        POW_PUBLIC_URL: `${site}/.powgate`,
        POW_DIFFICULTY_LEVEL: DIFFICULTY,
        POW_ADMIN_KEY: ADMIN_KEY,
      });
      proxy = await kind.start({ port, powgatePort: powgate.port, upstreamPort: upstream.port });
    }, { timeout: HOOK_TIMEOUT_MS });

    after(async () => {
      await Promise.all([proxy?.stop(), powgate?.stop(), upstream?.close()]);
    }, { timeout: HOOK_TIMEOUT_MS });

    function e2e(name, fn) {
      test(name, { timeout: TEST_TIMEOUT_MS }, withLogs(() => [
        powgate && [`powgate on ${powgate.url}`, powgate],
        proxy && [`${kind.name} on ${proxy.url}`, proxy],
      ], fn));
    }

    /** Sets live settings through powgate's admin API (not through the proxy). */
    async function settings(values) {
      const res = await http(`${powgate.url}/api/admin/settings`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(values),
      });
      assert.equal(res.status, 200, res.body);
    }

    const seen = (path) => upstream.requests.filter((r) => r.url === path);

    e2e('a token over its request rate shows the visitor 429 with Retry-After, never the page', async () => {
      await settings({ token_requests_per_minute: PER_MINUTE, token_requests_total: 0 });
      const token = await solveAt(`${site}/.powgate/`);
      const path = `/rated/${kind.name}`;
      for (let i = 0; i < BURST; i++) {
        const ok = await http(`${site}${path}`, { headers: { accept: BROWSER_ACCEPT, authorization: `Bearer ${token}` } });
        assert.equal(ok.status, 200, `request ${i + 1}: ${ok.body}`);
      }
      for (const accept of [BROWSER_ACCEPT, JSON_ACCEPT]) {
        const res = await http(`${site}${path}`, { headers: { accept, authorization: `Bearer ${token}` } });
        assert.equal(res.status, 429, res.body);
        assert.match(res.headers['retry-after'] ?? '', /^[1-9][0-9]*$/, JSON.stringify(res.headers));
        assert.equal(res.headers.location, undefined, 'solving again does not help, so no redirect');
        assert.equal(res.json().status, 'rate_limited');
      }
      assert.equal(seen(path).length, BURST, 'the refused requests never reached the application');
    });

    e2e('an exhausted token sends a browser to the page, and a refresh makes it pass again', async () => {
      await settings({ token_requests_per_minute: 0, token_requests_total: TOTAL });
      const token = await solveAt(`${site}/.powgate/`);
      const path = `/budget/${kind.name}`;
      for (let i = 0; i < TOTAL; i++) {
        const ok = await http(`${site}${path}`, { headers: { accept: BROWSER_ACCEPT, cookie: `powgate_token=${token}` } });
        assert.equal(ok.status, 200, ok.body);
      }
      const nav = await http(`${site}${path}`, { headers: { accept: BROWSER_ACCEPT, cookie: `powgate_token=${token}` } });
      assert.equal(nav.status, 302, nav.body);
      assert.equal(nav.headers.location, `${site}/.powgate/?redir=${encodeURIComponent(`${site}${path}`)}`);
      const api = await http(`${site}${path}`, { headers: { accept: JSON_ACCEPT, authorization: `Bearer ${token}` } });
      assert.equal(api.status, 401, api.body);
      assert.equal(api.json().status, 'exhausted');

      // The page asks for a challenge with the token's cookie and gets a
      // refresh challenge at the refresh difficulty.
      const ch = await http(`${site}/.powgate/api/challenge`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: `powgate_token=${token}` },
        body: '{}',
      });
      assert.equal(ch.status, 200, ch.body);
      assert.equal(ch.json().purpose, 'refresh');

      assert.equal(await refreshAt(`${site}/.powgate/`, token), token);
      const again = await http(`${site}${path}`, { headers: { accept: BROWSER_ACCEPT, cookie: `powgate_token=${token}` } });
      assert.equal(again.status, 200, again.body);
      assert.equal(seen(path).length, TOTAL + 1);
    });

    e2e('headless Chromium with an exhausted token lands on the page, which refreshes it and returns to the application', async (t) => {
      await settings({ token_requests_per_minute: 0, token_requests_total: TOTAL });
      const token = await solveAt(`${site}/.powgate/`);
      for (let i = 0; i < TOTAL; i++) {
        const ok = await http(`${site}/spent/${i}`, { headers: { accept: JSON_ACCEPT, authorization: `Bearer ${token}` } });
        assert.equal(ok.status, 200, ok.body);
      }
      const { context, page } = await openPage(t, browser);
      await context.addCookies([{ name: 'powgate_token', value: token, url: site }]);
      const target = `${site}/after/refresh`;

      await page.goto(target);
      assert.equal(page.url(), `${site}/.powgate/?redir=${encodeURIComponent(target)}`);
      await waitForState(page, 'solved');
      assert.equal((await pageStatus(page)).purpose, 'refresh', 'an exhausted token is refreshed, not replaced');
      await page.waitForURL(target, { timeout: REDIRECT_DELAY_MS + 15_000 });
      assert.equal(await page.textContent('#upstream'), 'upstream ok GET /after/refresh');
      assert.equal((await tokenCookie(context, { url: site }))?.value, token);
    });
  });
}
