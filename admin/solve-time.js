// @ts-check
// The expected-solve-time panel: per device class, how long a challenge
// takes at the current difficulty and timeout, or, while the operator types
// a new difficulty or timeout (announced by their panels as
// `powgate:preview`), at those values before they are applied.

import { formatDuration, formatHashRate, formatInt, formatMinutes } from '../shared/format.js';
import { byId, labelCollapsedRows, make, updateScrollStops } from './dom.js';
import { parseWholeNumber, previewDeviceClasses } from './logic.js';

/** @typedef {import('../shared/wire.js').AdminSettings} AdminSettings */
/** @typedef {import('../shared/wire.js').AdminStats} AdminStats */
/** @typedef {import('../shared/wire.js').ClassEstimate} ClassEstimate */
/**
 * The stats answer with the non-browser clients kept apart from
 * `device_classes` (added for issue 19; the shared wire types do not name
 * it yet).
 *
 * @typedef {AdminStats & {other_clients?: ClassEstimate}} StatsWithOthers
 */

/**
 * The line on command-line and other non-browser clients, which the table
 * leaves out: a CLI on a server hashes far faster than a visitor's browser.
 *
 * @param {ClassEstimate | undefined} other
 */
function otherClientsText(other) {
  const note = 'Solves by powgate solve, scripts and other clients that are not a browser are not counted above.';
  if (!other || other.source !== 'measured') {
    const seen = other && other.samples > 0 ? ` (${formatInt(other.samples)} ${other.samples === 1 ? 'network' : 'networks'} so far)` : '';
    return `${note} Too few of them in the last 24 hours to measure their speed${seen}.`;
  }
  return `${note} From ${formatInt(other.samples)} networks in the last 24 hours, they hash at ${formatHashRate(other.hash_rate)}: typical ${formatDuration(other.mean_seconds)}, 95 in 100 within ${formatDuration(other.p95_seconds)}.`;
}

/**
 * @param {HTMLElement} root the #solve-time-card section
 * @param {import('./api.js').Api} _api unused: the panel draws what the
 *   settings and stats answers say
 */
export function mount(root, _api) {
  const caption = byId(root, 'solve-time-caption');
  const rowsBox = /** @type {HTMLTableSectionElement} */ (byId(root, 'device-rows'));
  const warning = byId(root, 'solve-time-warning');
  const others = byId(root, 'other-clients');

  /** @type {AdminSettings | null} */
  let settings = null;
  /** @type {StatsWithOthers | null} */
  let stats = null;
  /** What is typed and not yet applied, by setting name. @type {Record<string, string>} */
  const typed = { difficulty: '', challenge_timeout: '' };

  /**
   * The difficulty and timeout being previewed: a valid value typed and not
   * yet applied. Null when the server's own numbers apply.
   *
   * @param {AdminSettings} s
   */
  function previewInputs(s) {
    const d = parseWholeNumber(typed.difficulty, s.ranges?.difficulty ?? [1, 1e9]);
    const t = parseWholeNumber(typed.challenge_timeout, s.ranges?.challenge_timeout ?? [1, 1440]);
    const difficulty = 'value' in d ? d.value : s.settings.difficulty;
    const timeoutMinutes = 'value' in t ? t.value : s.settings.challenge_timeout;
    if (difficulty === s.settings.difficulty && timeoutMinutes === s.settings.challenge_timeout) return null;
    return { difficulty, timeoutMinutes };
  }

  function render() {
    const s = settings;
    if (!s || !stats) return;
    const preview = previewInputs(s);
    /** @type {import('./logic.js').ShownClass[]} */
    let classes = Array.isArray(stats.device_classes) ? stats.device_classes : [];
    let timeoutSeconds = Number.isFinite(stats.challenge_timeout_seconds)
      ? stats.challenge_timeout_seconds
      : s.settings.challenge_timeout * 60;
    let difficulty = Number.isFinite(stats.difficulty) ? stats.difficulty : s.settings.difficulty;
    if (preview) {
      difficulty = preview.difficulty;
      timeoutSeconds = preview.timeoutMinutes * 60;
      classes = previewDeviceClasses(Array.isArray(stats.device_classes) ? stats.device_classes : [], difficulty, timeoutSeconds);
      caption.textContent = `Preview, not applied yet: difficulty ${formatInt(difficulty)} and a ${formatMinutes(preview.timeoutMinutes)} challenge timeout.`;
    } else {
      caption.textContent = `At the current difficulty of ${formatInt(difficulty)} and the ${formatMinutes(timeoutSeconds / 60)} challenge timeout.`;
    }

    const rows = classes.map((c) => {
      const source = c.source === 'measured'
        ? `measured from ${formatInt(c.samples)} ${c.samples === 1 ? 'solve' : 'solves'}`
        : 'reference value (too few real solves)';
      const timeout = c.exceeds_timeout
        ? make('span', { cls: 'state state-warn', text: '⚠ more than 5 in 100 past the timeout' })
        : make('span', { cls: 'state state-ok', text: '✓ fits' });
      return make('tr', {}, [
        make('th', { attrs: { scope: 'row' }, text: c.label || c.class }),
        make('td', {}, [formatHashRate(c.hash_rate), make('span', { cls: 'sub', text: source })]),
        make('td', { cls: 'num', text: formatDuration(c.mean_seconds) }),
        make('td', { cls: 'num', text: formatDuration(c.p95_seconds) }),
        make('td', {}, [timeout]),
      ]);
    });
    if (!rows.length) {
      rows.push(make('tr', {}, [make('td', { cls: 'empty', attrs: { colspan: 5 }, text: 'The server reported no device classes.' })]));
    }
    rowsBox.replaceChildren(...rows);
    labelCollapsedRows(rowsBox);
    updateScrollStops();

    others.textContent = otherClientsText(stats.other_clients);

    const slow = classes.filter((c) => c.exceeds_timeout);
    if (slow.length) {
      const names = slow.map((c) => c.label || c.class).join(', ');
      warning.textContent = `Warning: on ${names}, more than 1 visitor in 20 would need longer than the ${formatMinutes(timeoutSeconds / 60)} challenge timeout, so their challenge expires before they finish. Lower the difficulty or raise the challenge timeout.`;
      warning.hidden = false;
    } else {
      warning.textContent = '';
      warning.hidden = true;
    }
  }

  return {
    /** @param {AdminSettings} s */
    showSettings(s) {
      settings = s;
      render();
    },
    /** @param {StatsWithOthers} st */
    showStats(st) {
      stats = st;
      render();
    },
    /**
     * What the operator typed into a setting's field and has not applied.
     *
     * @param {Record<string, string>} values by setting name
     */
    preview(values) {
      for (const [name, text] of Object.entries(values)) {
        if (name in typed) typed[name] = text;
      }
      render();
    },
    clear() {
      settings = null;
      stats = null;
    },
  };
}
