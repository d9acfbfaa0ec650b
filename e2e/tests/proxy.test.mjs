// powgate behind real reverse proxies, configured by the recipes shipped in
// deploy/ (nginx.conf and Caddyfile, with only addresses and file paths
// substituted): redirects, tokens, request bodies, client addresses,
// return addresses, the allowlist, and the challenge page under /.powgate/
// in headless Chromium.
//
// Each proxy gets its own powgate (tiny argon2 parameters, POW_PUBLIC_URL
// pointing at the proxy) and its own upstream application, which records
// every request that reaches it.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { launchBrowser, openPage, solveAt, startPowgate, freePort, waitForState, withLogs } from '../lib/harness.mjs';
import { CADDY_BIN, NGINX_BIN, http, rawHttp, startCaddy, startNginx, startUpstream } from '../lib/proxies.mjs';

/** Expected hashes per solve: with tiny argon2 a fraction of a second. */
const DIFFICULTY = '60';
const ADMIN_KEY = 'proxy-test-admin-key-0123456789';
/** One address per token, so any address that counts would show. */
const MAX_IPS = '1';
/** The defaults (which a configured list replaces) plus a health check. */
const ALLOWLIST =
  '[{name="well-known",path="/.well-known/"},{name="robots",path="/robots.txt"},{name="health",path="/healthz"}]';
/** app.js waits this long on the success screen before redirecting. */
const REDIRECT_DELAY_MS = 1500;
const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 60_000;

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const JSON_ACCEPT = 'application/json';
const FORM = 'application/x-www-form-urlencoded';

/**
 * Request targets that once reached the application without a token
 * through the shipped recipes, by borrowing an allowlist rule. Each is sent
 * raw, exactly as written here.
 */
const ALLOWLIST_BYPASSES = [
  // Java servers (Tomcat, Jetty, Spring) read `..;` as `..`.
  ['dot_dot_semicolon_under_well_known', '/.well-known/..;/admin'],
  ['dot_dot_semicolon_under_robots_txt', '/robots.txt/..;/admin'],
  // A server that decodes twice reads %252e as `.`.
  ['double_encoded_dot_segment', '/.well-known/%252e%252e/admin'],
  // Overlong UTF-8 for `.`, which lax decoders accept.
  ['overlong_utf8_dot_segment', '/.well-known/%c0%ae%c0%ae/admin'],
  ['overlong_3_byte_utf8_dot_segment', '/.well-known/%e0%80%ae%e0%80%ae/admin'],
  // A check that stops at `#` sees /.well-known/; nginx passes it all on.
  ['fragment_hides_dot_segments', '/.well-known/#/../../admin'],
  // /robots.txt was a bare prefix.
  ['robots_txt_prefix_backup_file', '/robots.txt.bak'],
  ['robots_txt_prefix_other_directory', '/robots.txtsecret/data'],
];

/** Spellings of powgate's metrics path under the public prefix. */
const PUBLIC_METRICS = [
  '/.powgate/metrics',
  '/.powgate/metrics?format=text',
  '/.powgate/metrics/',
  '/.powgate//metrics',
  '/.powgate/%6detrics',
  '/.powgate/./metrics',
  '/.powgate/x/../metrics',
];

const PROXIES = [
  { name: 'nginx', bin: NGINX_BIN, start: startNginx },
  { name: 'caddy', bin: CADDY_BIN, start: startCaddy },
];

let browser;

before(async () => {
  for (const p of PROXIES) {
    assert.ok(existsSync(p.bin), `${p.bin} is missing: apt-get install ${p.name} (scripts/test.sh does it when run as root)`);
  }
  browser = await launchBrowser();
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await browser?.close();
}, { timeout: HOOK_TIMEOUT_MS });

