// Unit tests for frontend/progress.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { etaSeconds, successProbability } from '../progress.js';

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
