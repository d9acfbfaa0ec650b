// Unit tests for frontend/answer.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { redirectPlan, solveRequest, solveTelemetry } from '../answer.js';
import { describeCaps } from '../caps.js';
import { UA } from './user-agents.mjs';

// Issue 13: the server guessed the class again from the User-Agent, with a
// rule that files an Android browser without "Chrome" under Safari/iOS while
// the page sized it as a phone. The page now says which class it used.
describe('solveTelemetry', () => {
  const found = (env) => ({
    hashes: 140.4, elapsedMs: 9000.2, workers: 3, deviceClass: describeCaps(env).deviceClass,
  });

  it('carries the device class the workers were sized for', () => {
    const cases = [
      [{ userAgent: UA.webviewAndroid }, 'phone'],
      [{ userAgent: UA.chromeAndroid }, 'phone'],
      [{ userAgent: UA.chromeIphone }, 'safari_ios'],
      [{ userAgent: UA.safariMac, maxTouchPoints: 5, platform: 'MacIntel' }, 'safari_ios'],
      [{ userAgent: UA.safariMac }, 'safari_ios'],
      [{ userAgent: UA.chromeWindows }, 'desktop'],
    ];
    for (const [env, cls] of cases) {
      assert.deepEqual(
        solveTelemetry(found(env)),
        { hashes: 140, elapsed_ms: 9000, workers: 3, class: cls },
        env.userAgent,
      );
    }
  });
});

describe('solveRequest', () => {
  const challenge = { challenge: 'signed.challenge' };
  const found = { nonce: 42, hashes: 50, elapsedMs: 1000, workers: 2, deviceClass: 'desktop' };

  // The page does not judge `redir` itself any more: it sends what it was
  // given, hostile or not, and the server's one rule decides.
  it("sends the page's redir as it is, for the server to check", () => {
    for (const redir of ['/docs?page=2', '//evil.example', 'javascript:alert(1)']) {
      assert.deepEqual(solveRequest(challenge, found, 7, redir), {
        challenge: 'signed.challenge',
        nonce: 42,
        ticket: 7,
        telemetry: { hashes: 50, elapsed_ms: 1000, workers: 2, class: 'desktop' },
        redir,
      });
    }
  });

  it('leaves out what it does not have', () => {
    const body = solveRequest(challenge, found, null, null);
    assert.equal('redir' in body, false);
    assert.equal('ticket' in body, false);
    assert.equal('redir' in solveRequest(challenge, found, null, ''), false);
  });
});

describe('redirectPlan', () => {
  const answer = (redirect) => ({ token: 't', refreshed: false, expires_at: 1, redirect });

  it('navigates to what the server returned, not to what the page was asked', () => {
    assert.deepEqual(redirectPlan(answer('/docs?page=2'), '/docs?page=2'), { target: '/docs?page=2', refused: false });
    // The server may normalise (it trims); the page follows the server.
    assert.deepEqual(redirectPlan(answer('https://app.example/x'), ' https://app.example/x '),
      { target: 'https://app.example/x', refused: false });
  });

  it('stays, and says so, when the server returned no target for a redir', () => {
    for (const redir of ['//evil.example', 'https://evil.example', '/\\evil.example', 'javascript:alert(1)', '/looks/fine']) {
      assert.deepEqual(redirectPlan(answer(null), redir), { target: null, refused: true }, redir);
    }
  });

  it('stays quietly when nothing was asked for', () => {
    assert.deepEqual(redirectPlan(answer(null), null), { target: null, refused: false });
    assert.deepEqual(redirectPlan(answer(null), ''), { target: null, refused: false });
  });

  it('follows nothing but a string from the server', () => {
    // An older server without the field, or a body that is not the answer.
    for (const a of [{ token: 't' }, answer(''), answer(42), answer({ href: '/x' }), null, 'x']) {
      assert.deepEqual(redirectPlan(a, '/x'), { target: null, refused: true }, JSON.stringify(a));
    }
  });
});
