// Unit tests for admin/logic.js: `node --test admin/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  apiErrorMessage,
  argon2Summary,
  axisTicks,
  changedSettings,
  confirmationNeeded,
  formatBound,
  formatDateTime,
  formatShortDateTime,
  histogramChart,
  histogramLabels,
  labelStride,
  LN_20,
  niceStep,
  paging,
  parseWholeNumber,
  presetFor,
  presetPreviews,
  previewDeviceClasses,
  relativeTime,
  settingFormFields,
  settingLabel,
  solveTimeEstimate,
  summarizeSolveTimes,
  summarizeTimeline,
  timelineChart,
} from '../logic.js';

const close = (actual, expected, eps = 1e-9) => assert.ok(
  Math.abs(actual - expected) <= eps * Math.max(1, Math.abs(expected)),
  `${actual} is not close to ${expected}`,
);

// ---------------------------------------------------------------------------
// Solve-time estimates
// ---------------------------------------------------------------------------

describe('solveTimeEstimate', () => {
  it('gives D/rate as the mean and D·ln(20)/rate as the 95th percentile', () => {
    const est = solveTimeEstimate(900, 12);
    close(est.mean, 75);
    close(est.p95, (900 * Math.log(20)) / 12);
  });

  it('puts the 95th percentile at about three times the mean', () => {
    const est = solveTimeEstimate(4000, 4);
    close(est.p95 / est.mean, LN_20);
    assert.ok(est.p95 / est.mean > 2.99 && est.p95 / est.mean < 3.0);
  });

  it('scales linearly with difficulty and inversely with rate', () => {
    const a = solveTimeEstimate(1000, 10);
    const b = solveTimeEstimate(2000, 10);
    const c = solveTimeEstimate(1000, 20);
    close(b.mean, 2 * a.mean);
    close(c.mean, a.mean / 2);
  });

  it('refuses unusable inputs instead of returning Infinity or NaN', () => {
    for (const [d, r] of [[900, 0], [900, -1], [900, NaN], [0, 12], [-5, 12], [NaN, 12], [900, undefined], [900, Infinity]]) {
      assert.equal(solveTimeEstimate(d, r), null, `D=${d} rate=${r}`);
    }
  });
});

// Issue 19: `extreme` applied in one click, although at the defaults a
// phone needs about 18 min on average and 54 min for 95 in 100 visitors,
// past the 30-minute challenge timeout.
describe('preset previews and confirmation', () => {
  // The reference rates at the default argon2 parameters.
  const defaults = [
    { class: 'desktop', label: 'Desktop', hash_rate: 12, source: 'reference', samples: 0, mean_seconds: 75, p95_seconds: 225, exceeds_timeout: false },
    { class: 'phone', label: 'Phone', hash_rate: 3.7, source: 'reference', samples: 0, mean_seconds: 243, p95_seconds: 729, exceeds_timeout: false },
    { class: 'safari_ios', label: 'Safari / iOS', hash_rate: 4.3, source: 'reference', samples: 0, mean_seconds: 209, p95_seconds: 628, exceeds_timeout: false },
  ];
  const presets = { low: 200, medium: 900, high: 1900, extreme: 4000 };

  it('previews every preset for every device class, before anything is applied', () => {
    const rows = presetPreviews({ extreme: 4000, high: 1900, low: 200, medium: 900 }, defaults, 1800);
    assert.deepEqual(rows.map((r) => [r.name, r.difficulty]), Object.entries(presets), 'cheapest first');
    const extreme = rows[3].classes.find((c) => c.class === 'phone');
    assert.equal(Math.round(extreme.mean_seconds / 60), 18);
    assert.equal(Math.round(extreme.p95_seconds / 60), 54);
    assert.equal(extreme.exceeds_timeout, true);
    assert.deepEqual(rows[1].classes.map((c) => c.exceeds_timeout), [false, false, false]);
    assert.deepEqual(presetPreviews(undefined, defaults, 1800), []);
  });

  it('asks before extreme at the defaults: the phone p95 is past the 30-minute timeout', () => {
    const risk = confirmationNeeded(presets.extreme, defaults, 1800);
    assert.ok(risk);
    close(risk.p95_seconds, (4000 * LN_20) / 3.7);
    close(risk.mean_seconds, 4000 / 3.7);
    assert.equal(risk.timeout_seconds, 1800);
  });

  it('does not ask when phones fit the timeout', () => {
    assert.equal(confirmationNeeded(presets.medium, defaults, 1800), null);
    assert.equal(confirmationNeeded(presets.extreme, defaults, 4 * 3600), null, 'a longer timeout fits');
    assert.equal(confirmationNeeded(1000, [{ ...defaults[1], hash_rate: 10 }], 1000 * LN_20 / 10), null, 'exactly at the timeout fits');
  });

  it('goes by phones only, and asks nothing when it knows no phone rate', () => {
    const slowDesktop = [{ ...defaults[0], hash_rate: 0.1 }, defaults[1]];
    assert.equal(confirmationNeeded(900, slowDesktop, 1800), null);
    assert.equal(confirmationNeeded(4000, [defaults[0]], 1800), null);
    assert.equal(confirmationNeeded(4000, [{ ...defaults[1], hash_rate: 0 }], 1800), null);
  });
});

