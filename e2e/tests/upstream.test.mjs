// Proxy mode against real upstreams (issue 16): powgate itself stands in
// front of the application (POW_UPSTREAM), with no nginx or Caddy.
//
// - headless Chromium is sent to the challenge under /.powgate/, solves, and
//   lands on the application's page, then opens a WebSocket through powgate;
// - git smart HTTP: `git http-backend` run as CGI behind powgate, cloned and
//   pushed to with a token from `powgate solve`, refused without one, and
//   let through by a User-Agent allowlist rule;
// - a 1 GiB upload streamed through powgate, whose memory must stay flat.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, openPage, solveAt, startPowgate, waitForState, withServerLog } from '../lib/harness.mjs';

/** Expected hashes per solve: with tiny argon2 a fraction of a second. */
const DIFFICULTY = '60';
/** app.js waits this long on the success screen before redirecting. */
const REDIRECT_DELAY_MS = 1500;
const TEST_TIMEOUT_MS = 120_000;
const UPLOAD_TIMEOUT_MS = 600_000;
const HOOK_TIMEOUT_MS = 60_000;

const UPLOAD_BYTES = 1024 * 1024 * 1024;
const UPLOAD_CHUNK_BYTES = 1024 * 1024;
/** How much powgate's RSS may grow while it streams the upload. */
const UPLOAD_RSS_GROWTH_LIMIT_BYTES = 100 * 1024 * 1024;
const RSS_SAMPLE_MS = 50;
/** The upload's application reads nothing for this long. */
const UPLOAD_STALL_MS = 2000;
const GIT_PUSH_FILE_BYTES = 5 * 1024 * 1024;

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// ---------------------------------------------------------------------------
// The application behind powgate
// ---------------------------------------------------------------------------

/**
 * Answers one RFC 6455 handshake and echoes every text frame back, unmasked,
 * as a server must; a close frame is answered and ends the connection.
 */
function serveWebSocketEcho(req, socket, head) {
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let pending = head;
  const onData = (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const frame = parseClientFrame(pending);
      if (!frame) return;
      pending = pending.subarray(frame.size);
      if (frame.opcode === 0x1) {
        socket.write(serverFrame(0x1, frame.payload));
      } else if (frame.opcode === 0x8) {
        socket.end(serverFrame(0x8, frame.payload));
        return;
      }
    }
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  if (head.length > 0) onData(Buffer.alloc(0));
}

/** One whole masked client frame at the start of `buf`, or null if more bytes are needed. */
function parseClientFrame(buf) {
  if (buf.length < 2) return null;
  const opcode = buf[0] & 0x0f;
  let len = buf[1] & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (buf[1] & 0x80) !== 0;
  const maskEnd = offset + (masked ? 4 : 0);
  if (buf.length < maskEnd + len) return null;
  const payload = Buffer.from(buf.subarray(maskEnd, maskEnd + len));
  if (masked) {
    const mask = buf.subarray(offset, maskEnd);
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
  }
  return { opcode, payload, size: maskEnd + len };
}

function serverFrame(opcode, payload) {
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x80 | opcode, len]) : Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff]);
  return Buffer.concat([header, payload]);
}

/**
 * Runs `git http-backend` as a CGI program for one request: the request body
 * is piped to its stdin, its CGI headers are turned into the response's
 * status and headers, and the rest of its stdout is streamed back.
 */
function serveGitCgi(req, res, { projectRoot, pathInfo, query }) {
  const env = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    REQUEST_METHOD: req.method,
    PATH_INFO: pathInfo,
    QUERY_STRING: query,
    REMOTE_ADDR: req.socket.remoteAddress,
    REMOTE_USER: 'e2e',
  };
  if (req.headers['content-type']) env.CONTENT_TYPE = req.headers['content-type'];
  // A chunked push has no length: http-backend then reads to end of input.
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  for (const [name, value] of Object.entries(req.headers)) {
    env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = value;
  }
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr += c; });
  child.stdin.on('error', () => {});
  req.pipe(child.stdin);

  let head = Buffer.alloc(0);
  const onHead = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const text = head.toString('latin1');
    const m = /\r?\n\r?\n/.exec(text);
    if (!m) return;
    child.stdout.off('data', onHead);
    let status = 200;
    const headers = {};
    for (const line of text.slice(0, m.index).split(/\r?\n/)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (/^status$/i.test(name)) status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(m.index + m[0].length));
    child.stdout.pipe(res);
  };
  child.stdout.on('data', onHead);
  child.on('exit', (code) => {
    if (code !== 0 && !res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`git http-backend exited ${code}: ${stderr}`);
    }
  });
}

/**
 * The application: HTML pages under /app/, a WebSocket echo at /ws/echo, git
 * smart HTTP under /git/, and /upload, which counts the bytes it receives.
 * `seen` counts the requests that reached each part.
 */
