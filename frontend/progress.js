// @ts-check
// How far along the search is and how long it should still take, for the
// progress bar and the estimate. No DOM access (see tests/progress.test.mjs).

/**
 * Chance that at least one of `hashes` tries has succeeded when each wins
 * with probability 1/difficulty: 1 - (1 - 1/D)^hashes. Written with
 * log1p/expm1 because (1 - 1/D) rounds badly for large D.
 *
 * @param {number} hashes
 * @param {number} difficulty
 * @returns {number}
 */
export function successProbability(hashes, difficulty) {
  if (!(hashes > 0)) return 0;
  if (!(difficulty > 1)) return 1;
  return -Math.expm1(hashes * Math.log1p(-1 / difficulty));
}

/**
 * Expected seconds until a solution, or null while the rate is unknown.
 *
 * Every nonce wins independently with probability 1/D, so the search has no
 * memory: however many hashes have already failed, the expected number still
 * to go is D. `hashesSoFar` is accepted for symmetry with the progress bar but
 * deliberately does not shorten the estimate.
 *
 * @param {number} hashesSoFar
 * @param {number} rate hashes per second; 0 while unknown
 * @param {number} difficulty
 * @returns {number | null}
 */
export function etaSeconds(hashesSoFar, rate, difficulty) {
  void hashesSoFar;
  if (!(rate > 0) || !(difficulty > 0)) return null;
  return difficulty / rate;
}

/** @typedef {import('./i18n.js').Translator['t']} T */

/**
 * What the page can truthfully say about time, as a sentence: before the
 * expected time, a round upper bound on the usual time ("Usually under a
 * minute on this device."), which holds for about 63 % of solves (the
 * chance of finishing within the mean of a memoryless search); after it,
 * that this one is taking longer, with the time so far. Never a countdown:
 * the search has no memory, so no one knows how much is left.
 *
 * @param {T} t the page's words (i18n.js)
 * @param {number} elapsedS seconds spent searching so far (pauses excluded)
 * @param {number | null} expectedS expected seconds for a whole solve at the
 *   measured rate (etaSeconds); null while the rate is unknown
 * @returns {string}
 */
export function timeEstimateText(t, elapsedS, expectedS) {
  if (expectedS === null || !Number.isFinite(expectedS)) return t('measuring');
  if (elapsedS > expectedS) return t('takingLonger', { elapsed: formatElapsed(t, elapsedS) });
  if (expectedS < 10) return t('usuallySeconds');
  if (expectedS < 60) return t('usuallyUnderAMinute');
  if (expectedS < 90 * 60) {
    const minutes = Math.ceil(expectedS / 60);
    return minutes === 1 ? t('usuallyUnderAMinute') : t('usuallyUnderMinutes', { count: minutes });
  }
  return t('usuallyUnderHours', { count: Math.ceil(expectedS / 3600) });
}

/**
 * Elapsed time as a clock reads: "8 s", "1 min 05 s", "12 min 30 s",
 * "1 h 02 min" (in English).
 *
 * @param {T} t the page's words (i18n.js)
 * @param {number} seconds
 * @returns {string}
 */
export function formatElapsed(t, seconds) {
  const s = Math.max(0, Math.floor(Number.isFinite(seconds) ? seconds : 0));
  if (s < 60) return t('elapsedSeconds', { seconds: s });
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  if (s < 3600) return t('elapsedMinutes', { minutes: Math.floor(s / 60), seconds: pad(s % 60) });
  return t('elapsedHours', { hours: Math.floor(s / 3600), minutes: pad(Math.floor((s % 3600) / 60)) });
}
