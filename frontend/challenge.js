// @ts-check
// A challenge as the page keeps it: what a usable one looks like and how long
// it has left, so a reload can go on with the stored one. No DOM access (see
// tests/challenge.test.mjs).

/** A stored challenge is reused only while it has this long left to live. */
export const REUSE_MARGIN_S = 30;

/**
 * @typedef {import('./shared/wire.js').Challenge & {received_at?: number}} StoredChallenge
 *   `received_at`: this browser's clock, in unix seconds, when it arrived
 */

/**
 * Whether `c` is a challenge this page can solve and submit.
 *
 * @param {unknown} value
 * @returns {value is import('./shared/wire.js').Challenge}
 */
export function isChallenge(value) {
  if (!value || typeof value !== 'object') return false;
  const c = /** @type {Record<string, any>} */ (value);
  const a = c.argon2;
  /** @param {unknown} v */
  const posInt = (v) => Number.isSafeInteger(v) && Number(v) > 0;
  return typeof c.challenge === 'string' && c.challenge !== ''
    && (c.purpose === 'new' || c.purpose === 'refresh')
    && typeof c.salt === 'string' && /^[0-9a-fA-F]{32}$/.test(c.salt)
    && Boolean(a) && typeof a === 'object'
    && posInt(a.t_cost) && posInt(a.m_cost) && posInt(a.parallelism) && posInt(a.hash_length)
    && posInt(c.difficulty)
    // A challenge stored before the admission ticket existed lacks this and
    // is dropped, so the page fetches one the server still accepts.
    && Number.isInteger(c.ticket_bits) && c.ticket_bits >= 0 && c.ticket_bits <= 32
    && Number.isFinite(c.issued_at) && Number.isFinite(c.expires_at);
}

/**
 * Seconds the challenge has left. Measured from when this browser received
 * it, so a wrong local clock does not matter.
 *
 * @param {StoredChallenge} c
 * @param {number} nowSeconds this browser's clock, unix seconds
 * @returns {number}
 */
export function secondsLeft(c, nowSeconds) {
  if (typeof c.received_at === 'number' && Number.isFinite(c.received_at)) {
    return (c.expires_at - c.issued_at) - (nowSeconds - c.received_at);
  }
  return c.expires_at - nowSeconds;
}

/**
 * Whether a stored value is a challenge worth going on with: valid, with
 * more than REUSE_MARGIN_S left (the search has no memory, so starting it
 * again from nonce 0 loses nothing).
 *
 * @param {unknown} value
 * @param {number} nowSeconds
 * @returns {value is StoredChallenge}
 */
export function isReusable(value, nowSeconds) {
  return isChallenge(value) && secondsLeft(value, nowSeconds) > REUSE_MARGIN_S;
}
