// Unit tests for frontend/i18n.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseCatalog, placeholders, translator } from '../i18n.js';

const CATALOG = Object.freeze({
  busy: 'Trying again in {seconds} s.',
  ahead: { one: '{count} answer ahead.', few: '{count} answers (few) ahead.', many: '{count} answers (many) ahead.', other: '{count} answers ahead.' },
  onlyOther: { other: '{count} left.' },
  site: '{site} checks visitors; {unknown} stays.',
});

describe('translator', () => {
  it('fills named placeholders, leaving unknown ones as written', () => {
    const { t } = translator('en', CATALOG);
    assert.equal(t('busy', { seconds: 5 }), 'Trying again in 5 s.');
    assert.equal(t('site', { site: 'example.com' }), 'example.com checks visitors; {unknown} stays.');
  });

  it('picks the plural form Intl.PluralRules gives the count', () => {
    const pl = translator('pl', CATALOG);
    assert.equal(pl.t('ahead', { count: 1 }), '1 answer ahead.');
    assert.equal(pl.t('ahead', { count: 3 }), '3 answers (few) ahead.');
    assert.equal(pl.t('ahead', { count: 5 }), '5 answers (many) ahead.');
    assert.equal(pl.t('ahead', { count: 22 }), '22 answers (few) ahead.');
    const en = translator('en', CATALOG);
    assert.equal(en.t('ahead', { count: 3 }), '3 answers ahead.');
    // A form the catalog lacks, or no count at all: "other".
    assert.equal(translator('ru', CATALOG).t('onlyOther', { count: 1 }), '1 left.');
    assert.equal(en.t('ahead'), '{count} answers ahead.');
  });

  it('writes numbers as the language does', () => {
    assert.equal(translator('en', CATALOG).t('ahead', { count: 1234567 }), '1,234,567 answers ahead.');
    assert.equal(translator('de', CATALOG).t('busy', { seconds: 12345 }), 'Trying again in 12.345 s.');
    assert.equal(translator('fr', CATALOG).number(12345), new Intl.NumberFormat('fr').format(12345));
    assert.notEqual(translator('fr', CATALOG).number(12345), '12345');
  });

  it('shows an unknown key as itself, and survives a tag Intl does not know', () => {
    const { t, lang } = translator('not a tag!', CATALOG);
    assert.equal(lang, 'en');
    assert.equal(t('missing'), 'missing');
    assert.equal(t('toString'), 'toString');
  });
});

describe('parseCatalog', () => {
  it('reads the embedded JSON, and gives an empty catalog for anything else', () => {
    assert.deepEqual(parseCatalog('{"a": "b"}'), { a: 'b' });
    for (const bad of [null, undefined, '', '{', '[1]', '"x"', 'null']) {
      assert.deepEqual(parseCatalog(bad), {}, String(bad));
    }
  });
});

describe('placeholders', () => {
  it('lists the names of every form, once, sorted', () => {
    assert.deepEqual(placeholders('{b} and {a} and {b}'), ['a', 'b']);
    assert.deepEqual(placeholders({ one: '{count} x', other: '{count} {unit}' }), ['count', 'unit']);
    assert.deepEqual(placeholders('no placeholder'), []);
  });
});
