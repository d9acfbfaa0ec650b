// axe-core in the page under test: injected from the pinned npm package (no
// CDN), run against the WCAG 2.2 AA rules, its violations returned in a form
// that reads well in a failed assertion. Shared by the admin and challenge
// page tests.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The rule tags of WCAG 2.2 level AA (A and AA of 2.0, 2.1 and 2.2). */
export const WCAG_22_AA = Object.freeze(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']);

/**
 * Best-practice rules run as well: two landmarks of one kind with one name
 * (`landmark-unique`) leave a screen-reader user unable to tell them apart,
 * and issue 19 found two on the admin dashboard.
 */
export const ALSO_RUN = Object.freeze(['landmark-unique']);

/**
 * The WCAG 2.2 AA violations axe finds in the page as it is now. axe is
 * evaluated through the debugging protocol, which the page's
 * Content-Security-Policy does not govern, so the page is tested with its
 * real policy.
 *
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{id: string, impact: string, help: string, nodes: string[]}[]>}
 */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(async ({ tags, also }) => {
    // @ts-ignore: injected above
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: tags },
      rules: Object.fromEntries(also.map((id) => [id, { enabled: true }])),
      resultTypes: ['violations'],
    });
    return result.violations.map((/** @type {any} */ v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((/** @type {any} */ n) => n.target.join(' ')),
    }));
  }, { tags: [...WCAG_22_AA], also: [...ALSO_RUN] });
}

/**
 * Fails with every violation named, its impact and the elements it is on.
 *
 * @param {import('node:assert').strict} assert
 * @param {import('playwright-core').Page} page
 * @param {string} state what the page shows, for the message
 */
export async function assertAccessible(assert, page, state) {
  const violations = await axeViolations(page);
  const text = violations
    .map((v) => `  ${v.id} (${v.impact}): ${v.help}\n    on ${v.nodes.join(', ')}`)
    .join('\n');
  assert.deepEqual(violations.map((v) => v.id), [], `axe in state "${state}":\n${text}`);
}
