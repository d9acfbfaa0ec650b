// Unit tests for frontend/caps.js: `node --test frontend/tests/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  chooseWorkerCount,
  describeCaps,
  DESKTOP_BUDGET_KIB,
  LOW_MEMORY_BUDGET_KIB,
  memoryBudgetKiB,
  PHONE_BUDGET_KIB,
} from '../caps.js';
import { UA } from './user-agents.mjs';

const MIB = 1024; // KiB per MiB

describe('chooseWorkerCount', () => {
  it('uses one worker per core on desktop Chrome', () => {
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 8, userAgent: UA.chromeWindows, memoryKiB: 64 * MIB }), 8);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 10, userAgent: UA.chromeMac, memoryKiB: 64 * MIB }), 10);
  });

  it('caps at 16 workers', () => {
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 32, userAgent: UA.chromeWindows, memoryKiB: 64 * MIB }), 16);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 128, userAgent: UA.firefoxLinux, memoryKiB: 8 }), 16);
  });

  it('assumes 2 cores when the browser does not say', () => {
    assert.equal(chooseWorkerCount({ userAgent: UA.firefoxLinux, memoryKiB: 8 }), 2);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 0, userAgent: UA.firefoxLinux }), 2);
  });

  it('does not take Chromium-based desktop browsers for Safari', () => {
    for (const ua of [UA.chromeMac, UA.edgeWindows, UA.operaMac, UA.firefoxLinux]) {
      const caps = describeCaps({ hardwareConcurrency: 12, userAgent: ua, memoryKiB: 8 });
      assert.equal(caps.webkit, false, ua);
      assert.equal(caps.workers, 12, ua);
    }
  });

  it('allows at most 4 on every iPhone and iPad browser', () => {
    for (const ua of [UA.safariIphone, UA.chromeIphone, UA.firefoxIphone, UA.edgeIpad]) {
      // Tiny memory cost, so only the WebKit cap can be the limit.
      const caps = describeCaps({ hardwareConcurrency: 6, userAgent: ua, maxTouchPoints: 5, memoryKiB: 8 });
      assert.equal(caps.workers, 4, ua);
      assert.equal(caps.webkit, true, ua);
      assert.equal(caps.mobile, true, ua);
      assert.equal(caps.limit, 'webkit', ua);
    }
  });

  it('allows at most 4 in desktop Safari', () => {
    const caps = describeCaps({ hardwareConcurrency: 10, userAgent: UA.safariMac, maxTouchPoints: 0, memoryKiB: 64 * MIB });
    assert.equal(caps.workers, 4);
    assert.equal(caps.webkit, true);
    assert.equal(caps.mobile, false);
  });

  it('recognises iPadOS in desktop mode by its touch screen', () => {
    const env = { hardwareConcurrency: 8, userAgent: UA.safariMac, maxTouchPoints: 5, platform: 'MacIntel' };
    const caps = describeCaps({ ...env, memoryKiB: 8 });
    assert.equal(caps.workers, 4);
    assert.equal(caps.mobile, true);
    // And it gets the phone memory budget: 256 MiB / 128 MiB = 2.
    assert.equal(chooseWorkerCount({ ...env, memoryKiB: 128 * MIB }), 2);
  });

  it('keeps phones within their memory budget', () => {
    const caps = describeCaps({ hardwareConcurrency: 8, userAgent: UA.chromeAndroid, memoryKiB: 64 * MIB });
    assert.equal(caps.budgetKiB, PHONE_BUDGET_KIB);
    assert.equal(caps.workers, 4); // 256 MiB / 64 MiB
    assert.equal(caps.limit, 'memory');
    assert.ok(caps.explanation.includes('64 MiB'), caps.explanation);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 8, userAgent: UA.chromeAndroid, memoryKiB: 128 * MIB }), 2);
  });

  it('keeps desktops within their memory budget', () => {
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 16, userAgent: UA.chromeWindows, memoryKiB: 256 * MIB }), 4);
  });

  it('shrinks the budget on devices with little memory', () => {
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 2 }), LOW_MEMORY_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 0.5 }), LOW_MEMORY_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 4 }), 512 * MIB);
    assert.equal(memoryBudgetKiB({ mobile: false, deviceMemory: 8 }), DESKTOP_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: true, deviceMemory: 8 }), PHONE_BUDGET_KIB);
    assert.equal(memoryBudgetKiB({ mobile: false }), DESKTOP_BUDGET_KIB);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 8, userAgent: UA.chromeWindows, deviceMemory: 2, memoryKiB: 64 * MIB }), 2);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 16, userAgent: UA.chromeWindows, deviceMemory: 4, memoryKiB: 64 * MIB }), 8);
  });

  it('never goes below one worker', () => {
    const caps = describeCaps({ hardwareConcurrency: 8, userAgent: UA.chromeAndroid, deviceMemory: 1, memoryKiB: 1024 * MIB });
    assert.equal(caps.workers, 1);
    assert.equal(caps.limit, 'memory');
    assert.match(caps.explanation, /^1 worker/);
    assert.equal(chooseWorkerCount({}), 2);
    assert.equal(chooseWorkerCount({ hardwareConcurrency: 1 }), 1);
  });
});
