// Headless Chromium (Debian's, /usr/bin/chromium) driven by playwright-core through
// tessera's hosted pages, as a person would: the fields found by their labels
// ("Username", "Password"), the buttons by their names ("Sign in", "Allow", "Deny").
// Used by the node tests directly and by the Python tests through browser-driver.mjs.
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

// This machine's network is closed: without the background-networking flags Chromium
// keeps trying to reach Google's hosts. --no-sandbox: CI runs as root.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const TIMEOUT = 15_000;

/** A browser with one context (one cookie jar: the provider's single sign-on cookie
 * lives here) and one page, in a fresh user-data directory. */
export async function launchBrowser({ executablePath = '/usr/bin/chromium' } = {}) {
  const userDataDir = await mkdtemp(join(tmpdir(), 'tessera-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 800, height: 600 },
    locale: 'en-US',
    timeout: 60_000,
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Which of the hosted pages is shown: 'login', 'consent', 'logout' (a confirmation
 * that RP-initiated logout may ask for), or null. */
async function whichPage(page) {
  if ((await page.getByRole('button', { name: 'Sign in', exact: true }).count()) > 0) {
    return 'login';
  }
  if ((await page.getByRole('button', { name: 'Allow', exact: true }).count()) > 0) {
    return 'consent';
  }
  if ((await page.getByRole('button', { name: /log ?out|sign ?out|yes/i }).count()) > 0) {
    return 'logout';
  }
  return null;
}

async function pageText(page) {
  const text = await page.locator('body').innerText({ timeout: 2_000 }).catch(() => '');
  return text.replace(/\s+/g, ' ').trim().slice(0, 600);
}

/** Clicks a submit button and waits until the document it leads to has loaded
 * (through any redirects). */
async function submit(page, button) {
  const loaded = page.waitForEvent('load', { timeout: TIMEOUT });
  await button.click();
  await loaded;
}

async function screenshot(page, path) {
  if (!path) return;
  await mkdir(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
}

/**
 * Opens an authorization URL and goes through whatever the provider shows until the
 * browser reaches `redirectUri`: the login page (filled with `user`, if given), the
 * consent page (`consent`: 'Allow' or 'Deny'). Returns the callback URL (with `code`,
 * `state` and `iss`, or an `error`) and the pages seen, in order.
 *
 * A login page when no `user` is given is an error: that is how single sign-on is
 * checked. `screenshots` ({login, consent}: file paths) are taken of the pages as a
 * person sees them, the login form filled in.
 */
export async function authorize(page, url, { redirectUri, user, consent = 'Allow', screenshots = {} }) {
  const seen = [];
  await page.goto(url, { waitUntil: 'load' });
  for (let step = 0; step < 6; step++) {
    const here = page.url();
    if (here.startsWith(redirectUri)) {
      return { callbackUrl: here, seen };
    }
    const kind = await whichPage(page);
    if (kind === 'login') {
      if (!user) {
        throw new Error(`the provider asked for the password (single sign-on expected) at ${here}: ${await pageText(page)}`);
      }
      if (seen.includes('login')) {
        throw new Error(`the login page came back after signing in: ${await pageText(page)}`);
      }
      seen.push('login');
      await page.getByLabel('Username', { exact: true }).fill(user.username);
      await page.getByLabel('Password', { exact: true }).fill(user.password);
      await screenshot(page, screenshots.login);
      await submit(page, page.getByRole('button', { name: 'Sign in', exact: true }));
    } else if (kind === 'consent') {
      if (seen.includes('consent')) {
        throw new Error(`the consent page came back after answering it: ${await pageText(page)}`);
      }
      seen.push('consent');
      await screenshot(page, screenshots.consent);
      await submit(page, page.getByRole('button', { name: consent, exact: true }));
    } else {
      throw new Error(`neither the login page, the consent page nor the callback (${redirectUri}) at ${here}: ${await pageText(page)}`);
    }
  }
  throw new Error(`no callback after six pages; at ${page.url()}: ${await pageText(page)}`);
}

/**
 * Follows a URL (an end-session URL) until the browser reaches a URL starting with
 * `until`, confirming a logout if the provider asks. Returns the final URL and the
 * pages seen.
 */
export async function follow(page, url, { until }) {
  const seen = [];
  await page.goto(url, { waitUntil: 'load' });
  for (let step = 0; step < 3; step++) {
    const here = page.url();
    if (here.startsWith(until)) {
      return { url: here, seen };
    }
    if ((await whichPage(page)) !== 'logout' || seen.includes('logout')) break;
    seen.push('logout');
    await submit(page, page.getByRole('button', { name: /log ?out|sign ?out|yes/i }).first());
  }
  throw new Error(`did not reach ${until}; at ${page.url()}: ${await pageText(page)}`);
}
