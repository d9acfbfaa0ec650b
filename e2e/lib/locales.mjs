// The challenge page's catalogs (frontend/locales/), read from disk, so the
// browser tests can expect the page's words in any of its languages.

import { readdirSync, readFileSync } from 'node:fs';

import { translator } from '../../frontend/i18n.js';

const DIR = new URL('../../frontend/locales/', import.meta.url);

/** Every language the page speaks: en, de, …, zh-CN. */
export const TAGS = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

/** One language's catalog, as in its file. */
export function catalog(tag) {
  return JSON.parse(readFileSync(new URL(`${tag}.json`, DIR), 'utf8'));
}

/** The page's words in English, as the page fills them in. */
export const english = translator('en', catalog('en'));
