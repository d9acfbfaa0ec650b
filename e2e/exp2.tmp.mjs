import { chromium } from 'playwright-core';
const b = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless','--no-sandbox','--disable-gpu','--disable-background-networking','--disable-component-update','--disable-sync','--no-first-run'], timeout: 30000 });
for (const mode of ['strip-page', 'worker-csp']) {
const ctx = await b.newContext();
const page = await ctx.newPage();
page.on('console', m => console.log(mode, 'console', m.type(), m.text().slice(0, 200)));
page.on('pageerror', e => console.log(mode, 'pageerror', e.message));
if (mode === 'strip-page') await page.route('http://127.0.0.1:18232/', async (r) => { const res = await r.fetch(); const h = res.headers(); h['content-security-policy'] = h['content-security-policy'].replace(" 'wasm-unsafe-eval'", ''); await r.fulfill({ response: res, headers: h }); });
else await page.route('**/worker.js', async (r) => { const res = await r.fetch(); const h = res.headers(); h['content-security-policy'] = "default-src 'self'; script-src 'self'"; await r.fulfill({ response: res, headers: h }); });
await page.goto('http://127.0.0.1:18232/');
await page.waitForFunction(() => ['solved','error'].includes(document.body.dataset.state), null, { timeout: 90000 });
console.log(mode, await page.evaluate(() => JSON.stringify(window.powgateStatus)));
await ctx.close();
}
await b.close();
