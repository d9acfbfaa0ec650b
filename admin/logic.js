// @ts-check
// Pure logic for the admin page: solve-time estimates, input checking,
// dates and times, paging, and the geometry of the two charts.
// No DOM access here, so Node's test runner loads this module as it is
// (see tests/logic.test.mjs); app.js and charts.js do the drawing.

import { errorMessage } from '../shared/http.js';
import { formatCompact, formatInt, formatMs } from '../shared/format.js';

/** @typedef {import('../shared/wire.js').ClassEstimate} ClassEstimate */
/** @typedef {import('../shared/wire.js').SettingSpec} SettingSpec */
/** @typedef {import('../shared/wire.js').SolveTimes} SolveTimes */
/** @typedef {import('../shared/wire.js').Timeline} Timeline */
/** @typedef {import('../shared/wire.js').HistogramBucket} HistogramBucket */

/**
 * A device class as the solve-time table shows it: the server's estimate, or
 * a preview's, whose times are null when the hash rate is unusable.
 *
 * @typedef {Omit<ClassEstimate, 'mean_seconds' | 'p95_seconds'>
 *   & {mean_seconds: number | null, p95_seconds: number | null}} ShownClass
 */

// ---------------------------------------------------------------------------
// Solve-time estimates
// ---------------------------------------------------------------------------

/**
 * ln(20). A search that wins each hash with probability 1/D needs a
 * geometrically distributed number of hashes; 95 % of searches are done
 * within D·ln(20) ≈ 3·D of them. The server uses the same formula.
 */
export const LN_20 = Math.log(20);

/**
 * Expected and 95th-percentile seconds to solve a challenge of `difficulty`
 * expected hashes at `hashRate` hashes per second.
 *
 * @param {number} difficulty
 * @param {number} hashRate
 * @returns {{mean: number, p95: number} | null} null when either input is unusable
 */
export function solveTimeEstimate(difficulty, hashRate) {
  if (!(Number.isFinite(difficulty) && difficulty > 0)) return null;
  if (!(Number.isFinite(hashRate) && hashRate > 0)) return null;
  const mean = difficulty / hashRate;
  return { mean, p95: mean * LN_20 };
}

/**
 * The server's device classes recomputed for another difficulty and/or
 * challenge timeout, as the preview shown while the operator types. Each
 * class keeps its hash rate, label and source; only the times change.
 *
 * @param {ClassEstimate[]} classes as in GET stats `device_classes`
 * @param {number} difficulty expected hashes
 * @param {number} timeoutSeconds the challenge timeout the p95 is held against
 * @returns {ShownClass[]}
 */
export function previewDeviceClasses(classes, difficulty, timeoutSeconds) {
  if (!Array.isArray(classes)) return [];
  return classes.map((c) => {
    const est = solveTimeEstimate(difficulty, c && c.hash_rate);
    return {
      ...c,
      mean_seconds: est ? est.mean : null,
      p95_seconds: est ? est.p95 : null,
      exceeds_timeout: est !== null && Number.isFinite(timeoutSeconds) && est.p95 > timeoutSeconds,
    };
  });
}

/**
 * What each preset would cost per device class, for the preview beside the
 * preset buttons: the server's classes recomputed at each preset's
 * difficulty, held against the challenge timeout, cheapest preset first.
 *
 * @param {Record<string, number> | undefined} presets name → difficulty
 * @param {ClassEstimate[]} classes as in GET stats `device_classes`
 * @param {number} timeoutSeconds
 * @returns {{name: string, difficulty: number, classes: ShownClass[]}[]}
 */
export function presetPreviews(presets, classes, timeoutSeconds) {
  return Object.entries(presets || {})
    .sort(([, a], [, b]) => a - b)
    .map(([name, difficulty]) => ({
      name,
      difficulty,
      classes: previewDeviceClasses(classes, difficulty, timeoutSeconds),
    }));
}

