// Unit tests for frontend/pool.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  chooseWorkerCount,
  describeCaps,
  DESKTOP_BUDGET_KIB,
  etaSeconds,
  LOW_MEMORY_BUDGET_KIB,
  memoryBudgetKiB,
  nextBatchSize,
  PHONE_BUDGET_KIB,
  safeRedirect,
  solveTelemetry,
  solveTicket,
  successProbability,
  WorkerPool,
} from '../pool.js';

// ---------------------------------------------------------------------------
// User agents
// ---------------------------------------------------------------------------

const UA = {
  chromeWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  chromeMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  edgeWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91',
  operaMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0',
  firefoxLinux: 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
  safariMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
  safariIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
  chromeIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1',
  firefoxIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15',
  edgeIpad: 'Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/120.0.2210.116 Mobile/15E148 Safari/605.1.15',
  chromeAndroid: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36',
  // Android's stock WebView: "Safari" and "AppleWebKit" but no "Chrome".
  webviewAndroid: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Mobile Safari/537.36',
};

const MIB = 1024; // KiB per MiB

// Issue 13: the server guessed the class again from the User-Agent, with a
// rule that files an Android browser without "Chrome" under Safari/iOS while
// the page sized it as a phone. The page now says which class it used.
describe('solveTelemetry', () => {
  const found = (env) => ({
    hashes: 140.4, elapsedMs: 9000.2, workers: 3, deviceClass: describeCaps(env).deviceClass,
  });

  it('carries the device class the workers were sized for', () => {
    const cases = [
      [{ userAgent: UA.webviewAndroid }, 'phone'],
      [{ userAgent: UA.chromeAndroid }, 'phone'],
      [{ userAgent: UA.chromeIphone }, 'safari_ios'],
      [{ userAgent: UA.safariMac, maxTouchPoints: 5, platform: 'MacIntel' }, 'safari_ios'],
      [{ userAgent: UA.safariMac }, 'safari_ios'],
      [{ userAgent: UA.chromeWindows }, 'desktop'],
    ];
    for (const [env, cls] of cases) {
      assert.deepEqual(
        solveTelemetry(found(env)),
        { hashes: 140, elapsed_ms: 9000, workers: 3, class: cls },
        env.userAgent,
      );
    }
  });
});

