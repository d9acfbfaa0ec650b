// The challenge page's accessibility, measured in real headless Chromium
// against the real powgate binary (issue 19, "Accessibility, measured"):
// axe-core in every state the page can show, keyboard-only use with a
// visible focus ring, polite announcements that follow events rather than
// the progress bar, and `prefers-reduced-motion`.
//
// Two servers: a fast one (a solve takes a fraction of a second with
// FAST_ARGON2) for the states after a solve, and a slow one whose
// difficulty no test ever reaches, which holds the page in "solving".

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { assertAccessible } from '../lib/axe.mjs';
import {
  launchBrowser,
  openPage,
  pageStatus,
  startPowgate,
  waitForState,
  withServerLog,
} from '../lib/harness.mjs';

const FAST_DIFFICULTY = '150';
/** Far more hashes than a test ever tries: the page stays "solving". */
const SLOW_DIFFICULTY = '100000000';
/** How long the announcements are watched while the bar moves. */
const WATCH_MS = 20_000;
/** The most announcements a watched solve may make: each one an event (start, pause, resume). */
const MAX_ANNOUNCEMENTS = 6;
/** WCAG 1.4.11: a focus ring is a user-interface component, 3:1 against what is next to it. */
const MIN_RING_CONTRAST = 3;
const MIN_RING_WIDTH_PX = 2;
const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 60_000;

/** Light and dark at desktop size, and a phone. */
const LOOKS = [
  { name: 'light', options: {} },
  { name: 'dark, phone', options: { colorScheme: 'dark', viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true } },
];

let browser;
let fast;
let slow;

before(async () => {
  const started = await Promise.allSettled([
    launchBrowser().then((b) => { browser = b; }),
    startPowgate({ POW_DIFFICULTY_LEVEL: FAST_DIFFICULTY }).then((s) => { fast = s; }),
    startPowgate({ POW_DIFFICULTY_LEVEL: SLOW_DIFFICULTY }).then((s) => { slow = s; }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), fast?.stop(), slow?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

/** A test whose failure message ends with both servers' logs. */
function e2e(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [fast, slow], fn));
}

/** Answers the page's first answer with a refusal, as a server would a wrong one; later ones go through. */
async function refuseFirstAnswer(page) {
  let refused = false;
  await page.route('**/api/solve', (route) => {
    if (refused) return route.continue();
    refused = true;
    return route.fulfill({
      status: 403,
      contentType: 'application/json',
      body: JSON.stringify({ error: 'wrong_answer', message: 'the answer does not meet the target' }),
    });
  });
}

/**
 * Holds every request matching `pattern` until release() is called;
 * `arrived` resolves when the first one is held.
 */
async function holdUntilReleased(page, pattern) {
  let release;
  let arrive;
  const released = new Promise((resolve) => { release = resolve; });
  const arrived = new Promise((resolve) => { arrive = resolve; });
  await page.route(pattern, async (route) => {
    arrive();
    await released;
    await route.continue().catch(() => {});
  });
  return { release, arrived };
}

/**
 * axe on a page loaded with JavaScript off. axe needs timers, which a page
 * without scripting never runs, so it scans a copy: the page as the browser
 * parsed it without scripting (its <noscript> part as plain markup, no
 * scripts), served at the same address to a page of `options` that may run
 * scripts.
 */
async function assertAccessibleWithoutScripts(t, page, options, state) {
  const html = await page.evaluate(() => {
    const root = document.documentElement.cloneNode(true);
    for (const n of root.querySelectorAll('noscript')) n.replaceWith(...n.childNodes);
    for (const n of root.querySelectorAll('script')) n.remove();
    return `<!doctype html>${root.outerHTML}`;
  });
  const { page: copy } = await openPage(t, browser, options);
  await copy.route(page.url(), (route) => route.fulfill({ contentType: 'text/html', body: html }));
  await copy.goto(page.url());
  await assertAccessible(assert, copy, state);
  return copy;
}

/** Opens the slow server's page and waits until its workers are hashing. */
async function openSolving(page) {
  await page.goto(`${slow.url}/`);
  await waitForState(page, ['solving']);
  await page.waitForFunction(() => window.powgateStatus.hashes > 0);
}

/** The id (or tag) of the focused element. */
function focusedId(page) {
  return page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName.toLowerCase());
}

// ---------------------------------------------------------------------------
// The focus ring
// ---------------------------------------------------------------------------

/** [r, g, b] of a computed `rgb()`/`rgba()` colour; alpha 0 gives null. */
function parseRgb(css) {
  const m = /^rgba?\(([^)]*)\)$/.exec(css);
  assert.ok(m, `not an rgb() colour: ${css}`);
  const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
  return a === 0 ? null : [r, g, b];
}

