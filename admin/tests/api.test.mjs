// Unit tests for admin/api.js: `node --test admin/tests/`.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { ApiError, createApi, isSessionEnd } from '../api.js';

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/** Answers every request with `res`; records the URLs asked for. */
function answerWith(res) {
  const urls = [];
  globalThis.fetch = async (url) => {
    urls.push(url);
    return res.clone();
  };
  return urls;
}

describe('createApi', () => {
  it('resolves with the parsed answer, below the base', async () => {
    const urls = answerWith(Response.json({ authenticated: true }));
    const api = createApi('../api/admin/', { onSessionEnd: () => assert.fail('no session end') });
    assert.deepEqual(await api('GET', 'session'), { authenticated: true });
    assert.deepEqual(urls, ['../api/admin/session']);
  });

  it('ends the session on a 401 from any call but login and session', async () => {
    answerWith(Response.json({ error: 'unauthorized', message: 'sign in' }, { status: 401 }));
    let ended = 0;
    const api = createApi('', { onSessionEnd: () => { ended += 1; } });
    const err = await api('GET', 'stats').catch((e) => e);
    assert.ok(err instanceof ApiError && isSessionEnd(err));
    assert.equal(err.message, 'sign in');
    assert.equal(ended, 1);
    await api('POST', 'login', { key: 'x' }).catch(() => {});
    await api('GET', 'session').catch(() => {});
    assert.equal(ended, 1, 'a wrong key is not the end of a session');
  });

  it("names the field at fault and how long a 429 asks to wait", async () => {
    answerWith(Response.json({ error: 'bad_request', message: 'difficulty: 0 is out of range', field: 'difficulty' }, { status: 400 }));
    const api = createApi('', { onSessionEnd: () => {} });
    const bad = await api('PATCH', 'settings', { difficulty: 0 }).catch((e) => e);
    assert.deepEqual([bad.status, bad.field, bad.retryAfter], [400, 'difficulty', null]);
    answerWith(new Response('{}', { status: 429, headers: { 'Retry-After': '7' } }));
    const limited = await api('POST', 'login', { key: 'x' }).catch((e) => e);
    assert.deepEqual([limited.status, limited.retryAfter], [429, 7]);
    assert.match(limited.message, /too many/i);
  });

  it('says so when the server cannot be reached', async () => {
    globalThis.fetch = async () => {
      throw new TypeError('Failed to fetch');
    };
    const err = await createApi('', { onSessionEnd: () => {} })('GET', 'stats').catch((e) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 0);
    assert.match(err.message, /could not reach/i);
  });
});