describe('chooseWorkerCount', () => {
  it('uses one worker per core on desktop Chrome', () => {
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 8, userAgent: UA.chromeWindows, memoryKiB: 64 * MIB }), 8);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 10, userAgent: UA.chromeMac, memoryKiB: 64 * MIB }), 10);
  });

  it('caps at 16 workers', () => {
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 32, userAgent: UA.chromeWindows, memoryKiB: 64 * MIB }), 16);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 128, userAgent: UA.firefoxLinux, memoryKiB: 8 }), 16);
  });

  it('assumes 2 cores when the browser does not say', () => {
    assert.equal(chooseWorkerCount({ userAgent: UA.firefoxLinux, memoryKiB: 8 }), 2);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 0, userAgent: UA.firefoxLinux }), 2);
  });

  it('does not take Chromium-based desktop browsers for Safari', () => {
    for (const ua of [UA.chromeMac, UA.edgeWindows, UA.operaMac, UA.firefoxLinux]) {
      const caps = describeCaps({ hardwareConcurrency: 12, userAgent: ua, memoryKiB: 8 });
      assert.equal(caps.webkit, false, ua);
      assert.equal(caps.workers, 12, ua);
    }
  });

  it('allows at most 4 on every iPhone and iPad browser', () => {
    for (const ua of [UA.safariIphone, UA.chromeIphone, UA.firefoxIphone, UA.edgeIpad]) {
      // Tiny memory cost, so only the WebKit cap can be the limit.
      const caps = describeCaps({ hardwareConcurrency: 6, userAgent: ua, maxTouchPoints: 5, memoryKiB: 8 });
      assert.equal(caps.workers, 4, ua);
      assert.equal(caps.webkit, true, ua);
      assert.equal(caps.mobile, true, ua);
      assert.equal(caps.limit, 'webkit', ua);
    }
  });

  it('allows at most 4 in desktop Safari', () => {
    const caps = describeCaps({ hardwareConcurrency: 10, userAgent: UA.safariMac, maxTouchPoints: 0, memoryKiB: 64 * MIB });
    assert.equal(caps.workers, 4);
    assert.equal(caps.webkit, true);
    assert.equal(caps.mobile, false);
  });

  it('recognises iPadOS in desktop mode by its touch screen', () => {
    const env = { hardwareConcurrency: 8, userAgent: UA.safariMac, maxTouchPoints: 5, platform: 'MacIntel' };
    const caps = describeCaps({ ...env, memoryKiB: 8 });
    assert.equal(caps.workers, 4);
    assert.equal(caps.mobile, true);
    // And it gets the phone memory budget: 256 MiB / 128 MiB = 2.
    assert.equal(chooseWorkerCount({ ...env, memoryKiB: 128 * MIB }), 2);
  });

  it('keeps phones within their memory budget', () => {
    const caps = describeCaps({ hardwareConcurrency: 8, userAgent: UA.chromeAndroid, memoryKiB: 64 * MIB });
    assert.equal(caps.budgetKiB, PHONE_BUDGET_KIB);
    assert.equal(caps.workers, 4); // 256 MiB / 64 MiB
    assert.equal(caps.limit, 'memory');
    assert.ok(caps.explanation.includes('64 MiB'), caps.explanation);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 8, userAgent: UA.chromeAndroid, memoryKiB: 128 * MIB }), 2);
  });

  it('keeps desktops within their memory budget', () => {
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 16, userAgent: UA.chromeWindows, memoryKiB: 256 * MIB }), 4);
  });

  it('shrinks the budget on devices with little memory', () => {
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 2 }), LOW_MEMORY_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 0.5 }), LOW_MEMORY_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 4 }), 512 * MIB);
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 8 }), DESKTOP_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: true, deviceMemory: 8 }), PHONE_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: false }), DESKTOP_BUDGET_KIB);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 8, userAgent: UA.chromeWindows, deviceMemory: 2, memoryKiB: 64 * MIB }), 2);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 16, userAgent: UA.chromeWindows, deviceMemory: 4, memoryKiB: 64 * MIB }), 8);
  });

  it('never goes below one worker', () => {
    const caps = describeCaps({ hardwareConcurrency: 8, userAgent: UA.chromeAndroid, deviceMemory: 1, memoryKiB: 1024 * MIB });
    assert.equal(caps.workers, 1);
    assert.equal(caps.limit, 'memory');
    assert.match(caps.explanation, /^1 worker/);
    assert.equal(chooseWorkerCount({}), 2);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 1 }), 1);
  });
});

// ---------------------------------------------------------------------------
// Progress maths
// ---------------------------------------------------------------------------

describe('successProbability', () => {
  it('is 0 before any hash and 1 at difficulty 1', () => {
    assert.equal(successProbability(0, 900), 0);
    assert.equal(successProbability(1, 1), 1);
  });

  it('is 1 - 1/e after D hashes for large D', () => {
    assert.ok(Math.abs(successProbability(1e6, 1e6) - (1 - Math.exp(-1))) < 1e-6);
  });

  it('matches the exact formula for small numbers', () => {
    assert.ok(Math.abs(successProbability(3, 4) - (1 - (3 / 4) ** 3)) < 1e-12);
  });

  it('stays accurate where 1 - (1 - 1/D)^n would cancel', () => {
    const p = successProbability(1, 1e9);
    assert.ok(Math.abs(p - 1e-9) / 1e-9 < 1e-9, String(p));
  });

  it('grows with the hashes and stays below 1', () => {
    let last = 0;
    for (const n of [1, 10, 100, 1000, 10000]) {
      const p = successProbability(n, 900);
      assert.ok(p > last && p < 1);
      last = p;
    }
  });
});