/** WCAG relative luminance of an sRGB colour. */
function luminance(rgb) {
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG contrast ratio of two colours. */
function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/**
 * The focused element's outline and the background it is drawn on (the
 * outline sits outside the element, on its parent's background).
 */
function focusRing(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    let background = 'rgb(255, 255, 255)';
    for (let p = el.parentElement; p; p = p.parentElement) {
      const bg = getComputedStyle(p).backgroundColor;
      if (!/^rgba\(.*,\s*0\)$/.test(bg) && bg !== 'transparent') {
        background = bg;
        break;
      }
    }
    return {
      what: `${el.tagName.toLowerCase()}#${el.id} "${(el.textContent || '').trim().slice(0, 30)}"`,
      focusVisible: el.matches(':focus-visible'),
      style: style.outlineStyle,
      width: parseFloat(style.outlineWidth),
      color: style.outlineColor,
      background,
    };
  });
}

/** Fails unless the focused element shows a `:focus-visible` outline that stands out from its background. */
async function assertVisibleFocus(page) {
  const ring = await focusRing(page);
  assert.ok(ring, 'something has focus');
  assert.equal(ring.focusVisible, true, `${ring.what} matches :focus-visible`);
  assert.notEqual(ring.style, 'none', `${ring.what} has an outline`);
  assert.ok(ring.width >= MIN_RING_WIDTH_PX, `${ring.what}: outline ${ring.width}px wide`);
  const color = parseRgb(ring.color);
  assert.ok(color, `${ring.what}: outline colour ${ring.color} is transparent`);
  const ratio = contrast(color, parseRgb(ring.background));
  assert.ok(ratio >= MIN_RING_CONTRAST,
    `${ring.what}: outline ${ring.color} on ${ring.background} is ${ratio.toFixed(2)}:1, under ${MIN_RING_CONTRAST}:1`);
}

/**
 * Presses `key` (Tab or Shift+Tab) until the focused element matches
 * `selector`, checking that every element passed on the way shows its
 * focus; fails if it is not reached within `max` presses.
 */
async function tabTo(page, selector, { key = 'Tab', max = 12 } = {}) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(key);
    await assertVisibleFocus(page);
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  assert.fail(`${key} never reached ${selector}; focus is on ${await focusedId(page)}`);
}

// ---------------------------------------------------------------------------
// Announcements
// ---------------------------------------------------------------------------

/**
 * Runs in the page before its scripts: records each change of the text of
 * a live region (what a screen reader would announce) and each update of
 * the progress bar, from the moment the document is parsed.
 */
function watchAnnouncements() {
  const LIVE = '[aria-live], [role=alert], [role=status], [role=log], [role=marquee], [role=timer], output';
  const log = { changes: [], barUpdates: 0 };
  window.announcements = log;
  const lastText = new Map();
  new MutationObserver((records) => {
    const touched = new Set();
    for (const r of records) {
      const node = r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement;
      if (!node) continue;
      if (r.type === 'attributes' && node.id === 'progress-fill') log.barUpdates += 1;
      const region = node.closest(LIVE);
      if (region && r.type !== 'attributes') touched.add(region);
    }
    for (const region of touched) {
      const text = region.textContent.replace(/\s+/g, ' ').trim();
      const parsing = document.readyState === 'loading';
      // A region left empty by the markup is first touched by a script.
      if (!parsing && (lastText.get(region) ?? '') !== text) {
        log.changes.push({ region: region.id || region.tagName, text });
      }
      lastText.set(region, text);
    }
  }).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['style'],
  });
}

// ---------------------------------------------------------------------------
// Motion
// ---------------------------------------------------------------------------

