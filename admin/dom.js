// @ts-check
// DOM helpers every admin panel uses: building elements, field errors,
// buttons that stay disabled while their request runs, the tables that
// collapse on narrow screens, and the confirmation dialog. No state of
// their own.

/**
 * An element with a class, text, attributes and children.
 *
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{cls?: string, text?: string, attrs?: Record<string, string | number>}} [props]
 * @param {Array<Node | string>} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function make(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}

/**
 * The element with `id` inside `root`; the panels' markup is index.html's,
 * so a missing one is a bug reported at once.
 *
 * @template {Element} [E=HTMLElement]
 * @param {ParentNode} root
 * @param {string} id
 * @returns {E}
 */
export function byId(root, id) {
  const el = root.querySelector(`#${CSS.escape(id)}`);
  if (!el) throw new Error(`no #${id} in this panel`);
  return /** @type {E} */ (/** @type {unknown} */ (el));
}

/**
 * Shows `message` under a field and marks it invalid; '' clears both.
 *
 * @param {HTMLInputElement} input
 * @param {Element} errorEl
 * @param {string} message
 */
export function setFieldError(input, errorEl, message) {
  errorEl.textContent = message || '';
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

/**
 * Runs `work` with `buttons` disabled, so a double click sends one request.
 * `restore` then re-applies the panel's own rules for buttons that are not
 * always enabled.
 *
 * @template T
 * @param {Array<HTMLButtonElement | null>} buttons
 * @param {() => Promise<T>} work
 * @param {() => void} [restore]
 * @returns {Promise<T>}
 */
export async function busy(buttons, work, restore) {
  const list = buttons.filter((b) => b !== null);
  for (const b of list) b.disabled = true;
  try {
    return await work();
  } finally {
    for (const b of list) b.disabled = false;
    if (restore) restore();
  }
}

/**
 * Gives the rows of a table that collapses on narrow screens (class
 * "collapse") the explicit roles that keep it a table for screen readers
 * once CSS changes its display, and a data-label per cell, taken from the
 * column header, which the collapsed layout shows before the value.
 *
 * @param {HTMLTableSectionElement} tbody
 */
export function labelCollapsedRows(tbody) {
  const table = tbody.closest('table');
  const headers = table
    ? [...table.querySelectorAll('thead th')].map((th) => (th.textContent ?? '').trim())
    : [];
  for (const tr of tbody.rows) {
    tr.setAttribute('role', 'row');
    [...tr.cells].forEach((cell, i) => {
      cell.setAttribute('role', cell.tagName === 'TH' ? 'rowheader' : 'cell');
      // A cell spanning the row (an empty-table message) and the unlabelled
      // actions column get no label.
      if (cell.colSpan === 1 && headers[i] && headers[i] !== 'Actions') {
        cell.dataset.label = headers[i];
        // One box for the value, so the collapsed grid keeps it in one column.
        const value = document.createElement('div');
        value.append(...cell.childNodes);
        cell.append(value);
      }
    });
  }
}

/**
 * A table box that scrolls sideways gets a tab stop, so keyboard users can
 * scroll it; one that fits does not, to keep the tab order short. A box
 * marked data-focus-parking keeps tabindex -1 either way: focus is parked
 * there after its rows are redrawn.
 */
export function updateScrollStops() {
  for (const box of document.querySelectorAll('.table-wrap')) {
    if (!(box instanceof HTMLElement) || box.offsetParent === null) continue; // hidden: measure it when shown
    if (box.scrollWidth > box.clientWidth + 1) box.tabIndex = 0;
    else if ('focusParking' in box.dataset) box.tabIndex = -1;
    else box.removeAttribute('tabindex');
  }
}

/**
 * Asks before something that cannot be undone, in the page's #confirm
 * dialog; resolves true to go ahead. Cancel has focus first.
 *
 * @param {{title: string, message: string, ok: string}} question
 * @returns {Promise<boolean>}
 */
export function confirmAction({ title, message, ok }) {
  const dialog = /** @type {HTMLDialogElement} */ (byId(document, 'confirm'));
  if (typeof dialog.showModal !== 'function') {
    // Very old browsers: the built-in prompt does the same job.
    return Promise.resolve(window.confirm(`${title}\n\n${message}`));
  }
  const opener = document.activeElement;
  byId(dialog, 'confirm-title').textContent = title;
  byId(dialog, 'confirm-message').textContent = message;
  byId(dialog, 'confirm-ok').textContent = ok;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener instanceof HTMLElement && document.contains(opener)) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
  });
}

/**
 * Tells the rest of the page (app.js, which passes it on to the panels
 * that care) that something happened in a panel: `powgate:<name>` on
 * `root`, bubbling, with `detail`.
 *
 * @param {Element} root
 * @param {string} name
 * @param {unknown} [detail]
 */
export function announce(root, name, detail) {
  root.dispatchEvent(new CustomEvent(`powgate:${name}`, { bubbles: true, detail }));
}
