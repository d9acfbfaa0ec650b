// @ts-check
// The adaptive-difficulty panel: the live pressure, and the answer to "why
// is difficulty N for 203.0.113.0/24" from GET /api/admin/difficulty.
// explainDifficulty and pressureSummary are DOM-free (unit tests in
// tests/adaptive.test.mjs); mount draws the panel into its root.

import { formatHashRate, formatInt, formatMinutes } from '../shared/format.js';

/**
 * @typedef {{ holder: string, score: number, k: number }} HolderScore
 * @typedef {{ challenges_last_30s: number, per_minute: number, baseline_per_minute: number,
 *   j: number, j_max: number, multiplier: number }} Pressure
 * @typedef {{ decided_by: HolderScore | null, threshold: number, half_life_minutes: number,
 *   k: number, k_max: number, multiplier: number }} Network
 * @typedef {{ difficulty: number, hash_rate: number, source: string, timeout_seconds: number }} PhoneCap
 * @typedef {{ ip: string | null, holders: HolderScore[], base: number, pinned: boolean,
 *   network: Network, pressure: Pressure, multiplied: number, phone_cap: PhoneCap | null,
 *   difficulty: number, refresh_difficulty: number }} DifficultyView
 */

/**
 * One line on the pressure: "Pressure ×4: 240 challenges per minute over
 * the last 30 s, normal is 60 (at most ×8)."
 * @param {Pressure} p
 * @param {boolean} pinned
 */
export function pressureSummary(p, pinned) {
  const rate = `${formatInt(p.per_minute)} challenges per minute over the last 30 s, normal is ${formatInt(p.baseline_per_minute)}`;
  if (pinned) return `Pressure off (difficulty pinned): ${rate}.`;
  if (p.j_max === 0) return `Pressure off (ceiling ×1): ${rate}.`;
  return `Pressure ×${formatInt(p.multiplier)}: ${rate} (×2 from twice normal, at most ×${formatInt(2 ** p.j_max)}).`;
}

/**
 * The headline and the reasons for one answer of /api/admin/difficulty.
 * @param {DifficultyView} v
 * @returns {{ headline: string, lines: string[] }}
 */
export function explainDifficulty(v) {
  const who = v.ip ? `for ${v.ip}` : 'for a client with no score';
  const headline = `Difficulty ${formatInt(v.difficulty)} ${who}`;
  const lines = [`Base difficulty ${formatInt(v.base)}.`];
  if (v.pinned) {
    lines.push('Pinned: both multipliers are off, everyone gets the base.');
  } else {
    const n = v.network;
    const d = n.decided_by;
    if (n.k_max === 0) {
      lines.push('Network ×1: the network mechanism is off (ceiling ×1).');
    } else if (!d || d.score < 0.05) {
      lines.push('Network ×1: no recent events from this address or network.');
    } else {
      lines.push(
        `Network ×${formatInt(n.multiplier)}: ${d.holder} scores ${d.score.toFixed(1)}, `
        + `one doubling per ${formatInt(n.threshold)} points (k = ${n.k}, at most ${n.k_max}); `
        + `the score halves every ${formatMinutes(n.half_life_minutes)}.`,
      );
    }
    lines.push(pressureSummary(v.pressure, false));
    lines.push(
      `${formatInt(v.base)} × ${formatInt(n.multiplier)} × ${formatInt(v.pressure.multiplier)} = ${formatInt(v.multiplied)}.`,
    );
  }
  const cap = v.phone_cap;
  if (cap) {
    const why = `a phone at ${formatHashRate(cap.hash_rate)} (${cap.source}) finishes 95 in 100 challenges within the ${formatMinutes(cap.timeout_seconds / 60)} timeout up to ${formatInt(cap.difficulty)}`;
    if (v.multiplied > cap.difficulty && v.difficulty < v.multiplied) {
      lines.push(`Capped to ${formatInt(v.difficulty)}: ${why}.`);
    } else if (cap.difficulty < v.base) {
      lines.push(`Phone cap: ${why}; the base is above it and stays.`);
    } else {
      lines.push(`Phone cap not reached: ${why}.`);
    }
  }
  lines.push(`A refresh from here costs ${formatInt(v.refresh_difficulty)} (half).`);
  return { headline, lines };
}

/**
 * Draws the panel into `root` and returns its refresh, for the page's
 * periodic refresh.
 * @param {HTMLElement} root
 * @param {(method: string, path: string) => Promise<any>} api
 */
export function mount(root, api) {
  const el = (/** @type {string} */ tag, /** @type {Record<string, string>} */ attrs = {}, text = '') => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  };
  const pressure = el('p', { id: 'adaptive-pressure', 'aria-live': 'polite' }, 'Loading…');
  const form = el('form', { id: 'adaptive-form', class: 'custom', novalidate: '' });
  const label = el('label', { for: 'adaptive-ip' }, 'Why this difficulty for an address or network? ');
  const row = el('div', { class: 'row' });
  const input = /** @type {HTMLInputElement} */ (el('input', {
    id: 'adaptive-ip',
    name: 'ip',
    type: 'text',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: '203.0.113.0/24',
    'aria-describedby': 'adaptive-error',
  }));
  row.append(input, el('button', { id: 'adaptive-explain', type: 'submit' }, 'Explain'));
  const error = el('p', { id: 'adaptive-error', class: 'field-error' });
  form.append(label, row, error);
  const headline = el('p', { id: 'adaptive-headline', class: 'current-value' });
  const reasons = el('ul', { id: 'adaptive-reasons' });
  const answer = el('div', { id: 'adaptive-answer', 'aria-live': 'polite' });
  answer.append(headline, reasons);
  root.append(pressure, form, answer);
  // The address or network whose answer is shown, refreshed with the page.
  let shown = '';

  /** @param {string} ip */
  async function explain(ip) {
    const query = ip ? `?ip=${encodeURIComponent(ip)}` : '';
    /** @type {DifficultyView} */
    const view = await api('GET', `difficulty${query}`);
    pressure.textContent = pressureSummary(view.pressure, view.pinned);
    if (!ip) return;
    shown = ip;
    const { headline: h, lines } = explainDifficulty(view);
    headline.textContent = h;
    reasons.replaceChildren(...lines.map((line) => el('li', {}, line)));
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.textContent = '';
    explain(input.value.trim()).catch((err) => {
      error.textContent = err.message;
    });
  });

  return {
    /** Re-reads the pressure, and the last answer when one is shown. */
    refresh() {
      return explain(shown).catch((err) => {
        pressure.textContent = `Could not read the pressure: ${err.message}`;
      });
    },
  };
}
