// Runs the real worker.js in a Node worker thread against a fake solver
// module, to check its side of the message protocol. worker.js and pool.js
// are copied into a temporary directory next to the fake, so nothing under
// frontend/solver/ is needed or touched.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const frontend = fileURLToPath(new URL('..', import.meta.url));

// Nonce n wins when n >= difficulty; m_cost above 1e6 KiB "cannot be
// allocated"; every hash takes about 2 ms so steps have a measurable length.
const FAKE_SOLVER = `
export default async function init() {}
export function ticket(salt, bits) {
  if (bits > 32) throw new Error('ticket bits must be 0..=32');
  return bits * 1000 + salt.length;
}
export class Solver {
  constructor(t, m, p, l, salt, difficulty, start, stride) {
    if (m > 1e6) throw new Error('memory allocation of ' + m + ' KiB failed');
    if (!(stride > 0)) throw new Error('stride must be positive');
    this.d = difficulty; this.next = start; this.stride = stride; this.hashes = 0;
  }
  step(k) {
    for (let i = 0; i < k; i++) {
      const until = Date.now() + 2; while (Date.now() < until) {}
      const nonce = this.next; this.next += this.stride; this.hashes += 1;
      if (nonce >= this.d) return { found: true, nonce, hashes: this.hashes, free() {} };
    }
    return { found: false, nonce: 0, hashes: this.hashes, free() {} };
  }
  free() {}
}
`;

// Gives worker.js the bits of a browser worker scope it uses.
const HARNESS = `
import { parentPort } from 'node:worker_threads';
globalThis.self = globalThis;
self.postMessage = (m) => parentPort.postMessage(m);
self.close = () => { parentPort.postMessage({ type: '__closed' }); parentPort.close(); };
parentPort.on('message', (data) => self.onmessage({ data }));
await import('./worker.js');
parentPort.postMessage({ type: '__loaded' });
`;

let dir;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'powgate-worker-'));
  mkdirSync(join(dir, 'solver'));
  // worker.js and the modules it imports.
  for (const name of ['worker.js', 'batch.js', 'solver-choice.js']) {
    copyFileSync(join(frontend, name), join(dir, name));
  }
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(dir, 'harness.js'), HARNESS);
  writeFileSync(join(dir, 'solver', 'powgate_solver_wasm.js'), FAKE_SOLVER);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Starts worker.js; resolves once it listens. */
async function spawn() {
  const w = new Worker(join(dir, 'harness.js'));
  const messages = [];
  const waiters = [];
  w.on('message', (m) => {
    messages.push(m);
    for (const wt of waiters.splice(0)) wt();
  });
  const waitFor = async (pred, ms = 5000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = messages.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(messages)}`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  };
  await waitFor((m) => m.type === '__loaded');
  return { w, messages, waitFor };
}

const PARAMS = { t_cost: 1, m_cost: 8, parallelism: 1, hash_length: 32 };
const start = (extra) => ({ cmd: 'start', params: PARAMS, salt: '00'.repeat(16), start: 0, stride: 1, ...extra });

describe('worker.js', () => {
  it('reports ready, progress and the found nonce of its stride, then closes', async () => {
    const { w, messages, waitFor } = await spawn();
    w.postMessage(start({ difficulty: 40, start: 2, stride: 3 }));
    const found = await waitFor((m) => m.type === 'found');
    await waitFor((m) => m.type === '__closed');
    assert.equal(messages.filter((m) => m.type === 'ready').length, 1);
    assert.equal(found.nonce, 41); // 2, 5, …, 38, 41
    assert.equal(found.hashes, 14);
    const progress = messages.filter((m) => m.type === 'progress').map((m) => m.hashes);
    assert.ok(progress.length > 0);
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'running totals only grow');
    await w.terminate();
  });

  it('grows its batch when hashes are quick', async () => {
    const { w, messages, waitFor } = await spawn();
    w.postMessage(start({ difficulty: 400 }));
    await waitFor((m) => m.type === 'found', 10000);
    const progress = messages.filter((m) => m.type === 'progress').map((m) => m.hashes);
    const steps = progress.map((h, i) => h - (progress[i - 1] ?? 0));
    assert.equal(steps[0], 1, 'starts with one hash');
    assert.ok(Math.max(...steps) > 1, `steps: ${steps}`);
    await w.terminate();
  });

  it('says alloc-failed when the Solver cannot be built', async () => {
    const { w, waitFor } = await spawn();
    w.postMessage(start({ difficulty: 10, params: { ...PARAMS, m_cost: 2e6 } }));
    const failed = await waitFor((m) => m.type === 'alloc-failed');
    assert.match(failed.message, /allocation/);
    await waitFor((m) => m.type === '__closed');
    await w.terminate();
  });

  // Issue 14: the admission ticket is a second job for a worker, so the
  // page's main thread never runs the SHA-256 search.
  it('computes the ticket on a ticket command, then closes', async () => {
    const { w, messages, waitFor } = await spawn();
    w.postMessage({ cmd: 'ticket', salt: '00'.repeat(16), bits: 9 });
    const done = await waitFor((m) => m.type === 'ticket');
    assert.equal(done.ticket, 9032);
    await waitFor((m) => m.type === '__closed');
    assert.equal(messages.filter((m) => m.type === 'progress').length, 0, 'no search ran');
    await w.terminate();
  });

  it('reports a ticket the solver refuses as an error', async () => {
    const { w, waitFor } = await spawn();
    w.postMessage({ cmd: 'ticket', salt: '00'.repeat(16), bits: 40 });
    const failed = await waitFor((m) => m.type === 'error');
    assert.match(failed.message, /0\.\.=32/);
    await waitFor((m) => m.type === '__closed');
    await w.terminate();
  });

  it('stops hashing while paused and carries on after resume', async () => {
    const { w, messages, waitFor } = await spawn();
    w.postMessage(start({ difficulty: 1e12 }));
    await waitFor((m) => m.type === 'progress');
    w.postMessage({ cmd: 'pause' });
    await new Promise((resolve) => setTimeout(resolve, 400)); // let the current step finish
    const frozen = messages.length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(messages.length, frozen, 'no progress while paused');
    w.postMessage({ cmd: 'resume' });
    await waitFor((_, i) => i >= frozen);
    assert.equal(messages.at(-1).type, 'progress');
    await w.terminate();
  });
});
