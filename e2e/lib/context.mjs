// The run's context, written by e2e/run: the server's URL, the callback server, and
// per suite a user and its clients (ids, secrets, redirect URIs).
import { readFileSync } from 'node:fs';

const path = process.env.E2E_CONTEXT;
if (!path) {
  throw new Error('E2E_CONTEXT is not set: run the suites through e2e/run');
}

export const context = JSON.parse(readFileSync(path, 'utf8'));
export const suite = context.suites.node;

/** Whether the code flow is served, asked of the running server (not assumed): the
 * authorization endpoint answers 501 `not_implemented` until it is. Returns the
 * reason to skip, or false. */
export async function codeFlowSkipReason() {
  const meta = await (await fetch(`${context.issuer}/.well-known/openid-configuration`)).json();
  const client = suite.public;
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: client.redirect_uris[0],
    scope: 'openid',
    state: 'probe',
    nonce: 'probe',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  }).toString();
  const res = await fetch(url, { redirect: 'manual' });
  await res.arrayBuffer();
  if (res.status === 501) {
    return `${new URL(meta.authorization_endpoint).pathname} answers 501 not_implemented (the code flow is not served yet)`;
  }
  return false;
}
