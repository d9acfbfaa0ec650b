// Unit tests for frontend/progress.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  etaSeconds, formatElapsed, successProbability, timeEstimateText,
} from '../progress.js';
import { en, catalog } from './catalogs.mjs';
import { translator } from '../i18n.js';

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

describe('timeEstimateText', () => {
  it('says "measuring" until the rate is known, not a guess from the warm-up', () => {
    assert.equal(timeEstimateText(en.t, 3, null), 'Measuring how fast this device is…');
  });

  it('gives a round upper bound of the usual time while within it, never a countdown', () => {
    // low (200) at 4 hashes/s: 50 s expected.
    assert.equal(timeEstimateText(en.t, 10, 50), 'Usually under a minute on this device.');
    assert.equal(timeEstimateText(en.t, 49, 50), 'Usually under a minute on this device.',
      'the same words the whole time: nothing counts down');
    assert.equal(timeEstimateText(en.t, 1, 4), 'Usually a few seconds on this device.');
    assert.equal(timeEstimateText(en.t, 1, 150), 'Usually under 3 minutes on this device.');
  });

  it('says this one is taking longer than usual once past the expected time, with the time so far', () => {
    // The 177 s solve at an expected 50 s.
    assert.equal(
      timeEstimateText(en.t, 177, 50),
      'This one is taking longer than usual (2 min 57 s so far). Each try has the same chance, so it can finish at any moment.',
    );
  });
});

describe('the usual time in whole minutes and hours', () => {
  it('rounds up, with the plural form the count takes', () => {
    assert.equal(timeEstimateText(en.t, 1, 9.9), 'Usually a few seconds on this device.');
    assert.equal(timeEstimateText(en.t, 1, 59), 'Usually under a minute on this device.');
    assert.equal(timeEstimateText(en.t, 1, 61), 'Usually under 2 minutes on this device.');
    assert.equal(timeEstimateText(en.t, 1, 89 * 60), 'Usually under 89 minutes on this device.');
    assert.equal(timeEstimateText(en.t, 1, 2 * 3600), 'Usually under 2 hours on this device.');
  });

  it('takes the Polish forms for 1.5 (a fraction), 2 and 22 hours', () => {
    const pl = translator('pl', catalog('pl'));
    const forms = catalog('pl').usuallyUnderHours;
    assert.equal(timeEstimateText(pl.t, 1, 2 * 3600), forms.few.replace('{count}', '2'));
    assert.equal(timeEstimateText(pl.t, 1, 22 * 3600), forms.few.replace('{count}', '22'));
    assert.notEqual(forms.few, forms.other);
    assert.equal(pl.t('usuallyUnderHours', { count: 1.5 }), forms.other.replace('{count}', '1,5'));
  });
});

describe('formatElapsed', () => {
  it('reads like a clock', () => {
    assert.equal(formatElapsed(en.t, 8.7), '8 s');
    assert.equal(formatElapsed(en.t, 65), '1 min 05 s');
    assert.equal(formatElapsed(en.t, 750), '12 min 30 s');
    assert.equal(formatElapsed(en.t, 3720), '1 h 02 min');
    assert.equal(formatElapsed(en.t, Number.NaN), '0 s');
    assert.equal(formatElapsed(translator('ja', catalog('ja')).t, 65), catalog('ja').elapsedMinutes
      .replace('{minutes}', '1').replace('{seconds}', '05'));
  });
});