async function startApplication({ gitRoot }) {
  const seen = { app: 0, ws: 0, git: 0, upload: 0 };
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://app.invalid');
    if (url.pathname.startsWith('/git/')) {
      seen.git++;
      serveGitCgi(req, res, { projectRoot: gitRoot, pathInfo: url.pathname.slice('/git'.length), query: url.search.slice(1) });
    } else if (url.pathname === '/upload') {
      seen.upload++;
      let bytes = 0;
      req.on('data', (c) => { bytes += c.length; });
      // A slow start: powgate must hold the sender back rather than
      // buffer what the application is not reading yet.
      req.pause();
      setTimeout(() => req.resume(), UPLOAD_STALL_MS);
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes }));
      });
    } else {
      seen.app++;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>the application</title><p id="app">application page ${req.url.replace(/[<>&"]/g, '')}</p>\n`);
    }
  });
  server.on('upgrade', (req, socket, head) => {
    seen.ws++;
    serveWebSocketEcho(req, socket, head);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/** Runs git with no user or system configuration and no prompts; resolves with {code, stdout, stderr}. */
function git(home, args, { cwd, env = {} } = {}) {
  return new Promise((resolve) => {
    execFile(
      'git',
      ['-c', 'credential.helper=', '-c', 'init.defaultBranch=main', ...args],
      {
        cwd,
        timeout: TEST_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        env: {
          PATH: process.env.PATH,
          HOME: home,
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_TERMINAL_PROMPT: '0',
          GIT_ASKPASS: '',
          GIT_AUTHOR_NAME: 'e2e',
          GIT_AUTHOR_EMAIL: 'e2e@example.invalid',
          GIT_COMMITTER_NAME: 'e2e',
          GIT_COMMITTER_EMAIL: 'e2e@example.invalid',
          ...env,
        },
      },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }),
    );
  });
}

async function gitOk(home, args, opts) {
  const r = await git(home, args, opts);
  assert.equal(r.code, 0, `git ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout.trim();
}

/** powgate's resident set size in bytes, from /proc. */
function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/** POSTs `total` bytes made on the fly, never held whole; resolves with the response's status and body. */
function streamUpload(url, total, headers) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(total) },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const chunk = randomBytes(UPLOAD_CHUNK_BYTES);
    function* generate() {
      for (let sent = 0; sent < total; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, total - sent));
    }
    pipeline(Readable.from(generate()), req).catch(reject);
  });
}

/** Sends a WebSocket handshake without a token; resolves with the status powgate answers. */
function wsHandshakeStatus(url) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      agent: false,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode);
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('proxy mode in front of real applications', () => {
  let dir;
  let bare;
  let app;
  let powgate;
  let browser;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'powgate-upstream-'));
    bare = join(dir, 'repo.git');
    await gitOk(dir, ['init', '--bare', '--quiet', bare]);
    await gitOk(dir, ['-C', bare, 'config', 'http.receivepack', 'true']);
    // A first commit, pushed straight to the bare repository.
    const seed = join(dir, 'seed');
    await gitOk(dir, ['init', '--quiet', seed]);
    await writeFile(join(seed, 'README'), 'seed\n');
    await gitOk(dir, ['-C', seed, 'add', 'README']);
    await gitOk(dir, ['-C', seed, 'commit', '--quiet', '-m', 'seed']);
    await gitOk(dir, ['-C', seed, 'push', '--quiet', bare, 'main']);

    app = await startApplication({ gitRoot: dir });
    powgate = await startPowgate({ POW_UPSTREAM: app.url, POW_DIFFICULTY_LEVEL: DIFFICULTY });
    browser = await launchBrowser();
  }, { timeout: HOOK_TIMEOUT_MS });

  after(async () => {
    await Promise.all([browser?.close(), powgate?.stop(), app?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  }, { timeout: HOOK_TIMEOUT_MS });

  const e2e = (name, fn, timeout = TEST_TIMEOUT_MS) => test(name, { timeout }, withServerLog(() => [powgate], fn));

  e2e('headless Chromium is sent to /.powgate/, solves, lands on the application and talks WebSocket through powgate', async (t) => {
    const { page } = await openPage(t, browser);
    const target = `${powgate.url}/app/dashboard?from=browser`;
    const appRequestsBefore = app.seen.app;

    await page.goto(target);
    assert.equal(page.url(), `${powgate.url}/.powgate/?redir=${encodeURIComponent(target)}`);
    assert.equal(app.seen.app, appRequestsBefore, 'the application saw the page before the solve');
    await waitForState(page, 'solved');
    await page.waitForURL(target, { timeout: REDIRECT_DELAY_MS + 15_000 });
    assert.equal(await page.textContent('#app'), 'application page /app/dashboard?from=browser');

    // Without a token the handshake never reaches the application.
    const wsBefore = app.seen.ws;
    assert.equal(await wsHandshakeStatus(`${powgate.url}/ws/echo`), 401);
    assert.equal(app.seen.ws, wsBefore, 'a WebSocket handshake without a token reached the application');

    // With the page's cookie: a real WebSocket, one text message echoed.
    const wsUrl = `${powgate.url.replace(/^http/, 'ws')}/ws/echo`;
    const echoed = await page.evaluate((url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send('hello through powgate ✓');
      ws.onmessage = (e) => {
        resolve(e.data);
        ws.close();
      };
      ws.onerror = () => reject(new Error('WebSocket error'));
    }), wsUrl);
    assert.equal(echoed, 'hello through powgate ✓');
    assert.equal(app.seen.ws, wsBefore + 1);
  });

  e2e('git smart HTTP through powgate: clone and push with a token from `powgate solve`; no token, no request', async () => {
    const remote = `${powgate.url}/git/repo.git`;

    const gitBefore = app.seen.git;
    // git answers a 401 by asking for a password, so its message is about
    // that; the traced response headers show whose 401 it was.
    const refused = await git(dir, ['clone', '--quiet', remote, join(dir, 'refused')], {
      env: { GIT_TRACE_CURL: '1', GIT_TRACE_CURL_NO_DATA: '1' },
    });
    assert.notEqual(refused.code, 0, 'git clone without a token succeeded');
    assert.match(refused.stderr, /Recv header: HTTP\/1\.1 401/i, refused.stderr);
    assert.match(refused.stderr, /Recv header: x-powgate-status: missing/i, refused.stderr);
    assert.equal(app.seen.git, gitBefore, 'the git server saw a request without a token');

    const token = await solveAt(`${powgate.url}/.powgate/`);
    const auth = ['-c', `http.extraHeader=Authorization: Bearer ${token}`];
    const work = join(dir, 'work');
    await gitOk(dir, [...auth, 'clone', '--quiet', remote, work]);
    assert.equal(readFileSync(join(work, 'README'), 'utf8'), 'seed\n');

    // 5 MB of noise: git cannot compress it, and pushes it chunked.
    await writeFile(join(work, 'noise.bin'), randomBytes(GIT_PUSH_FILE_BYTES));
    await gitOk(dir, ['-C', work, 'add', 'noise.bin']);
    await gitOk(dir, ['-C', work, 'commit', '--quiet', '-m', 'five megabytes of noise']);
    await gitOk(dir, [...auth, '-C', work, 'push', '--quiet', 'origin', 'main']);

    const pushed = await gitOk(dir, ['-C', work, 'rev-parse', 'HEAD']);
    assert.equal(await gitOk(dir, ['-C', bare, 'rev-parse', 'main']), pushed);
    assert.equal(await gitOk(dir, ['-C', bare, 'cat-file', '-s', `${pushed}:noise.bin`]), String(GIT_PUSH_FILE_BYTES));
  });

  e2e('git clone passes without a token when an allowlist rule names the git/ User-Agent', async () => {
    const allowing = await startPowgate({
      POW_UPSTREAM: app.url,
      POW_DIFFICULTY_LEVEL: DIFFICULTY,
      POW_ALLOWLIST: '[{name="git",user_agent="^git/"}]',
    });
    try {
      await gitOk(dir, ['clone', '--quiet', `${allowing.url}/git/repo.git`, join(dir, 'allowlisted')]);
      assert.equal(readFileSync(join(dir, 'allowlisted', 'README'), 'utf8'), 'seed\n');
      // The rule, not a hole, let it through: another client still needs a token.
      const other = await fetch(`${allowing.url}/git/repo.git/info/refs?service=git-upload-pack`, {
        headers: { 'user-agent': 'curl/8.0' },
      });
      await other.arrayBuffer();
      assert.equal(other.status, 401);
    } catch (err) {
      err.message = `${err.message}\n--- allowlisting powgate (last lines) ---\n${allowing.logTail()}`;
      throw err;
    } finally {
      await allowing.stop();
    }
  });

  e2e('a 1 GiB upload streams through powgate intact while its RSS stays within 100 MiB of idle', async () => {
    const token = await solveAt(`${powgate.url}/.powgate/`);
    const pid = powgate.child.pid;
    const idle = rssBytes(pid);
    let peak = idle;
    const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(pid)); }, RSS_SAMPLE_MS);
    const started = Date.now();
    let res;
    try {
      res = await streamUpload(`${powgate.url}/upload`, UPLOAD_BYTES, { authorization: `Bearer ${token}` });
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssBytes(pid));
    const secs = (Date.now() - started) / 1000;
    const mib = (n) => (n / 1024 / 1024).toFixed(1);
    console.log(
      `1 GiB upload through powgate: RSS idle ${mib(idle)} MiB, peak ${mib(peak)} MiB ` +
        `(+${mib(peak - idle)} MiB), ${secs.toFixed(1)} s, ${mib(UPLOAD_BYTES / secs)} MiB/s`,
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(JSON.parse(res.body).bytes, UPLOAD_BYTES);
    assert.ok(peak - idle < UPLOAD_RSS_GROWTH_LIMIT_BYTES, `RSS grew by ${mib(peak - idle)} MiB`);
  }, UPLOAD_TIMEOUT_MS);
});
