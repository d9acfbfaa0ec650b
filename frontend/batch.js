// @ts-check
// How many hashes a worker does per step (used by worker.js), so that a
// step is cheap to report yet pause and progress feel immediate. No DOM
// access (see tests/batch.test.mjs).

/** A worker step should last long enough to be cheap to report, short
 * enough that pause and progress feel immediate. */
export const STEP_MIN_MS = 100;
export const STEP_TARGET_MS = 150;
export const STEP_MAX_MS = 250;
/** Only reached with toy parameters; keeps one step from running away. */
export const MAX_BATCH = 1 << 20;

/**
 * Next number of hashes per step, given how long the last `batch` took.
 * Grows at most fourfold per step, because the first timings (JIT warm-up,
 * page faults in the fresh memory block) overstate the speed.
 *
 * @param {number} batch hashes in the last step
 * @param {number} elapsedMs how long it took
 * @returns {number}
 */
export function nextBatchSize(batch, elapsedMs) {
  const b = Math.max(1, Math.floor(batch));
  if (!(elapsedMs >= 0)) return b;
  if (elapsedMs < STEP_MIN_MS) {
    const scaled = elapsedMs > 0 ? Math.floor((b * STEP_TARGET_MS) / elapsedMs) : b * 4;
    return Math.min(MAX_BATCH, b * 4, Math.max(b + 1, scaled));
  }
  if (elapsedMs > STEP_MAX_MS) {
    return Math.max(1, Math.floor((b * STEP_TARGET_MS) / elapsedMs));
  }
  return b;
}
