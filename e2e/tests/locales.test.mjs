// The challenge page in each of its languages, in real headless Chromium
// against the real powgate binary (issue 19, "Languages"): chosen by the
// server from Accept-Language or ?lang=, with the static text, the script's
// messages and the no-JavaScript result pages all in that language.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  holdRequests,
  launchBrowser,
  openPage,
  startPowgate,
  tokenCookie,
  waitForState,
  withServerLog,
} from '../lib/harness.mjs';
import { catalog, TAGS } from '../lib/locales.mjs';

const DIFFICULTY = '150';
const TEST_TIMEOUT_MS = 120_000;
const HOOK_TIMEOUT_MS = 60_000;

/**
 * An Accept-Language header as a browser set to each language sends it:
 * regional variants and other languages after it, so that the server must
 * weigh q-values and match prefixes, not just compare strings.
 */
const BROWSER_HEADERS = {
  en: 'en-GB,en;q=0.9',
  de: 'de-AT,de;q=0.9,en;q=0.5',
  fr: 'fr-CH,fr;q=0.9,en;q=0.8',
  es: 'es-419,es;q=0.9,en;q=0.6',
  pt: 'pt-BR,pt;q=0.9,en-US;q=0.7',
  it: 'en;q=0.2,it-IT',
  nl: 'nl-BE,nl;q=0.9',
  pl: 'pl-PL,pl;q=0.9,en-US;q=0.8',
  ru: 'ru-RU,ru;q=0.9,en-US;q=0.8',
  uk: 'uk-UA,uk;q=0.9,ru;q=0.8',
  ja: 'ja-JP,ja;q=0.9',
  'zh-CN': 'zh-SG,zh;q=0.9,en;q=0.5',
};

const english = catalog('en');

/**
 * English sentences a visitor could meet on the solving screen: plain texts
 * long enough not to be a shared word ("Token", "Details"), cut at their
 * first placeholder.
 */
function englishSentences(own) {
  return Object.entries(english)
    .filter(([key, text]) => typeof text === 'string' && own[key] !== text)
    .map(([, text]) => text.split('{')[0].trim())
    .filter((text) => text.length >= 12);
}

let browser;
let server;

