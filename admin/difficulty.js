// @ts-check
// The difficulty panel: the live difficulty, its presets and a custom value.
// A change is PATCHed, then announced as `powgate:settings` with the
// server's answer, which app.js hands to every panel that shows settings.
// What is typed into the custom field is announced as `powgate:preview`,
// for the solve-time panel to preview.

import { formatInt } from '../shared/format.js';
import { isSessionEnd, messageOf } from './api.js';
import { announce, busy, byId, make, setFieldError } from './dom.js';
import { capitalize, parseWholeNumber, presetFor } from './logic.js';

/** @typedef {import('../shared/wire.js').AdminSettings} AdminSettings */

/**
 * "900 (medium)" or "1,234".
 *
 * @param {AdminSettings} s
 */
export function difficultyText(s) {
  const preset = s.difficulty_preset ?? presetFor(s.settings.difficulty, s.presets);
  return preset
    ? `${formatInt(s.settings.difficulty)} (${preset})`
    : formatInt(s.settings.difficulty);
}

/**
 * @param {HTMLElement} root the #difficulty-card section
 * @param {import('./api.js').Api} api
 */
export function mount(root, api) {
  const current = byId(root, 'difficulty-current');
  const presetBadge = byId(root, 'difficulty-preset');
  const overriddenBadge = byId(root, 'difficulty-overridden');
  const presetButtons = byId(root, 'preset-buttons');
  const form = byId(root, 'difficulty-form');
  const custom = /** @type {HTMLInputElement} */ (byId(root, 'difficulty-custom'));
  const apply = /** @type {HTMLButtonElement} */ (byId(root, 'difficulty-apply'));
  const range = byId(root, 'difficulty-range');
  const error = byId(root, 'difficulty-error');
  const status = byId(root, 'difficulty-status');

  /** The last settings shown, for the custom value's range. @type {AdminSettings | null} */
  let shown = null;

  /** @param {AdminSettings} s */
  function renderPresets(s) {
    const active = s.difficulty_preset ?? presetFor(s.settings.difficulty, s.presets);
    for (const [name, value] of Object.entries(s.presets || {})) {
      let button = presetButtons.querySelector(`[data-preset="${CSS.escape(name)}"]`);
      if (!button) {
        button = make('button', {
          cls: 'secondary preset',
          attrs: { type: 'button', id: `preset-${name}`, 'data-preset': name, 'aria-pressed': 'false' },
        });
        presetButtons.append(button);
      }
      button.replaceChildren(`${capitalize(name)} `, make('span', { cls: 'preset-value', text: formatInt(value) }));
      button.setAttribute('aria-pressed', String(name === active));
    }
  }

  /** @param {string} text */
  function preview(text) {
    announce(root, 'preview', { difficulty: text });
  }

  /**
   * PATCHes the difficulty.
   *
   * @param {string | number} value a preset name or an integer
   * @param {HTMLElement} trigger gets focus back afterwards
   */
  async function applyDifficulty(value, trigger) {
    setFieldError(custom, error, '');
    status.textContent = '';
    const controls = [apply, ...presetButtons.querySelectorAll('button')];
    await busy(controls, async () => {
      try {
        /** @type {AdminSettings} */
        const s = await api('PATCH', 'settings', { difficulty: value });
        custom.value = '';
        preview('');
        announce(root, 'settings', s);
        status.textContent = `Difficulty set to ${difficultyText(s)}. New challenges use it from now on.`;
      } catch (err) {
        if (isSessionEnd(err)) return;
        if (err instanceof Error && 'status' in err && err.status === 400) {
          setFieldError(custom, error, err.message);
          status.textContent = 'The difficulty was not changed.';
        } else {
          status.textContent = `The difficulty was not changed: ${messageOf(err)}`;
        }
      }
    });
    if (document.contains(trigger)) trigger.focus();
  }

  presetButtons.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-preset]') : null;
    if (!(button instanceof HTMLButtonElement) || !button.dataset.preset) return;
    applyDifficulty(button.dataset.preset, button);
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const limits = shown?.ranges?.difficulty ?? [1, 1e9];
    const parsed = parseWholeNumber(custom.value, limits);
    if ('error' in parsed) {
      // A number input hands back "" for text it cannot read, such as "1e".
      setFieldError(custom, error, custom.validity.badInput ? 'Enter a whole number (digits only).' : parsed.error);
      custom.focus();
      return;
    }
    applyDifficulty(parsed.value, custom);
  });

  custom.addEventListener('input', () => {
    setFieldError(custom, error, '');
    preview(custom.value);
  });

  return {
    /**
     * Draws a settings answer.
     *
     * @param {AdminSettings} s
     */
    showSettings(s) {
      shown = s;
      const cur = s.settings;
      current.textContent = formatInt(cur.difficulty);
      const preset = s.difficulty_preset ?? presetFor(cur.difficulty, s.presets);
      presetBadge.textContent = preset ? `${preset} preset` : 'custom';
      overriddenBadge.hidden = !(s.overridden || []).includes('difficulty');
      renderPresets(s);
      const limits = (s.ranges || {}).difficulty;
      if (limits) {
        const [min, max] = limits;
        custom.min = String(min);
        custom.max = String(max);
        range.textContent = `(${formatInt(min)} – ${formatInt(max)})`;
      }
      custom.placeholder = String(cur.difficulty);
    },
  };
}
