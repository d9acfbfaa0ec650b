// The three browser engines behind one small interface, so a scenario is
// written once and run in each:
//
//   chromium  Debian's chromium (Blink, V8), by playwright-core over CDP
//   firefox   Debian's firefox-esr (Gecko, SpiderMonkey), by puppeteer-core
//             over WebDriver BiDi (playwright-core cannot drive a stock
//             Firefox)
//   webkit    WebKitGTK's MiniBrowser (WebKit, JavaScriptCore: the engine of
//             Safari and of every iOS browser), by selenium-webdriver over
//             classic WebDriver against WebKitWebDriver under Xvfb
//
// A session has one page. What the drivers do not all offer (watching and
// holding requests, adding a script to the page) is done by the tap in
// front of powgate instead (tap.mjs). Nothing here downloads a browser or a
// driver: each engine is the system's own binary, and when one is missing
// the tests say so through unavailable().

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import puppeteer from 'puppeteer-core';
import { Builder, By, Capabilities, Key } from 'selenium-webdriver';

import { freePort, launchBrowser, WAIT_MS } from './harness.mjs';

export const ENGINES = Object.freeze(['chromium', 'firefox', 'webkit']);

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER || '/usr/bin/WebKitWebDriver';
/** Where Debian's libwebkit2gtk-4.1-0 puts the MiniBrowser. */
const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const XVFB_RUN = '/usr/bin/xvfb-run';
const POLL_MS = 100;

const BINARIES = {
  chromium: [process.env.CHROMIUM || '/usr/bin/chromium'],
  firefox: [FIREFOX],
  webkit: [WEBKIT_DRIVER, MINIBROWSER, XVFB_RUN],
};

/** Why `engine` cannot run on this machine, or null when it can. */
export function unavailable(engine) {
  const missing = BINARIES[engine].filter((p) => !existsSync(p));
  return missing.length ? `${engine} is not installed here (missing ${missing.join(', ')}; scripts/test.sh installs it as root)` : null;
}

/**
 * Why `engine` is left out of this run, or null: E2E_ENGINES=firefox,webkit
 * (for example) runs only those, for a developer chasing one engine.
 */
export function unselected(engine) {
  const only = process.env.E2E_ENGINES;
  if (!only || only.split(',').includes(engine)) return null;
  return `${engine} is not in E2E_ENGINES=${only}`;
}

