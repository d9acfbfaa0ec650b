// @ts-check
// How many solver workers this browser gets, and which limit decided it:
// its cores, a ceiling, WebKit's tolerance for wasm memories, and the memory
// budget of its device class. No DOM access here, so Node's test runner loads
// this module as it is (see tests/caps.test.mjs).

/** Used when the browser does not report navigator.hardwareConcurrency. */
export const DEFAULT_CORES = 2;

/** More workers than this rarely helps and multiplies memory use. */
export const MAX_WORKERS = 16;

/**
 * Safari and every browser on iPhone/iPad (they all must use WebKit) tolerate
 * few large wasm memories at once: past a handful of workers the tab is
 * killed ("A problem repeatedly occurred") instead of an allocation failing.
 */
export const WEBKIT_MAX_WORKERS = 4;

const KIB_PER_MIB = 1024;
const KIB_PER_GIB = 1024 * 1024;

/** Total argon2 memory for all workers together on a desktop: 1 GiB. */
export const DESKTOP_BUDGET_KIB = 1 * KIB_PER_GIB;

/** On phones and tablets, which reclaim memory from tabs eagerly: 256 MiB. */
export const PHONE_BUDGET_KIB = 256 * KIB_PER_MIB;

/** When navigator.deviceMemory says 2 GiB or less: 128 MiB. */
export const LOW_MEMORY_BUDGET_KIB = 128 * KIB_PER_MIB;

/** navigator.deviceMemory at or below this (GiB) selects LOW_MEMORY_BUDGET_KIB. */
export const LOW_MEMORY_DEVICE_GIB = 2;

/**
 * Share of the reported device memory we allow ourselves. deviceMemory is
 * rounded and capped at 8 GiB by browsers, so 1/8 of it gives 512 MiB on a
 * 4 GiB machine and the full desktop budget on an 8 GiB one.
 */
export const DEVICE_MEMORY_SHARE = 1 / 8;

/**
 * Navigator-like facts plus the challenge's memory cost; anything missing
 * falls back to a safe default.
 *
 * @typedef {object} Environment
 * @property {number} [hardwareConcurrency] navigator.hardwareConcurrency
 * @property {string} [userAgent]
 * @property {number} [deviceMemory] GiB, rounded (Chromium only)
 * @property {number} [maxTouchPoints]
 * @property {string} [platform]
 * @property {number} [memoryKiB] the challenge's argon2 m_cost
 */

/**
 * What the user agent tells us about the engine and form factor.
 *
 * Every iOS browser is WebKit underneath whatever its name (CriOS, FxiOS,
 * EdgiOS …). iPadOS in its default "desktop" mode claims to be a Mac, so a
 * "Macintosh" with a touch screen is an iPad: no Mac has one.
 *
 * @param {Environment} [env]
 * @returns {{ios: boolean, webkit: boolean, mobile: boolean}}
 */
export function detectPlatform({ userAgent = '', maxTouchPoints = 0, platform = '' } = {}) {
  const ua = String(userAgent);
  const touch = Number(maxTouchPoints) > 1;
  const ios = /\b(iPhone|iPad|iPod)\b/.test(ua)
    || ((/\bMacintosh\b/.test(ua) || platform === 'MacIntel') && touch);
  // Chrome, Edge, Opera and Android browsers also say "Safari" and
  // "AppleWebKit" for compatibility; only the real Safari (and other WebKit
  // browsers such as GNOME Web) lacks every one of these tokens.
  const desktopSafari = !ios
    && /AppleWebKit/.test(ua)
    && /Safari/.test(ua)
    && !/Chrome|Chromium|CriOS|Edg|OPR|Android/.test(ua);
  const mobile = ios || /Android|Mobi/.test(ua);
  return { ios, webkit: ios || desktopSafari, mobile };
}