for (const kind of PROXIES) {
  describe(`behind ${kind.name} (deploy/${kind.name === 'nginx' ? 'nginx.conf' : 'Caddyfile'})`, () => {
    let upstream;
    let powgate;
    let proxy;
    /** The site's base URL, e.g. http://127.0.0.1:41234 */
    let site;

    before(async () => {
      upstream = await startUpstream();
      const port = await freePort();
      site = `http://127.0.0.1:${port}`;
      powgate = await startPowgate({
        POW_PUBLIC_URL: `${site}/.powgate`,
        POW_DIFFICULTY_LEVEL: DIFFICULTY,
        POW_TOKEN_MAX_IPS: MAX_IPS,
        POW_ADMIN_KEY: ADMIN_KEY,
        POW_ALLOWLIST: ALLOWLIST,
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

    /** The upstream's records of requests for exactly `path`. */
    const seen = (path) => upstream.requests.filter((r) => r.url === path);

    /** The challenge page's address for a visitor who wanted `path`. */
    const challengeFor = (path) => `${site}/.powgate/?redir=${encodeURIComponent(`${site}${path}`)}`;

    e2e('a browser navigation without a token is redirected (302) to the challenge page under /.powgate/', async () => {
      const path = '/docs/page?x=1&y=%2F';
      const res = await http(`${site}${path}`, { headers: { accept: BROWSER_ACCEPT } });
      assert.equal(res.status, 302, res.body);
      assert.equal(res.headers.location, challengeFor(path));
      assert.equal(seen(path).length, 0, 'the upstream must not see a request without a token');

      // The return address is built from what the proxy saw, not from
      // forwarding headers the client made up.
      const claims = await http(`${site}${path}`, {
        headers: {
          accept: BROWSER_ACCEPT,
          'x-forwarded-host': 'evil.example',
          'x-original-host': 'evil.example',
          'x-forwarded-proto': 'https',
          'x-forwarded-uri': '/elsewhere',
        },
      });
      assert.equal(claims.status, 302, claims.body);
      assert.equal(claims.headers.location, challengeFor(path));

      // The redirect target is the page itself, served through the prefix.
      const page = await http(res.headers.location, { headers: { accept: BROWSER_ACCEPT } });
      assert.equal(page.status, 200);
      assert.match(page.headers['content-type'], /^text\/html/);
      assert.match(page.body, /<script type="module" src="app\.js">/);
    });

    e2e('a token from `powgate solve` through the proxy passes, as Bearer and as cookie; bodies arrive intact', async () => {
      const token = await solveAt(`${site}/.powgate/`);
      assert.match(token, /^[0-9a-f-]{36}$/);

      const bearer = await http(`${site}/docs/bearer`, {
        headers: { accept: BROWSER_ACCEPT, authorization: `Bearer ${token}`, 'x-powgate-status': 'allowlisted' },
      });
      assert.equal(bearer.status, 200, bearer.body);
      assert.match(bearer.body, /upstream ok GET \/docs\/bearer/);
      // The proxy tells the application why the request passed, and a
      // client cannot claim it.
      assert.equal(seen('/docs/bearer')[0]?.headers['x-powgate-status'], 'valid');

      const cookie = await http(`${site}/docs/cookie`, {
        headers: { accept: BROWSER_ACCEPT, cookie: `powgate_token=${token}` },
      });
      assert.equal(cookie.status, 200, cookie.body);
      assert.match(cookie.body, /upstream ok GET \/docs\/cookie/);

      // The check never reads the body, so the application gets all of it.
      const body = 'comment=' + 'x'.repeat(20_000);
      const post = await http(`${site}/docs/post`, {
        method: 'POST',
        headers: { accept: BROWSER_ACCEPT, authorization: `Bearer ${token}`, 'content-type': FORM },
        body,
      });
      assert.equal(post.status, 200, post.body);
      const [rec] = seen('/docs/post');
      assert.equal(rec?.method, 'POST');
      assert.equal(rec?.body, body);

      // The application's own 401 is its own: the proxy's handling of
      // powgate's 401 must not replace it.
      const own = await http(`${site}/status/401`, {
        headers: { accept: BROWSER_ACCEPT, authorization: `Bearer ${token}` },
      });
      assert.equal(own.status, 401);
      assert.match(own.body, /upstream ok GET \/status\/401/);

      // A made-up token is refused like a missing one.
      const wrong = await http(`${site}/docs/bearer`, {
        headers: { accept: JSON_ACCEPT, authorization: 'Bearer 00000000-0000-4000-8000-000000000000' },
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.json().status, 'unknown');
    });

    e2e('headless Chromium follows the redirect, solves on the page under /.powgate/ and lands on the application', async (t) => {
      const { page } = await openPage(t, browser);
      const urls = [];
      page.on('request', (r) => urls.push(r.url()));
      const target = `${site}/app/welcome?from=browser`;

      await page.goto(target);
      assert.equal(page.url(), challengeFor('/app/welcome?from=browser'));
      await waitForState(page, 'solved');
      await page.waitForURL(target, { timeout: REDIRECT_DELAY_MS + 15_000 });
      assert.equal(await page.textContent('#upstream'), 'upstream ok GET /app/welcome?from=browser');
      assert.equal(seen('/app/welcome?from=browser').at(-1)?.headers['x-powgate-status'], 'valid');

      // Everything the page needed came through the proxy, under the prefix.
      for (const asset of ['app.js', 'worker.js', 'solver/powgate_solver_wasm_bg.wasm', 'api/challenge', 'api/solve']) {
        assert.ok(urls.includes(`${site}/.powgate/${asset}`), `${asset} was not loaded through ${site}/.powgate/:\n${urls.join('\n')}`);
      }
      assert.deepEqual(urls.filter((u) => u.startsWith(powgate.url)), [], 'nothing may bypass the proxy');

      // The cookie is the site's (Path=/), so the next page passes at once.
      const cookies = await page.context().cookies(site);
      const cookie = cookies.find((c) => c.name === 'powgate_token');
      assert.equal(cookie?.path, '/');
      await page.goto(`${site}/app/second`);
      assert.equal(page.url(), `${site}/app/second`);
      assert.equal(await page.textContent('#upstream'), 'upstream ok GET /app/second');
    });

    e2e('a POST with a body and no token gets 401 JSON, not a redirect, and never reaches the application', async () => {
      const res = await http(`${site}/forms/submit`, {
        method: 'POST',
        headers: { accept: BROWSER_ACCEPT, 'content-type': FORM },
        body: 'name=Ada&message=hello',
      });
      assert.equal(res.status, 401, res.body);
      assert.equal(res.headers.location, undefined);
      assert.match(res.headers['content-type'], /^application\/json/);
      const body = res.json();
      assert.equal(body.status, 'missing');
      assert.equal(body.challenge_url, `${site}/.powgate/`);
      assert.match(body.message, /powgate solve/);

      // An API call is not a navigation either.
      const api = await http(`${site}/api/items`, { headers: { accept: JSON_ACCEPT } });
      assert.equal(api.status, 401, api.body);
      assert.equal(api.headers.location, undefined);
      assert.equal(api.json().status, 'missing');

      assert.equal(seen('/forms/submit').length + seen('/api/items').length, 0, 'the application saw a refused request');
    });

    e2e('spoofed X-Real-IP / X-Forwarded-For do not change the address powgate counts', async () => {
      // POW_TOKEN_MAX_IPS=1: if a spoofed address counted, the token would
      // be refused (403 ip_limit) on the second request.
      const token = await solveAt(`${site}/.powgate/`);
      for (let i = 1; i <= 4; i++) {
        const res = await http(`${site}/ip/check-${i}`, {
          headers: {
            accept: JSON_ACCEPT,
            authorization: `Bearer ${token}`,
            'x-real-ip': `203.0.113.${i}`,
            'x-forwarded-for': `198.51.100.${i}, 192.0.2.${i}`,
          },
        });
        assert.equal(res.status, 200, `request ${i} with spoofed headers: ${res.status} ${res.body}`);
      }

      // The other way round: another client (source address 127.0.0.2)
      // claiming to be 127.0.0.1 is still counted as 127.0.0.2, so the
      // token, already used from 127.0.0.1, is refused. This also shows the
      // proxy forwards the visitor's address and powgate uses it: the TCP
      // peer of powgate is 127.0.0.1 in both cases.
      const other = {
        localAddress: '127.0.0.2',
        headers: {
          accept: JSON_ACCEPT,
          authorization: `Bearer ${token}`,
          'x-real-ip': '127.0.0.1',
          'x-forwarded-for': '127.0.0.1',
        },
      };
      const refused = await http(`${site}/ip/other`, other);
      assert.equal(refused.status, 403, refused.body);
      assert.equal(refused.json().status, 'ip_limit');
      assert.equal(seen('/ip/other').length, 0);

      // The same holds on the challenge page's own path (/.powgate/api/token).
      const paste = await http(`${site}/.powgate/api/token`, {
        method: 'POST',
        localAddress: '127.0.0.2',
        headers: { 'content-type': FORM, 'x-real-ip': '127.0.0.1', 'x-forwarded-for': '127.0.0.1' },
        body: `token=${token}`,
      });
      assert.equal(paste.status, 403, paste.body);

      // No spoofed address was ever recorded for any token.
      const list = await http(`${powgate.url}/api/admin/tokens?per_page=500`, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
      });
      assert.equal(list.status, 200, list.body);
      const { tokens } = list.json();
      assert.ok(tokens.length >= 1);
      for (const tok of tokens) assert.deepEqual(tok.ips, ['127.0.0.1'], `token ${tok.id}`);
    });

    e2e('an off-site ?redir= is refused: the page stays, and the paste form does not redirect off-site', async (t) => {
      const { page } = await openPage(t, browser);
      const evil = 'https://evil.example/steal';
      const pageUrl = `${site}/.powgate/?redir=${encodeURIComponent(evil)}`;
      await page.goto(pageUrl);
      await waitForState(page, 'solved');
      assert.equal(await page.evaluate(() => window.powgateStatus.redirect), null);
      assert.match(await page.textContent('#notice'), /not on this site/);
      await sleep(REDIRECT_DELAY_MS + 1000);
      assert.equal(page.url(), pageUrl);

      // The no-JavaScript form: same rule on the server side.
      const token = await solveAt(`${site}/.powgate/`);
      const paste = (redir) => http(`${site}/.powgate/api/token`, {
        method: 'POST',
        headers: { 'content-type': FORM },
        body: new URLSearchParams({ token, redir }).toString(),
      });
      for (const redir of [evil, '//evil.example/x', `https://evil.example@127.0.0.1/x`]) {
        const res = await paste(redir);
        // Not followed: a page on this site says the token worked.
        assert.equal(res.status, 200, `${redir}: ${res.body}`);
        assert.equal(res.headers.location, undefined);
        assert.doesNotMatch(res.body, /evil/);
      }
      // A return address on this site is followed.
      const home = await paste(`${site}/app/back`);
      assert.equal(home.status, 303);
      assert.equal(home.headers.location, `${site}/app/back`);
    });

    e2e('allowlisted paths pass without a token; dot segments and made-up headers cannot borrow a rule', async () => {
      const allowed = [
        '/robots.txt',
        '/robots.txt?x=1',
        '/healthz',
        '/.well-known/security.txt',
        '/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0',
      ];
      for (const path of allowed) {
        const res = await http(`${site}${path}`, { headers: { accept: BROWSER_ACCEPT } });
        assert.equal(res.status, 200, `${path}: ${res.status} ${res.body}`);
        assert.ok(res.body.includes(`upstream ok GET ${path}`), `${path}: ${res.body}`);
        assert.equal(seen(path).at(-1)?.headers['x-powgate-status'], 'allowlisted', path);
      }
      for (const path of ['/.well-known/../secret', '/healthz/../secret', '/.well-known/%2e%2e/secret']) {
        const res = await http(`${site}${path}`, { headers: { accept: JSON_ACCEPT } });
        assert.equal(res.status, 401, `${path}: ${res.status} ${res.body}`);
      }
      // The proxy, not the client, says which path is asked for: a client's
      // own X-Original-URI / X-Forwarded-Uri cannot borrow a rule.
      const claims = await http(`${site}/private/secret`, {
        headers: {
          accept: JSON_ACCEPT,
          'x-original-uri': '/robots.txt',
          'x-forwarded-uri': '/robots.txt',
          'x-original-method': 'GET',
          'x-forwarded-method': 'GET',
        },
      });
      assert.equal(claims.status, 401, `a claimed X-Original-URI passed: ${claims.body}`);
      assert.equal(upstream.requests.filter((r) => /secret/.test(r.url)).length, 0);

      const metrics = await http(`${powgate.url}/metrics`);
      for (const rule of ['robots', 'health', 'well-known']) {
        const m = new RegExp(`^powgate_allowlist_matches_total\\{rule="${rule}"\\} (\\d+)`, 'm').exec(metrics.body);
        assert.ok(m && Number(m[1]) >= 1, `no allowlist match counted for ${rule}`);
      }
    });

    for (const [attack, target] of ALLOWLIST_BYPASSES) {
      e2e(`allowlist bypass ${attack}: raw "GET ${target}" gets the challenge and never reaches the application`, async () => {
        for (const [accept, expected] of [[BROWSER_ACCEPT, 302], [JSON_ACCEPT, 401]]) {
          const before = upstream.requests.length;
          const res = await rawHttp(proxy.port, target, { headers: { accept } });
          const reached = upstream.requests.slice(before).map((r) => r.line);
          assert.deepEqual(reached, [], `the application received ${JSON.stringify(reached)} without a token`);
          assert.equal(res.status, expected, `${target} (${accept}): ${res.status} ${res.body}`);
          if (expected === 302) assert.match(res.headers.location, /\/\.powgate\/\?redir=/);
        }
      });
    }

    e2e('metrics are not public: /.powgate/metrics in any spelling is not served, powgate\'s own /metrics is', async () => {
      for (const target of PUBLIC_METRICS) {
        const res = await rawHttp(proxy.port, target);
        assert.doesNotMatch(res.body, /powgate_/, `${target} served the metrics (${res.status})`);
        assert.equal(res.status, 404, `${target}: ${res.status} ${res.body.slice(0, 200)}`);
      }
      const direct = await http(`${powgate.url}/metrics`);
      assert.equal(direct.status, 200);
      assert.match(direct.body, /^powgate_verify_decisions_total/m);
    });

    e2e('/.powgate without the slash leads to the page; its assets are served under the prefix', async () => {
      const bare = await http(`${site}/.powgate`);
      assert.equal(bare.status, 301);
      assert.match(bare.headers.location, /\/\.powgate\/$/);
      const wasm = await http(`${site}/.powgate/solver/powgate_solver_wasm_bg.wasm`);
      assert.equal(wasm.status, 200);
      assert.equal(wasm.headers['content-type'], 'application/wasm');
      assert.equal(upstream.requests.filter((r) => r.url.startsWith('/.powgate')).length, 0);
    });
  });
}
