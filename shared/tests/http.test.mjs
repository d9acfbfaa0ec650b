// Unit tests for shared/http.js: `node --test shared/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { errorMessage, readJson, requestJson, retryAfterSeconds } from '../http.js';

describe('retryAfterSeconds', () => {
  const now = Date.parse('2025-05-03T12:00:00Z');
  it('reads seconds', () => {
    assert.equal(retryAfterSeconds('60', now), 60);
    assert.equal(retryAfterSeconds(' 5 ', now), 5);
    assert.equal(retryAfterSeconds('0', now), 1);
  });
  it('reads an HTTP date', () => {
    assert.equal(retryAfterSeconds('Sat, 03 May 2025 12:02:00 GMT', now), 120);
  });
  it('falls back when missing or unreadable', () => {
    assert.equal(retryAfterSeconds(null, now), 30);
    assert.equal(retryAfterSeconds('', now, 7), 7);
    assert.equal(retryAfterSeconds('soon', now, 7), 7);
  });
  it('keeps to the ceiling it is given', () => {
    assert.equal(retryAfterSeconds('86400', now, 5, 300), 300);
    assert.equal(retryAfterSeconds('Sat, 03 May 2025 11:00:00 GMT', now, 5, 300), 1);
  });
});

describe('errorMessage', () => {
  it("reads the server's message, trimmed", () => {
    assert.equal(errorMessage({ error: 'expired', message: ' That challenge expired. ' }), 'That challenge expired.');
  });
  it('is empty for anything else', () => {
    for (const data of [null, undefined, 'html', 42, {}, { message: 7 }]) assert.equal(errorMessage(data), '');
  });
});

describe('requestJson', () => {
  /** A fetch that records its call and answers `res`. */
  const fakeFetch = (res) => {
    const calls = [];
    const fetch = async (url, init) => {
      calls.push({ url, init });
      return res;
    };
    return { calls, fetch };
  };

  it('POSTs a JSON body with cookies and without caching', async () => {
    const { calls, fetch } = fakeFetch(Response.json({ token: 't' }));
    const r = await requestJson('api/solve', { body: { nonce: 1 }, fetch });
    assert.equal(r.status, 200);
    assert.deepEqual(r.data, { token: 't' });
    const [{ url, init }] = calls;
    assert.equal(url, 'api/solve');
    assert.equal(init.method, 'POST');
    assert.equal(init.body, '{"nonce":1}');
    assert.equal(init.headers['Content-Type'], 'application/json');
    assert.equal(init.credentials, 'same-origin');
    assert.equal(init.cache, 'no-store');
  });

  it('GETs without a body, and takes another method when asked', async () => {
    const get = fakeFetch(Response.json({}));
    await requestJson('api/config', { fetch: get.fetch });
    assert.equal(get.calls[0].init.method, 'GET');
    assert.equal(get.calls[0].init.body, undefined);
    const del = fakeFetch(new Response(null, { status: 204 }));
    const r = await requestJson('x', { method: 'DELETE', fetch: del.fetch });
    assert.equal(del.calls[0].init.method, 'DELETE');
    assert.deepEqual([r.status, r.data], [204, null]);
  });

  it("keeps the status of a proxy's HTML error page", async () => {
    const { fetch } = fakeFetch(new Response('<h1>Bad gateway</h1>', { status: 502 }));
    const r = await requestJson('api/challenge', { body: {}, fetch });
    assert.deepEqual([r.status, r.data], [502, null]);
  });

  it('rejects only when the network fails', async () => {
    const fetch = async () => {
      throw new TypeError('Failed to fetch');
    };
    await assert.rejects(requestJson('api/challenge', { fetch }), TypeError);
  });
});

describe('readJson', () => {
  it('is null for an empty body', async () => {
    assert.equal(await readJson(new Response('', { status: 200 })), null);
  });
});