before(async () => {
  const started = await Promise.allSettled([
    launchBrowser().then((b) => { browser = b; }),
    startPowgate({ POW_DIFFICULTY_LEVEL: DIFFICULTY }).then((s) => { server = s; }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, { timeout: HOOK_TIMEOUT_MS });

after(async () => {
  await Promise.all([browser?.close(), server?.stop()]);
}, { timeout: HOOK_TIMEOUT_MS });

function e2e(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, withServerLog(() => [server], fn));
}

/**
 * Opens the page with `header` as Accept-Language at `path`, holds it on
 * the solving screen (the solver's wasm never arrives) and checks that it
 * speaks `tag` throughout.
 */
async function assertSolvingScreenIn(t, tag, header, path) {
  const own = catalog(tag);
  const { page, pageErrors } = await openPage(t, browser, { extraHTTPHeaders: { 'Accept-Language': header } });
  await holdRequests(page, '**/*.wasm');
  const response = await page.goto(`${server.url}${path}`);
  assert.match(response.headers().vary ?? '', /accept-language/i, 'caches must keep the languages apart');
  await waitForState(page, ['solving']);
  // The lead is rewritten once the page has the site's name.
  await page.waitForFunction(
    (text) => document.getElementById('lead')?.textContent === text,
    own.lead.replace('{site}', '127.0.0.1'),
  );

  const seen = await page.evaluate(() => ({
    lang: document.documentElement.lang,
    dir: document.documentElement.dir,
    title: document.title,
    heading: document.querySelector('h1')?.textContent,
    status: document.getElementById('status')?.textContent,
    estimate: document.getElementById('estimate')?.textContent,
    pause: document.getElementById('pause')?.textContent,
    progressName: document.getElementById('solver-title')?.textContent,
    visible: document.body.innerText,
  }));
  assert.equal(seen.lang, tag, `${header} ${path}`);
  assert.equal(seen.dir, 'ltr');
  assert.equal(seen.title, own.title);
  assert.equal(seen.heading, own.title);
  assert.equal(seen.status, own.calculating, 'the script\'s own messages');
  assert.equal(seen.estimate, own.measuring, 'the time estimate');
  assert.equal(seen.pause, own.pause);
  assert.equal(seen.progressName, own.progressTitle, 'the progress bar\'s accessible name');
  if (tag !== 'en') {
    const leaked = englishSentences(own).filter((text) => seen.visible.includes(text));
    assert.deepEqual(leaked, [], `English on the ${tag} page`);
  }
  assert.deepEqual(pageErrors, []);
}

describe('the challenge page in every language', () => {
  e2e('speaks the language the browser asks for, and the one ?lang= names', async (t) => {
    assert.deepEqual(Object.keys(BROWSER_HEADERS).sort(), TAGS, 'one browser header per catalog');
    for (const tag of TAGS) {
      await t.test(`${tag} by Accept-Language`, (st) => assertSolvingScreenIn(st, tag, BROWSER_HEADERS[tag], '/'));
      // ?lang= wins over a browser that asks for another language.
      const other = tag === 'de' ? 'fr' : 'de';
      await t.test(`${tag} by ?lang=`, (st) => assertSolvingScreenIn(st, tag, BROWSER_HEADERS[other], `/?lang=${tag}`));
    }
  });

  e2e('solves in Polish and lands on the return address', async (t) => {
    const pl = catalog('pl');
    const { context, page } = await openPage(t, browser, { extraHTTPHeaders: { 'Accept-Language': 'pl-PL,pl;q=0.9' } });
    await page.goto(`${server.url}/?redir=%2Fhealthz`);
    await waitForState(page, ['solved']);
    assert.equal(await page.textContent('#success-title'), pl.doneTitle);
    assert.equal(await page.textContent('#continue'), pl.takingYouBack);
    assert.equal(await page.textContent('#continue-link'), pl.continueNow);
    // The hashes tried, written the Polish way.
    const hashes = await page.evaluate(() => window.powgateStatus.hashes);
    assert.equal(await page.textContent('#hashes'), new Intl.NumberFormat('pl').format(hashes));
    await page.waitForURL(`${server.url}/healthz`);
    const cookie = await tokenCookie(context, server);
    assert.equal(await server.verifyStatus(cookie?.value), 200);
  });

  e2e('gives the no-JavaScript form and its result pages in the visitor\'s language', async (t) => {
    const uk = catalog('uk');
    const { page } = await openPage(t, browser, {
      javaScriptEnabled: false,
      extraHTTPHeaders: { 'Accept-Language': 'uk-UA,uk;q=0.9' },
    });
    await page.goto(`${server.url}/?redir=%2Fhealthz`);
    assert.equal(await page.getAttribute('html', 'lang'), 'uk');
    assert.equal(await page.textContent('noscript h2, main h2'), uk.noscriptTitle);
    assert.match(await page.textContent('main'), new RegExp(`powgate solve ${server.url}/`),
      'the command, filled into the translated sentence');
    await page.fill('#noscript-token', 'not-a-token');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.url}/api/token`),
      page.locator('form:has(#noscript-token) button[type=submit]').click(),
    ]);
    assert.equal(refused.status(), 401);
    assert.match(refused.headers().vary ?? '', /accept-language/i);
    assert.equal(await page.getAttribute('html', 'lang'), 'uk');
    assert.equal(await page.textContent('h1'), uk.tokenFailedTitle);
    assert.equal(await page.textContent('main p'), uk.tokenInvalid);
    assert.equal(await page.textContent('a'), uk.backToCheck);

    // A ?lang= choice is carried through the form to its result page, and
    // back again.
    const fr = catalog('fr');
    await page.goto(`${server.url}/?lang=fr`);
    assert.equal(await page.getAttribute('html', 'lang'), 'fr');
    await page.fill('#noscript-token', 'not-a-token');
    await Promise.all([
      page.waitForResponse((r) => r.url() === `${server.url}/api/token`),
      page.locator('form:has(#noscript-token) button[type=submit]').click(),
    ]);
    assert.equal(await page.textContent('h1'), fr.tokenFailedTitle);
    assert.equal(await page.getAttribute('a', 'href'), '../?lang=fr');
  });
});