describe('etaSeconds', () => {
  it('is unknown while the rate is zero', () => {
    assert.equal(etaSeconds(0, 0, 900), null);
  });

  it('is D / rate however many hashes already failed', () => {
    assert.equal(etaSeconds(0, 10, 900), 90);
    assert.equal(etaSeconds(5000, 10, 900), 90);
  });
});

describe('nextBatchSize', () => {
  it('keeps one hash when a hash is slow', () => {
    assert.equal(nextBatchSize(1, 400), 1);
  });

  it('grows at most fourfold when steps are short', () => {
    assert.equal(nextBatchSize(1, 10), 4);
    assert.equal(nextBatchSize(1, 0), 4);
    assert.equal(nextBatchSize(8, 75), 16);
  });

  it('keeps a batch that lands in the window', () => {
    assert.equal(nextBatchSize(4, 150), 4);
  });

  it('shrinks a batch that ran long', () => {
    assert.equal(nextBatchSize(100, 500), 30);
  });
});

// ---------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------

describe('safeRedirect', () => {
  const ctx = {
    currentOrigin: 'https://site.example',
    currentHost: 'site.example',
    allowedHosts: ['app.example', '.corp.example', 'UPPER.example'],
  };

  it('allows paths on this site', () => {
    assert.equal(safeRedirect('/', ctx), 'https://site.example/');
    assert.equal(safeRedirect('/wiki/page?q=1#top', ctx), 'https://site.example/wiki/page?q=1#top');
    assert.equal(safeRedirect('/%2F%2Fevil.example', ctx), 'https://site.example/%2F%2Fevil.example');
  });

  it('allows this host and the configured hosts', () => {
    assert.equal(safeRedirect('https://site.example/x', ctx), 'https://site.example/x');
    assert.equal(safeRedirect('https://app.example/', ctx), 'https://app.example/');
    assert.equal(safeRedirect('HTTPS://APP.EXAMPLE/x', ctx), 'https://app.example/x');
    assert.equal(safeRedirect('http://app.example:8080/x', ctx), 'http://app.example:8080/x');
    assert.equal(safeRedirect('https://corp.example/', ctx), 'https://corp.example/');
    assert.equal(safeRedirect('https://a.b.corp.example/z', ctx), 'https://a.b.corp.example/z');
    assert.equal(safeRedirect('https://upper.example/', ctx), 'https://upper.example/');
    assert.equal(safeRedirect('http://site.example:8080/', ctx), 'http://site.example:8080/');
    assert.equal(safeRedirect('https://app.example./', ctx), 'https://app.example./');
  });

  it('refuses other schemes', () => {
    for (const r of [
      'javascript:alert(1)',
      'JaVaScRiPt:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:msgbox(1)',
      'ftp://app.example/',
      'https:evil.example',
      'https:/evil.example',
    ]) {
      assert.equal(safeRedirect(r, ctx), null, r);
    }
  });

  it('refuses protocol-relative and backslash tricks', () => {
    for (const r of [
      '//evil.example/',
      '///evil.example/',
      '/\\evil.example',
      '\\\\evil.example',
      '\\/evil.example',
      'https://evil.example\\.app.example/',
      'https://app.example\\@evil.example/',
    ]) {
      assert.equal(safeRedirect(r, ctx), null, r);
    }
  });

  it('refuses whitespace and control characters that browsers strip', () => {
    for (const r of ['java\tscript:alert(1)', '/\t/evil.example', ' /x', '/x\n', '/\u0000/evil.example']) {
      assert.equal(safeRedirect(r, ctx), null, JSON.stringify(r));
    }
  });

  it('refuses userinfo', () => {
    assert.equal(safeRedirect('https://site.example@evil.example/', ctx), null);
    assert.equal(safeRedirect('https://user:pw@app.example/', ctx), null);
    assert.equal(safeRedirect('https://app.example:@evil.example/', ctx), null);
  });

  it('refuses hosts that only look allowed', () => {
    for (const r of [
      'https://evil.example/',
      'https://app.example.evil.example/',
      'https://notapp.example/',
      'https://evilcorp.example/',
      'https://corp.example.evil.example/',
      'https://\u0430pp.example/', // Cyrillic "а"
      'https://app.example%2eevil.example/', // the parser decodes this to app.example.evil.example
    ]) {
      assert.equal(safeRedirect(r, ctx), null, r);
    }
  });

  it('refuses relative paths without a leading slash and empty input', () => {
    for (const r of ['page', '?x=1', '#top', '', null, undefined, 42]) {
      assert.equal(safeRedirect(r, ctx), null, String(r));
    }
  });

  it('works without a redirect_domains list', () => {
    const bare = { currentOrigin: 'http://localhost:8080', currentHost: 'localhost:8080' };
    assert.equal(safeRedirect('http://localhost:8080/a', bare), 'http://localhost:8080/a');
    assert.equal(safeRedirect('http://127.0.0.1:8080/a', bare), null);
    const v6 = { currentOrigin: 'http://[::1]:8080', currentHost: '[::1]:8080' };
    assert.equal(safeRedirect('http://[::1]/a', v6), 'http://[::1]/a');
    assert.equal(safeRedirect('http://[::2]:8080/a', v6), null);
    assert.equal(safeRedirect('/a', bare), 'http://localhost:8080/a');
  });
});

