// @ts-check
// Solved work is never lost: a found answer is kept (in storage, across
// reloads) until the server has answered it, sent again with backoff while
// the network is down, and only a verdict on the challenge itself (expired,
// spent, issued to another address) starts a new one. No DOM access (see
// tests/resend.test.mjs).

import { isChallenge, secondsLeft } from './challenge.js';
import { queuedAhead } from './queue.js';

/** First wait after a failed send; doubled each time up to MAX_RETRY_MS. */
export const FIRST_RETRY_MS = 1000;
/** A visitor back online waits at most this long (the `online` event is sooner). */
export const MAX_RETRY_MS = 30_000;

/**
 * How long to wait before send number `attempt + 1` after `attempt` failed
 * ones: 1 s, 2 s, 4 s, … capped at MAX_RETRY_MS. There is no last attempt:
 * the answer is worth sending for as long as its challenge lives.
 *
 * @param {number} attempt failed sends so far, from 1
 * @returns {number} milliseconds
 */
export function retryDelayMs(attempt) {
  const n = Math.max(1, Math.floor(attempt));
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(n - 1, 30));
}

/**
 * @typedef {'expired' | 'spent' | 'address'} RenewReason
 * @typedef {{kind: 'token'}
 *   | {kind: 'queued', ahead: number}
 *   | {kind: 'busy'}
 *   | {kind: 'renew', reason: RenewReason}
 *   | {kind: 'refused'}} SolveOutcome
 */

/**
 * What a reply to POST /api/solve means for the answer: a token; wait and
 * send the same answer again (queued, busy); a new challenge is needed
 * because of the challenge, not the answer (renew); or refused for good.
 * Codes are those of server/src/error.rs.
 *
 * @param {number} status
 * @param {unknown} data the parsed JSON body, or null
 * @returns {SolveOutcome}
 */
export function solveOutcome(status, data) {
  if (status === 200 && data && typeof data === 'object'
    && typeof /** @type {{token?: unknown}} */ (data).token === 'string') {
    return { kind: 'token' };
  }
  const ahead = queuedAhead(status, data);
  if (ahead !== null) return { kind: 'queued', ahead };
  const code = data && typeof data === 'object' ? /** @type {{error?: unknown}} */ (data).error : undefined;
  if (code === 'expired' || status === 410) return { kind: 'renew', reason: 'expired' };
  if (code === 'already_spent' || status === 409) return { kind: 'renew', reason: 'spent' };
  if (code === 'wrong_ip') return { kind: 'renew', reason: 'address' };
  // A proxy's 502/504 page or an unreachable store: the answer is still good.
  if (status === 429 || status === 502 || status === 503 || status === 504) return { kind: 'busy' };
  return { kind: 'refused' };
}

/**
 * @typedef {object} PendingAnswer a found answer kept until the server has answered it
 * @property {import('./challenge.js').StoredChallenge} challenge
 * @property {{nonce: number, hashes: number, elapsedMs: number, workers: number, deviceClass: string}} found
 * @property {number | null} ticket
 */

/**
 * Whether a stored value is an answer still worth sending: well formed and
 * its challenge not yet expired.
 *
 * @param {unknown} value
 * @param {number} nowSeconds this browser's clock, unix seconds
 * @returns {value is PendingAnswer}
 */
export function isPendingAnswer(value, nowSeconds) {
  if (!value || typeof value !== 'object') return false;
  const { challenge, found, ticket } = /** @type {Record<string, any>} */ (value);
  return isChallenge(challenge) && secondsLeft(challenge, nowSeconds) > 0
    && Boolean(found) && typeof found === 'object'
    && Number.isSafeInteger(found.nonce) && found.nonce >= 0
    && Number.isFinite(found.hashes) && Number.isFinite(found.elapsedMs)
    && Number.isSafeInteger(found.workers) && typeof found.deviceClass === 'string'
    && (ticket === null || (Number.isSafeInteger(ticket) && ticket >= 0));
}