/**
 * Whether applying `difficulty` needs the operator's confirmation, and what
 * to tell them: it does when phones, the slowest visitors and the class
 * adaptive difficulty is capped by, would need longer than the challenge
 * timeout in more than 1 case in 20, since those challenges expire before
 * they are solved. Null when it fits (or nothing is known about phones).
 *
 * @param {number} difficulty
 * @param {ClassEstimate[]} classes as in GET stats `device_classes`
 * @param {number} timeoutSeconds
 * @returns {{mean_seconds: number, p95_seconds: number, timeout_seconds: number} | null}
 */
export function confirmationNeeded(difficulty, classes, timeoutSeconds) {
  const phone = previewDeviceClasses(classes, difficulty, timeoutSeconds).find((c) => c.class === 'phone');
  if (!phone || !phone.exceeds_timeout || phone.mean_seconds === null || phone.p95_seconds === null) return null;
  return { mean_seconds: phone.mean_seconds, p95_seconds: phone.p95_seconds, timeout_seconds: timeoutSeconds };
}

/**
 * "1 pass", "8 passes", "1,024 lanes".
 *
 * @param {number} n
 * @param {string} one
 * @param {string} many
 */
export function countOf(n, one, many) {
  return `${formatInt(n)} ${n === 1 ? one : many}`;
}

/**
 * The Argon2id parameters in words.
 *
 * @param {{t_cost: number, m_cost: number, parallelism: number, hash_length: number}} a m_cost in KiB
 */
export function argon2Summary(a) {
  return `Argon2id: ${countOf(a.t_cost, 'pass', 'passes')}, ${formatInt(a.m_cost / 1024)} MiB, ${countOf(a.parallelism, 'lane', 'lanes')}, ${a.hash_length}-byte hash.`;
}

// ---------------------------------------------------------------------------
// Input checking
// ---------------------------------------------------------------------------

/**
 * Reads a whole number typed by the operator and checks it against an
 * inclusive range. Decimals, exponents, signs and separators are refused
 * rather than guessed at: "1e3" or "1.5" is more likely a slip than a wish.
 *
 * @param {string} text
 * @param {[number, number]} range inclusive
 * @returns {{value: number} | {error: string}}
 */
export function parseWholeNumber(text, range) {
  const s = String(text ?? '').trim();
  if (s === '') return { error: 'Enter a whole number.' };
  if (!/^\d+$/.test(s)) return { error: 'Enter a whole number (digits only).' };
  const value = Number(s);
  const [min, max] = range;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    return { error: `Must be between ${formatInt(min)} and ${formatInt(max)}.` };
  }
  return { value };
}

/**
 * The settings whose value differs from the current one: the body of a
 * PATCH that touches only what the operator changed.
 *
 * @param {Record<string, number>} current
 * @param {Record<string, number>} wanted
 */
export function changedSettings(current, wanted) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const [name, value] of Object.entries(wanted)) {
    if (current[name] !== value) out[name] = value;
  }
  return out;
}

/**
 * The fields of the settings form, drawn from the server's settings table
 * so a new setting needs no change here. The difficulty has a card of its
 * own (its presets), so specs that take preset names are left out.
 *
 * @param {SettingSpec[] | undefined} specs
 * @returns {{name: string, id: string, label: string, unit: string,
 *   min: number, max: number, hint: string, description: string}[]}
 */
export function settingFormFields(specs) {
  if (!Array.isArray(specs)) return [];
  return specs
    .filter((s) => !s.presets)
    .map((s) => ({
      name: s.name,
      id: s.name.replaceAll('_', '-'),
      label: capitalize(s.label),
      unit: s.unit || '',
      min: s.min,
      max: s.max,
      hint: `${formatInt(s.min)} – ${formatInt(s.max)}${s.zero_is_off ? '; 0 means no limit' : ''}`,
      description: s.description || '',
    }));
}

/**
 * What the page calls the setting `name`, from the settings table; the
 * name itself for one the table does not list.
 *
 * @param {string} name
 * @param {SettingSpec[] | undefined} specs
 */
export function settingLabel(name, specs) {
  const spec = Array.isArray(specs) ? specs.find((s) => s.name === name) : undefined;
  return spec ? spec.label : name;
}

