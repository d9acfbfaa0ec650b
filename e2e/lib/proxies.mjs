// Real reverse proxies for the end-to-end tests: nginx and Caddy run from
// the recipes shipped in deploy/ with only addresses and file paths
// substituted, a tiny upstream application that records what reaches it,
// and a plain HTTP client that does not follow redirects and can pick its
// source address.
//
// Every process started here is stopped by the caller's after() hooks, with
// a process 'exit' handler as the last resort if a hook never runs.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { exited, freePort, POWGATE_BIN, REPO, WAIT_MS } from './harness.mjs';

export const DEPLOY = join(REPO, 'deploy');

/** `name` on PATH or in the sbin directories (not on a normal user's PATH), else just `name`. */
function findBin(name) {
  const dirs = [...(process.env.PATH || '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return name;
}

export const NGINX_BIN = process.env.NGINX || findBin('nginx');
export const CADDY_BIN = process.env.CADDY || findBin('caddy');

/** The addresses the recipes are written with, replaced by the tests' own. */
const RECIPE_POWGATE = '127.0.0.1:8080';
const RECIPE_UPSTREAM = '127.0.0.1:3000';

const READY_MS = 20_000;
const STOP_MS = 5_000;
const LOG_KEEP_CHARS = 64 * 1024;

/**
 * Signals a proxy and everything it started. Each proxy runs in a process
 * group of its own (spawned detached), so nginx's workers go with their
 * master even when the master is killed outright.
 */
function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Children still running, killed outright if the test process ends first. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) signalGroup(child, 'SIGKILL');
});

/**
 * Replaces `from` by `to` in the recipe's directives (comments are left
 * alone), and fails when the directives no longer contain `from` exactly
 * `count` times: a recipe that drifted must break the test, not be tested
 * in some other shape.
 */