describe('argon2Summary', () => {
  it('says "1 pass" and "1 lane", not "1 passes"', () => {
    assert.equal(
      argon2Summary({ t_cost: 1, m_cost: 1024, parallelism: 1, hash_length: 32 }),
      'Argon2id: 1 pass, 1 MiB, 1 lane, 32-byte hash.',
    );
    assert.equal(
      argon2Summary({ t_cost: 8, m_cost: 65536, parallelism: 4, hash_length: 32 }),
      'Argon2id: 8 passes, 64 MiB, 4 lanes, 32-byte hash.',
    );
  });
});

describe('previewDeviceClasses', () => {
  const classes = [
    { class: 'desktop', label: 'Desktop', hash_rate: 40, source: 'measured', samples: 50, mean_seconds: 22.5, p95_seconds: 67, exceeds_timeout: false },
    { class: 'phone', label: 'Phone', hash_rate: 8, source: 'reference', samples: 0, mean_seconds: 112, p95_seconds: 337, exceeds_timeout: false },
    { class: 'safari_ios', label: 'Safari / iOS', hash_rate: 2, source: 'reference', samples: 0, mean_seconds: 450, p95_seconds: 1348, exceeds_timeout: false },
  ];

  it('recomputes the times for another difficulty and keeps the rest', () => {
    const out = previewDeviceClasses(classes, 1900, 1800);
    assert.equal(out.length, 3);
    close(out[0].mean_seconds, 1900 / 40);
    close(out[1].p95_seconds, (1900 * LN_20) / 8);
    assert.equal(out[2].label, 'Safari / iOS');
    assert.equal(out[0].source, 'measured');
    assert.equal(out[0].samples, 50);
  });

  it('flags a class whose 95th percentile passes the timeout', () => {
    // Safari at 2 hashes/s: p95 = 1900·3.0/2 ≈ 2846 s > 1800 s.
    const out = previewDeviceClasses(classes, 1900, 1800);
    assert.deepEqual(out.map((c) => c.exceeds_timeout), [false, false, true]);
    // A longer timeout clears it.
    const later = previewDeviceClasses(classes, 1900, 3600);
    assert.deepEqual(later.map((c) => c.exceeds_timeout), [false, false, false]);
  });

  it('does not flag a p95 exactly at the timeout', () => {
    const rate = 10;
    const d = 1000;
    const p95 = (d * LN_20) / rate;
    const [c] = previewDeviceClasses([{ hash_rate: rate }], d, p95);
    assert.equal(c.exceeds_timeout, false);
  });

  it('does not change its input', () => {
    const copy = structuredClone(classes);
    previewDeviceClasses(classes, 1, 1);
    assert.deepEqual(classes, copy);
  });

  it('leaves times empty for a class without a usable rate', () => {
    const [c] = previewDeviceClasses([{ class: 'phone', hash_rate: 0 }], 900, 1800);
    assert.equal(c.mean_seconds, null);
    assert.equal(c.p95_seconds, null);
    assert.equal(c.exceeds_timeout, false);
  });

  it('returns an empty list for a missing one', () => {
    assert.deepEqual(previewDeviceClasses(undefined, 900, 1800), []);
  });
});

// ---------------------------------------------------------------------------
// Input checking
// ---------------------------------------------------------------------------

