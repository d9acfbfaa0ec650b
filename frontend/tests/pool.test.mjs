// Unit tests for frontend/pool.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { solveTicket, WorkerPool } from '../pool.js';

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
    now = 2000;
    send(0, { type: 'progress', hashes: 10 });
    send(1, { type: 'progress', hashes: 10 });
    assert.deepEqual(progress.at(-1), { hashes: 20, rate: 10, workers: 2 });

    pool.pause();
    now = 60000; // a long pause
    pool.resume();
    now = 61000;
    send(0, { type: 'progress', hashes: 15 });
    send(1, { type: 'progress', hashes: 15 });
    assert.equal(progress.at(-1).hashes, 30);
    assert.equal(progress.at(-1).rate, 10, 'the pause does not dilute the rate');
    assert.equal(pool.activeMs, 3000);

    // Running totals never go backwards, even if messages arrive out of order.
    send(0, { type: 'progress', hashes: 3 });
    assert.equal(pool.hashes, 30);
    pool.stop();
    assert.equal(pool.activeMs, 3000);
  });

  it('ignores the warm-up: time before the first report does not lower the rate', () => {
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
    // 20 s to download the solver and allocate its memory, as on a slow
    // phone, then 2 hashes/s per worker.
    now = 20_000;
    send(0, { type: 'progress', hashes: 2 });
    send(1, { type: 'progress', hashes: 2 });
    assert.equal(progress.at(-1).rate, 0, 'unknown from a single moment: the page says "estimating"');
    now = 23_000;
    send(0, { type: 'progress', hashes: 8 });
    send(1, { type: 'progress', hashes: 8 });
    assert.equal(progress.at(-1).rate, 4);
    pool.stop();
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
