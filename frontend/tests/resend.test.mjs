// Unit tests for frontend/resend.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  FIRST_RETRY_MS, isPendingAnswer, MAX_RETRY_MS, retryDelayMs, solveOutcome,
} from '../resend.js';

const CHALLENGE = {
  challenge: 'payload.tag',
  purpose: 'new',
  salt: '0123456789abcdef0123456789abcdef',
  argon2: { t_cost: 1, m_cost: 65536, parallelism: 1, hash_length: 32 },
  difficulty: 900,
  issued_at: 1000,
  expires_at: 1600,
  ticket_bits: 10,
  received_at: 1000,
};
const FOUND = { nonce: 4711, hashes: 1200, elapsedMs: 30_000, workers: 2, deviceClass: 'desktop' };

describe('retryDelayMs', () => {
  it('doubles from one second after each failed send', () => {
    assert.deepEqual([1, 2, 3, 4].map(retryDelayMs), [1000, 2000, 4000, 8000]);
    assert.equal(retryDelayMs(1), FIRST_RETRY_MS);
  });

  it('never waits longer than MAX_RETRY_MS, however long the network stays down', () => {
    assert.equal(retryDelayMs(6), MAX_RETRY_MS);
    assert.equal(retryDelayMs(1000), MAX_RETRY_MS);
  });

  it('reads a nonsense attempt count as the first', () => {
    assert.equal(retryDelayMs(0), FIRST_RETRY_MS);
    assert.equal(retryDelayMs(-3), FIRST_RETRY_MS);
  });
});

describe('solveOutcome', () => {
  it('is a token only for a 200 carrying one', () => {
    assert.deepEqual(solveOutcome(200, { token: 'pow_x', expires_at: 1 }), { kind: 'token' });
    assert.deepEqual(solveOutcome(200, { nothing: true }), { kind: 'refused' });
  });

  it('starts a new challenge when the address changed (wrong_ip), instead of stopping', () => {
    assert.deepEqual(
      solveOutcome(403, { error: 'wrong_ip', message: 'this challenge was issued to another address' }),
      { kind: 'renew', reason: 'address' },
    );
  });

  it('starts a new challenge when the old one expired or was spent', () => {
    assert.deepEqual(solveOutcome(410, { error: 'expired', message: '…' }), { kind: 'renew', reason: 'expired' });
    assert.deepEqual(solveOutcome(409, { error: 'already_spent', message: '…' }), { kind: 'renew', reason: 'spent' });
    assert.deepEqual(solveOutcome(410, null), { kind: 'renew', reason: 'expired' }, 'by status when no JSON');
  });

  it('keeps the answer to send again when the server or a proxy in front is busy or down', () => {
    for (const [status, data] of [
      [503, { error: 'store_unavailable', message: '…' }], [429, { error: 'rate_limited' }],
      [502, null], [504, null], [503, null],
    ]) {
      assert.deepEqual(solveOutcome(status, data), { kind: 'busy' }, `${status} ${JSON.stringify(data)}`);
    }
    assert.deepEqual(solveOutcome(503, { error: 'queued', ahead: 2 }), { kind: 'queued', ahead: 2 });
  });

  it('refuses for good a wrong answer or a bad request, which sending again cannot fix', () => {
    assert.deepEqual(solveOutcome(403, { error: 'wrong_answer' }), { kind: 'refused' });
    assert.deepEqual(solveOutcome(400, { error: 'bad_ticket' }), { kind: 'refused' });
    assert.deepEqual(solveOutcome(500, { error: 'internal' }), { kind: 'refused' });
  });
});

describe('isPendingAnswer', () => {
  const pending = { challenge: CHALLENGE, found: FOUND, ticket: 17 };

  it('keeps a found answer while its challenge lives, with or without a ticket', () => {
    assert.equal(isPendingAnswer(pending, 1100), true);
    assert.equal(isPendingAnswer({ ...pending, ticket: null }, 1599), true);
  });

  it('drops it once its challenge has expired: only a new challenge helps then', () => {
    assert.equal(isPendingAnswer(pending, 1600), false);
  });

  it('drops anything malformed rather than sending it', () => {
    for (const bad of [
      null, 'x', {}, { ...pending, challenge: {} },
      { ...pending, found: { ...FOUND, nonce: -1 } },
      { ...pending, found: { ...FOUND, nonce: 1.5 } },
      { ...pending, found: null },
      { ...pending, ticket: 'x' },
      { challenge: CHALLENGE, found: FOUND },
    ]) {
      assert.equal(isPendingAnswer(bad, 1100), false, JSON.stringify(bad));
    }
  });
});
