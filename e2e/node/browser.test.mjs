// The browser itself, on main today: Debian's Chromium starts under playwright-core
// with the closed-network flags and loads a page of the running provider. This keeps
// the install and the flags checked in CI before the code-flow tests can run.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { context } from '../lib/context.mjs';
import { launchBrowser } from '../lib/browser.mjs';

it('headless Chromium loads the provider discovery document', async () => {
  const browser = await launchBrowser({ executablePath: context.chromium });
  try {
    const res = await browser.page.goto(`${context.issuer}/.well-known/openid-configuration`);
    assert.equal(res.status(), 200);
    const doc = JSON.parse(await browser.page.locator('body').innerText());
    assert.equal(doc.issuer, context.issuer);
  } finally {
    await browser.close();
  }
});
