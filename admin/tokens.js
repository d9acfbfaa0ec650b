// @ts-check
// The tokens panel: one page of GET /api/admin/tokens at a time, revoking
// one token, and expiring or revoking them in bulk. A change is announced
// as `powgate:changed`, so the activity figures are read again.

import { formatInt } from '../shared/format.js';
import { ApiError, isSessionEnd, messageOf } from './api.js';
import { announce, busy, byId, confirmAction, labelCollapsedRows, make, setFieldError, updateScrollStops } from './dom.js';
import { formatShortDateTime, paging, relativeTime } from './logic.js';

/** @typedef {import('../shared/wire.js').AdminToken} AdminToken */
/** @typedef {import('../shared/wire.js').AdminTokenPage} AdminTokenPage */
/** @typedef {ReturnType<typeof paging>} Paging */

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * @param {number} unix
 * @param {{past?: boolean}} [options] past: the time has happened (see relativeTime)
 */
function timeCell(unix, options) {
  const time = make('time', { text: formatShortDateTime(unix) });
  if (Number.isFinite(unix)) time.dateTime = new Date(unix * 1000).toISOString();
  return make('td', {}, [time, make('span', { cls: 'sub', text: relativeTime(unix, nowSeconds(), options) })]);
}

/**
 * Requests used against the budget (0 = no budget), and the recent rate.
 *
 * @param {AdminToken} t
 */
function usageCell(t) {
  const used = formatInt(t.requests_used);
  const budget = t.requests_total > 0 ? ` / ${formatInt(t.requests_total)}` : '';
  return make('td', { cls: 'num' }, [
    make('span', { text: `${used}${budget}` }),
    make('span', { cls: 'sub', text: `${formatInt(t.requests_per_minute)}/min now` }),
  ]);
}

/** @param {AdminToken} t */
function tokenRow(t) {
  const ips = Array.isArray(t.ips) ? t.ips : [];
  // The token's number, which the revoke endpoint takes.
  const id = String(t.id);
  const actions = make('td');
  // Expired tokens can still be refreshed until purged, so they can be revoked too.
  if (t.status !== 'revoked') {
    actions.append(make('button', {
      cls: 'danger-outline',
      text: 'Revoke',
      attrs: { type: 'button', 'data-revoke': id, 'aria-label': `Revoke token ${id}` },
    }));
  }
  return make('tr', {}, [
    make('th', { attrs: { scope: 'row' } }, [make('code', { text: id })]),
    timeCell(t.created_at, { past: true }),
    timeCell(t.expires_at),
    make('td', {}, [ips.length
      ? make('ul', { cls: 'ips' }, ips.map((ip) => make('li', {}, [make('code', { text: ip })])))
      : make('span', { cls: 'sub', text: 'not used yet' })]),
    make('td', {}, [make('span', { cls: `state state-${t.status}`, text: t.status })]),
    make('td', { cls: 'num', text: formatInt(t.refresh_count) }),
    usageCell(t),
    actions,
  ]);
}

/**
 * @param {HTMLElement} root the #tokens-card section
 * @param {import('./api.js').Api} api
 */
