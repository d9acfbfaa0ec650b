// @ts-check
// Talking to powgate's JSON API, for the challenge page and the admin page
// alike: one request with the options both need, the body read as JSON
// when it is JSON, the server's {error, message} read out of it, and the
// Retry-After header. No DOM access here, so Node's test runner loads this
// module as it is (see tests/http.test.mjs).

/**
 * @typedef {object} JsonAnswer
 * @property {number} status the HTTP status
 * @property {unknown} data the parsed body; null when it is empty or not
 *   JSON (a proxy's error page, say), where the status still counts
 * @property {Response} res the response itself, for its headers
 */

/**
 * One JSON request: a POST with the JSON body when `body` is given, else
 * the method (GET by default). Cookies go along (same origin only) and
 * nothing is cached: every answer here is about now.
 *
 * Rejects only when the network fails; every HTTP status resolves.
 *
 * @param {string} url
 * @param {{method?: string, body?: unknown, fetch?: typeof fetch}} [options]
 *   `fetch` for tests
 * @returns {Promise<JsonAnswer>}
 */
export async function requestJson(url, { method, body, fetch: fetchFn = globalThis.fetch } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  /** @type {RequestInit} */
  const init = {
    method: method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
  };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetchFn(url, init);
  return { status: res.status, data: await readJson(res), res };
}

/**
 * The body as JSON, or null when there is none (204) or it is not JSON.
 *
 * @param {Response} res
 * @returns {Promise<unknown>}
 */
export async function readJson(res) {
  if (res.status === 204) return null;
  try {
    return await res.json();
  } catch {
    return null;
  }
}

/**
 * The server's `message` from an error body `{error, message}`, trimmed;
 * '' when there is none. It is written for people, so it is shown as it is.
 *
 * @param {unknown} data the parsed body
 * @returns {string}
 */
export function errorMessage(data) {
  if (!data || typeof data !== 'object') return '';
  const { message } = /** @type {{message?: unknown}} */ (data);
  return typeof message === 'string' ? message.trim() : '';
}

/**
 * Seconds to wait from a Retry-After header, which may be a number of
 * seconds or an HTTP date: at least 1 and at most `max`; `fallback` when it
 * is missing or unreadable.
 *
 * @param {string | null | undefined} header
 * @param {number} nowMs Date.now()
 * @param {number} [fallback]
 * @param {number} [max]
 * @returns {number}
 */
export function retryAfterSeconds(header, nowMs, fallback = 30, max = Infinity) {
  const raw = header == null ? '' : String(header).trim();
  let seconds = fallback;
  if (/^\d+$/.test(raw)) {
    seconds = Number(raw);
  } else if (raw !== '') {
    const at = Date.parse(raw);
    if (Number.isFinite(at)) seconds = Math.ceil((at - nowMs) / 1000);
  }
  return Math.min(max, Math.max(1, seconds));
}
