// openid-client (v6) through the authorization code flow with PKCE (S256), the hosted
// pages driven in headless Chromium: the ID token validated by the library (nonce,
// signature through the JWKS, iss, aud), userinfo, introspection, refresh,
// revocation, single sign-on into a second client without the password, and
// RP-initiated logout. Takes the screenshots of the login and consent pages.
//
// Skipped, with the reason printed, while the server's authorization endpoint answers
// 501 (asked of the running server, not assumed): it runs by itself once the code
// flow is served.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as oidc from 'openid-client';
import { context, suite, codeFlowSkipReason } from '../lib/context.mjs';
import { authorize, follow, launchBrowser } from '../lib/browser.mjs';

const skip = await codeFlowSkipReason();
if (skip) {
  console.log(`SKIPPED openid-client code flow: ${skip}`);
}

const issuer = new URL(context.issuer);
const insecure = { execute: [oidc.allowInsecureRequests] };
const SCOPE = 'openid profile offline_access e2e:read';

function jwtParts(token) {
  const [header, payload] = token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url')));
  return { header, payload };
}

async function refused(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the request to be refused');
}

/** What a web application does: the authorization URL (with PKCE, state and nonce)
 * built by the library, the browser sent through the provider's pages, and the code
 * exchanged, the ID token validated, by the library. */
async function signIn(config, client, browser, { user, screenshots, extra = {} } = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const nonce = oidc.randomNonce();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: client.redirect_uris[0],
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  const { callbackUrl, seen } = await authorize(browser.page, url.href, {
    redirectUri: client.redirect_uris[0],
    user,
    screenshots,
  });
  const tokens = await oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  return { tokens, seen, nonce };
}