export function mount(root, api) {
  const wrap = byId(root, 'tokens-wrap');
  const rowsBox = /** @type {HTMLTableSectionElement} */ (byId(root, 'token-rows'));
  const prev = /** @type {HTMLButtonElement} */ (byId(root, 'tokens-prev'));
  const next = /** @type {HTMLButtonElement} */ (byId(root, 'tokens-next'));
  const summary = byId(root, 'tokens-summary');
  const perPageSelect = /** @type {HTMLSelectElement} */ (byId(root, 'tokens-per-page'));
  const refreshButton = byId(root, 'tokens-refresh');
  const expireAll = /** @type {HTMLButtonElement} */ (byId(root, 'tokens-expire-all'));
  const revokeAll = /** @type {HTMLButtonElement} */ (byId(root, 'tokens-revoke-all'));
  const networkInput = /** @type {HTMLInputElement} */ (byId(root, 'tokens-network'));
  const revokeNetwork = /** @type {HTMLButtonElement} */ (byId(root, 'tokens-revoke-network'));
  const status = byId(root, 'tokens-status');
  const searchForm = byId(root, 'token-search');
  const searchInput = /** @type {HTMLInputElement} */ (byId(root, 'token-search-input'));
  const searchFind = /** @type {HTMLButtonElement} */ (byId(root, 'token-search-find'));
  const searchClear = /** @type {HTMLButtonElement} */ (byId(root, 'token-search-clear'));
  const searchError = byId(root, 'token-search-error');

  let page = 1;
  let perPage = Number(perPageSelect.value) || 25;
  /** The last paging facts, so re-enabling buttons keeps the pager's rules. @type {Paging | null} */
  let lastPaging = null;

  function renderPager() {
    prev.disabled = !lastPaging || !lastPaging.hasPrev;
    next.disabled = !lastPaging || !lastPaging.hasNext;
  }

  /** @returns {Promise<Paging>} */
  async function load() {
    /** @type {AdminTokenPage} */
    const data = await api('GET', `tokens?page=${page}&per_page=${perPage}`);
    const tokens = Array.isArray(data.tokens) ? data.tokens : [];
    const total = Number.isFinite(data.total) ? data.total : tokens.length;
    const p = paging(data.page ?? page, data.per_page ?? perPage, total, tokens.length);
    // A page emptied by revocations elsewhere: step back to the last real one.
    if (!tokens.length && total > 0 && p.page > p.pages) {
      page = p.pages;
      return load();
    }
    page = p.page;
    lastPaging = p;
    searchClear.hidden = true;
    rowsBox.replaceChildren(...(tokens.length
      ? tokens.map(tokenRow)
      : [make('tr', {}, [make('td', { cls: 'empty', attrs: { colspan: 8 }, text: 'No tokens.' })])]));
    labelCollapsedRows(rowsBox);
    updateScrollStops();
    summary.textContent = p.summary;
    renderPager();
    return p;
  }

  async function reload() {
    try {
      await load();
    } catch (err) {
      if (!isSessionEnd(err)) status.textContent = `Could not load the tokens: ${messageOf(err)}`;
    }
  }

  /** @param {number} delta */
  async function goToPage(delta) {
    const before = page;
    page = Math.max(1, before + delta);
    status.textContent = '';
    try {
      await load();
    } catch (err) {
      page = before;
      if (!isSessionEnd(err)) status.textContent = `Could not load that page: ${messageOf(err)}`;
    }
    // Keep focus on the pager button if it is still usable, else on the table.
    const button = delta < 0 ? prev : next;
    if (button.disabled) wrap.focus();
  }

  rowsBox.addEventListener('click', async (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-revoke]') : null;
    if (!(button instanceof HTMLButtonElement)) return;
    const id = button.dataset.revoke ?? '';
    const ok = await confirmAction({
      title: `Revoke token ${id}?`,
      message: 'The browser holding it will have to solve a new challenge on its next request. This cannot be undone.',
      ok: 'Revoke',
    });
    if (!ok) return;
    button.disabled = true;
    try {
      await api('POST', `tokens/${encodeURIComponent(id)}/revoke`);
      status.textContent = `Token ${id} revoked.`;
    } catch (err) {
      if (isSessionEnd(err)) return;
      status.textContent = err instanceof ApiError && err.status === 404
        ? `Token ${id} no longer exists (it may have been purged).`
        : `Token ${id} was not revoked: ${messageOf(err)}`;
    }
    await reload();
    // The row was redrawn; put focus somewhere stable inside the table.
    wrap.focus();
    announce(root, 'changed');
  });

  expireAll.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: 'Expire all tokens?',
      message: 'Every browser will have to solve a challenge again on its next request (an expired token can be refreshed at half the cost until it is purged). This cannot be undone.',
      ok: 'Expire all',
    });
    if (!ok) return;
    await busy([expireAll], async () => {
      try {
        const r = await api('POST', 'tokens/expire-all');
        const n = r && Number.isFinite(r.expired) ? r.expired : 0;
        status.textContent = `Expired ${formatInt(n)} ${n === 1 ? 'token' : 'tokens'}.`;
      } catch (err) {
        if (!isSessionEnd(err)) status.textContent = `Tokens were not expired: ${messageOf(err)}`;
        return;
      }
      await reload();
      announce(root, 'changed');
    }, renderPager);
  });

  /**
   * Revokes tokens in bulk: all of them, or those used from one network.
   * Unlike expiring, revoked tokens cannot be refreshed.
   *
   * @param {{all: true} | {network: string}} scope
   */
  async function revokeMany(scope) {
    const what = 'network' in scope ? `every token used from ${scope.network}` : 'every token';
    const ok = await confirmAction({
      title: 'Revoke tokens?',
      message: `This revokes ${what}. Revoked tokens cannot be refreshed: their browsers must solve a full challenge again. This cannot be undone.`,
      ok: 'Revoke',
    });
    if (!ok) return;
    await busy([revokeAll, revokeNetwork], async () => {
      try {
        const r = await api('POST', 'tokens/revoke', scope);
        const n = r && Number.isFinite(r.revoked) ? r.revoked : 0;
        status.textContent = `Revoked ${formatInt(n)} ${n === 1 ? 'token' : 'tokens'}.`;
      } catch (err) {
        if (!isSessionEnd(err)) status.textContent = `Tokens were not revoked: ${messageOf(err)}`;
        return;
      }
      await reload();
      announce(root, 'changed');
    }, renderPager);
  }

  // A full token pasted by the operator: its one row, in place of the list.
  searchForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    setFieldError(searchInput, searchError, '');
    const token = searchInput.value.trim();
    if (!token) {
      setFieldError(searchInput, searchError, 'Paste a whole token.');
      searchInput.focus();
      return;
    }
    await busy([searchFind], async () => {
      try {
        /** @type {{token: AdminToken}} */
        const found = await api('POST', 'tokens/find', { token });
        rowsBox.replaceChildren(tokenRow(found.token));
        labelCollapsedRows(rowsBox);
        updateScrollStops();
        lastPaging = null;
        renderPager();
        summary.textContent = `Token ${found.token.id}, found by its value.`;
        searchClear.hidden = false;
        searchInput.value = '';
      } catch (err) {
        if (isSessionEnd(err)) return;
        setFieldError(searchInput, searchError, err instanceof ApiError && err.status === 404
          ? 'No token matches. It may have been purged after expiring, or it belongs to another server.'
          : messageOf(err));
        searchInput.focus();
      }
    });
  });
  searchInput.addEventListener('input', () => setFieldError(searchInput, searchError, ''));
  searchClear.addEventListener('click', async () => {
    await reload();
    searchInput.focus();
  });

  prev.addEventListener('click', () => goToPage(-1));
  next.addEventListener('click', () => goToPage(1));
  refreshButton.addEventListener('click', () => {
    status.textContent = '';
    reload();
  });
  perPageSelect.addEventListener('change', () => {
    perPage = Number(perPageSelect.value) || 25;
    page = 1;
    reload();
  });
  revokeAll.addEventListener('click', () => revokeMany({ all: true }));
  revokeNetwork.addEventListener('click', () => {
    const network = networkInput.value.trim();
    if (!network) {
      status.textContent = 'Enter a network such as 203.0.113.0/24 or 2001:db8::/48.';
      networkInput.focus();
      return;
    }
    revokeMany({ network });
  });

  return {
    /** Loads the current page; failures are shown in the panel. */
    reload,
    /** Forgets the pager's facts (signed out). */
    clear() {
      lastPaging = null;
    },
  };
}