function substitute(text, from, to, count, file) {
  let found = 0;
  const lines = text.split('\n').map((line) => {
    if (line.trimStart().startsWith('#')) return line;
    const parts = line.split(from);
    found += parts.length - 1;
    return parts.join(to);
  });
  if (found !== count) {
    throw new Error(`${file}: expected ${count} × ${JSON.stringify(from)} outside comments, found ${found}; update e2e/lib/proxies.mjs with the recipe`);
  }
  return lines.join('\n');
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A proxy process started from a recipe. Create it with startNginx / startCaddy. */
export class Proxy {
  constructor(name, child, port, dir) {
    this.name = name;
    this.child = child;
    this.port = port;
    this.dir = dir;
    /** The site's base URL without a trailing slash. */
    this.url = `http://127.0.0.1:${port}`;
    this._log = '';
    this._stopped = null;
    const keep = (chunk) => {
      this._log = (this._log + chunk.toString('utf8')).slice(-LOG_KEEP_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last `n` lines the proxy wrote, for failure messages. */
  logTail(n = 30) {
    return this._log.trimEnd().split('\n').slice(-n).join('\n');
  }

  async waitReady() {
    const deadline = Date.now() + READY_MS;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) at start-up:\n${this.logTail()}`);
      }
      if (await canConnect(this.port)) return;
      await sleep(50);
    }
    throw new Error(`${this.name} did not listen on ${this.port} within ${READY_MS} ms:\n${this.logTail()}`);
  }

  /** SIGTERM (nginx: fast shutdown), then SIGKILL to its process group; removes its files. Idempotent. */
  stop() {
    this._stopped ??= (async () => {
      if (this.running) {
        this.child.kill('SIGTERM');
        if ((await exited(this.child, STOP_MS)) === null) {
          signalGroup(this.child, 'SIGKILL');
          await exited(this.child, STOP_MS);
        }
      }
      live.delete(this.child);
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this._stopped;
  }
}

function spawnProxy(name, bin, args, { dir, port, env }) {
  const child = spawn(bin, args, {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own: see signalGroup.
    detached: true,
  });
  live.add(child);
  // A missing binary surfaces as an 'error' event; keep it for the message.
  const proxy = new Proxy(name, child, port, dir);
  child.on('error', (err) => {
    proxy._log += `\ncannot start ${bin}: ${err.message}\n`;
  });
  return proxy;
}

/** Starts the proxy and waits until it listens; stops it again if it does not. */
async function startAndWait(start) {
  const proxy = await start();
  try {
    await proxy.waitReady();
    return proxy;
  } catch (err) {
    await proxy.stop();
    throw err;
  }
}

/**
 * nginx running deploy/nginx.conf on a high port, in the foreground, with
 * every file it writes (pid, logs, temporary bodies) in a temporary
 * directory. Only the listen port and the two backend addresses change.
 *
 * @param {{port: number, powgatePort: number, upstreamPort: number}} o
 *   `port` is the one POW_PUBLIC_URL names, so a port taken meanwhile is not retried
 * @returns {Promise<Proxy>}
 */
export async function startNginx({ port, powgatePort, upstreamPort }) {
  const file = join(DEPLOY, 'nginx.conf');
  let site = await readFile(file, 'utf8');
  site = substitute(site, 'listen 80;', `listen 127.0.0.1:${port};`, 1, file);
  site = substitute(site, `http://${RECIPE_POWGATE}`, `http://127.0.0.1:${powgatePort}`, 2, file);
  site = substitute(site, `http://${RECIPE_UPSTREAM}`, `http://127.0.0.1:${upstreamPort}`, 1, file);
  return startAndWait(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'powgate-nginx-'));
    // When run as root, nginx's workers run as nobody: they must be able to
    // reach the temporary directories the master creates for them here.
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'site.conf'), site);
    const main = [
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      'error_log stderr notice;',
      'events { worker_connections 256; }',
      'http {',
      `    access_log ${join(dir, 'access.log')};`,
      `    client_body_temp_path ${join(dir, 'client_body')};`,
      `    proxy_temp_path ${join(dir, 'proxy')};`,
      `    fastcgi_temp_path ${join(dir, 'fastcgi')};`,
      `    uwsgi_temp_path ${join(dir, 'uwsgi')};`,
      `    scgi_temp_path ${join(dir, 'scgi')};`,
      `    include ${join(dir, 'site.conf')};`,
      '}',
      '',
    ].join('\n');
    await writeFile(join(dir, 'nginx.conf'), main);
    return spawnProxy(
      'nginx',
      NGINX_BIN,
      ['-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
      { dir, port, env: {} },
    );
  });
}

/**
 * Caddy running deploy/Caddyfile: the site address becomes
 * http://127.0.0.1:`port`, the admin endpoint and automatic HTTPS are off,
 * and Caddy's data and config directories are in a temporary directory.
 *
 * @param {{port: number, powgatePort: number, upstreamPort: number}} o
 * @returns {Promise<Proxy>}
 */
export async function startCaddy({ port, powgatePort, upstreamPort }) {
  const file = join(DEPLOY, 'Caddyfile');
  let site = await readFile(file, 'utf8');
  site = substitute(site, 'example.com {', `http://127.0.0.1:${port} {`, 1, file);
  site = substitute(site, RECIPE_POWGATE, `127.0.0.1:${powgatePort}`, 2, file);
  site = substitute(site, RECIPE_UPSTREAM, `127.0.0.1:${upstreamPort}`, 1, file);
  const config = `{\n\tadmin off\n\tauto_https off\n}\n\n${site}`;
  return startAndWait(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'powgate-caddy-'));
    for (const d of ['home', 'data', 'config']) await mkdir(join(dir, d));
    const path = join(dir, 'Caddyfile');
    await writeFile(path, config);
    return spawnProxy(
      'caddy',
      CADDY_BIN,
      ['run', '--config', path, '--adapter', 'caddyfile'],
      {
        dir,
        port,
        env: {
          HOME: join(dir, 'home'),
          XDG_DATA_HOME: join(dir, 'data'),
          XDG_CONFIG_HOME: join(dir, 'config'),
        },
      },
    );
  });
}

