// Shared plumbing for the end-to-end tests: a real powgate process on a free
// port with its own temporary database, headless Debian Chromium driven by
// playwright-core, and small helpers that turn the page's state into
// readable failures.
//
// Every wait here has a deadline, and everything started here is stopped by
// the caller's after()/t.after() hooks, with a process 'exit' handler as the
// last resort if a hook never runs.

import { execFile, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const POWGATE_BIN = process.env.POWGATE_BIN || join(REPO, 'target', 'debug', 'powgate');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/**
 * Chromium flags for this machine: no sandbox (we run as root in a
 * container), and none of the background traffic (updates, sync, field
 * trials) that would show up among the requests the tests count.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Argon2 parameters small enough that a hash costs about a millisecond in
 * wasm, so difficulty alone decides how long a solve takes.
 */
export const FAST_ARGON2 = Object.freeze({ ARGON2_TIME_COST: '1', ARGON2_MEMORY_KB: '1024' });

/** Default deadline for one wait in a test (page state, navigation, …). */
export const WAIT_MS = 20_000;
const READY_MS = 20_000;
const STOP_MS = 5_000;
const CLI_MS = 60_000;
const LOG_KEEP_CHARS = 64 * 1024;

/** Children still running, with their temporary directories; killed outright if the test process ends first. */
const live = new Map();

function killLeftovers() {
  for (const [child, dir] of live) {
    try {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Already gone.
    }
  }
}
process.on('exit', killLeftovers);
// Ctrl-C or a CI job's timeout ends Node by a signal, which skips 'exit'
// handlers unless the signal is handled. (Playwright kills its browser itself.)
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => {
    killLeftovers();
    process.exit(code);
  });
}

/** A port that was free a moment ago. The server may still lose the race; see startPowgate. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The environment for a child powgate: ours without any POW_* / ARGON2_*
 * settings (a developer's shell must not change what the tests see), no ANSI
 * colours in the captured log, then `extra`.
 */
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('POW_') && !k.startsWith('ARGON2_')) env[k] = v;
  }
  env.NO_COLOR = '1';
  env.RUST_LOG ??= 'info';
  return { ...env, ...extra };
}

/** Resolves with the exit code (or signal name) once `child` has exited, or null after `ms`. */
export function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode ?? child.signalCode);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