/** Driver processes still running; killed outright if the test process ends first. */
const drivers = new Set();
process.on('exit', () => {
  for (const child of drivers) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/**
 * A browser session of `engine` with one page. Close it in an after hook.
 *
 * @param {'chromium'|'firefox'|'webkit'} engine
 * @param {{javaScript?: boolean}} [options] javaScript: false opens the page with scripting off
 * @returns {Promise<Session>}
 */
export async function launchEngine(engine, { javaScript = true } = {}) {
  const launch = { chromium: launchChromium, firefox: launchFirefox, webkit: launchWebKit }[engine];
  return new Session(engine, await launch({ javaScript }));
}

/**
 * One engine's page, with the handful of operations the scenarios need.
 * `evaluate` takes a function (sent as source, so it must not close over
 * anything) and one JSON argument, and awaits a promise it returns.
 */
class Session {
  constructor(engine, driver) {
    this.engine = engine;
    this.driver = driver;
  }

  goto(url) { return this.driver.goto(url); }
  reload() { return this.driver.reload(); }
  url() { return this.driver.url(); }
  evaluate(fn, arg = null) { return this.driver.evaluate(fn, arg); }
  fill(selector, value) { return this.driver.fill(selector, value); }
  /**
   * Submits a form the way a visitor at the keyboard does: Enter in one of
   * its fields. (A BiDi click on a submit button that leads to another page
   * never resolves in Firefox ESR 153 here.)
   */
  submitFrom(selector) { return this.driver.submitFrom(selector); }
  close() { return this.driver.close(); }

  /** The cookie called `name` that the browser holds for `url`'s host: {value, httpOnly}, or undefined. */
  async cookie(url, name) {
    const { hostname } = new URL(url);
    const all = await this.driver.cookies(url);
    return all.find((c) => c.name === name && c.domain.replace(/^\./, '') === hostname);
  }

  /**
   * Polls `fn(arg)` in the page until it returns something truthy, and
   * returns that. Errors while the page navigates count as "not yet".
   */
  async waitFor(fn, arg = null, { timeout = WAIT_MS, what = 'the condition' } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        const value = await this.evaluate(fn, arg);
        if (value) return value;
        last = value;
      } catch (err) {
        last = err.message.split('\n')[0];
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.engine}: ${what} not met within ${timeout} ms (last: ${JSON.stringify(last)})\n${await this.describe()}`);
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * Waits until the page's document.body.dataset.state is one of `states`;
   * reaching 'error' when it was not asked for fails at once.
   */
  async waitForState(states, { timeout = WAIT_MS } = {}) {
    const wanted = [].concat(states);
    const state = await this.waitFor((stop) => {
      const s = document.body && document.body.dataset.state;
      return stop.includes(s) ? s : null;
    }, [...new Set([...wanted, 'error'])], { timeout, what: `state ${wanted.join('|')}` });
    if (!wanted.includes(state)) {
      throw new Error(`${this.engine}: page reached state '${state}' instead of ${wanted.join('|')}\n${await this.describe()}`);
    }
    return state;
  }

  /** window.powgateStatus, copied out of the page. */
  status() {
    return this.evaluate(() => ({ ...window.powgateStatus }));
  }

  /** What the page says about itself, for failure messages. */
  async describe() {
    const lines = [];
    try {
      lines.push(`url: ${await this.url()}`);
      lines.push(`page: ${JSON.stringify(await this.evaluate(() => ({
        state: document.body && document.body.dataset.state,
        status: window.powgateStatus,
        notice: document.getElementById('notice')?.textContent,
        error: document.getElementById('error-message')?.textContent,
      })))}`);
    } catch (err) {
      lines.push(`page: not readable (${err.message.split('\n')[0]})`);
    }
    return lines.join('\n');
  }
}

// ---------------------------------------------------------------------------
// Chromium: playwright-core, as the rest of the e2e
// ---------------------------------------------------------------------------

async function launchChromium({ javaScript }) {
  const browser = await launchBrowser();
  const context = await browser.newContext({ javaScriptEnabled: javaScript });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  return {
    goto: (url) => page.goto(url, { timeout: WAIT_MS }),
    reload: () => page.reload({ timeout: WAIT_MS }),
    url: async () => page.url(),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    fill: (selector, value) => page.fill(selector, value),
    submitFrom: (selector) => page.press(selector, 'Enter'),
    cookies: (url) => context.cookies(url),
    close: () => browser.close(),
  };
}

// ---------------------------------------------------------------------------
// Firefox ESR: puppeteer-core over WebDriver BiDi
// ---------------------------------------------------------------------------

async function launchFirefox({ javaScript }) {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    timeout: WAIT_MS,
    extraPrefsFirefox: {
      // No update checks, telemetry or other background traffic.
      'app.update.enabled': false,
      'datareporting.policy.dataSubmissionEnabled': false,
      // Firefox ESR's BiDi has no emulation.setScriptingEnabled (what
      // page.setJavaScriptEnabled sends), so scripting is turned off here.
      'javascript.enabled': javaScript,
    },
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    return {
      goto: (url) => page.goto(url),
      reload: () => page.reload(),
      url: async () => page.url(),
      evaluate: (fn, arg) => page.evaluate(fn, arg),
      // Typed into the element found at once: the locator's fill and
      // waitForSelector wait on checks that never pass with scripting off.
      fill: async (selector, value) => {
        const field = await present(page, selector);
        await field.evaluate((el) => {
          el.value = '';
        });
        await field.type(value);
      },
      submitFrom: async (selector) => (await present(page, selector)).press('Enter'),
      cookies: () => browser.cookies(),
      close: () => browser.close(),
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/** The element `selector` finds in puppeteer's `page` now, or an error that names it. */
async function present(page, selector) {
  const element = await page.$(selector);
  if (!element) throw new Error(`no element matches ${selector} on ${page.url()}`);
  return element;
}

// ---------------------------------------------------------------------------
// WebKitGTK: WebKitWebDriver under Xvfb, selenium-webdriver as the client
// ---------------------------------------------------------------------------

/** Starts WebKitWebDriver on a free port under its own Xvfb display. */
async function startWebKitDriver() {
  const port = await freePort();
  // Its own process group, so that closing kills xvfb-run, Xvfb, the driver
  // and the MiniBrowser it started, all at once.
  const child = spawn(XVFB_RUN, ['-a', WEBKIT_DRIVER, `--port=${port}`], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  drivers.add(child);
  let log = '';
  child.stderr.on('data', (c) => {
    log = (log + c).slice(-4096);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!drivers.delete(child)) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    await sleep(200);
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Gone after SIGTERM.
    }
  };
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(1000) });
      if ((await res.json()).value?.ready) return { url, stop };
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  await stop();
  throw new Error(`WebKitWebDriver did not start:\n${log}`);
}

async function launchWebKit({ javaScript }) {
  const { url, stop } = await startWebKitDriver();
  let driver;
  try {
    const args = ['--automation'];
    if (!javaScript) args.push('--enable-javascript=false');
    const caps = new Capabilities({
      browserName: 'MiniBrowser',
      'webkitgtk:browserOptions': { binary: MINIBROWSER, args },
    });
    // usingServer: the running driver is the endpoint, so selenium starts no
    // driver of its own and never runs selenium-manager to fetch one.
    driver = await new Builder().usingServer(url).withCapabilities(caps).build();
    await driver.manage().setTimeouts({ pageLoad: WAIT_MS, script: 10 * 60_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    goto: (u) => driver.get(u),
    reload: () => driver.navigate().refresh(),
    url: () => driver.getCurrentUrl(),
    // The async form, so that a returned promise is awaited in the page
    // whatever the driver does with promises in the sync form.
    evaluate: async (fn, arg) => {
      const out = await driver.executeAsyncScript(
        `const done = arguments[arguments.length - 1];
         Promise.resolve().then(() => (${fn})(arguments[0]))
           .then((value) => done({ value }), (e) => done({ error: String(e && e.stack || e) }));`,
        arg,
      );
      if (out && 'error' in out) throw new Error(out.error);
      return out?.value;
    },
    submitFrom: (selector) => driver.findElement(By.css(selector)).sendKeys(Key.ENTER),
    fill: async (selector, value) => {
      const el = await driver.findElement(By.css(selector));
      await el.clear();
      await el.sendKeys(value);
    },
    cookies: async () => (await driver.manage().getCookies()).map((c) => ({ ...c, domain: c.domain ?? '' })),
    close: async () => {
      try {
        await driver.quit();
      } finally {
        await stop();
      }
    },
  };
}
