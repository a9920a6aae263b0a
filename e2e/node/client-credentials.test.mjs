// openid-client (v6) against a running tessera: discovery, the client_credentials
// grant, introspection and revocation. Served on main today.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { context, suite } from '../lib/context.mjs';

const issuer = new URL(context.issuer);
// The issuer is http:// on loopback; openid-client refuses http unless told.
const insecure = { execute: [oidc.allowInsecureRequests] };

function jwtParts(token) {
  const [header, payload] = token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url')));
  return { header, payload };
}

async function oauthError(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected an OAuth error response');
}

describe('openid-client: discovery', () => {
  it('discovers the provider (OpenID Connect Discovery 1.0)', async () => {
    const c = suite.machine;
    const config = await oidc.discovery(issuer, c.client_id, c.client_secret, undefined, insecure);
    const meta = config.serverMetadata();
    assert.equal(meta.issuer, context.issuer);
    for (const [key, path] of [
      ['authorization_endpoint', '/oauth/authorize'],
      ['token_endpoint', '/oauth/token'],
      ['userinfo_endpoint', '/oauth/userinfo'],
      ['jwks_uri', '/.well-known/jwks.json'],
      ['introspection_endpoint', '/oauth/introspect'],
      ['revocation_endpoint', '/oauth/revoke'],
      ['end_session_endpoint', '/oauth/logout'],
    ]) {
      assert.equal(meta[key], `${context.issuer}${path}`, key);
    }
    assert.ok(meta.supportsPKCE('S256'), 'PKCE with S256');
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(meta.response_types_supported, ['code']);
    assert.ok(meta.scopes_supported.includes('openid'));
    assert.ok(meta.scopes_supported.includes('e2e:read'), 'the configured oauth_scopes are listed');
    assert.equal(meta.authorization_response_iss_parameter_supported, true);
  });

  it('discovers the same document at the RFC 8414 address', async () => {
    const c = suite.machine;
    const oidcMeta = (await oidc.discovery(issuer, c.client_id, c.client_secret, undefined, insecure)).serverMetadata();
    const config = await oidc.discovery(issuer, c.client_id, c.client_secret, undefined, {
      ...insecure,
      algorithm: 'oauth2',
    });
    assert.deepEqual({ ...config.serverMetadata() }, { ...oidcMeta });
  });
});

describe('openid-client: client_credentials, introspection, revocation', () => {
  let basic; // the machine client, client_secret_basic
  let post; // the same client, client_secret_post
  let other; // another confidential client (the web client of this suite)

  before(async () => {
    const m = suite.machine;
    basic = await oidc.discovery(issuer, m.client_id, {}, oidc.ClientSecretBasic(m.client_secret), insecure);
    post = await oidc.discovery(issuer, m.client_id, {}, oidc.ClientSecretPost(m.client_secret), insecure);
    const w = suite.confidential;
    other = await oidc.discovery(issuer, w.client_id, {}, oidc.ClientSecretBasic(w.client_secret), insecure);
  });

  it('gets an access token with client_secret_basic: an RFC 9068 JWT about the client itself', async () => {
    const tokens = await oidc.clientCredentialsGrant(basic, { scope: 'e2e:read' });
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(tokens.scope, 'e2e:read');
    assert.ok(tokens.expires_in > 0);
    assert.equal(tokens.refresh_token, undefined, 'no refresh token for client_credentials (RFC 6749 4.4.3)');
    const { header, payload } = jwtParts(tokens.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.sub, suite.machine.client_id);
    assert.equal(payload.client_id, suite.machine.client_id);
    assert.equal(payload.iss, context.issuer);
    assert.equal(payload.scope, 'e2e:read');
    const jwks = await (await fetch(basic.serverMetadata().jwks_uri)).json();
    assert.ok(jwks.keys.some((k) => k.kid === header.kid), 'signed by a key of the JWKS');
  });

  it('gets an access token with client_secret_post, the registered scope by default', async () => {
    const tokens = await oidc.clientCredentialsGrant(post);
    assert.equal(tokens.scope, 'e2e:read');
    assert.equal(jwtParts(tokens.access_token).payload.sub, suite.machine.client_id);
  });

  it('is refused a scope the client was not registered for (invalid_scope)', async () => {
    const e = await oauthError(oidc.clientCredentialsGrant(basic, { scope: 'e2e:write' }));
    assert.equal(e.error, 'invalid_scope');
    assert.equal(e.status, 400);
  });

  it('is refused with a wrong client secret (invalid_client, 401)', async () => {
    const m = suite.machine;
    const wrong = await oidc.discovery(issuer, m.client_id, {}, oidc.ClientSecretBasic(`${m.client_secret}x`), insecure);
    const e = await oauthError(oidc.clientCredentialsGrant(wrong));
    assert.equal(e.status, 401);
    // RFC 6749 5.2: a 401 with WWW-Authenticate for a client that used HTTP Basic;
    // openid-client raises such an answer as the challenge, the body unread.
    assert.equal(e.code, 'OAUTH_WWW_AUTHENTICATE_CHALLENGE', e.message);
    assert.equal(e.cause[0].scheme, 'basic');
    assert.equal((await e.response.json()).error, 'invalid_client');
  });

  it('introspects the token: active, then inactive once revoked', async () => {
    const { access_token: at } = await oidc.clientCredentialsGrant(basic);
    const live = await oidc.tokenIntrospection(basic, at);
    assert.equal(live.active, true);
    assert.equal(live.client_id, suite.machine.client_id);
    assert.equal(live.sub, suite.machine.client_id);
    assert.equal(live.scope, 'e2e:read');
    assert.equal(live.iss, context.issuer);
    assert.equal(live.token_type, 'Bearer');
    assert.ok(live.exp > Math.floor(Date.now() / 1000));

    await oidc.tokenRevocation(post, at);
    const dead = await oidc.tokenIntrospection(basic, at);
    assert.deepEqual({ ...dead }, { active: false }, 'an inactive token says nothing more (RFC 7662 2.2)');
  });

  it('revokes with a token_type_hint; another client cannot revoke it', async () => {
    const { access_token: at } = await oidc.clientCredentialsGrant(basic);
    // Another client's revocation request changes nothing, whether the server
    // answers 200 or an error.
    await oidc.tokenRevocation(other, at).catch(() => {});
    assert.equal((await oidc.tokenIntrospection(basic, at)).active, true, 'still active after another client asked');
    await oidc.tokenRevocation(basic, at, { token_type_hint: 'access_token' });
    assert.equal((await oidc.tokenIntrospection(basic, at)).active, false);
    // Revoking it again, or revoking garbage, is no error (RFC 7009 2.2).
    await oidc.tokenRevocation(basic, at);
    await oidc.tokenRevocation(basic, 'not-a-token-at-all');
  });

  it('introspects garbage as inactive', async () => {
    const r = await oidc.tokenIntrospection(basic, 'eyJhbGciOiJub25lIn0.e30.');
    assert.equal(r.active, false);
  });
});