/**
 * The device class the workers were sized for, named as the server's
 * solve-time estimates name it. WebKit comes first because its worker cap
 * sets it apart whatever the form factor. The page reports this class in its
 * telemetry, so the server files the solve where the page sized it rather
 * than guessing again from the User-Agent.
 *
 * @param {{webkit: boolean, mobile: boolean}} platform
 * @returns {'desktop' | 'phone' | 'safari_ios'}
 */
export function deviceClass({ webkit, mobile }) {
  if (webkit) return 'safari_ios';
  return mobile ? 'phone' : 'desktop';
}

/**
 * The memory all workers together may use, in KiB.
 *
 * @param {{mobile: boolean, deviceMemory?: number}} info
 */
export function memoryBudgetKiB({ mobile, deviceMemory }) {
  const base = mobile ? PHONE_BUDGET_KIB : DESKTOP_BUDGET_KIB;
  if (typeof deviceMemory !== 'number' || !(deviceMemory > 0)) return base;
  if (deviceMemory <= LOW_MEMORY_DEVICE_GIB) return LOW_MEMORY_BUDGET_KIB;
  const share = Math.floor(deviceMemory * KIB_PER_GIB * DEVICE_MEMORY_SHARE);
  return Math.min(base, Math.max(LOW_MEMORY_BUDGET_KIB, share));
}

/**
 * Chooses the number of workers and says which limit decided it.
 *
 * N = min(cores, MAX_WORKERS, WEBKIT_MAX_WORKERS on WebKit,
 *         floor(budget / memoryKiB)), and never less than 1.
 *
 * @param {Environment} env
 * @returns {{workers: number, limit: string, limitValue: number, explanation: string, cores: number,
 *            webkit: boolean, mobile: boolean, deviceClass: import('./shared/wire.js').DeviceClass,
 *            budgetKiB: number, memoryKiB: number}}
 */
export function describeCaps(env = {}) {
  const hc = Number(env.hardwareConcurrency);
  const cores = Number.isFinite(hc) && hc >= 1 ? Math.floor(hc) : DEFAULT_CORES;
  const { webkit, mobile } = detectPlatform(env);
  const budgetKiB = memoryBudgetKiB({ mobile, deviceMemory: env.deviceMemory });
  const mk = Number(env.memoryKiB);
  const memoryKiB = Number.isFinite(mk) && mk > 0 ? mk : 0;

  /** @param {number} kib */
  const mib = (kib) => `${Math.round(kib / KIB_PER_MIB)} MiB`;
  // Candidate limits in order; on a tie the first one is named.
  /** @type {Array<[limit: string, workers: number, reason: string]>} */
  const limits = [
    ['cores', cores, `one per CPU thread (${cores})`],
    ['max', MAX_WORKERS, `at most ${MAX_WORKERS}`],
  ];
  if (webkit) {
    limits.push(['webkit', WEBKIT_MAX_WORKERS,
      `at most ${WEBKIT_MAX_WORKERS} in Safari and on iPhone and iPad`]);
  }
  if (memoryKiB > 0) {
    limits.push(['memory', Math.floor(budgetKiB / memoryKiB),
      `each needs ${mib(memoryKiB)} and this device gets ${mib(budgetKiB)} in all`]);
  }
  let [limit, value, reason] = limits[0];
  for (const l of limits) {
    if (l[1] < value) [limit, value, reason] = l;
  }
  const workers = Math.max(1, value);
  const explanation = value < 1
    ? `1 worker: ${reason}, but one is always tried.`
    : `${workers} worker${workers === 1 ? '' : 's'}: ${reason}.`;
  return {
    workers, limit, limitValue: value, explanation, cores, webkit, mobile,
    deviceClass: deviceClass({ webkit, mobile }), budgetKiB, memoryKiB,
  };
}

/**
 * The worker count alone; see describeCaps for the rules.
 *
 * @param {Environment} env
 */
export function chooseWorkerCount(env = {}) {
  return describeCaps(env).workers;
}