/**
 * The application behind the proxy: answers every request with
 * `upstream ok METHOD PATH` as HTML, with status 200 (or NNN for a path
 * starting /status/NNN), and records it (method, url, headers, body) in
 * `requests`. `url` is the request target exactly as the proxy sent it
 * (Node does not normalise it), and `line` the request line; a request
 * Node cannot even parse is recorded too, as its raw bytes in `line`, so
 * that nothing reaching the application goes unseen.
 *
 * @returns {Promise<{url: string, port: number, requests: object[], close: () => Promise<void>}>}
 */
export async function startUpstream() {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        line: `${req.method} ${req.url} HTTP/${req.httpVersion}`,
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      const text = `upstream ok ${req.method} ${req.url}`;
      // /status/NNN answers NNN: the application's own errors must reach
      // the client as they are.
      const m = /^\/status\/([1-5]\d\d)\b/.exec(req.url);
      const status = m ? Number(m[1]) : 200;
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!doctype html><title>upstream</title><p id="upstream">${text.replace(/[<>&"]/g, '')}</p>\n`);
    });
  });
  server.on('clientError', (err, socket) => {
    if (err.rawPacket) requests.push({ line: err.rawPacket.toString('latin1'), unparsed: err.code });
    socket.destroy();
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * One HTTP request that does not follow redirects; the path is sent as
 * written, dot segments included.
 *
 * @param {string} url  http://host:port/path
 * @param {{method?: string, headers?: Record<string, string>, body?: string,
 *          localAddress?: string, timeout?: number}} [o]
 *   localAddress: the source address, e.g. 127.0.0.2, to be another client
 * @returns {Promise<{status: number, headers: Record<string, string>, body: string, json: () => any}>}
 */
export function http(url, { method = 'GET', headers = {}, body, localAddress, timeout = WAIT_MS } = {}) {
  // Parsed by hand: new URL() would resolve "/a/../b" to "/b", and some
  // tests need the path sent exactly as written.
  const m = /^http:\/\/([^/:]+):(\d+)(\/.*)?$/.exec(url);
  if (!m) throw new Error(`http(): not an http://host:port/path URL: ${url}`);
  const [, host, port, path = '/'] = m;
  return new Promise((resolve, reject) => {
    const options = { host, port: Number(port), path, method, headers, localAddress, agent: false, timeout };
    const req = httpRequest(options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: text,
          json() {
            try {
              return JSON.parse(text);
            } catch {
              throw new Error(`${method} ${url}: not JSON (${res.statusCode}): ${text.slice(0, 300)}`);
            }
          },
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * One request written byte for byte: `target` goes on the request line as
 * given, so nothing (not fetch, not node:http, not new URL()) resolves its
 * dot-segments, decodes its escapes or cuts it at `#` before the proxy
 * reads it. The connection is closed after one answer.
 *
 * @param {number} port  on 127.0.0.1
 * @param {string} target  the request-target, e.g. "/.well-known/..;/admin"
 * @param {{method?: string, headers?: Record<string, string>, timeout?: number}} [o]
 * @returns {Promise<{status: number, headers: Record<string, string>, body: string}>}
 */
export function rawHttp(port, target, { method = 'GET', headers = {}, timeout = WAIT_MS } = {}) {
  const head = [
    `${method} ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks = [];
    socket.setTimeout(timeout, () => socket.destroy(new Error(`${method} ${target}: no answer within ${timeout} ms`)));
    socket.once('connect', () => socket.write(head, 'latin1'));
    socket.on('data', (c) => chunks.push(c));
    socket.once('error', reject);
    socket.once('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [top, ...rest] = text.split('\r\n\r\n');
      const [statusLine, ...lines] = top.split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
      if (!m) {
        reject(new Error(`${method} ${target}: not an HTTP answer: ${JSON.stringify(text.slice(0, 300))}`));
        return;
      }
      const hdrs = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i > 0) hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers: hdrs, body: rest.join('\r\n\r\n') });
    });
  });
}
