// Unit tests for frontend/challenge.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isChallenge, isReusable, REUSE_MARGIN_S, secondsLeft } from '../challenge.js';

const CHALLENGE = {
  challenge: 'payload.tag',
  purpose: 'new',
  salt: '0123456789abcdef0123456789abcdef',
  argon2: { t_cost: 1, m_cost: 65536, parallelism: 1, hash_length: 32 },
  difficulty: 900,
  target: 'ff'.repeat(32),
  issued_at: 1000,
  expires_at: 1600,
  ticket_bits: 10,
};

describe('isChallenge', () => {
  it('accepts what the server hands out', () => {
    assert.equal(isChallenge(CHALLENGE), true);
    assert.equal(isChallenge({ ...CHALLENGE, purpose: 'refresh', ticket_bits: 0 }), true);
  });

  it('drops one stored before the admission ticket existed, and anything malformed', () => {
    const { ticket_bits: _, ...old } = CHALLENGE;
    for (const bad of [
      old, null, 'x', {},
      { ...CHALLENGE, purpose: 'other' },
      { ...CHALLENGE, salt: 'xyz' },
      { ...CHALLENGE, argon2: { ...CHALLENGE.argon2, m_cost: 0 } },
      { ...CHALLENGE, difficulty: 1.5 },
      { ...CHALLENGE, ticket_bits: 33 },
    ]) {
      assert.equal(isChallenge(bad), false, JSON.stringify(bad));
    }
  });
});

describe('secondsLeft', () => {
  it("counts from this browser's receipt, so a wrong clock does not matter", () => {
    // Received at local 50 000 (the local clock is far off the server's).
    const c = { ...CHALLENGE, received_at: 50000 };
    assert.equal(secondsLeft(c, 50100), 500);
    assert.equal(secondsLeft(CHALLENGE, 1100), 500);
  });
});

describe('isReusable', () => {
  it('keeps a stored challenge only with more than the margin left', () => {
    const c = { ...CHALLENGE, received_at: 0 };
    assert.equal(isReusable(c, 600 - REUSE_MARGIN_S - 1), true);
    assert.equal(isReusable(c, 600 - REUSE_MARGIN_S), false);
    assert.equal(isReusable(null, 0), false);
  });
});
