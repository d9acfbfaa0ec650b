// Unit tests for shared/format.js: `node --test shared/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  formatCompact,
  formatDuration,
  formatEstimate,
  formatHashRate,
  formatInt,
  formatMinutes,
  formatMs,
  formatWait,
} from '../format.js';

describe('formatting', () => {
  it('formats integers with separators', () => {
    assert.equal(formatInt(1000000000), '1,000,000,000');
    assert.equal(formatInt(0), '0');
    assert.equal(formatInt(undefined), '–');
  });

  it('shortens axis numbers', () => {
    assert.equal(formatCompact(0), '0');
    assert.equal(formatCompact(950), '950');
    assert.equal(formatCompact(1200), '1.2k');
    assert.equal(formatCompact(20000), '20k');
    assert.equal(formatCompact(3000000), '3M');
  });

  it('formats hash rates', () => {
    assert.equal(formatHashRate(12), '12.0 hashes/s');
    assert.equal(formatHashRate(0.75), '0.75 hashes/s');
    assert.equal(formatHashRate(250), '250 hashes/s');
    assert.equal(formatHashRate(1400), '1,400 hashes/s');
    assert.equal(formatHashRate(0), '–');
  });

  it('formats durations in a unit that fits', () => {
    assert.equal(formatDuration(0), '0 s');
    assert.equal(formatDuration(0.01), 'under 0.1 s');
    assert.equal(formatDuration(0.4), '0.4 s');
    assert.equal(formatDuration(8.54), '8.5 s');
    assert.equal(formatDuration(42.4), '42 s');
    assert.equal(formatDuration(210), '3.5 min');
    assert.equal(formatDuration(1500), '25 min');
    assert.equal(formatDuration(2.4 * 3600), '2.4 h');
    assert.equal(formatDuration(3.1 * 86400), '3.1 days');
    assert.equal(formatDuration(null), '–');
    assert.equal(formatDuration(-1), '–');
  });

  it('formats waits in whole seconds', () => {
    assert.equal(formatWait(5), '5 s');
    assert.equal(formatWait(60), '60 s');
    assert.equal(formatWait(300), '5.0 min');
    assert.equal(formatWait(undefined), '–');
  });

  it('formats milliseconds and minutes', () => {
    assert.equal(formatMs(350), '350 ms');
    assert.equal(formatMs(4200), '4.2 s');
    assert.equal(formatMinutes(30), '30 min');
    assert.equal(formatMinutes(120), '2 h');
    assert.equal(formatMinutes(90), '1 h 30 min');
  });

  it('gives the visitor a round estimate', () => {
    assert.equal(formatEstimate(null), 'estimating…');
    assert.equal(formatEstimate(0.4), 'under a second');
    assert.equal(formatEstimate(42.4), 'about 42 s');
    assert.equal(formatEstimate(210), 'about 4 min');
    assert.equal(formatEstimate(3 * 3600), 'about 3 h');
  });
});
