// Unit tests for frontend/queue.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { queuedAhead, queuedText } from '../queue.js';
import { translator } from '../i18n.js';
import { catalog, en } from './catalogs.mjs';

describe('queuedAhead', () => {
  it('reads how many are ahead from a 503 queued answer', () => {
    assert.equal(queuedAhead(503, { error: 'queued', message: '…', ahead: 7 }), 7);
    assert.equal(queuedAhead(503, { error: 'queued', ahead: 0 }), 0);
  });

  it('is null for every other answer, so only a queued answer is resubmitted as it is', () => {
    assert.equal(queuedAhead(503, { error: 'busy', message: 'too many connections' }), null);
    assert.equal(queuedAhead(503, null), null, 'a proxy error page is not JSON');
    assert.equal(queuedAhead(429, { error: 'queued', ahead: 3 }), null);
    assert.equal(queuedAhead(200, { token: 'x' }), null);
    assert.equal(queuedAhead(503, 'queued'), null);
  });

  it('treats a missing or nonsensical count as none ahead rather than failing', () => {
    assert.equal(queuedAhead(503, { error: 'queued' }), 0);
    assert.equal(queuedAhead(503, { error: 'queued', ahead: -1 }), 0);
    assert.equal(queuedAhead(503, { error: 'queued', ahead: '3' }), 0);
    assert.equal(queuedAhead(503, { error: 'queued', ahead: 1.5 }), 0);
  });
});

describe('queuedText', () => {
  it('says honestly how many answers are ahead', () => {
    assert.equal(queuedText(en.t, 12), 'Verifying your answer: 12 ahead of you.');
    assert.equal(queuedText(en.t, 1), 'Verifying your answer: 1 ahead of you.');
    assert.equal(queuedText(en.t, 0), 'Verifying your answer: you are next.');
  });

  it('says it in the count\'s plural form, with the language\'s digit grouping', () => {
    const ru = translator('ru', catalog('ru'));
    assert.equal(queuedText(ru.t, 1), 'Ваш ответ проверяется: перед вами 1 ответ.');
    assert.equal(queuedText(ru.t, 3), 'Ваш ответ проверяется: перед вами 3 ответа.');
    assert.equal(queuedText(ru.t, 5), 'Ваш ответ проверяется: перед вами 5 ответов.');
    assert.equal(queuedText(ru.t, 21), 'Ваш ответ проверяется: перед вами 21 ответ.');
    assert.equal(queuedText(ru.t, 1234), 'Ваш ответ проверяется: перед вами 1\u00a0234 ответа.');
    assert.equal(queuedText(en.t, 1234), 'Verifying your answer: 1,234 ahead of you.');
  });
});
