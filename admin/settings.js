// @ts-check
// The settings panel: one field per live setting, drawn from the server's
// settings table, saved with PATCH (only what changed) or reverted to the
// configuration with DELETE. The server's answer is announced as
// `powgate:settings`; what is typed into the challenge timeout as
// `powgate:preview`, for the solve-time panel.

import { formatInt } from '../shared/format.js';
import { ApiError, isSessionEnd, messageOf } from './api.js';
import { difficultyText } from './difficulty.js';
import { announce, busy, byId, confirmAction, make, setFieldError } from './dom.js';
import { argon2Summary, changedSettings, parseWholeNumber, settingFormFields, settingLabel } from './logic.js';

/** @typedef {import('../shared/wire.js').AdminSettings} AdminSettings */
/** @typedef {ReturnType<typeof settingFormFields>[number]} FormField */

/** The setting whose typed value the solve-time panel previews. */
const PREVIEWED = 'challenge_timeout';

/**
 * @param {HTMLElement} root the #settings-card section
 * @param {import('./api.js').Api} api
 */
export function mount(root, api) {
  const form = byId(root, 'settings-form');
  const fieldsBox = byId(root, 'settings-fields');
  const save = /** @type {HTMLButtonElement} */ (byId(root, 'settings-save'));
  const status = byId(root, 'settings-status');
  const revert = /** @type {HTMLButtonElement} */ (byId(root, 'settings-revert'));
  const overriddenSummary = byId(root, 'overridden-summary');
  const serverFacts = byId(root, 'server-facts');

  /** The last settings answer shown. @type {AdminSettings | null} */
  let shown = null;
  /** The form's fields, drawn from the server's settings table. @type {FormField[]} */
  let fields = [];
  /** Values last written into the form, to spot the operator's edits. @type {Record<string, number>} */
  let written = {};

  /** @param {FormField} f */
  const inputOf = (f) => /** @type {HTMLInputElement} */ (byId(fieldsBox, f.id));
  /** @param {FormField} f */
  const errorOf = (f) => byId(fieldsBox, `${f.id}-error`);
  /** @param {string} name */
  const labelOf = (name) => settingLabel(name, shown?.specs);

  function renderRevertButton() {
    revert.disabled = !(shown && Array.isArray(shown.overridden) && shown.overridden.length);
  }

  /**
   * Draws the fields from the server's settings table, once, and again
   * only if the table changes (a server upgraded under the page).
   *
   * @param {AdminSettings['specs']} specs
   */
  function renderFields(specs) {
    const next = settingFormFields(specs);
    if (JSON.stringify(next) === JSON.stringify(fields)) return;
    fields = next;
    written = {};
    fieldsBox.replaceChildren(...fields.map((f) => {
      const label = make('label', { attrs: { for: f.id } }, [`${f.label} `]);
      if (f.unit) label.append(make('span', { cls: 'unit', text: `(${f.unit})` }), ' ');
      label.append(make('span', {
        cls: 'badge badge-override',
        text: 'set here',
        attrs: { 'data-override': f.name, hidden: '' },
      }));
      const input = make('input', {
        attrs: {
          id: f.id,
          name: f.name,
          type: 'number',
          inputmode: 'numeric',
          min: f.min,
          max: f.max,
          step: 1,
          title: f.description,
          'aria-describedby': `${f.id}-hint ${f.id}-error`,
        },
      });
      return make('div', { cls: 'field' }, [
        label,
        input,
        make('p', { cls: 'small hint', text: f.hint, attrs: { id: `${f.id}-hint`, 'data-range': f.name } }),
        make('p', { cls: 'field-error', attrs: { id: `${f.id}-error`, 'data-error': f.name } }),
      ]);
    }));
  }

  /** @param {AdminSettings} s */
  function render(s) {
    shown = s;
    const cur = s.settings;
    const overridden = Array.isArray(s.overridden) ? s.overridden : [];
    renderFields(s.specs);
    for (const f of fields) {
      const input = inputOf(f);
      // Leave a value the operator has started to edit alone; a background
      // reload (another admin changed something) must not undo their typing.
      const before = written[f.name];
      const edited = before !== undefined && input.value !== String(before);
      if (!edited) input.value = String(cur[f.name]);
      written[f.name] = cur[f.name];
      const badge = fieldsBox.querySelector(`[data-override="${CSS.escape(f.name)}"]`);
      if (badge instanceof HTMLElement) badge.hidden = !overridden.includes(f.name);
      if (f.name === PREVIEWED) announce(root, 'preview', { [PREVIEWED]: input.value });
    }

    overriddenSummary.textContent = overridden.length
      ? `Set on this page and kept across restarts, ahead of the configuration: ${overridden.map(labelOf).join(', ')}. Reverting puts every setting back to the configured value.`
      : 'Every setting has its configured value (from config.toml or the environment).';
    renderRevertButton();

    const facts = [];
    if (s.argon2) {
      facts.push(argon2Summary(s.argon2));
    }
    if (Number.isFinite(s.token_purge_hours)) {
      facts.push(`Expired tokens can be refreshed for ${formatInt(s.token_purge_hours)} h before they are purged.`);
    }
    facts.push('These come from the configuration only.');
    serverFacts.textContent = facts.join(' ');
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!shown) return;
    /** @type {Record<string, number>} */
    const wanted = {};
    /** @type {HTMLInputElement | null} */
    let firstBad = null;
    for (const f of fields) {
      const input = inputOf(f);
      const parsed = parseWholeNumber(input.value, [f.min, f.max]);
      if ('error' in parsed) {
        setFieldError(input, errorOf(f), input.validity.badInput ? 'Enter a whole number (digits only).' : parsed.error);
        firstBad = firstBad || input;
      } else {
        setFieldError(input, errorOf(f), '');
        wanted[f.name] = parsed.value;
      }
    }
    if (firstBad) {
      status.textContent = 'Nothing was saved: check the highlighted field.';
      firstBad.focus();
      return;
    }
    const body = changedSettings(shown.settings, wanted);
    if (!Object.keys(body).length) {
      status.textContent = 'Nothing to save: the values are unchanged.';
      return;
    }
    status.textContent = '';
    await busy([save], async () => {
      try {
        /** @type {AdminSettings} */
        const s = await api('PATCH', 'settings', body);
        // The saved values are now the shown ones.
        written = {};
        announce(root, 'settings', s);
        status.textContent = `Saved: ${Object.keys(body).map(labelOf).join(', ')}.`;
      } catch (err) {
        if (isSessionEnd(err)) return;
        const f = err instanceof ApiError ? fields.find((x) => x.name === err.field) : undefined;
        if (f) {
          setFieldError(inputOf(f), errorOf(f), messageOf(err));
          inputOf(f).focus();
          status.textContent = 'Nothing was saved: check the highlighted field.';
        } else {
          status.textContent = `Nothing was saved: ${messageOf(err)}`;
        }
      }
    }, renderRevertButton);
  });

  revert.addEventListener('click', async () => {
    const names = (shown?.overridden || []).map(labelOf);
    const ok = await confirmAction({
      title: 'Revert to configured values?',
      message: `This drops the values set on this page (${names.join(', ') || 'none'}) and goes back to what the configuration says.`,
      ok: 'Revert',
    });
    if (!ok) return;
    await busy([revert], async () => {
      try {
        /** @type {AdminSettings} */
        const s = await api('DELETE', 'settings');
        written = {};
        for (const f of fields) setFieldError(inputOf(f), errorOf(f), '');
        announce(root, 'settings', s);
        status.textContent = `Reverted to the configured values; difficulty is ${difficultyText(s)}.`;
      } catch (err) {
        if (!isSessionEnd(err)) status.textContent = `Nothing was reverted: ${messageOf(err)}`;
      }
    }, renderRevertButton);
  });

  // The fields are drawn later, from the server's settings table.
  fieldsBox.addEventListener('input', (event) => {
    const input = event.target;
    if (input instanceof HTMLInputElement && input.name === PREVIEWED) {
      announce(root, 'preview', { [PREVIEWED]: input.value });
    }
  });

  return {
    /** @param {AdminSettings} s */
    showSettings: render,
    /** Forgets what the form showed, for the next sign-in. */
    clear() {
      shown = null;
      written = {};
    },
  };
}
