// @ts-check
// The sign-in panel: POSTs the admin key, waits out a 429 as the server
// asks, and announces `powgate:signed-in` when the key is right.

import { formatWait } from '../shared/format.js';
import { ApiError, messageOf } from './api.js';
import { announce, byId } from './dom.js';

/**
 * @param {HTMLElement} root the #login-view section
 * @param {import('./api.js').Api} api
 */
export function mount(root, api) {
  const form = byId(root, 'login-form');
  const key = /** @type {HTMLInputElement} */ (byId(root, 'key'));
  const login = /** @type {HTMLButtonElement} */ (byId(root, 'login'));
  const error = byId(root, 'login-error');

  /** Date.now() until which the server refuses further attempts. */
  let lockedUntil = 0;

  /** @param {number} seconds */
  function lock(seconds) {
    lockedUntil = Date.now() + seconds * 1000;
    login.disabled = true;
    setTimeout(() => {
      if (Date.now() >= lockedUntil) login.disabled = false;
    }, seconds * 1000 + 50);
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (Date.now() < lockedUntil) return;
    if (!key.value) {
      error.textContent = 'Enter the admin key.';
      key.focus();
      return;
    }
    error.textContent = '';
    login.disabled = true;
    try {
      await api('POST', 'login', { key: key.value });
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      if (status === 401) {
        error.textContent = 'That key is not right.';
      } else if (err instanceof ApiError && status === 429) {
        const wait = err.retryAfter ?? 30;
        error.textContent = `Too many attempts. Try again in ${formatWait(wait)}.`;
        lock(wait);
        return;
      } else {
        error.textContent = messageOf(err);
      }
      key.select();
      key.focus();
      return;
    } finally {
      if (Date.now() >= lockedUntil) login.disabled = false;
    }
    key.value = '';
    announce(root, 'signed-in');
  });

  return {
    /**
     * Readies the form, with `message` (why it is shown) under it.
     *
     * @param {string} message
     */
    show(message) {
      error.textContent = message;
      key.value = '';
      key.focus();
    },
    clearMessage() {
      error.textContent = '';
    },
  };
}