// ---------------------------------------------------------------------------
// WorkerPool with fake workers
// ---------------------------------------------------------------------------

/**
 * Shaped like a module Worker running worker.js: postMessage in, onmessage
 * and onerror out, terminate(). Hashes nonces start, start+stride, … one per
 * step and wins on the first nonce `wins(nonce)` accepts.
 */
class FakeWorker {
  constructor({ behaviour = 'ok', wins = () => false, tried = [] } = {}) {
    this.behaviour = behaviour;
    this.wins = wins;
    this.tried = tried; // shared by all fakes of a test, to check overlap
    this.received = [];
    this.onmessage = null;
    this.onerror = null;
    this.terminated = false;
    this.paused = false;
    this.running = false;
    this.stepScheduled = false;
    this.hashes = 0;
  }

  postMessage(msg) {
    if (this.terminated) return;
    this.received.push(msg);
    setImmediate(() => this.handle(msg));
  }

  terminate() {
    this.terminated = true;
  }

  emit(data) {
    if (!this.terminated && this.onmessage) this.onmessage({ data });
  }

  handle(msg) {
    if (this.terminated) return;
    switch (msg.cmd) {
      case 'start':
        if (this.behaviour === 'alloc-fail') {
          this.emit({ type: 'alloc-failed', message: 'RangeError: could not allocate memory' });
          return;
        }
        if (this.behaviour === 'load-error') {
          this.onerror?.({ type: 'error', message: '', preventDefault() {} });
          return;
        }
        if (this.behaviour === 'error') {
          this.emit({ type: 'error', message: 'unreachable executed' });
          return;
        }
        this.next = msg.start;
        this.stride = msg.stride;
        this.running = true;
        this.emit({ type: 'ready' });
        this.schedule();
        break;
      case 'pause':
        this.paused = true;
        break;
      case 'resume':
        this.paused = false;
        this.schedule();
        break;
      default:
        break;
    }
  }

  schedule() {
    if (this.stepScheduled || !this.running) return;
    this.stepScheduled = true;
    setImmediate(() => {
      this.stepScheduled = false;
      this.step();
    });
  }

