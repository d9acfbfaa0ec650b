// The catalogs of frontend/locales/, read from disk, for the unit tests.

import { readdirSync, readFileSync } from 'node:fs';

import { translator } from '../i18n.js';

const DIR = new URL('../locales/', import.meta.url);

/** Every catalog's tag: en, de, …, zh-CN. */
export const TAGS = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

/** @param {string} tag */
export function catalog(tag) {
  return JSON.parse(readFileSync(new URL(`${tag}.json`, DIR), 'utf8'));
}

/** The page's words in English, as the page builds them. */
export const en = translator('en', catalog('en'));
