// @ts-check
// What the challenge page says to visitors, in one keyed table, so every
// sentence is found (and, later, translated) in one place. English only for
// now. Server error codes are turned into visitor wording here too: the
// server's own `message` is written for developers. No DOM access (see
// tests/messages.test.mjs).

/** @param {number} n */
const plural = (n) => (n === 1 ? '' : 's');

export const MESSAGES = Object.freeze({
  /** The lead, naming the site (its `site_name`, else its host). */
  lead: (/** @type {string} */ site) =>
    `${site} checks that visitors are people; this keeps it fast for everyone. `
    + 'Your browser does a calculation: on a typical phone or laptop about a minute, '
    + 'sometimes two or three. Then you can continue.',
  contact: (/** @type {string} */ site) => `Trouble getting through? Contact ${site}.`,

  starting: 'Starting…',
  fetchingChallenge: 'Getting ready…',
  calculating: 'Calculating…',
  calculatingResumed: 'Calculating… (continuing the check you started earlier)',
  calculatingRefresh: 'Renewing your pass, at half the usual work.',
  paused: 'Paused. Press Resume to carry on.',
  workerStopped: (/** @type {number} */ remaining) =>
    `Part of the calculation stopped; carrying on with ${remaining} worker${plural(remaining)}.`,
  workersWhy: (/** @type {string} */ explanation) => `Started ${explanation}`,
  busy: (/** @type {number} */ seconds) => `The site is busy. Trying again in ${seconds} s.`,

  answerSending: 'Done calculating; checking the answer…',
  answerResumed: 'Sending the answer you found earlier…',
  answerWaitingForNetwork: (/** @type {number} */ seconds) =>
    `Your answer is ready, but the server cannot be reached. Trying again in ${seconds} s (or as soon as you are back online).`,
  renewExpired: 'The check took longer than its time limit, so a new one has started.',
  renewSpent: 'That check was already used, so a new one has started.',
  renewAddress: 'Your network address changed (for example from Wi-Fi to mobile data), so a new check has started.',

  waitingForOtherTab: 'This check is already running in another tab of this browser. This tab will continue when it is done.',
  doneInOtherTab: 'Another tab of this browser finished the check.',
  doneInOtherTabStay: 'Another tab of this browser finished the check. You can now go back to the page you wanted.',

  doneTitle: 'You can continue',
  doneRefreshedTitle: 'Your pass has been renewed',
  takingYouBack: 'Taking you back in a moment…',
  goBackYourself: 'This browser will now be let through. Go back to the page you wanted.',
  redirectRefused: (/** @type {string} */ address) =>
    `The return address ${address} is not on this site, so you stay here.`,
  passValidUntil: (/** @type {string} */ when) => `Your pass is valid until ${when}.`,
  copied: 'Copied.',
  copySelected: 'Selected: press Ctrl+C (⌘C on a Mac) to copy.',

  stopped: 'Stopped.',
  unreachable: 'Could not reach the site. Check your connection and try again.',
  badChallenge: 'The site sent something this page does not understand. Please try again later.',
  keptRefusing: 'The site kept refusing fresh answers. Please try again later.',
  pageBug: 'Something went wrong on this page. Please try again.',
  noWorkers: 'This browser cannot do the calculation: it needs Web Workers and WebAssembly. '
    + 'See "Other ways to get through" below.',
  workersFailed: (/** @type {string} */ why) => `${why} See "Other ways to get through" below.`,
});

/**
 * Visitor wording for each error code of server/src/error.rs (a test checks
 * that none is missing). Those a page can meet say what to do; the rest
 * would be a bug in the page or a misconfigured site, and say so plainly.
 *
 * @type {Readonly<Record<string, string>>}
 */
export const ERROR_TEXT = Object.freeze({
  bad_request: 'The site could not read what this page sent. Please try again.',
  unprocessable_entity: 'The site could not read what this page sent. Please try again.',
  unsupported_media_type: 'The site could not read what this page sent. Please try again.',
  too_large: 'The site could not read what this page sent. Please try again.',
  method_not_allowed: 'The site could not read what this page sent. Please try again.',
  not_found: 'This page is not set up correctly on this site. Please tell the site\'s operator.',
  unauthorized: 'Your pass is not valid any more. Please try again to get a new one.',
  forbidden: 'The site refused this request. If it keeps happening, please tell the site\'s operator.',
  bad_ticket: 'The answer was incomplete. Please try again.',
  wrong_answer: 'The site did not accept the answer. Please try again.',
  wrong_ip: 'Your network address changed during the check. Please try again.',
  already_spent: 'That check was already used. Please try again.',
  expired: 'The check took longer than its time limit. Please try again.',
  timeout: 'The site took too long to answer. Please try again.',
  rate_limited: 'Too many checks from your network right now. Please wait a minute and try again.',
  queued: 'The site is very busy. Please wait a minute and try again.',
  store_unavailable: 'The site is having trouble right now. Please wait a minute and try again.',
  upstream_unavailable: 'The site behind this check cannot be reached right now. Please try again shortly.',
  upstream_timeout: 'The site behind this check did not answer in time. Please try again shortly.',
  internal: 'The site had a problem. Please try again later.',
});

/**
 * What to tell the visitor about an error answer: the wording of its code,
 * else one by HTTP status (a proxy's page has no code).
 *
 * @param {number} status
 * @param {unknown} data the parsed body, or null
 * @returns {string}
 */
export function visitorError(status, data) {
  const code = data && typeof data === 'object' ? /** @type {{error?: unknown}} */ (data).error : undefined;
  if (typeof code === 'string' && Object.hasOwn(ERROR_TEXT, code)) return ERROR_TEXT[code];
  if (status === 429 || status === 503) return ERROR_TEXT.queued;
  if (status === 502 || status === 504) return ERROR_TEXT.upstream_unavailable;
  if (status >= 500) return ERROR_TEXT.internal;
  return ERROR_TEXT.forbidden;
}
