// @ts-check
// One tab solves at a time. Several tabs of a blocked site opened at once
// would otherwise each run a full worker pool on the same cores, and each
// pay for a pass the first one already earns for the whole browser (the
// token is a cookie). The Web Locks API gives the turn; the tab that gets a
// token notes when, so the tabs that waited for it continue instead of
// solving again. No DOM access (see tests/tabs.test.mjs).

/** The Web Lock held while a tab fetches, solves and submits a challenge. */
export const LOCK_NAME = 'powgate.solve';

/**
 * Runs `work` once no other tab of this origin is running it. `onWaiting`
 * is called first if another tab holds the turn. Without the Web Locks API
 * (old browsers, plain http on some) every tab just runs.
 *
 * @template T
 * @param {{request: LockManager['request']} | undefined} locks navigator.locks
 * @param {() => Promise<T>} work
 * @param {() => void} onWaiting
 * @returns {Promise<T>}
 */
export async function oneTabAtATime(locks, work, onWaiting) {
  if (!locks) return work();
  const notNow = Symbol('lock held elsewhere');
  /** @type {T | symbol} */
  const first = await locks.request(LOCK_NAME, { ifAvailable: true }, (lock) => (lock ? work() : notNow));
  if (first !== notNow) return /** @type {T} */ (first);
  onWaiting();
  return locks.request(LOCK_NAME, () => work());
}

/**
 * Whether another tab got a pass while this one waited: its note (the time
 * in ms it got a token, see `solvedAtKey`) is later than when this tab
 * started waiting. A note from before cannot be trusted to still hold (the
 * pass may be used up), so it never is.
 *
 * @param {unknown} noted the stored time, as stored (a string) or null
 * @param {number | null} waitingSinceMs when this tab began to wait; null if it never did
 * @returns {boolean}
 */
export function solvedWhileWaiting(noted, waitingSinceMs) {
  if (waitingSinceMs === null) return false;
  const at = Number(noted);
  return Number.isFinite(at) && at >= waitingSinceMs;
}

/**
 * Where a tab that did not solve goes after another tab did: its own
 * `?redir=` when that is on this very origin (a subset of the server's
 * redirect rule, which this tab has not asked); else null, and it stays.
 *
 * @param {string | null} redir
 * @param {string} pageHref location.href
 * @returns {string | null}
 */
export function continueTarget(redir, pageHref) {
  if (!redir || /[\\\u0000-\u001f]/.test(redir)) return null;
  try {
    const page = new URL(pageHref);
    const target = new URL(redir, page);
    return target.origin === page.origin ? target.href : null;
  } catch {
    return null;
  }
}
