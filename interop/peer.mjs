// Node peer (panva's `jose`) for the tessera interop test (crates/tessera/tests/interop.rs).
//
// Reads one JSON request on stdin and writes one JSON answer on stdout, with the
// same protocol as peer.py:
//
//   request: {"lib": "jose", "cases": [CASE, ...]}
//   answer:  {"lib": "jose", "version": ..., "results": [RESULT, ...]}
//
//   sign     alg, jwk (private JWK), claims, pem (bool)        -> token [, private_pem, public_pem]
//   verify   alg, jwk (public JWK) or public_pem, token, aud, iss -> claims
//   encrypt  alg, enc, jwk (public or oct JWK), plaintext_b64  -> token
//   decrypt  alg, enc, jwk (private or oct JWK), token         -> plaintext_b64, header
//   sign_encrypt    sig_alg, sig_jwk (private), claims, alg, enc, jwk (public) -> token
//                   (a nested JWT: the signed JWT, encrypted with cty "JWT")
//   decrypt_verify  alg, enc, jwk (private), sig_alg, sig_jwk (public), token, aud, iss
//                   -> claims, header (of the JWE)
//
// Each RESULT is {id, ok: true, ...outputs} or {id, ok: false, error}. A failure of
// one case never stops the others. With `pem: true` on a sign case the private JWK is
// converted to PEM (PKCS#8, by node:crypto) and jose signs with the imported PEM; the
// PKCS#8 and SPKI PEMs are returned so that tessera can be handed the same key as PEM.

import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import {
  CompactEncrypt,
  SignJWT,
  compactDecrypt,
  importJWK,
  importPKCS8,
  importSPKI,
  jwtVerify,
} from 'jose';

const require = createRequire(import.meta.url);
const version = `jose ${require('jose/package.json').version}`;

function header(jwk, alg, enc) {
  const h = { alg };
  if (enc !== undefined) h.enc = enc;
  if (jwk.kid !== undefined) h.kid = jwk.kid;
  return h;
}

const ops = {
  async sign(c) {
    if (c.pem) {
      const priv = createPrivateKey({ key: c.jwk, format: 'jwk' });
      const privatePem = priv.export({ type: 'pkcs8', format: 'pem' });
      const publicPem = createPublicKey(priv).export({ type: 'spki', format: 'pem' });
      const key = await importPKCS8(privatePem, c.alg);
      const token = await new SignJWT(c.claims).setProtectedHeader({ alg: c.alg }).sign(key);
      return { token, private_pem: privatePem, public_pem: publicPem };
    }
    const key = await importJWK(c.jwk, c.alg);
    const token = await new SignJWT(c.claims).setProtectedHeader(header(c.jwk, c.alg)).sign(key);
    return { token };
  },
  async verify(c) {
    const key =
      c.public_pem !== undefined ? await importSPKI(c.public_pem, c.alg) : await importJWK(c.jwk, c.alg);
    const { payload } = await jwtVerify(c.token, key, {
      algorithms: [c.alg],
      audience: c.aud,
      issuer: c.iss,
      requiredClaims: ['exp'],
    });
    return { claims: payload };
  },
  async encrypt(c) {
    const key = await importJWK(c.jwk, c.alg);
    const plaintext = Buffer.from(c.plaintext_b64, 'base64');
    const token = await new CompactEncrypt(plaintext)
      .setProtectedHeader(header(c.jwk, c.alg, c.enc))
      .encrypt(key);
    return { token };
  },
  async decrypt(c) {
    const key = await importJWK(c.jwk, c.alg);
    const { plaintext, protectedHeader } = await compactDecrypt(c.token, key, {
      keyManagementAlgorithms: [c.alg],
      contentEncryptionAlgorithms: [c.enc],
    });
    return {
      plaintext_b64: Buffer.from(plaintext).toString('base64'),
      header: protectedHeader,
    };
  },
  async sign_encrypt(c) {
    const sigKey = await importJWK(c.sig_jwk, c.sig_alg);
    const inner = await new SignJWT(c.claims)
      .setProtectedHeader(header(c.sig_jwk, c.sig_alg))
      .sign(sigKey);
    const key = await importJWK(c.jwk, c.alg);
    const token = await new CompactEncrypt(new TextEncoder().encode(inner))
      .setProtectedHeader({ ...header(c.jwk, c.alg, c.enc), cty: 'JWT' })
      .encrypt(key);
    return { token };
  },
  async decrypt_verify(c) {
    const key = await importJWK(c.jwk, c.alg);
    const { plaintext, protectedHeader } = await compactDecrypt(c.token, key, {
      keyManagementAlgorithms: [c.alg],
      contentEncryptionAlgorithms: [c.enc],
    });
    const sigKey = await importJWK(c.sig_jwk, c.sig_alg);
    const { payload } = await jwtVerify(new TextDecoder().decode(plaintext), sigKey, {
      algorithms: [c.sig_alg],
      audience: c.aud,
      issuer: c.iss,
      requiredClaims: ['exp'],
    });
    return { claims: payload, header: protectedHeader };
  },
};

async function runCase(c) {
  const op = ops[c.op];
  if (op === undefined) return { id: c.id, ok: false, error: `unknown op ${JSON.stringify(c.op)}` };
  try {
    const out = await op(c);
    return { id: c.id, ok: true, ...out };
  } catch (err) {
    const code = err && err.code ? ` [${err.code}]` : '';
    return { id: c.id, ok: false, error: `${err && err.name}: ${err && err.message}${code}` };
  }
}

const request = JSON.parse(readFileSync(0, 'utf8'));
if (request.lib !== 'jose') {
  process.stderr.write(`peer.mjs serves only lib "jose", not ${JSON.stringify(request.lib)}\n`);
  process.exit(3);
}
const results = [];
for (const c of request.cases) {
  results.push(await runCase(c));
}
process.stdout.write(`${JSON.stringify({ lib: 'jose', version, results })}\n`);