describe('parseWholeNumber', () => {
  const range = [1, 1000000000];

  it('accepts whole numbers in range, trimming blanks', () => {
    assert.deepEqual(parseWholeNumber('900', range), { value: 900 });
    assert.deepEqual(parseWholeNumber('  1 ', range), { value: 1 });
    assert.deepEqual(parseWholeNumber('1000000000', range), { value: 1000000000 });
    assert.deepEqual(parseWholeNumber('0', [0, 5]), { value: 0 });
  });

  it('refuses an empty field', () => {
    assert.match(parseWholeNumber('', range).error, /whole number/);
    assert.match(parseWholeNumber('   ', range).error, /whole number/);
    assert.match(parseWholeNumber(undefined, range).error, /whole number/);
  });

  it('refuses decimals, exponents, signs and separators rather than guessing', () => {
    for (const s of ['1.5', '1e3', '-3', '+3', '1,000', '1_000', '0x10', 'abc', '12abc']) {
      assert.ok('error' in parseWholeNumber(s, range), s);
    }
  });

  it('names the range when out of it', () => {
    assert.equal(parseWholeNumber('0', range).error, 'Must be between 1 and 1,000,000,000.');
    assert.equal(parseWholeNumber('1000000001', range).error, 'Must be between 1 and 1,000,000,000.');
    assert.ok('error' in parseWholeNumber('99999999999999999999', range));
  });
});

describe('changedSettings', () => {
  it('keeps only the fields that differ', () => {
    const current = { difficulty: 900, challenge_timeout: 30, token_hours: 24, token_max_ips: 2, max_tokens_per_ip: 0 };
    assert.deepEqual(
      changedSettings(current, { challenge_timeout: 30, token_hours: 48, token_max_ips: 2, max_tokens_per_ip: 5 }),
      { token_hours: 48, max_tokens_per_ip: 5 },
    );
    assert.deepEqual(changedSettings(current, { token_hours: 24 }), {});
  });
});

describe('presetFor', () => {
  const presets = { low: 200, medium: 900, high: 1900, extreme: 4000 };
  it('finds the preset with that value', () => {
    assert.equal(presetFor(900, presets), 'medium');
    assert.equal(presetFor(4000, presets), 'extreme');
  });
  it('returns null for a custom value or no presets', () => {
    assert.equal(presetFor(901, presets), null);
    assert.equal(presetFor(900, undefined), null);
  });
});

describe('apiErrorMessage', () => {
  it("prefers the server's message", () => {
    const body = { error: 'bad_request', message: 'difficulty: 0 is out of range: allowed 1..=1000000000', field: 'difficulty' };
    assert.equal(apiErrorMessage(400, body), body.message);
  });
  it('falls back to a message per status', () => {
    assert.match(apiErrorMessage(404, null), /not found/i);
    assert.match(apiErrorMessage(429, {}), /too many/i);
    assert.match(apiErrorMessage(502, 'html'), /HTTP 502/);
    assert.match(apiErrorMessage(418, { message: '  ' }), /HTTP 418/);
  });
});

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

describe('dates and times', () => {
  it('formats dates in a given time zone', () => {
    const t = Date.parse('2025-05-03T14:05:00Z') / 1000;
    assert.equal(formatDateTime(t, 'UTC'), '3 May 2025, 14:05');
    assert.equal(formatShortDateTime(t, 'UTC'), '3 May 14:05');
    assert.equal(formatShortDateTime(undefined, 'UTC'), '–');
  });

  it('says how long ago or ahead', () => {
    assert.equal(relativeTime(1000 + 23 * 3600, 1000), 'in 23 h');
    assert.equal(relativeTime(1000 - 300, 1000), '5 min ago');
    assert.equal(relativeTime(1000 + 10, 1000), 'in under a minute');
    assert.equal(relativeTime(1000 - 3 * 86400, 1000), '3 days ago');
  });

  // Issue 19: the newest token showed as created "in under a minute"
  // because the server's clock ran a little ahead of the browser's.
  it('never shows a time that has happened as ahead, whatever the clock skew', () => {
    assert.equal(relativeTime(1000 + 10, 1000, { past: true }), 'just now');
    assert.equal(relativeTime(1000 + 600, 1000, { past: true }), 'just now');
    assert.equal(relativeTime(1000 - 20, 1000, { past: true }), 'just now');
    assert.equal(relativeTime(1000 - 300, 1000, { past: true }), '5 min ago');
  });
});

// ---------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------

describe('paging', () => {
  it('describes a middle page', () => {
    const p = paging(2, 25, 120, 25);
    assert.deepEqual(
      { pages: p.pages, first: p.first, last: p.last, hasPrev: p.hasPrev, hasNext: p.hasNext },
      { pages: 5, first: 26, last: 50, hasPrev: true, hasNext: true },
    );
    assert.equal(p.summary, 'Page 2 of 5: 26–50 of 120 tokens.');
  });

  it('describes a short last page', () => {
    const p = paging(5, 25, 120, 20);
    assert.equal(p.last, 120);
    assert.equal(p.hasNext, false);
  });

  it('describes no tokens at all', () => {
    const p = paging(1, 25, 0, 0);
    assert.equal(p.pages, 1);
    assert.equal(p.hasPrev, false);
    assert.equal(p.hasNext, false);
    assert.equal(p.summary, 'No tokens.');
  });

  it('uses the singular for one token', () => {
    assert.equal(paging(1, 25, 1, 1).summary, 'Page 1 of 1: 1–1 of 1 token.');
  });

  it('survives nonsense', () => {
    const p = paging(0, 0, -3, undefined);
    assert.equal(p.page, 1);
    assert.equal(p.pages, 1);
  });
});