/**
 * The preset whose value is `difficulty`, if any. The server reports this
 * itself (`difficulty_preset`); this is the fallback when it does not.
 *
 * @param {number} difficulty
 * @param {Record<string, number>} presets
 * @returns {string | null}
 */
export function presetFor(difficulty, presets) {
  for (const [name, value] of Object.entries(presets || {})) {
    if (value === difficulty) return name;
  }
  return null;
}

/**
 * "medium" → "Medium".
 *
 * @param {string} s
 */
export function capitalize(s) {
  const t = String(s);
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/**
 * The text to show for a refused API call: the server's own message when it
 * sent one (it is written for the operator), else a plain one per status.
 *
 * @param {number} status
 * @param {unknown} data the parsed body, if any
 */
export function apiErrorMessage(status, data) {
  const m = errorMessage(data);
  if (m) return m;
  if (status === 401) return 'Not signed in, or the session has ended.';
  if (status === 403) return 'The server refused the request.';
  if (status === 404) return 'Not found: it may have been removed in the meantime.';
  if (status === 429) return 'Too many requests. Wait a moment and try again.';
  if (status >= 500) return `The server had a problem (HTTP ${status}). Try again.`;
  return `The request failed (HTTP ${status}).`;
}

// ---------------------------------------------------------------------------
// Dates and times (numbers, rates and durations: shared/format.js)
// ---------------------------------------------------------------------------

/**
 * A unix time as "3 May 2025, 14:05" in the given time zone (the browser's
 * when undefined; tests pass "UTC").
 */
/**
 * @param {number} unix
 * @param {string} [timeZone]
 */
export function formatDateTime(unix, timeZone) {
  if (!Number.isFinite(unix)) return '–';
  return new Intl.DateTimeFormat('en-GB', {
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZone,
  }).format(new Date(unix * 1000));
}

/**
 * A unix time as "3 May 14:05": the year is left out to keep table rows short.
 *
 * @param {number} unix
 * @param {string} [timeZone]
 */
export function formatShortDateTime(unix, timeZone) {
  if (!Number.isFinite(unix)) return '–';
  return new Intl.DateTimeFormat('en-GB', {
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZone,
  }).format(new Date(unix * 1000)).replace(',', '');
}

/**
 * A unix time as "14:05" in the given time zone.
 *
 * @param {number} unix
 * @param {string} [timeZone]
 */
export function formatClock(unix, timeZone) {
  if (!Number.isFinite(unix)) return '–';
  return new Intl.DateTimeFormat('en-GB', {
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZone,
  }).format(new Date(unix * 1000));
}

/**
 * "in 23 h", "5 min ago", "in under a minute": coarse, for the token table.
 * A time that `past` says has happened is never shown ahead: a token the
 * server created a few seconds "after" this browser's clock (clock skew) is
 * "just now", not "in under a minute".
 *
 * @param {number} unix
 * @param {number} nowUnix
 * @param {{past?: boolean}} [options]
 */
export function relativeTime(unix, nowUnix, { past = false } = {}) {
  if (!Number.isFinite(unix) || !Number.isFinite(nowUnix)) return '';
  const diff = past ? Math.min(0, unix - nowUnix) : unix - nowUnix;
  const abs = Math.abs(diff);
  if (past && abs < 60) return 'just now';
  let span;
  if (abs < 60) span = 'under a minute';
  else if (abs < 3600) span = `${Math.round(abs / 60)} min`;
  else if (abs < 48 * 3600) span = `${Math.round(abs / 3600)} h`;
  else span = `${Math.round(abs / 86400)} days`;
  return diff >= 0 ? `in ${span}` : `${span} ago`;
}

// ---------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------

/**
 * Everything the pager shows, from the server's page/per_page/total.
 *
 * @param {number} page 1-based
 * @param {number} perPage
 * @param {number} total tokens in all
 * @param {number} [shown] rows on this page
 * @returns {{page: number, pages: number, first: number, last: number,
 *   hasPrev: boolean, hasNext: boolean, summary: string}}
 */
export function paging(page, perPage, total, shown) {
  const per = Math.max(1, Math.floor(perPage) || 1);
  const count = Math.max(0, Math.floor(total) || 0);
  const pages = Math.max(1, Math.ceil(count / per));
  const p = Math.max(1, Math.floor(page) || 1);
  const first = count === 0 ? 0 : Math.min(count, (p - 1) * per + 1);
  const last = count === 0 ? 0 : Math.min(count, first + Math.max(0, shown ?? per) - 1);
  const noun = count === 1 ? 'token' : 'tokens';
  const summary = count === 0
    ? 'No tokens.'
    : `Page ${p} of ${pages}: ${formatInt(first)}–${formatInt(last)} of ${formatInt(count)} ${noun}.`;
  return { page: p, pages, first, last, hasPrev: p > 1, hasNext: p < pages, summary };
}

// ---------------------------------------------------------------------------
// Charts: geometry only, in pixels; charts.js turns it into SVG.
// ---------------------------------------------------------------------------

/**
 * The smallest of 1, 2, 5 × 10^k that is at least `x` (and at least 1,
 * since the charts count whole events).
 *
 * @param {number} x
 * @returns {number}
 */
export function niceStep(x) {
  if (!(x > 1)) return 1;
  const pow = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) {
    if (m * pow >= x - 1e-9) return m * pow;
  }
  return 10 * pow;
}

