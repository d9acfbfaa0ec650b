// @ts-check
// The difficulty panel: the live difficulty, its presets and a custom value.
// A change is PATCHed, then announced as `powgate:settings` with the
// server's answer, which app.js hands to every panel that shows settings.
// What is typed into the custom field is announced as `powgate:preview`,
// for the solve-time panel to preview. Beside the presets, a table shows
// what each would take per device class before it is applied, and a
// difficulty that phones would not finish within the challenge timeout
// asks for confirmation first.

import { formatDuration, formatInt, formatMinutes } from '../shared/format.js';
import { isSessionEnd, messageOf } from './api.js';
import { announce, busy, byId, confirmAction, make, setFieldError, updateScrollStops } from './dom.js';
import { capitalize, confirmationNeeded, parseWholeNumber, presetFor, presetPreviews } from './logic.js';

/** @typedef {import('../shared/wire.js').AdminSettings} AdminSettings */
/** @typedef {import('../shared/wire.js').AdminStats} AdminStats */
/** @typedef {import('../shared/wire.js').ClassEstimate} ClassEstimate */

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
  const previewBox = byId(root, 'preset-preview');

  /** The last settings shown, for the custom value's range. @type {AdminSettings | null} */
  let shown = null;
  /** The browser classes of the last stats, for previews. @type {ClassEstimate[]} */
  let classes = [];

  /** The live challenge timeout, which the 95th percentile is held against. */
  function timeoutSeconds() {
    return (shown?.settings.challenge_timeout ?? NaN) * 60;
  }

  /** Per preset and device class: typical time and 95-in-100 time. */
  function renderPresetPreview() {
    const rows = presetPreviews(shown?.presets, classes, timeoutSeconds());
    if (!rows.length || !classes.length) {
      previewBox.replaceChildren();
      return;
    }
    const head = make('tr', {}, [
      make('th', { attrs: { scope: 'col' }, text: 'Preset' }),
      ...classes.map((c) => make('th', { attrs: { scope: 'col' }, text: c.label || c.class })),
    ]);
    const body = rows.map((r) => make('tr', {}, [
      make('th', { attrs: { scope: 'row' }, text: `${capitalize(r.name)} (${formatInt(r.difficulty)})` }),
      ...r.classes.map((c) => make('td', {}, [
        `typical ${formatDuration(c.mean_seconds)}`,
        make('span', { cls: 'sub', text: `95 in 100 within ${formatDuration(c.p95_seconds)}` }),
        ...(c.exceeds_timeout ? [make('span', { cls: 'state state-warn', text: '⚠ over the timeout' })] : []),
      ])),
    ]));
    previewBox.replaceChildren(make('table', { cls: 'data', attrs: { id: 'preset-preview-table' } }, [
      make('caption', { text: `What each preset would take, at the ${formatMinutes(timeoutSeconds() / 60)} challenge timeout` }),
      make('thead', {}, [head]),
      make('tbody', {}, body),
    ]));
    updateScrollStops();
  }

  /**
   * Asks before a difficulty that phones would not finish in time.
   *
   * @param {number} value
   * @returns {Promise<boolean>} true to go ahead
   */
  async function confirmed(value) {
    const risk = confirmationNeeded(value, classes, timeoutSeconds());
    if (!risk) return true;
    return confirmAction({
      title: `Set the difficulty to ${formatInt(value)}?`,
      message: `On a phone this takes ${formatDuration(risk.mean_seconds)} typically, and only 95 in 100 visitors finish within ${formatDuration(risk.p95_seconds)}: longer than the ${formatMinutes(risk.timeout_seconds / 60)} challenge timeout, so many phone visitors' challenges would expire before they finish. Lower the difficulty or raise the challenge timeout instead.`,
      ok: 'Apply anyway',
    });
  }

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
    const wanted = typeof value === 'number' ? value : shown?.presets?.[value];
    if (typeof wanted === 'number' && !(await confirmed(wanted))) {
      status.textContent = 'The difficulty was not changed.';
      if (document.contains(trigger)) trigger.focus();
      return;
    }
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
      renderPresetPreview();
    },
    /**
     * Takes the device classes' hash rates for the previews.
     *
     * @param {AdminStats} st
     */
    showStats(st) {
      classes = Array.isArray(st.device_classes) ? st.device_classes : [];
      renderPresetPreview();
    },
  };
}