  step() {
    if (this.terminated || this.paused || !this.running) return;
    const nonce = this.next;
    this.next += this.stride;
    this.hashes += 1;
    this.tried.push(nonce);
    if (this.wins(nonce)) {
      this.running = false;
      this.emit({ type: 'found', nonce, hashes: this.hashes });
      return;
    }
    this.emit({ type: 'progress', hashes: this.hashes });
    this.schedule();
  }
}

/** Runs a pool of fakes until it finds or fails; collects every callback. */
function runPool({ behaviours, wins = () => false, createThrows = [], until = 'end' }) {
  const tried = [];
  const fakes = [];
  const events = { progress: [], found: [], dropped: [], fatal: [] };
  let pool;
  const done = new Promise((resolve) => {
    pool = new WorkerPool({
      createWorker: (i) => {
        if (createThrows.includes(i)) throw new Error('Worker is not defined');
        const w = new FakeWorker({ behaviour: behaviours[i], wins, tried });
        fakes[i] = w;
        return w;
      },
      count: behaviours.length,
      job: { params: { t_cost: 1, m_cost: 8, parallelism: 1, hash_length: 32 }, salt: '00'.repeat(16), difficulty: 10 },
      onProgress: (p) => events.progress.push(p),
      onFound: (f) => {
        events.found.push(f);
        resolve();
      },
      onWorkerDropped: (d) => events.dropped.push(d),
      onFatal: (e) => {
        events.fatal.push(e);
        resolve();
      },
    });
    pool.start();
    if (until === 'started') resolve();
  });
  return { pool, fakes, tried, events, done };
}