/** A running powgate server. Create it with {@link startPowgate}. */
export class Powgate {
  constructor(child, port, dir) {
    this.child = child;
    this.port = port;
    this.dir = dir;
    /** Base URL without a trailing slash, e.g. http://127.0.0.1:41234 */
    this.url = `http://127.0.0.1:${port}`;
    this._log = '';
    this._stopped = null;
    const keep = (chunk) => {
      this._log = (this._log + chunk.toString('utf8')).slice(-LOG_KEEP_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
  }

  /** What the server has written so far (the last 64 KiB). */
  log() {
    return this._log;
  }

  /** The last `n` lines of the log, for failure messages. */
  logTail(n = 40) {
    return this._log.trimEnd().split('\n').slice(-n).join('\n');
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL if it has not gone after a few seconds; removes its files. Idempotent. */
  stop() {
    this._stopped ??= (async () => {
      await this.halt();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this._stopped;
  }

  /**
   * Ends the process but keeps its database (and so its signing secret):
   * the server is down, as in an outage, until {@link resume}.
   */
  async halt() {
    if (this.running) {
      this.child.kill('SIGTERM');
      if ((await exited(this.child, STOP_MS)) === null) {
        this.child.kill('SIGKILL');
        await exited(this.child, STOP_MS);
      }
    }
    live.delete(this.child);
  }

  /**
   * Starts the server again after {@link halt}, on the same port and
   * database, with the same settings: challenges it handed out before are
   * still valid. Throws if the port was taken meanwhile.
   */
  async resume() {
    const child = spawn(POWGATE_BIN, [], this.spawnOptions);
    live.set(child, this.dir);
    this.child = child;
    const keep = (chunk) => {
      this._log = (this._log + chunk.toString('utf8')).slice(-LOG_KEEP_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    await waitHealthy(this, this.healthPath);
  }

  /** Status of `GET /verify-token` with `token` in the powgate_token cookie. */
  async verifyStatus(token) {
    const res = await fetch(`${this.url}/verify-token`, {
      headers: token === undefined ? {} : { cookie: `powgate_token=${token}` },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** Runs `powgate solve` against this server and returns the token it prints. */
  solveWithCli() {
    return solveAt(`${this.url}/`);
  }
}

/** Runs `powgate solve --quiet URL` (URL: a powgate base, e.g. through a proxy) and returns the token. */
export function solveAt(url) {
  return new Promise((resolve, reject) => {
    execFile(
      POWGATE_BIN,
      ['solve', '--quiet', url],
      { env: childEnv({}), timeout: CLI_MS, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`powgate solve ${url} failed: ${err.message}\n${stderr}`));
          return;
        }
        resolve(stdout.trim());
      },
    );
  });
}

/**
 * Polls `path` (/healthz, or its place under the prefix in proxy mode, where
 * /healthz is the application's) until it answers 200; throws with the log if
 * the server dies or the deadline passes.
 */
async function waitHealthy(server, path) {
  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (!server.running) {
      throw new Error(`powgate exited (${server.child.exitCode ?? server.child.signalCode}) before answering ${path}:\n${server.logTail()}`);
    }
    try {
      const res = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new Error(`powgate did not answer ${path} within ${READY_MS} ms:\n${server.logTail()}`);
}

/**
 * Starts powgate with a fresh database in a temporary directory (also its
 * working directory, so no stray config.toml is read) on a free port.
 *
 * @param {Record<string, string>} env POW_* / ARGON2_* settings; FAST_ARGON2 is applied first
 * @returns {Promise<Powgate>} call stop() in an after hook
 */
export async function startPowgate(env = {}) {
  if (!existsSync(POWGATE_BIN)) {
    throw new Error(`${POWGATE_BIN} does not exist: run \`cargo build -p powgate\` or set POWGATE_BIN`);
  }
  // Another process can take the port between freePort() and the bind; the
  // server then exits at once, and a new port is tried.
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'powgate-e2e-'));
    const port = await freePort();
    const spawnOptions = {
      cwd: dir,
      env: childEnv({
        ...FAST_ARGON2,
        // Every browser here is 127.0.0.1, so per-address rate limits would
        // only slow the suite down; tests that need them pass their own.
        POW_RATE_CHALLENGES_PER_MINUTE: '0',
        POW_RATE_SOLUTIONS_PER_MINUTE: '0',
        // 127.0.0.1 is one IPv4 /24 too, so the same for its network budgets.
        POW_CHALLENGES_PER_MINUTE_PER_24: '0',
        POW_SOLUTIONS_PER_MINUTE_PER_24: '0',
        POW_WRONG_ANSWER_BACKOFF_SECS: '0',
        // Its many challenges would raise 127.0.0.1's network score, and
        // the tests check the difficulty they configured.
        POW_DIFFICULTY_PINNED: '1',
        ...env,
        POW_LISTEN: `127.0.0.1:${port}`,
        POW_DATABASE: join(dir, 'powgate.db'),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    };
    const child = spawn(POWGATE_BIN, [], spawnOptions);
    live.set(child, dir);
    const server = new Powgate(child, port, dir);
    server.spawnOptions = spawnOptions;
    server.healthPath = env.POW_UPSTREAM ? `${env.POW_PROXY_PREFIX ?? '/.powgate/'}healthz` : '/healthz';
    try {
      await waitHealthy(server, server.healthPath);
      return server;
    } catch (err) {
      lastError = err;
      await server.stop();
      if (!/cannot listen/.test(server.log())) break;
    }
  }
  throw lastError;
}

/** Headless Debian Chromium. Close it in an after hook. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: WAIT_MS,
  });
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

/** Console lines and uncaught errors of each page opened with openPage. */
const pageLogs = new WeakMap();

/**
 * A new browser context with one page, closed when test `t` ends. Console
 * messages and uncaught page errors are collected for assertions and for
 * failure messages.
 *
 * @returns {Promise<{context, page, console: {type: string, text: string}[], pageErrors: string[]}>}
 */
export async function openPage(t, browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  t.after(() => context.close().catch(() => {}));
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  const logs = { console: [], pageErrors: [] };
  page.on('console', (m) => logs.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => logs.pageErrors.push(String(e && e.stack ? e.stack : e)));
  pageLogs.set(page, logs);
  return { context, page, ...logs };
}

/** What the page says about itself, for failure messages. */
async function describePage(page) {
  const lines = [`url: ${page.url()}`];
  try {
    const s = await page.evaluate(() => ({
      state: document.body && document.body.dataset.state,
      status: window.powgateStatus,
      notice: document.getElementById('notice')?.textContent,
      error: document.getElementById('error-message')?.textContent,
    }));
    lines.push(`page: ${JSON.stringify(s)}`);
  } catch (err) {
    lines.push(`page: not readable (${err.message})`);
  }
  const logs = pageLogs.get(page);
  if (logs) {
    for (const m of logs.console.slice(-20)) lines.push(`console.${m.type}: ${m.text}`);
    for (const e of logs.pageErrors.slice(-5)) lines.push(`pageerror: ${e}`);
  }
  return lines.join('\n');
}

/**
 * Waits until document.body.dataset.state is one of `states`. Reaching
 * 'error' when it was not asked for fails at once, with the page's message.
 */
export async function waitForState(page, states, { timeout = WAIT_MS } = {}) {
  const wanted = [].concat(states);
  const stopAt = wanted.includes('error') ? wanted : [...wanted, 'error'];
  try {
    await page.waitForFunction(
      (s) => s.includes(document.body && document.body.dataset.state),
      stopAt,
      { timeout },
    );
  } catch (err) {
    throw new Error(`page never reached state ${wanted.join('|')}: ${err.message.split('\n')[0]}\n${await describePage(page)}`);
  }
  const state = await page.evaluate(() => document.body.dataset.state);
  if (!wanted.includes(state)) {
    throw new Error(`page reached state '${state}' instead of ${wanted.join('|')}\n${await describePage(page)}`);
  }
  return state;
}

/** window.powgateStatus, copied out of the page. */
export function pageStatus(page) {
  return page.evaluate(() => ({ ...window.powgateStatus }));
}

/** The powgate_token cookie of `context` for `server`, or undefined. */
export async function tokenCookie(context, server) {
  const cookies = await context.cookies(server.url);
  return cookies.find((c) => c.name === 'powgate_token');
}

/**
 * Holds every request matching `pattern` on `page` until open() is called.
 *
 * Used on the solver's .wasm: once N requests are held, N workers provably
 * got as far as loading the solver, and none of them can hash yet. That
 * makes "N workers really ran" independent of how quickly the first one
 * gets lucky, and lets a test freeze a challenge "in progress".
 *
 * Note that page.unroute*() would not keep held requests waiting: it lets
 * them through. Use passLater() to keep them stuck, e.g. across a reload.
 *
 * @returns {Promise<{held: () => number, waitFor: (n: number, o?: {timeout?: number}) => Promise<void>,
 *                    open: () => Promise<void>, passLater: () => void}>}
 */
export async function holdRequests(page, pattern) {
  const held = [];
  const waiters = [];
  let passing = false;
  await page.route(pattern, async (route) => {
    if (passing) {
      await route.continue();
      return;
    }
    held.push(route);
    for (const w of waiters.splice(0)) w();
  });
  return {
    held: () => held.length,
    async waitFor(n, { timeout = WAIT_MS } = {}) {
      const deadline = Date.now() + timeout;
      while (held.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`only ${held.length} of ${n} requests for ${pattern} arrived within ${timeout} ms\n${await describePage(page)}`);
        }
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    /** Lets the held requests and every later one through. */
    async open() {
      passing = true;
      await Promise.all(held.splice(0).map((r) => r.continue()));
    },
    /** Lets later requests through; the held ones stay stuck until the page goes away. */
    passLater() {
      passing = true;
    },
  };
}

/**
 * Runs `fn` and, if it throws, appends the end of each process's log to the
 * error message, so a failing assertion also shows what they said.
 * `getProcs` returns `[label, process]` pairs; each process has `logTail()`.
 */
export function withLogs(getProcs, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      const logs = getProcs()
        .filter(Boolean)
        .map(([label, p]) => `--- ${label} (last lines) ---\n${p.logTail()}`)
        .join('\n');
      if (err && typeof err === 'object' && logs) {
        try {
          err.message = `${err.message}\n${logs}`;
        } catch {
          // Frozen error object: report it unchanged.
        }
      }
      throw err;
    }
  };
}

/** {@link withLogs} for powgate servers alone. */
export function withServerLog(getServers, fn) {
  return withLogs(() => getServers().filter(Boolean).map((s) => [`powgate on ${s.url}`, s]), fn);
}