/**
 * Round y-axis ticks from 0 up to at least `maxValue`, about `count` steps.
 *
 * @param {number} maxValue
 * @param {number} [count]
 * @returns {{top: number, ticks: number[]}}
 */
export function axisTicks(maxValue, count = 4) {
  const max = Number.isFinite(maxValue) && maxValue > 0 ? maxValue : 0;
  const step = niceStep(max / count);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const ticks = [];
  for (let v = 0; v <= top + 1e-9; v += step) ticks.push(v);
  return { top, ticks };
}

/**
 * Label every k-th of `count` slots so labels `minLabelPx` wide don't touch
 * in `plotWidth` pixels.
 *
 * @param {number} count
 * @param {number} plotWidth
 * @param {number} minLabelPx
 */
export function labelStride(count, plotWidth, minLabelPx) {
  if (count <= 0) return 1;
  const slot = plotWidth / count;
  return Math.max(1, Math.ceil(minLabelPx / Math.max(slot, 1e-9)));
}

const CHART_MARGIN = { top: 10, right: 10, bottom: 26, left: 44 };

/** @typedef {{left: number, top: number, width: number, height: number}} Plot */

/**
 * A chart's geometry for charts.js to draw.
 *
 * @template Bar
 * @typedef {object} ChartModel
 * @property {Plot} plot
 * @property {Bar[]} bars
 * @property {Array<{y: number, text: string}>} yTicks
 * @property {Array<{x: number, text: string}>} xLabels
 * @property {boolean} empty nothing to show
 */

/** @typedef {{y: number, height: number}} BarSpan a bar's top and height */

/**
 * @typedef {object} TimelineBar
 * @property {number} x
 * @property {number} width
 * @property {BarSpan} issued
 * @property {BarSpan} solved
 * @property {BarSpan} failed stacked on solved
 * @property {string} title
 */

/** @typedef {{x: number, width: number, y: number, height: number, title: string}} HistogramBar */

/**
 * @param {number} width
 * @param {number} height
 * @returns {Plot}
 */
function plotArea(width, height) {
  const m = CHART_MARGIN;
  return {
    left: m.left,
    top: m.top,
    width: Math.max(10, width - m.left - m.right),
    height: Math.max(10, height - m.top - m.bottom),
  };
}

/**
 * @param {Plot} plot
 * @param {number} top the value at the top of the plot
 * @returns {(v: number) => number} value → pixels from the top
 */
function yScale(plot, top) {
  return (v) => plot.top + plot.height - (v / top) * plot.height;
}

