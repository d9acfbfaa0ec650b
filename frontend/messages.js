// @ts-check
// Which of the page's words to say when: server error codes turned into
// visitor wording (the server's own `message` is written for developers),
// and the sentences that depend on a number. The words themselves are in
// locales/<tag>.json, one catalog per language (see i18n.js). No DOM access
// (see tests/messages.test.mjs).

/** @typedef {import('./i18n.js').Translator['t']} T */

/**
 * The catalog key of the visitor wording for each error code of
 * server/src/error.rs (a test checks that none is missing). Those a page can
 * meet say what to do; the rest would be a bug in the page or a
 * misconfigured site, and say so plainly.
 *
 * @type {Readonly<Record<string, string>>}
 */
export const ERROR_KEY = Object.freeze({
  bad_request: 'errorUnreadable',
  unprocessable_entity: 'errorUnreadable',
  unsupported_media_type: 'errorUnreadable',
  too_large: 'errorUnreadable',
  method_not_allowed: 'errorUnreadable',
  not_found: 'errorNotSetUp',
  unauthorized: 'errorUnauthorized',
  forbidden: 'errorForbidden',
  bad_ticket: 'errorBadTicket',
  wrong_answer: 'errorWrongAnswer',
  wrong_ip: 'errorWrongIp',
  already_spent: 'errorAlreadySpent',
  expired: 'errorExpired',
  timeout: 'errorTimeout',
  rate_limited: 'errorRateLimited',
  queued: 'errorBusy',
  store_unavailable: 'errorStoreUnavailable',
  upstream_unavailable: 'errorUpstreamUnavailable',
  upstream_timeout: 'errorUpstreamTimeout',
  internal: 'errorInternal',
});

/**
 * The catalog key of what to tell the visitor about an error answer: the
 * wording of its code, else one by HTTP status (a proxy's page has no code).
 *
 * @param {number} status
 * @param {unknown} data the parsed body, or null
 * @returns {string}
 */
export function visitorErrorKey(status, data) {
  const code = data && typeof data === 'object' ? /** @type {{error?: unknown}} */ (data).error : undefined;
  if (typeof code === 'string' && Object.hasOwn(ERROR_KEY, code)) return ERROR_KEY[code];
  if (status === 429 || status === 503) return ERROR_KEY.queued;
  if (status === 502 || status === 504) return ERROR_KEY.upstream_unavailable;
  if (status >= 500) return ERROR_KEY.internal;
  return ERROR_KEY.forbidden;
}

/**
 * Why this many workers run, from describeCaps (caps.js): the limit that
 * decided, with its figures.
 *
 * @param {T} t
 * @param {{workers: number, limit: string, limitValue: number, cores: number, budgetKiB: number, memoryKiB: number}} caps
 * @returns {string}
 */
export function workersWhyText(t, caps) {
  /** @param {number} kib */
  const mib = (kib) => `${Math.round(kib / 1024)} MiB`;
  const need = mib(caps.memoryKiB);
  const budget = mib(caps.budgetKiB);
  if (caps.limitValue < 1) return t('workersAtLeastOne', { need, budget });
  const count = caps.workers;
  switch (caps.limit) {
    case 'memory': return t('workersByMemory', { count, need, budget });
    case 'webkit': return t('workersByWebkit', { count, max: caps.limitValue });
    case 'max': return t('workersByMax', { count, max: caps.limitValue });
    default: return t('workersByCores', { count, cores: caps.cores });
  }
}
