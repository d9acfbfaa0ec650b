// Unit tests for frontend/batch.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { nextBatchSize } from '../batch.js';

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