function assertNoOverlap(tried) {
  assert.equal(new Set(tried).size, tried.length, `a nonce was hashed twice: ${tried}`);
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
async function ticks(n) {
  for (let i = 0; i < n; i++) await tick();
}

describe('WorkerPool', () => {
  it('gives worker i of N start=i, stride=N and the job', () => {
    const { pool, fakes } = runPool({ behaviours: ['ok', 'ok', 'ok'], until: 'started' });
    fakes.forEach((f, i) => {
      const [start] = f.received;
      assert.equal(start.cmd, 'start');
      assert.equal(start.start, i);
      assert.equal(start.stride, 3);
      assert.equal(start.salt, '00'.repeat(16));
      assert.equal(start.difficulty, 10);
      assert.deepEqual(start.params, { t_cost: 1, m_cost: 8, parallelism: 1, hash_length: 32 });
    });
    pool.stop();
  });

  it('finds a nonce, then terminates every worker', async () => {
    const { pool, fakes, tried, events, done } = runPool({
      behaviours: ['ok', 'ok', 'ok', 'ok'],
      wins: (n) => n >= 10,
    });
    await done;
    assert.equal(events.found.length, 1);
    const [found] = events.found;
    assert.ok(found.nonce >= 10 && found.nonce <= 13, String(found.nonce));
    assert.equal(found.workers, 4);
    assert.ok(found.hashes >= 4);
    assert.ok(fakes.every((f) => f.terminated));
    assert.equal(pool.phase, 'stopped');
    assert.equal(pool.workers, 0);
    assertNoOverlap(tried);
    assert.ok(events.progress.length > 0);
    assert.ok(events.progress.every((p) => p.workers === 4 && p.rate >= 0));

    // A late message from a worker is ignored once the pool has stopped.
    fakes[0].terminated = false;
    fakes[0].emit({ type: 'found', nonce: 99, hashes: 1 });
    assert.equal(events.found.length, 1);
  });

  it('carries on without a worker that cannot allocate, and still finds', async () => {
    const { pool, tried, events, done } = runPool({
      behaviours: ['ok', 'alloc-fail', 'ok', 'ok'],
      wins: (n) => n >= 20,
    });
    await done;
    assert.equal(events.fatal.length, 0);
    assert.equal(events.dropped.length, 1);
    assert.equal(events.dropped[0].remaining, 3);
    assert.equal(events.dropped[0].index, 1);
    assert.match(events.dropped[0].reason, /memory/);
    assert.equal(pool.dropped, 1);
    assert.equal(events.found.length, 1);
    // The dropped worker's residue class is left alone; the others keep theirs.
    assert.notEqual(events.found[0].nonce % 4, 1);
    assert.equal(events.found[0].workers, 3);
    assert.ok(tried.every((n) => n % 4 !== 1));
    assertNoOverlap(tried);
  });

  it('runs on with the last worker when all others fail', async () => {
    const { events, tried, done } = runPool({
      behaviours: ['alloc-fail', 'error', 'ok', 'load-error'],
      wins: (n) => n >= 20,
    });
    await done;
    assert.equal(events.fatal.length, 0);
    assert.equal(events.dropped.length, 3);
    assert.deepEqual(events.dropped.map((d) => d.remaining).sort(), [1, 2, 3]);
    assert.equal(events.found.length, 1);
    assert.equal(events.found[0].nonce, 22);
    assert.equal(events.found[0].workers, 1);
    assert.ok(tried.every((n) => n % 4 === 2));
  });

  it('counts a worker that cannot even be created as dropped', async () => {
    const { events, done } = runPool({
      behaviours: ['ok', 'ok'],
      createThrows: [0],
      wins: (n) => n >= 5,
    });
    await done;
    assert.equal(events.dropped.length, 1);
    assert.match(events.dropped[0].reason, /could not start a worker/);
    assert.equal(events.found[0].nonce % 2, 1);
  });

  it('reports a fatal error when every worker fails', async () => {
    const { pool, fakes, events, done } = runPool({
      behaviours: ['alloc-fail', 'alloc-fail', 'alloc-fail'],
    });
    await done;
    assert.equal(events.fatal.length, 1);
    assert.ok(events.fatal[0] instanceof Error);
    assert.match(events.fatal[0].message, /No worker could run/);
    assert.equal(events.found.length, 0);
    // Only the first two are reported as drops; the last one is the fatal.
    assert.equal(events.dropped.length, 2);
    assert.ok(fakes.every((f) => f.terminated));
    assert.equal(pool.phase, 'stopped');
  });

  it('reports a fatal error when no worker can be created', () => {
    const fatal = [];
    const pool = new WorkerPool({
      createWorker: () => {
        throw new Error('no workers here');
      },
      count: 2,
      job: { params: {}, salt: '', difficulty: 1 },
      onFatal: (e) => fatal.push(e),
    });
    pool.start();
    assert.equal(fatal.length, 1);
    assert.match(fatal[0].message, /no workers here/);
  });

  it('forwards pause and resume to every live worker', async () => {
    const { pool, fakes, done } = runPool({
      behaviours: ['ok', 'alloc-fail', 'ok'],
      wins: () => false,
      until: 'started',
    });
    await done;
    await ticks(20);
    assert.equal(pool.workers, 2);

    pool.pause();
    assert.equal(pool.paused, true);
    for (const i of [0, 2]) assert.deepEqual(fakes[i].received.at(-1), { cmd: 'pause' });
    // The dropped worker gets nothing more.
    assert.ok(!fakes[1].received.some((m) => m.cmd === 'pause'));

    await ticks(5); // let in-flight steps land
    const frozen = pool.hashes;
    await ticks(20);
    assert.equal(pool.hashes, frozen, 'no hashing while paused');

    pool.resume();
    assert.equal(pool.paused, false);
    for (const i of [0, 2]) assert.deepEqual(fakes[i].received.at(-1), { cmd: 'resume' });
    await ticks(20);
    assert.ok(pool.hashes > frozen, 'hashing again after resume');

    pool.stop();
    assert.ok(fakes.every((f) => f.terminated));
  });

  it('holds workers paused when paused before starting', () => {
    const fakes = [];
    const pool = new WorkerPool({
      createWorker: () => {
        const f = new FakeWorker();
        fakes.push(f);
        return f;
      },
      count: 2,
      job: { params: {}, salt: '', difficulty: 1 },
    });
    pool.pause();
    pool.start();
    for (const f of fakes) assert.deepEqual(f.received.map((m) => m.cmd), ['start', 'pause']);
    pool.stop();
  });

  it('measures the rate and active time without paused time', () => {
    let now = 0;
    const workers = [];
    const progress = [];
    const pool = new WorkerPool({
      createWorker: () => {
        const w = { postMessage() {}, terminate() {}, onmessage: null };
        workers.push(w);
        return w;
      },
      count: 2,
      job: { params: {}, salt: '', difficulty: 100 },
      now: () => now,
      onProgress: (p) => progress.push(p),
    });
    const send = (i, data) => workers[i].onmessage({ data });

    pool.start();
    now = 1000;
    send(0, { type: 'progress', hashes: 5 });
    send(1, { type: 'progress', hashes: 5 });
    assert.deepEqual(progress.at(-1), { hashes: 10, rate: 10, workers: 2 });

    pool.pause();
    now = 60000; // a long pause
    pool.resume();
    now = 61000;
    send(0, { type: 'progress', hashes: 10 });
    send(1, { type: 'progress', hashes: 10 });
    assert.equal(progress.at(-1).hashes, 20);
    assert.equal(progress.at(-1).rate, 10, 'the pause does not dilute the rate');
    assert.equal(pool.activeMs, 2000);

    // Running totals never go backwards, even if messages arrive out of order.
    send(0, { type: 'progress', hashes: 3 });
    assert.equal(pool.hashes, 20);
    pool.stop();
    assert.equal(pool.activeMs, 2000);
  });
});

// ---------------------------------------------------------------------------
// solveTicket (issue 14: the admission ticket, computed in a worker)
// ---------------------------------------------------------------------------

/** A worker that answers a ticket command with `reply` (or throws on load). */
function ticketWorker(reply) {
  const w = {
    received: [],
    terminated: false,
    onmessage: null,
    onerror: null,
    postMessage(msg) {
      this.received.push(msg);
      setImmediate(() => {
        if (reply === 'load-error') this.onerror?.({ type: 'error', preventDefault() {} });
        else this.onmessage?.({ data: reply });
      });
    },
    terminate() {
      this.terminated = true;
    },
  };
  return w;
}

describe('solveTicket', () => {
  const job = { salt: 'ab'.repeat(16), bits: 9, solver: 'scalar' };

  it('asks no worker when the server wants no ticket', async () => {
    let created = 0;
    const t = await solveTicket({ ...job, bits: 0, createWorker: () => { created += 1; } });
    assert.equal(t, null);
    assert.equal(created, 0);
  });

  it('sends the salt, bits and solver build to a worker and resolves with its ticket', async () => {
    const w = ticketWorker({ type: 'ticket', ticket: 4321 });
    assert.equal(await solveTicket({ ...job, createWorker: () => w }), 4321);
    assert.deepEqual(w.received, [{ cmd: 'ticket', salt: job.salt, bits: 9, solver: 'scalar' }]);
    assert.ok(w.terminated, 'the worker is let go');
  });

  it('rejects on a worker error, a load failure or an unusable answer', async () => {
    for (const reply of [
      { type: 'error', message: 'unreachable executed' },
      'load-error',
      { type: 'ticket', ticket: -1 },
      { type: 'ticket', ticket: 2 ** 60 },
    ]) {
      const w = ticketWorker(reply);
      await assert.rejects(solveTicket({ ...job, createWorker: () => w }), /ticket/, JSON.stringify(reply));
      assert.ok(w.terminated);
    }
    await assert.rejects(
      solveTicket({ ...job, createWorker: () => { throw new Error('no workers here'); } }),
      /no workers here/,
    );
  });
});
