// @ts-check
// The admin API as the panels call it: `api(method, path, body)` resolves
// with the parsed answer or throws an ApiError whose message is written for
// the operator. Every URL is relative to the page, which may be mounted
// under a prefix such as /.powgate/admin/; the API is a sibling of the
// page's directory.

import { requestJson, retryAfterSeconds } from '../shared/http.js';
import { apiErrorMessage } from './logic.js';

/** A refused or failed API call, with a message written for the operator. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, field?: string | null, retryAfter?: number | null}} [details]
   *   `status` 0: the server was not reached; `field`: the request field at
   *   fault; `retryAfter`: seconds, for a 429
   */
  constructor(message, { status = 0, field = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

/**
 * One API call. Resolves with the parsed JSON body (null for 204).
 *
 * @callback Api
 * @param {string} method
 * @param {string} path below api/admin/, with its query
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>}
 */

/**
 * The admin API below `base`. A 401 outside the login and session calls
 * means the session has ended: `onSessionEnd` runs, and the call still
 * throws (see isSessionEnd).
 *
 * @param {string} base
 * @param {{onSessionEnd: () => void}} hooks
 * @returns {Api}
 */
export function createApi(base, { onSessionEnd }) {
  return async (method, path, body) => {
    let r;
    try {
      r = await requestJson(base + path, { method, body });
    } catch {
      throw new ApiError('Could not reach the server. Check the connection and try again.');
    }
    const { status, data, res } = r;
    if (res.ok) return data;
    const field = data && typeof data === 'object'
      ? /** @type {{field?: unknown}} */ (data).field
      : undefined;
    const err = new ApiError(apiErrorMessage(status, data), {
      status,
      field: typeof field === 'string' ? field : null,
      retryAfter: status === 429 ? retryAfterSeconds(res.headers.get('Retry-After'), Date.now()) : null,
    });
    if (status === 401 && path !== 'login' && path !== 'session') onSessionEnd();
    throw err;
  };
}

/**
 * For handlers: a 401 has already switched the view, so stay quiet about it.
 *
 * @param {unknown} err
 */
export function isSessionEnd(err) {
  return err instanceof ApiError && err.status === 401;
}

/**
 * The operator-facing text of anything a handler caught.
 *
 * @param {unknown} err
 * @returns {string}
 */
export function messageOf(err) {
  return err instanceof Error ? err.message : String(err);
}
