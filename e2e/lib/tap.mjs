// A recording proxy in front of powgate, so that the same network checks
// work in every browser engine. Playwright can watch and hold a Chromium
// page's requests, but WebKitGTK's classic WebDriver cannot, and the checks
// must not depend on what one driver offers. The tap sees every request the
// page and its workers make, holds the ones a test wants frozen, serves the
// redirect target the page lands on, and can add one script to the page
// (before the page's own, which are modules and so run later) where a test
// needs the page to see other navigator values. The solver benchmark also
// serves its own page through it, on powgate's origin (serve option).
//
// Each tap listens on its own loopback address (127.0.0.2, .3, …): a fresh
// host has no cookies, storage or cache from an earlier test in the same
// browser session, in every engine.

import { createServer, request as httpRequest } from 'node:http';

import { freePort, WAIT_MS } from './harness.mjs';

/** Where the tap answers itself: the page's redirect target, and the added script. */
export const TARGET_PREFIX = '/.e2e-target/';
const INIT_SCRIPT_PATH = '/.e2e-init.js';

let nextHost = 2;

/**
 * Starts a tap in front of `server` on a loopback address of its own.
 *
 * @param {{url: string}} server the powgate to forward to
 * @param {{initScript?: string, serve?: (path: string) => Promise<{type: string, body: Buffer|string}|null>}} [options]
 *   initScript: JavaScript every HTML page runs first; serve: answers a path
 *   itself (null: forward it to powgate)
 * @returns {Promise<Tap>} call close() when done
 */
export async function startTap(server, { initScript, serve } = {}) {
  // 127.0.0.0/8 is all loopback on Linux, so any of these addresses works.
  const host = `127.0.0.${nextHost}`;
  nextHost = nextHost >= 254 ? 2 : nextHost + 1;
  const tap = new Tap(new URL(server.url), initScript, serve);
  const port = await freePort();
  await new Promise((resolve, reject) => {
    tap.http.once('error', reject);
    tap.http.listen(port, host, resolve);
  });
  tap.url = `http://${host}:${port}`;
  return tap;
}

class Tap {
  constructor(upstream, initScript, serve) {
    this.upstream = upstream;
    this.initScript = initScript;
    this.serve = serve;
    /** Every request seen, in order: {method, path, body, status}. */
    this.requests = [];
    this.url = null;
    this.holds = [];
    this.sockets = new Set();
    this.http = createServer((req, res) => this.handle(req, res));
    this.http.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Requests seen so far with this method and path (without query). */
  seen(method, path) {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  /**
   * Holds every request whose path `matches` until open() is called; the
   * same contract as harness.mjs's holdRequests, in every engine.
   *
   * @param {(path: string) => boolean} matches
   */
  hold(matches) {
    const hold = { matches, held: [], waiters: [], passing: false };
    this.holds.push(hold);
    return {
      held: () => hold.held.length,
      waitFor: async (n, { timeout = WAIT_MS } = {}) => {
        const deadline = Date.now() + timeout;
        while (hold.held.length < n) {
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`only ${hold.held.length} of ${n} held requests arrived within ${timeout} ms`);
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, left);
            hold.waiters.push(() => {
              clearTimeout(timer);
              resolve();
            });
          });
        }
      },
      /** Lets the held requests and every later one through. */
      open: () => {
        hold.passing = true;
        for (const release of hold.held.splice(0)) release();
      },
      /** Lets later requests through; the held ones stay stuck until close(). */
      passLater: () => {
        hold.passing = true;
      },
    };
  }

  async handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const { pathname } = new URL(req.url, 'http://x');
    const record = { method: req.method, path: pathname, body: body.toString('utf8'), status: null };
    this.requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });

    if (pathname.startsWith(TARGET_PREFIX)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end('<!doctype html><title>target</title><p id="arrived">arrived</p>');
      return;
    }
    if (pathname === INIT_SCRIPT_PATH && this.initScript) {
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      res.end(this.initScript);
      return;
    }
    const own = this.serve && await this.serve(pathname);
    if (own) {
      res.writeHead(200, { 'content-type': own.type, 'cache-control': 'no-store' });
      res.end(own.body);
      return;
    }
    const hold = this.holds.find((h) => !h.passing && h.matches(pathname));
    if (hold) {
      await new Promise((resolve) => {
        hold.held.push(resolve);
        for (const w of hold.waiters.splice(0)) w();
      });
    }
    this.forward(req, body, res);
  }

  forward(req, body, res) {
    const headers = { ...req.headers };
    // Uncompressed, so an HTML page can be edited on its way through.
    delete headers['accept-encoding'];
    const up = httpRequest({
      host: this.upstream.hostname,
      port: this.upstream.port,
      method: req.method,
      path: req.url,
      headers,
    }, (upRes) => {
      const isPage = this.initScript && /^text\/html/.test(upRes.headers['content-type'] ?? '');
      if (!isPage) {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
        return;
      }
      const parts = [];
      upRes.on('data', (c) => parts.push(c));
      upRes.on('end', () => {
        const html = Buffer.concat(parts).toString('utf8')
          .replace(/<head>/i, `<head><script src="${INIT_SCRIPT_PATH}"></script>`);
        const out = { ...upRes.headers };
        delete out['content-length'];
        delete out['transfer-encoding'];
        res.writeHead(upRes.statusCode, out);
        res.end(html);
      });
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`tap: ${err.message}`);
    });
    up.end(body);
  }

  /** Drops held requests and open connections, then stops listening. */
  async close() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.http.close(() => resolve()));
  }
}
