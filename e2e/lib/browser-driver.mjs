// The browser for the Python tests: one headless Chromium (lib/browser.mjs) kept for
// the whole session, so that the provider's single sign-on cookie lives on between
// requests, driven by JSON lines.
//
// Protocol: one JSON object a line on stdin, one answer a line on stdout.
//   {"op": "authorize", "url", "redirect_uri", "user"?: {username, password},
//    "consent"?: "Allow"|"Deny", "screenshots"?: {login?, consent?}}
//     -> {"ok": true, "callback_url", "seen": ["login", "consent"]}
//   {"op": "follow", "url", "until"} -> {"ok": true, "url", "seen"}
//   {"op": "cookies"} -> {"ok": true, "cookies": [{name, domain, path, ...}]}
//   anything failing -> {"ok": false, "error": "..."}
// The browser closes at the end of stdin. Started with: node browser-driver.mjs CHROMIUM
import { createInterface } from 'node:readline';
import { authorize, follow, launchBrowser } from './browser.mjs';

const browser = await launchBrowser({ executablePath: process.argv[2] || '/usr/bin/chromium' });
const answer = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
answer({ ok: true, ready: true });

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    const req = JSON.parse(line);
    if (req.op === 'authorize') {
      const { callbackUrl, seen } = await authorize(browser.page, req.url, {
        redirectUri: req.redirect_uri,
        user: req.user,
        consent: req.consent,
        screenshots: req.screenshots,
      });
      answer({ ok: true, callback_url: callbackUrl, seen });
    } else if (req.op === 'follow') {
      const { url, seen } = await follow(browser.page, req.url, { until: req.until });
      answer({ ok: true, url, seen });
    } else if (req.op === 'cookies') {
      answer({ ok: true, cookies: await browser.context.cookies() });
    } else {
      answer({ ok: false, error: `unknown op ${req.op}` });
    }
  } catch (e) {
    answer({ ok: false, error: String(e?.message ?? e) });
  }
}
await browser.close();
