// Unit tests for frontend/messages.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { ERROR_TEXT, visitorError } from '../messages.js';

/** Every `=> "code"` of ApiError::code and the framework rejections. */
function serverCodes() {
  const src = readFileSync(new URL('../../server/src/error.rs', import.meta.url), 'utf8');
  return [...new Set([...src.matchAll(/=> "([a-z_]+)",?\s*$/gm)].map((m) => m[1]))];
}

describe('visitor wording of server errors', () => {
  it('has wording for every error code the server can send', () => {
    const codes = serverCodes();
    assert.ok(codes.length >= 15, `found the codes in error.rs: ${codes}`);
    const missing = codes.filter((c) => !Object.hasOwn(ERROR_TEXT, c));
    assert.deepEqual(missing, []);
  });

  it('is a sentence a visitor can read, never the server\'s developer message', () => {
    for (const [code, text] of Object.entries(ERROR_TEXT)) {
      assert.match(text, /^[A-Z].*\.$/, `${code}: "${text}"`);
      assert.doesNotMatch(text, /request a new one|challenge|nonce|HTTP/i, code);
    }
    assert.equal(
      visitorError(403, { error: 'wrong_answer', message: 'the answer does not meet the target' }),
      ERROR_TEXT.wrong_answer,
    );
  });

  it('falls back by status for a proxy\'s page without a code', () => {
    assert.equal(visitorError(502, null), ERROR_TEXT.upstream_unavailable);
    assert.equal(visitorError(500, 'oops'), ERROR_TEXT.internal);
    assert.equal(visitorError(403, { error: 'made_up' }), ERROR_TEXT.forbidden);
  });
});
