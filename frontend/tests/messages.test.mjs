// Unit tests for frontend/messages.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { describeCaps } from '../caps.js';
import { ERROR_KEY, visitorErrorKey, workersWhyText } from '../messages.js';
import { catalog, en } from './catalogs.mjs';

/** Every `=> "code"` of ApiError::code and the framework rejections. */
function serverCodes() {
  const src = readFileSync(new URL('../../server/src/error.rs', import.meta.url), 'utf8');
  return [...new Set([...src.matchAll(/=> "([a-z_]+)",?\s*$/gm)].map((m) => m[1]))];
}

describe('visitor wording of server errors', () => {
  it('has wording for every error code the server can send', () => {
    const codes = serverCodes();
    assert.ok(codes.length >= 15, `found the codes in error.rs: ${codes}`);
    const missing = codes.filter((c) => !Object.hasOwn(ERROR_KEY, c));
    assert.deepEqual(missing, []);
    const english = catalog('en');
    for (const key of Object.values(ERROR_KEY)) assert.ok(Object.hasOwn(english, key), key);
  });

  it('is a sentence a visitor can read, never the server\'s developer message', () => {
    for (const [code, key] of Object.entries(ERROR_KEY)) {
      const text = en.t(key);
      assert.match(text, /^[A-Z].*\.$/, `${code}: "${text}"`);
      assert.doesNotMatch(text, /request a new one|challenge|nonce|HTTP/i, code);
    }
    assert.equal(
      visitorErrorKey(403, { error: 'wrong_answer', message: 'the answer does not meet the target' }),
      ERROR_KEY.wrong_answer,
    );
  });

  it('falls back by status for a proxy\'s page without a code', () => {
    assert.equal(visitorErrorKey(502, null), ERROR_KEY.upstream_unavailable);
    assert.equal(visitorErrorKey(500, 'oops'), ERROR_KEY.internal);
    assert.equal(visitorErrorKey(403, { error: 'made_up' }), ERROR_KEY.forbidden);
    assert.equal(visitorErrorKey(403, { error: 'toString' }), ERROR_KEY.forbidden);
  });
});

describe('why this many workers', () => {
  it('names the limit that decided, in the count\'s plural form', () => {
    assert.equal(workersWhyText(en.t, describeCaps({ hardwareConcurrency: 2 })),
      '2 workers: one per CPU thread (2).');
    assert.equal(workersWhyText(en.t, describeCaps({ hardwareConcurrency: 1 })),
      '1 worker: one per CPU thread (1).');
    const byMemory = describeCaps({ hardwareConcurrency: 16, memoryKiB: 256 * 1024 });
    assert.equal(byMemory.limit, 'memory');
    assert.equal(workersWhyText(en.t, byMemory),
      '4 workers: each needs 256 MiB and this device gets 1024 MiB in all.');
    const tooBig = describeCaps({ hardwareConcurrency: 4, memoryKiB: 1024 * 1024 * 1024 });
    assert.match(workersWhyText(en.t, tooBig), /^1 worker: .*one is always tried\.$/);
  });
});
