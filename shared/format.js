// @ts-check
// Numbers, hash rates and durations as both pages write them. No DOM access
// here, so Node's test runner loads this module as it is (see
// tests/format.test.mjs).

const INT_FORMAT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/**
 * 1234567 → "1,234,567"; anything not a finite number → "–".
 *
 * @param {number | null | undefined} n
 * @returns {string}
 */
export function formatInt(n) {
  return typeof n === 'number' && Number.isFinite(n) ? INT_FORMAT.format(n) : '–';
}

/**
 * Axis labels: 950 → "950", 1200 → "1.2k", 3000000 → "3M".
 *
 * @param {number} n
 * @returns {string}
 */
export function formatCompact(n) {
  if (!Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  /** @param {number} v @param {string} unit */
  const scaled = (v, unit) => `${Number(v.toFixed(v < 10 ? 1 : 0))}${unit}`;
  if (abs >= 1e9) return scaled(n / 1e9, 'G');
  if (abs >= 1e6) return scaled(n / 1e6, 'M');
  if (abs >= 1e3) return scaled(n / 1e3, 'k');
  return String(Math.round(n));
}

/**
 * 12 → "12.0 hashes/s", 0.75 → "0.75 hashes/s", 1400 → "1,400 hashes/s";
 * "–" while the rate is unknown (0 or not a number).
 *
 * @param {number | null | undefined} rate
 * @returns {string}
 */
export function formatHashRate(rate) {
  if (!(typeof rate === 'number' && Number.isFinite(rate) && rate > 0)) return '–';
  const digits = rate < 10 ? 2 : rate < 100 ? 1 : 0;
  const text = rate >= 1000 ? formatInt(rate) : rate.toFixed(digits);
  return `${text} hashes/s`;
}

/**
 * A duration in seconds, to two significant figures or so: "0.4 s",
 * "8.5 s", "42 s", "3.5 min", "25 min", "2.4 h", "3.1 days".
 *
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function formatDuration(seconds) {
  if (!(typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0)) return '–';
  /** @param {number} v */
  const fixed = (v) => (v < 10 ? v.toFixed(1) : String(Math.round(v)));
  if (seconds < 0.1) return seconds === 0 ? '0 s' : 'under 0.1 s';
  if (seconds < 90) return `${fixed(seconds)} s`;
  if (seconds < 90 * 60) return `${fixed(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${fixed(seconds / 3600)} h`;
  return `${fixed(seconds / 86400)} days`;
}

/**
 * An estimate for a visitor, in round figures: "under a second",
 * "about 40 s", "about 3 min", "about 2 h"; "estimating…" while unknown.
 *
 * @param {number | null} seconds
 * @returns {string}
 */
export function formatEstimate(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return 'estimating…';
  if (seconds < 1) return 'under a second';
  if (seconds < 90) return `about ${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `about ${Math.round(seconds / 60)} min`;
  return `about ${Math.round(seconds / 3600)} h`;
}

/**
 * A wait in whole seconds, as Retry-After gives it: "5 s", "2 min", "1.5 h".
 *
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function formatWait(seconds) {
  if (!(typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0)) return '–';
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  return formatDuration(seconds);
}

/**
 * Milliseconds: "350 ms" below a second, formatDuration above.
 *
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function formatMs(ms) {
  if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return formatDuration(ms / 1000);
}

/**
 * A whole number of minutes as the pages show timeouts: "30 min", "2 h",
 * "1 h 30 min".
 *
 * @param {number} minutes
 * @returns {string}
 */
export function formatMinutes(minutes) {
  if (!Number.isFinite(minutes)) return '–';
  const h = Math.floor(minutes / 60);
  const m = Math.round(minutes % 60);
  if (h === 0) return `${m} min`;
  return m === 0 ? `${h} h` : `${h} h ${m} min`;
}