/** @param {number} v */
const count = (v) => (Number.isFinite(v) && v > 0 ? v : 0);

/**
 * The solves-over-time chart: per bucket an "issued" bar behind, with the
 * solved count drawn from the bottom and the failed count stacked on it.
 *
 * @param {Timeline} timeline
 * @param {{width: number, height: number, timeZone?: string}} size
 * @returns {ChartModel<TimelineBar>}
 */
export function timelineChart(timeline, { width, height, timeZone }) {
  const buckets = timeline && Array.isArray(timeline.buckets) ? timeline.buckets : [];
  const bucketSeconds = (timeline && timeline.bucket_seconds) || 3600;
  const plot = plotArea(width, height);
  const peak = Math.max(0, ...buckets.map((b) => Math.max(count(b.issued), count(b.solved) + count(b.failed))));
  const { top, ticks } = axisTicks(peak);
  const y = yScale(plot, top);
  const band = buckets.length ? plot.width / buckets.length : plot.width;
  const barWidth = Math.max(1, band * (band > 6 ? 0.75 : 0.9));
  const bars = buckets.map((b, i) => {
    const x = plot.left + i * band + (band - barWidth) / 2;
    const issued = count(b.issued);
    const solved = count(b.solved);
    const failed = count(b.failed);
    const from = formatClock(b.start, timeZone);
    const to = formatClock(b.start + bucketSeconds, timeZone);
    return {
      x,
      width: barWidth,
      issued: { y: y(issued), height: y(0) - y(issued) },
      solved: { y: y(solved), height: y(0) - y(solved) },
      failed: { y: y(solved + failed), height: y(solved) - y(solved + failed) },
      title: `${from}–${to}: ${formatInt(issued)} issued, ${formatInt(solved)} solved, ${formatInt(failed)} failed`,
    };
  });
  // Anchor labels on the newest bucket, which is the one people look at.
  const stride = labelStride(buckets.length, plot.width, 40);
  /** @type {ChartModel<TimelineBar>['xLabels']} */
  const xLabels = [];
  buckets.forEach((b, i) => {
    if ((buckets.length - 1 - i) % stride === 0) {
      xLabels.push({ x: plot.left + (i + 0.5) * band, text: formatClock(b.start, timeZone) });
    }
  });
  return {
    plot,
    bars,
    yTicks: ticks.map((v) => ({ y: y(v), text: formatCompact(v) })),
    xLabels,
    empty: peak === 0,
  };
}

/**
 * A histogram bound in ms, short: 500 → "0.5 s", 1000 → "1 s", 120000 → "2 min".
 *
 * @param {number} ms
 */
export function formatBound(ms) {
  if (ms >= 60000 && ms % 60000 === 0) return `${ms / 60000} min`;
  return `${Number((ms / 1000).toFixed(2))} s`;
}

/**
 * Readable names of the histogram's buckets: "up to 1 s", "1 s – 2 s",
 * "over 60 s". Each bucket counts the solves above the previous bound and at
 * or below its own; the last one (le_ms null) has no upper bound.
 *
 * @param {HistogramBucket[]} histogram
 * @returns {string[]}
 */
export function histogramLabels(histogram) {
  const list = Array.isArray(histogram) ? histogram : [];
  /** @type {number | null} */
  let prev = null;
  return list.map((h) => {
    let label;
    if (h.le_ms == null) label = prev == null ? 'all' : `over ${formatBound(prev)}`;
    else if (prev == null) label = `up to ${formatBound(h.le_ms)}`;
    else label = `${formatBound(prev)} – ${formatBound(h.le_ms)}`;
    if (h.le_ms != null) prev = h.le_ms;
    return label;
  });
}

/**
 * The solve-time histogram: one bar per bucket, drawn at equal widths (the
 * buckets are not equally wide in time, so the x axis is labelled at the
 * bucket bounds instead of on a time scale).
 *
 * @param {HistogramBucket[]} histogram
 * @param {{width: number, height: number}} size
 * @returns {ChartModel<HistogramBar>}
 */