// ---------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------

describe('axis helpers', () => {
  it('rounds steps up to 1, 2 or 5 times a power of ten', () => {
    assert.equal(niceStep(0), 1);
    assert.equal(niceStep(0.3), 1);
    assert.equal(niceStep(1.2), 2);
    assert.equal(niceStep(3), 5);
    assert.equal(niceStep(7), 10);
    assert.equal(niceStep(25), 50);
    assert.equal(niceStep(100), 100);
  });

  it('makes integer ticks from zero that cover the maximum', () => {
    assert.deepEqual(axisTicks(0), { top: 1, ticks: [0, 1] });
    assert.deepEqual(axisTicks(3), { top: 3, ticks: [0, 1, 2, 3] });
    assert.deepEqual(axisTicks(230), { top: 300, ticks: [0, 100, 200, 300] });
    const { top, ticks } = axisTicks(17);
    assert.ok(top >= 17);
    assert.ok(ticks.every((t) => Number.isInteger(t)));
  });

  it('labels every k-th slot so labels fit', () => {
    assert.equal(labelStride(24, 960, 40), 1);
    assert.equal(labelStride(24, 300, 40), 4);
    assert.equal(labelStride(60, 300, 40), 8);
    assert.equal(labelStride(0, 300, 40), 1);
  });
});

function hourly(n, start = Date.parse('2025-05-03T00:00:00Z') / 1000) {
  return {
    bucket_seconds: 3600,
    buckets: Array.from({ length: n }, (_, i) => ({ start: start + i * 3600, issued: 10 * i, solved: 8 * i, failed: i })),
  };
}

describe('timelineChart', () => {
  it('draws one bar per bucket inside the plot, stacked solved then failed', () => {
    const m = timelineChart(hourly(24), { width: 600, height: 200, timeZone: 'UTC' });
    assert.equal(m.bars.length, 24);
    const bottom = m.plot.top + m.plot.height;
    for (const bar of m.bars) {
      assert.ok(bar.x >= m.plot.left && bar.x + bar.width <= m.plot.left + m.plot.width + 1e-6);
      close(bar.solved.y + bar.solved.height, bottom);
      // failed sits right on top of solved
      close(bar.failed.y + bar.failed.height, bar.solved.y);
      assert.ok(bar.issued.height >= 0 && bar.solved.height >= 0 && bar.failed.height >= 0);
    }
    // The tallest bar reaches no higher than the top of the plot.
    assert.ok(Math.min(...m.bars.map((b) => b.issued.y)) >= m.plot.top - 1e-6);
    assert.equal(m.empty, false);
  });

  it('gives each bar a readable title', () => {
    const m = timelineChart(hourly(3), { width: 600, height: 200, timeZone: 'UTC' });
    assert.equal(m.bars[2].title, '02:00–03:00: 20 issued, 16 solved, 2 failed');
  });

  it('labels the newest bucket and thins labels on narrow screens', () => {
    const wide = timelineChart(hourly(24), { width: 1000, height: 200, timeZone: 'UTC' });
    const narrow = timelineChart(hourly(24), { width: 320, height: 200, timeZone: 'UTC' });
    assert.ok(narrow.xLabels.length < wide.xLabels.length);
    assert.equal(narrow.xLabels.at(-1).text, '23:00');
    for (let i = 1; i < narrow.xLabels.length; i++) {
      assert.ok(narrow.xLabels[i].x - narrow.xLabels[i - 1].x >= 40 - 1e-6);
    }
  });

  it('copes with an empty or missing timeline', () => {
    const m = timelineChart({ bucket_seconds: 60, buckets: [] }, { width: 300, height: 200 });
    assert.equal(m.bars.length, 0);
    assert.equal(m.empty, true);
    assert.ok(m.yTicks.length >= 2);
    assert.equal(timelineChart(undefined, { width: 300, height: 200 }).empty, true);
  });

  it('scales to failed counts larger than issued', () => {
    const m = timelineChart({
      bucket_seconds: 60,
      buckets: [{ start: 0, issued: 1, solved: 1, failed: 9 }],
    }, { width: 300, height: 200 });
    assert.ok(m.bars[0].failed.y >= m.plot.top - 1e-6);
  });
});

