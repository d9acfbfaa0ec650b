// @ts-check
// The verification line as the page sees it. When every verification thread
// is busy, /api/solve answers 503 {"error": "queued", "ahead": n}: the answer
// is waiting for its turn, not refused, and its challenge is not spent. The
// page then says so honestly and sends the same answer again after
// Retry-After, which keeps its place in line, for as long as the challenge
// is valid. No DOM access here, so Node's test runner can load this module
// as it is (see tests/queue.test.mjs).

/**
 * How many answers are ahead of this one, when the server queued it; null
 * for any other answer (a plain 503 or 429 is "busy", handled elsewhere).
 * @param {number} status
 * @param {unknown} data the parsed JSON body, or null
 * @returns {number | null}
 */
export function queuedAhead(status, data) {
  if (status !== 503 || !data || typeof data !== 'object') return null;
  const { error, ahead } = /** @type {{ error?: unknown, ahead?: unknown }} */ (data);
  if (error !== 'queued') return null;
  return typeof ahead === 'number' && Number.isSafeInteger(ahead) && ahead >= 0 ? ahead : 0;
}

/**
 * What the visitor reads while the answer waits for its turn.
 * @param {import('./i18n.js').Translator['t']} t the page's words (i18n.js)
 * @param {number} ahead
 * @returns {string}
 */
export function queuedText(t, ahead) {
  if (ahead === 0) return t('queuedNext');
  return t('queuedAhead', { count: ahead });
}
