// Unit tests for frontend/tabs.js: `node --test frontend/tests/`.
//
// Node 20 has no Web Locks API (navigator.locks); `Locks` below is the part
// of its semantics oneTabAtATime relies on (a queue of exclusive holders,
// and `ifAvailable`). The e2e test "three tabs" runs the real one in
// Chromium.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { continueTarget, LOCK_NAME, oneTabAtATime, solvedWhileWaiting } from '../tabs.js';

class Locks {
  constructor() {
    /** @type {Map<string, Promise<void>>} */
    this.tails = new Map();
    /** Holders and waiters per name, counted at once, as the real one does. */
    this.queued = new Map();
  }

  async request(name, options, callback) {
    const cb = callback ?? options;
    const ifAvailable = callback ? options.ifAvailable : false;
    if (ifAvailable && (this.queued.get(name) ?? 0) > 0) return cb(null);
    this.queued.set(name, (this.queued.get(name) ?? 0) + 1);
    const before = this.tails.get(name) ?? Promise.resolve();
    let release;
    const mine = new Promise((resolve) => { release = resolve; });
    this.tails.set(name, before.then(() => mine));
    await before;
    try {
      return await cb({ name });
    } finally {
      this.queued.set(name, this.queued.get(name) - 1);
      release();
    }
  }
}

describe('oneTabAtATime', () => {
  it('lets three tabs opened at once work one after the other, never two at a time', async () => {
    const locks = new Locks();
    let running = 0;
    let most = 0;
    const order = [];
    const waited = [];
    const tab = (name) => oneTabAtATime(locks, async () => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => { setTimeout(resolve, 10); });
      order.push(name);
      running -= 1;
      return name;
    }, () => waited.push(name));
    assert.deepEqual(await Promise.all([tab('a'), tab('b'), tab('c')]), ['a', 'b', 'c']);
    assert.equal(most, 1);
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.deepEqual(waited, ['b', 'c'], 'the tabs that had to wait were told so, the first was not');
  });

  it('uses the one lock name every tab of the origin shares', async () => {
    const names = [];
    await oneTabAtATime({ request: (name, o, cb) => { names.push(name); return (cb ?? o)({}); } }, async () => 1, () => {});
    assert.deepEqual(names, [LOCK_NAME]);
  });

  it('just works where the browser has no Web Locks', async () => {
    let waited = false;
    assert.equal(await oneTabAtATime(undefined, async () => 'done', () => { waited = true; }), 'done');
    assert.equal(waited, false);
  });
});

describe('solvedWhileWaiting', () => {
  it('continues without solving when another tab got a pass after this one began to wait', () => {
    assert.equal(solvedWhileWaiting('2000', 1500), true);
    assert.equal(solvedWhileWaiting('1500', 1500), true);
  });

  it('solves when the note is older than the wait: that pass may be why the visitor is back', () => {
    assert.equal(solvedWhileWaiting('1000', 1500), false);
  });

  it('solves when this tab never waited, or there is no readable note', () => {
    assert.equal(solvedWhileWaiting('2000', null), false);
    assert.equal(solvedWhileWaiting(null, 1500), false);
    assert.equal(solvedWhileWaiting('soon', 1500), false);
  });
});

describe('continueTarget', () => {
  const page = 'https://shop.example/.powgate/?redir=%2Fcart';

  it('goes on to a path or URL on this very origin', () => {
    assert.equal(continueTarget('/cart?x=1', page), 'https://shop.example/cart?x=1');
    assert.equal(continueTarget('https://shop.example/a', page), 'https://shop.example/a');
  });

  it('stays for anything off this origin, which only the server may approve', () => {
    for (const redir of [
      'https://evil.example/', '//evil.example/x', 'http://shop.example/a',
      'javascript:alert(1)', '/\\evil.example', '/a\nb',
    ]) {
      assert.equal(continueTarget(redir, page), null, redir);
    }
  });

  it('stays when there is no redir', () => {
    assert.equal(continueTarget(null, page), null);
    assert.equal(continueTarget('', page), null);
  });
});