export function histogramChart(histogram, { width, height }) {
  const list = Array.isArray(histogram) ? histogram : [];
  const labels = histogramLabels(list);
  const total = list.reduce((sum, h) => sum + count(h.count), 0);
  const plot = plotArea(width, height);
  const peak = Math.max(0, ...list.map((h) => count(h.count)));
  const { top, ticks } = axisTicks(peak);
  const y = yScale(plot, top);
  const band = list.length ? plot.width / list.length : plot.width;
  const barWidth = Math.max(1, band - Math.min(4, band * 0.15));
  const bars = list.map((h, i) => {
    const c = count(h.count);
    const share = total ? Math.round((c / total) * 100) : 0;
    return {
      x: plot.left + i * band + (band - barWidth) / 2,
      width: barWidth,
      y: y(c),
      height: y(0) - y(c),
      title: `${labels[i]}: ${formatInt(c)} ${c === 1 ? 'solve' : 'solves'} (${share} %)`,
    };
  });
  // Bounds sit between bars: bound i is the right edge of bar i.
  const bounded = list.filter((h) => h.le_ms != null).length;
  const stride = labelStride(Math.max(1, bounded), plot.width, 38);
  /** @type {ChartModel<HistogramBar>['xLabels']} */
  const xLabels = [];
  let seen = 0;
  list.forEach((h, i) => {
    if (h.le_ms == null) return;
    if (seen % stride === 0) xLabels.push({ x: plot.left + (i + 1) * band, text: formatBound(h.le_ms) });
    seen += 1;
  });
  return {
    plot,
    bars,
    yTicks: ticks.map((v) => ({ y: y(v), text: formatCompact(v) })),
    xLabels,
    empty: total === 0,
  };
}

// ---------------------------------------------------------------------------
// Text alternatives for the charts
// ---------------------------------------------------------------------------

/**
 * One or two sentences that say what the solves-over-time chart shows.
 *
 * @param {Timeline} timeline
 * @param {string} span "24 hours" or "60 minutes"
 * @param {string} [timeZone]
 */
export function summarizeTimeline(timeline, span, timeZone) {
  const buckets = timeline && Array.isArray(timeline.buckets) ? timeline.buckets : [];
  if (!buckets.length) return `No data for the last ${span}.`;
  /** @param {'issued' | 'solved' | 'failed'} k */
  const sum = (k) => buckets.reduce((s, b) => s + count(b[k]), 0);
  const issued = sum('issued');
  const solved = sum('solved');
  const failed = sum('failed');
  let text = `Last ${span}: ${formatInt(issued)} challenges issued, ${formatInt(solved)} solved, ${formatInt(failed)} failed.`;
  if (solved > 0) {
    let best = buckets[0];
    for (const b of buckets) if (count(b.solved) > count(best.solved)) best = b;
    text += ` Most solves (${formatInt(count(best.solved))}) in the period starting ${formatClock(best.start, timeZone)}.`;
  }
  return text;
}

/**
 * One or two sentences that say what the histogram shows.
 *
 * @param {Partial<SolveTimes> | undefined} solveTime
 */
export function summarizeSolveTimes(solveTime) {
  const st = solveTime || {};
  const list = Array.isArray(st.histogram) ? st.histogram : [];
  const total = list.reduce((s, h) => s + count(h.count), 0);
  if (!total) return 'No solves recorded yet.';
  const labels = histogramLabels(list);
  let best = 0;
  list.forEach((h, i) => {
    if (count(h.count) > count(list[best].count)) best = i;
  });
  const share = Math.round((count(list[best].count) / total) * 100);
  let text = `${formatInt(total)} recent ${total === 1 ? 'solve' : 'solves'}`;
  if (Number.isFinite(st.p50_ms)) text += `: median ${formatMs(st.p50_ms)}`;
  if (Number.isFinite(st.p95_ms)) text += `, 95th percentile ${formatMs(st.p95_ms)}`;
  return `${text}. The largest group, ${share} %, took ${labels[best]}.`;
}
