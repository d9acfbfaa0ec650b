// Unit tests for admin/adaptive.js: `node --test admin/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { explainDifficulty, pressureSummary } from '../adaptive.js';

const calm = { challenges_last_30s: 10, per_minute: 20, baseline_per_minute: 60, j: 0, j_max: 3, multiplier: 1 };

/** An answer of GET /api/admin/difficulty, as the server shapes it. */
function view(over = {}) {
  return {
    ip: '203.0.113.0/24',
    holders: [{ holder: '203.0.113.0/24', score: 40.5, k: 2 }],
    base: 900,
    pinned: false,
    network: {
      decided_by: { holder: '203.0.113.0/24', score: 40.5, k: 2 },
      threshold: 16,
      half_life_minutes: 30,
      k: 2,
      k_max: 4,
      multiplier: 4,
    },
    pressure: calm,
    multiplied: 3600,
    phone_cap: { difficulty: 2223, hash_rate: 3.7, source: 'reference', timeout_seconds: 1800 },
    difficulty: 2223,
    refresh_difficulty: 1111,
    ...over,
  };
}

describe('explainDifficulty', () => {
  it('answers why difficulty N for a network, step by step', () => {
    const { headline, lines } = explainDifficulty(view());
    assert.equal(headline, 'Difficulty 2,223 for 203.0.113.0/24');
    assert.equal(lines[0], 'Base difficulty 900.');
    assert.match(lines[1], /^Network ×4: 203\.0\.113\.0\/24 scores 40\.5, one doubling per 16 points \(k = 2, at most 4\); the score halves every 30 min\.$/);
    assert.match(lines[2], /^Pressure ×1: 20 challenges per minute/);
    assert.equal(lines[3], '900 × 4 × 1 = 3,600.');
    assert.match(lines[4], /^Capped to 2,223: a phone at 3\.70 hashes\/s \(reference\)/);
    assert.equal(lines.at(-1), 'A refresh from here costs 1,111 (half).');
  });

  it('says when the cap did not bind, and when the network is clean', () => {
    const clean = view({
      network: { decided_by: { holder: '198.51.100.7', score: 0, k: 0 }, threshold: 16, half_life_minutes: 30, k: 0, k_max: 4, multiplier: 1 },
      multiplied: 900,
      difficulty: 900,
      refresh_difficulty: 450,
    });
    const { lines } = explainDifficulty(clean);
    assert.equal(lines[1], 'Network ×1: no recent events from this address or network.');
    assert.match(lines[4], /^Phone cap not reached/);
  });

  it('says pinned instead of the multipliers', () => {
    const { lines } = explainDifficulty(view({ pinned: true, multiplied: 900, difficulty: 900, refresh_difficulty: 450 }));
    assert.equal(lines[1], 'Pinned: both multipliers are off, everyone gets the base.');
    assert.ok(!lines.some((l) => l.startsWith('Network')));
  });
});

describe('pressureSummary', () => {
  it('gives the rate, the baseline and the ceiling', () => {
    const surge = { ...calm, per_minute: 240, j: 2, multiplier: 4 };
    assert.equal(
      pressureSummary(surge, false),
      'Pressure ×4: 240 challenges per minute over the last 30 s, normal is 60 (×2 from twice normal, at most ×8).',
    );
    assert.match(pressureSummary(surge, true), /^Pressure off \(difficulty pinned\)/);
    assert.match(pressureSummary({ ...calm, j_max: 0 }, false), /^Pressure off \(ceiling ×1\)/);
  });
});
