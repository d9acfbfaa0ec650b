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