const HIST = [
  { le_ms: 500, count: 2 },
  { le_ms: 1000, count: 5 },
  { le_ms: 2000, count: 10 },
  { le_ms: 60000, count: 3 },
  { le_ms: null, count: 0 },
];

describe('histogram', () => {
  it('names the buckets by their bounds', () => {
    assert.deepEqual(histogramLabels(HIST), ['up to 0.5 s', '0.5 s – 1 s', '1 s – 2 s', '2 s – 1 min', 'over 1 min']);
    assert.equal(formatBound(1500), '1.5 s');
    assert.equal(formatBound(120000), '2 min');
  });

  it('draws a bar per bucket and labels the bounds between them', () => {
    const m = histogramChart(HIST, { width: 600, height: 200 });
    assert.equal(m.bars.length, 5);
    assert.equal(m.xLabels.length, 4);
    assert.deepEqual(m.xLabels.map((l) => l.text), ['0.5 s', '1 s', '2 s', '1 min']);
    assert.equal(m.bars[2].title, '1 s – 2 s: 10 solves (50 %)');
    const tallest = m.bars.reduce((a, b) => (b.height > a.height ? b : a));
    assert.equal(tallest, m.bars[2]);
    assert.equal(m.empty, false);
  });

  it('is empty without solves', () => {
    assert.equal(histogramChart([{ le_ms: 1000, count: 0 }, { le_ms: null, count: 0 }], { width: 300, height: 200 }).empty, true);
    assert.equal(histogramChart(undefined, { width: 300, height: 200 }).bars.length, 0);
  });
});

describe('chart summaries', () => {
  it('sums the timeline and names the busiest period', () => {
    const text = summarizeTimeline(hourly(3), '24 hours', 'UTC');
    assert.equal(text, 'Last 24 hours: 30 challenges issued, 24 solved, 3 failed. Most solves (16) in the period starting 02:00.');
  });

  it('says so when there is nothing', () => {
    assert.equal(summarizeTimeline({ buckets: [] }, '60 minutes'), 'No data for the last 60 minutes.');
    assert.equal(summarizeSolveTimes({ samples: 0, p50_ms: null, p95_ms: null, histogram: [] }), 'No solves recorded yet.');
  });

  it('gives the median, p95 and the largest group of solve times', () => {
    const text = summarizeSolveTimes({ samples: 20, p50_ms: 1400, p95_ms: 9000, histogram: HIST });
    assert.equal(text, '20 recent solves: median 1.4 s, 95th percentile 9.0 s. The largest group, 50 %, took 1 s – 2 s.');
  });
});

describe('settingFormFields', () => {
  // The shape GET /api/admin/settings sends in `specs`.
  const specs = [
    { name: 'difficulty', label: 'difficulty', unit: 'expected hashes', min: 1, max: 1e9, zero_is_off: false, presets: true, description: 'd' },
    { name: 'challenge_timeout', label: 'challenge timeout', unit: 'minutes', min: 1, max: 1440, zero_is_off: false, presets: false, description: 'How long.' },
    { name: 'max_tokens_per_ip', label: 'tokens per address', unit: '', min: 0, max: 100000, zero_is_off: true, presets: false, description: 'Cap.' },
  ];

  it('builds one field per spec from the table, leaving the difficulty to its own card', () => {
    const fields = settingFormFields(specs);
    assert.deepEqual(fields.map((f) => f.name), ['challenge_timeout', 'max_tokens_per_ip']);
    assert.deepEqual(fields[0], {
      name: 'challenge_timeout',
      id: 'challenge-timeout',
      label: 'Challenge timeout',
      unit: 'minutes',
      min: 1,
      max: 1440,
      hint: '1 – 1,440',
      description: 'How long.',
    });
    assert.equal(fields[1].id, 'max-tokens-per-ip');
    assert.equal(fields[1].hint, '0 – 100,000; 0 means no limit');
  });

  it('draws no field from a missing table', () => {
    assert.deepEqual(settingFormFields(undefined), []);
  });

  it('labels settings from the table', () => {
    assert.equal(settingLabel('max_tokens_per_ip', specs), 'tokens per address');
    assert.equal(settingLabel('unknown', specs), 'unknown');
    assert.equal(settingLabel('token_hours', undefined), 'token_hours');
  });
});

