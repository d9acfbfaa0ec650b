// The catalogs of frontend/locales/ against the English one: every key,
// no extra key, the same placeholders, the plural forms each language needs.
// `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { placeholders } from '../i18n.js';
import { catalog, TAGS } from './catalogs.mjs';

const english = catalog('en');
const CLDR_CATEGORIES = ['zero', 'one', 'two', 'few', 'many', 'other'];

/** Every `t('key'` in the page's scripts, with what follows the key. */
function keysUsedInScripts() {
  const dir = new URL('../', import.meta.url);
  const keys = new Set();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const src = readFileSync(new URL(file, dir), 'utf8');
    for (const m of src.matchAll(/\bt\('([A-Za-z]+)'/g)) keys.add(m[1]);
    for (const m of src.matchAll(/:\s*'((?:error|renew)[A-Z][A-Za-z]+)'/g)) keys.add(m[1]);
  }
  return [...keys].sort();
}

/** Every `{{t:key}}` of index.html. */
function keysUsedInPage() {
  const html = readFileSync(new URL('../index.html', import.meta.url), 'utf8');
  return [...html.matchAll(/\{\{t:([A-Za-z]+)\}\}/g)].map((m) => m[1]);
}

describe('the catalogs', () => {
  it('are the twelve languages at least', () => {
    for (const tag of ['en', 'de', 'fr', 'es', 'pt', 'it', 'nl', 'pl', 'ru', 'uk', 'ja', 'zh-CN']) {
      assert.ok(TAGS.includes(tag), `${tag} is missing from ${TAGS}`);
    }
  });

  it('have English text for every key the page and its scripts use', () => {
    const used = [...keysUsedInScripts(), ...keysUsedInPage()];
    assert.ok(used.length > 60, `found ${used.length} keys`);
    assert.deepEqual(used.filter((k) => !Object.hasOwn(english, k)), []);
  });

  for (const tag of TAGS.filter((t) => t !== 'en')) {
    describe(tag, () => {
      const own = catalog(tag);
      const categories = new Intl.PluralRules(tag).resolvedOptions().pluralCategories;

      it('has every English key and no other', () => {
        assert.deepEqual(Object.keys(english).filter((k) => !Object.hasOwn(own, k)), [], 'missing');
        assert.deepEqual(Object.keys(own).filter((k) => !Object.hasOwn(english, k)), [], 'extra');
      });

      it('keeps each key\'s placeholders, and leaves no text blank', () => {
        for (const [key, entry] of Object.entries(own)) {
          if (!Object.hasOwn(english, key)) continue;
          const forms = typeof entry === 'string' ? [entry] : Object.values(entry);
          for (const text of forms) {
            assert.equal(typeof text, 'string', `${tag}.${key}`);
            assert.notEqual(text.trim(), '', `${tag}.${key} is blank`);
            assert.deepEqual(placeholders(text), placeholders(english[key]), `${tag}.${key}: "${text}"`);
          }
        }
      });

      it('has every plural form the language has where English has them, and no made-up one', () => {
        for (const [key, entry] of Object.entries(english)) {
          if (typeof entry === 'string') {
            assert.equal(typeof own[key], 'string', `${tag}.${key} should be a plain text`);
            continue;
          }
          const forms = Object.keys(own[key] ?? {});
          assert.deepEqual(categories.filter((c) => !forms.includes(c)), [], `${tag}.${key} lacks forms`);
          // A form this runtime's CLDR does not list yet (French "many" in
          // an older ICU) may stay; a name that is no category may not.
          assert.deepEqual(forms.filter((f) => !CLDR_CATEGORIES.includes(f)), [], `${tag}.${key}`);
        }
      });
    });
  }
});