/** Elements (and pseudo-elements) with a CSS animation or a transition that takes time. */
function movingParts(page) {
  return page.evaluate(() => {
    const moving = [];
    const takesTime = (list) => list.split(',').some((d) => parseFloat(d) > 0);
    for (const el of document.querySelectorAll('*')) {
      for (const pseudo of [null, '::before', '::after', '::marker']) {
        const s = getComputedStyle(el, pseudo);
        const what = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${pseudo ?? ''}`;
        if (s.animationName !== 'none' && takesTime(s.animationDuration)) moving.push(`${what} animation ${s.animationName}`);
        if (s.transitionProperty !== 'none' && takesTime(s.transitionDuration)) {
          moving.push(`${what} transition ${s.transitionProperty} ${s.transitionDuration}`);
        }
      }
    }
    return moving;
  });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('axe-core finds no WCAG 2.2 AA violation on the challenge page', () => {
  for (const look of LOOKS) {
    e2e(`while loading, solving, paused and waiting for another tab (${look.name})`, async (t) => {
      const { context, page } = await openPage(t, browser, look.options);
      const { release, arrived } = await holdUntilReleased(page, '**/api/challenge');
      t.after(release);
      await page.goto(`${slow.url}/`);
      await arrived;
      assert.equal(await page.evaluate(() => document.body.dataset.state), 'loading');
      await assertAccessible(assert, page, 'loading');
      release();

      await waitForState(page, ['solving']);
      await page.waitForFunction(() => window.powgateStatus.hashes > 0);
      await assertAccessible(assert, page, 'solving');
      await page.click('#details summary');
      await assertAccessible(assert, page, 'solving, Details open');

      await page.click('#pause');
      await page.waitForFunction(() => window.powgateStatus.paused);
      await assertAccessible(assert, page, 'paused');

      // A second tab of the same browser waits for the first one's turn.
      const second = await context.newPage();
      await second.goto(`${slow.url}/`);
      await waitForState(second, ['waiting']);
      await assertAccessible(assert, second, 'waiting for another tab');
    });

    e2e(`when done, with and without a return address (${look.name})`, async (t) => {
      const { page } = await openPage(t, browser, look.options);
      await page.goto(`${fast.url}/`);
      await waitForState(page, ['solved']);
      await assertAccessible(assert, page, 'done, no return address');

      // The redirect to the return address is held, so the page stays.
      const { page: returning } = await openPage(t, browser, look.options);
      const { release } = await holdUntilReleased(returning, '**/healthz');
      t.after(release);
      await returning.goto(`${fast.url}/?redir=%2Fhealthz`);
      await waitForState(returning, ['solved']);
      assert.equal((await pageStatus(returning)).redirect, `${fast.url}/healthz`);
      await assertAccessible(assert, returning, 'done, taking the visitor back');
    });

    e2e(`after a refused answer (${look.name})`, async (t) => {
      const { page } = await openPage(t, browser, look.options);
      await refuseFirstAnswer(page);
      await page.goto(`${fast.url}/`);
      await waitForState(page, ['error']);
      await assertAccessible(assert, page, 'error');
    });

    e2e(`without JavaScript, and on both result pages of its token form (${look.name})`, async (t) => {
      const token = await fast.solveWithCli();
      const { page } = await openPage(t, browser, { ...look.options, javaScriptEnabled: false });
      await page.goto(`${fast.url}/?redir=%2Fhealthz`);
      assert.equal(await page.isVisible('#noscript-token'), true);
      const copy = await assertAccessibleWithoutScripts(t, page, look.options, 'no-JS');
      assert.equal(await copy.isVisible('#noscript-token'), true, 'axe saw the no-JS form');

      await page.fill('#noscript-token', 'not-a-token');
      await Promise.all([page.waitForURL(`${fast.url}/api/token`), page.click('form:has(#noscript-token) button')]);
      assert.equal(await page.evaluate(() => document.body.dataset.state), 'error');
      await assertAccessibleWithoutScripts(t, page, look.options, 'no-JS, token refused');

      await page.goto(`${fast.url}/`);
      await page.fill('#noscript-token', token);
      await Promise.all([page.waitForURL(`${fast.url}/api/token`), page.click('form:has(#noscript-token) button')]);
      assert.equal(await page.evaluate(() => document.body.dataset.state), 'solved');
      await assertAccessibleWithoutScripts(t, page, look.options, 'no-JS, token accepted');
    });
  }
});

describe('the challenge page works with the keyboard alone', () => {
  for (const look of LOOKS) {
    e2e(`pauses and resumes the solve and opens the Details with Tab, Shift+Tab, Space and Enter, focus always visible (${look.name})`, async (t) => {
      const { page } = await openPage(t, browser, look.options);
      await openSolving(page);
      await page.waitForFunction(() => !document.getElementById('pause').disabled);

      await tabTo(page, '#pause');
      await page.keyboard.press('Space');
      await page.waitForFunction(() => window.powgateStatus.paused);
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => !window.powgateStatus.paused);
      await assertVisibleFocus(page);

      await tabTo(page, '#details > summary');
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate(() => document.getElementById('details').open), true, 'Enter opens the Details');
      assert.equal(await page.isVisible('#hashes'), true);
      await page.keyboard.press('Space');
      assert.equal(await page.evaluate(() => document.getElementById('details').open), false, 'Space closes them');

      await tabTo(page, '#pause', { key: 'Shift+Tab' });
      await page.keyboard.press('Space');
      await page.waitForFunction(() => window.powgateStatus.paused);
    });
  }

  e2e('tries again after an error from the keyboard; focus goes to the error, then the page, then the Done heading, never to <body>', async (t) => {
    const { page } = await openPage(t, browser);
    await refuseFirstAnswer(page);
    await page.goto(`${fast.url}/`);
    await waitForState(page, ['error']);
    assert.equal(await focusedId(page), 'error-title', 'focus on the error');

    await tabTo(page, '#retry');
    let loads = 0;
    page.on('load', () => { loads += 1; });
    await page.keyboard.press('Enter');
    // The Try again button goes away with the error: focus must go
    // somewhere a screen reader user can carry on from.
    assert.equal(await focusedId(page), 'title', 'focus on the page heading once the error is gone');
    await waitForState(page, ['solved']);
    assert.equal(loads, 0, 'tried again inside the page');
    assert.equal(await focusedId(page), 'success-title', 'focus on the Done heading');
  });

  e2e('moves focus to Continue when taking the visitor back', async (t) => {
    const { page } = await openPage(t, browser);
    const { release } = await holdUntilReleased(page, '**/healthz');
    t.after(release);
    await page.goto(`${fast.url}/?redir=%2Fhealthz`);
    await waitForState(page, ['solved']);
    assert.equal(await focusedId(page), 'continue-link');
  });

  e2e('submits a real token in the no-JavaScript form with the keyboard', async (t) => {
    const token = await fast.solveWithCli();
    const { page } = await openPage(t, browser, { javaScriptEnabled: false });
    await page.goto(`${fast.url}/`);

    await tabTo(page, '#noscript-token');
    await page.keyboard.type(token);
    await tabTo(page, 'form:has(#noscript-token) button[type=submit]');
    await Promise.all([page.waitForURL(`${fast.url}/api/token`), page.keyboard.press('Enter')]);
    assert.match(await page.textContent('h1'), /You can continue/);
    await tabTo(page, 'a');
    assert.equal(await fast.verifyStatus(token), 200);
  });
});

describe('the challenge page announces events, not the progress bar', () => {
  e2e('has only polite live regions, whose text changes a handful of times while the bar moves every second', async (t) => {
    const { page } = await openPage(t, browser);
    await page.addInitScript(watchAnnouncements);
    await openSolving(page);

    const live = await page.evaluate(() => [...document.querySelectorAll('[aria-live]')]
      .map((el) => `${el.id}: ${el.getAttribute('aria-live')}`));
    assert.ok(live.length > 0, 'the page has live regions');
    assert.deepEqual(live.filter((l) => !l.endsWith(': polite')), [], `live regions: ${live.join(', ')}`);
    assert.equal(await page.evaluate(() => document.getElementById('progress').closest('[aria-live], [role=alert]')), null,
      'the bar is not inside a live region');

    // A pause and a resume in the middle: two events worth announcing.
    await sleep(WATCH_MS / 2);
    await page.click('#pause');
    await page.waitForFunction(() => window.powgateStatus.paused);
    const pausedText = await page.textContent('#status');
    await page.click('#pause');
    await sleep(WATCH_MS / 2);

    const { changes, barUpdates } = await page.evaluate(() => window.announcements);
    const said = changes.map((c) => `${c.region}: ${c.text}`).join('\n');
    assert.ok(barUpdates >= WATCH_MS / 1000, `the bar moved ${barUpdates} times in ${WATCH_MS} ms`);
    assert.ok(changes.length <= MAX_ANNOUNCEMENTS, `${changes.length} announcements:\n${said}`);
    assert.ok(changes.some((c) => c.text === pausedText), `the pause ("${pausedText}") is announced:\n${said}`);
  });
});

describe('the challenge page respects prefers-reduced-motion', () => {
  e2e('runs no animation or transition when reduced motion is asked for, and still solves', async (t) => {
    // Without the preference the bar glides, so the check below can see one.
    const { page: moving } = await openPage(t, browser);
    await openSolving(moving);
    assert.deepEqual(await movingParts(moving), ['div#progress-fill transition transform 0.3s']);

    const { page } = await openPage(t, browser, { reducedMotion: 'reduce' });
    await openSolving(page);
    assert.deepEqual(await movingParts(page), [], 'moving while solving');

    const { page: solving } = await openPage(t, browser, { reducedMotion: 'reduce' });
    await solving.goto(`${fast.url}/`);
    await waitForState(solving, ['solved']);
    assert.deepEqual(await movingParts(solving), [], 'moving when done');
  });
});
