// @ts-check
// The page's words in the visitor's language. The server picks the language
// (server/src/locale.rs) and puts its catalog, merged over English, into the
// page as <script type="application/json" id="messages">, and its tag into
// <html lang>; app.js reads both and builds a translator here. A catalog (frontend/locales/<tag>.json) maps
// a key to a text with named placeholders ("Trying again in {seconds} s."),
// or, where a count decides the wording, to its plural forms by CLDR
// category ({"one": …, "few": …, "other": …}), chosen with Intl.PluralRules.
// Numbers put into a text are written as the language writes them (1 234,
// 1.234, 1,234). No DOM access (see tests/i18n.test.mjs).

/** @typedef {string | Readonly<Record<string, string>>} Entry */
/** @typedef {Readonly<Record<string, Entry>>} Catalog */
/** @typedef {Record<string, string | number>} Params */

/**
 * @typedef {object} Translator
 * @property {string} lang the BCP 47 tag of the language spoken
 * @property {(key: string, params?: Params) => string} t the text of `key`
 *   with its placeholders filled; for plural forms, the one `params.count`
 *   takes. An unknown key is shown as itself (a bug the tests catch).
 * @property {(n: number, options?: Intl.NumberFormatOptions) => string} number
 */

/**
 * @param {string} lang
 * @param {Catalog} catalog
 * @returns {Translator}
 */
export function translator(lang, catalog) {
  const tag = supportedTag(lang);
  const plurals = new Intl.PluralRules(tag);
  const numbers = new Intl.NumberFormat(tag);
  /** @param {string | number} v */
  const show = (v) => (typeof v === 'number' && Number.isFinite(v) ? numbers.format(v) : String(v));
  return {
    lang: tag,
    t(key, params = {}) {
      const entry = Object.hasOwn(catalog, key) ? catalog[key] : undefined;
      let text;
      if (typeof entry === 'string') {
        text = entry;
      } else if (entry && typeof entry === 'object') {
        const count = Number(params.count);
        const form = Number.isFinite(count) ? plurals.select(count) : 'other';
        text = entry[form] ?? entry.other;
      }
      if (typeof text !== 'string') return key;
      return text.replace(/\{(\w+)\}/g, (whole, name) => (
        Object.hasOwn(params, name) ? show(params[name]) : whole));
    },
    number(n, options) {
      return new Intl.NumberFormat(tag, options).format(n);
    },
  };
}

/**
 * `lang` if Intl knows it, else English (a page must never fail over its
 * language).
 *
 * @param {string} lang
 */
function supportedTag(lang) {
  try {
    return Intl.getCanonicalLocales(lang)[0] ?? 'en';
  } catch {
    return 'en';
  }
}

/**
 * The catalog embedded in the page, from the text of its JSON element; an
 * empty one when it is missing or unreadable, so the page still runs
 * (showing keys).
 *
 * @param {string | null | undefined} json
 * @returns {Catalog}
 */
export function parseCatalog(json) {
  try {
    const data = JSON.parse(json ?? '');
    if (data && typeof data === 'object' && !Array.isArray(data)) return data;
  } catch {
    // Fall through.
  }
  return {};
}

/**
 * The placeholders of an entry (of all its forms), sorted: for the test that
 * every translation keeps them.
 *
 * @param {Entry} entry
 * @returns {string[]}
 */
export function placeholders(entry) {
  const texts = typeof entry === 'string' ? [entry] : Object.values(entry);
  const names = new Set();
  for (const text of texts) {
    for (const m of text.matchAll(/\{(\w+)\}/g)) names.add(m[1]);
  }
  return [...names].sort();
}