describe('openid-client: authorization code with PKCE through the hosted pages', () => {
  let browser;
  let web; // the confidential client (client_secret_basic)
  let spa; // the public client (PKCE only)
  let introspector; // the machine client, which may introspect any token
  const s = {}; // what one step hands the next

  before(async () => {
    if (skip) return;
    const w = suite.confidential;
    // A conforming relying party that registered no id_token_signed_response_alg
    // expects RS256 (OpenID Connect Registration 1.0 2; the issue pins RS256).
    web = await oidc.discovery(
      issuer,
      w.client_id,
      { id_token_signed_response_alg: 'RS256' },
      oidc.ClientSecretBasic(w.client_secret),
      insecure,
    );
    spa = await oidc.discovery(
      issuer,
      suite.public.client_id,
      { id_token_signed_response_alg: 'RS256' },
      oidc.None(),
      insecure,
    );
    const m = suite.machine;
    introspector = await oidc.discovery(issuer, m.client_id, {}, oidc.ClientSecretBasic(m.client_secret), insecure);
    browser = await launchBrowser({ executablePath: context.chromium });
  });

  after(async () => {
    await browser?.close();
  });

  it('signs in through the login and consent pages; the library validates the ID token', { skip }, async () => {
    assert.ok(
      web.serverMetadata().id_token_signing_alg_values_supported.includes('RS256'),
      'discovery lists RS256 for ID tokens (OpenID Connect Discovery 1.0 3: it MUST be included)',
    );
    const { tokens, seen, nonce } = await signIn(web, suite.confidential, browser, {
      user: suite.user,
      screenshots: {
        login: join(context.screenshots, 'oauth-login.png'),
        consent: join(context.screenshots, 'oauth-consent.png'),
      },
    });
    assert.deepEqual(seen, ['login', 'consent']);
    assert.equal(tokens.token_type, 'bearer');
    assert.ok(tokens.refresh_token, 'a refresh token for offline_access');
    assert.equal(tokens.scope?.split(' ').sort().join(' '), SCOPE.split(' ').sort().join(' '));
    const claims = tokens.claims();
    assert.equal(jwtParts(tokens.id_token).header.alg, 'RS256');
    assert.equal(claims.iss, context.issuer);
    assert.equal(claims.sub, suite.user.id);
    assert.ok([claims.aud].flat().includes(suite.confidential.client_id), 'aud names the client');
    assert.equal(claims.nonce, nonce);
    for (const c of ['auth_time', 'at_hash', 'sid']) assert.ok(claims[c], `the ID token has ${c}`);
    if (claims.azp !== undefined) assert.equal(claims.azp, suite.confidential.client_id);
    const at = jwtParts(tokens.access_token);
    assert.equal(at.header.typ, 'at+jwt');
    assert.equal(at.payload.client_id, suite.confidential.client_id);
    assert.equal(at.payload.sub, suite.user.id);
    Object.assign(s, { tokens, claims });
  });

  it('calls userinfo with the access token', { skip }, async () => {
    assert.ok(s.tokens, 'signed in by the first test');
    const info = await oidc.fetchUserInfo(web, s.tokens.access_token, s.claims.sub);
    assert.equal(info.sub, suite.user.id);
    assert.equal(info.preferred_username, suite.user.username, 'the profile scope gives preferred_username');
  });

  it('introspects the access and refresh tokens: active, this user, this client', { skip }, async () => {
    assert.ok(s.tokens, 'signed in by the first test');
    const at = await oidc.tokenIntrospection(introspector, s.tokens.access_token);
    assert.equal(at.active, true);
    assert.equal(at.client_id, suite.confidential.client_id);
    assert.equal(at.sub, suite.user.id);
    assert.equal(at.username, suite.user.username);
    assert.ok(at.scope.split(' ').includes('openid'));
    const rt = await oidc.tokenIntrospection(introspector, s.tokens.refresh_token);
    assert.equal(rt.active, true);
    assert.equal(rt.client_id, suite.confidential.client_id);
  });

  it('refreshes: a new access token and a rotated refresh token', { skip }, async () => {
    assert.ok(s.tokens, 'signed in by the first test');
    const fresh = await oidc.refreshTokenGrant(web, s.tokens.refresh_token);
    assert.ok(fresh.access_token);
    assert.notEqual(fresh.access_token, s.tokens.access_token);
    assert.ok(fresh.refresh_token, 'a successor refresh token');
    assert.notEqual(fresh.refresh_token, s.tokens.refresh_token, 'refresh tokens rotate');
    if (fresh.id_token) {
      // Validated by the library; the same user (OpenID Connect Core 12.2).
      assert.equal(fresh.claims().sub, suite.user.id);
    }
    const info = await oidc.fetchUserInfo(web, fresh.access_token, suite.user.id);
    assert.equal(info.sub, suite.user.id);
    s.fresh = fresh;
  });

  it('signs in to a second client without the password (single sign-on)', { skip }, async () => {
    assert.ok(s.tokens, 'signed in by the first test');
    const { tokens, seen } = await signIn(spa, suite.public, browser, { user: null });
    assert.ok(!seen.includes('login'), `no login page: ${seen}`);
    const claims = tokens.claims();
    assert.equal(claims.sub, suite.user.id);
    assert.ok([claims.aud].flat().includes(suite.public.client_id), 'aud names the client');
    assert.ok(tokens.refresh_token, 'a public client gets a (rotating) refresh token for offline_access too');
    s.spa = { tokens, claims };
  });

  it("revokes the second client's tokens (a public client, by its id alone); the first client's grant lives on", { skip }, async () => {
    assert.ok(s.fresh && s.spa, 'the refresh and single sign-on tests ran');
    const { access_token: at, refresh_token: rt } = s.spa.tokens;
    await oidc.tokenRevocation(spa, at);
    assert.equal((await oidc.tokenIntrospection(introspector, at)).active, false);
    const e = await refused(oidc.fetchUserInfo(spa, at, suite.user.id));
    assert.equal(e.status, 401, 'userinfo refuses a revoked access token');

    await oidc.tokenRevocation(spa, rt, { token_type_hint: 'refresh_token' });
    assert.equal((await oidc.tokenIntrospection(introspector, rt)).active, false);
    const r = await refused(oidc.refreshTokenGrant(spa, rt));
    assert.equal(r.error, 'invalid_grant');

    // Another client's grant is another grant (RFC 7009 2.1 revokes the same grant).
    assert.equal((await oidc.tokenIntrospection(introspector, s.fresh.refresh_token)).active, true);
    assert.equal((await oidc.tokenIntrospection(introspector, s.fresh.access_token)).active, true);
  });

  it('logs out (RP-initiated): back at the post-logout URI; the session and its refresh tokens end', { skip }, async () => {
    assert.ok(s.fresh, 'the refresh test ran');
    const state = oidc.randomState();
    const url = oidc.buildEndSessionUrl(web, {
      id_token_hint: s.fresh.id_token ?? s.tokens.id_token,
      post_logout_redirect_uri: suite.confidential.post_logout_redirect_uri,
      state,
    });
    const { url: landed } = await follow(browser.page, url.href, {
      until: suite.confidential.post_logout_redirect_uri,
    });
    assert.equal(new URL(landed).searchParams.get('state'), state, 'the state comes back');

    const r = await refused(oidc.refreshTokenGrant(web, s.fresh.refresh_token));
    assert.equal(r.error, 'invalid_grant', "logout ends the refresh tokens of the session's grants");

    // No session at the provider any more: prompt=none answers login_required ...
    const e = await refused(signIn(web, suite.confidential, browser, { user: null, extra: { prompt: 'none' } }));
    assert.equal(e.error, 'login_required', e.message);
    // ... and a new sign-in asks for the password again.
    const { seen } = await signIn(web, suite.confidential, browser, { user: suite.user });
    assert.equal(seen[0], 'login');
  });
});
