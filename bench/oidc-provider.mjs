// The peer of scripts/bench-oauth: panva's oidc-provider (pinned in package.json)
// issuing RFC 9068 JWT access tokens by the client_credentials grant, as tessera does.
//
//   node bench/oidc-provider.mjs --client ID:SECRET --scope S [--workers N] [--alg ES256]
//
// Listens on 127.0.0.1 on a free port and prints "http://127.0.0.1:PORT" once every
// worker listens. One confidential client (client_secret_basic), allowed the
// client_credentials grant and the scope S; one resource server (its audience
// http://127.0.0.1/api, the default resource, so a request without `resource` gets a
// JWT for it), whose access tokens are JWTs signed with a key generated at start (the
// same algorithm as tessera's access tokens, ES256, unless --alg says otherwise). No
// persistence adapter: oidc-provider's memory adapter, which a JWT access token never
// touches (only opaque tokens are stored). Development interactions off; run it with
// NODE_ENV=production.
//
// --workers N: N processes by node:cluster sharing the port (the primary hands out
// connections), the keys generated once in the primary and passed to the workers, so
// that the peer can use every core as tessera's threads do. Default 1.
import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

function args(argv) {
  const o = { workers: 1, alg: 'ES256', client: '', scope: '' };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--workers') o.workers = Number(v);
    else if (a === '--alg') o.alg = v;
    else if (a === '--client') o.client = v;
    else if (a === '--scope') o.scope = v;
    else throw new Error(`unknown argument ${a}`);
    i += 1;
  }
  if (!o.client.includes(':') || !o.scope) throw new Error('--client ID:SECRET and --scope S are required');
  if (!(o.workers >= 1)) throw new Error('bad --workers');
  return o;
}

function signingKey(alg) {
  const { privateKey } = alg.startsWith('RS')
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: randomBytes(8).toString('base64url') };
}

async function serve(o, jwk, cookieKey, port) {
  const [clientId, clientSecret] = [o.client.slice(0, o.client.indexOf(':')), o.client.slice(o.client.indexOf(':') + 1)];
  const audience = 'http://127.0.0.1/api';
  const provider = new Provider('http://127.0.0.1', {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: o.scope,
    }],
    clientDefaults: { id_token_signed_response_alg: o.alg },
    jwks: { keys: [jwk] },
    cookies: { keys: [cookieKey] },
    scopes: [o.scope],
    ttl: { ClientCredentials: 900 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== audience) throw new Provider.errors.InvalidTarget();
          return {
            scope: o.scope,
            audience,
            accessTokenTTL: 900,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: o.alg } },
          };
        },
      },
    },
  });
  // Only the provider's own failures are logged (tessera runs at log level warn).
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  await new Promise((resolve, reject) => {
    const server = provider.listen(port, '127.0.0.1', () => resolve(server));
    server.on('error', reject);
  });
}

// A free port on 127.0.0.1, for the workers to share.
async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const o = args(process.argv.slice(2));
if (cluster.isPrimary) {
  const jwk = signingKey(o.alg);
  const cookieKey = randomBytes(32).toString('base64url');
  const port = await freePort();
  if (o.workers === 1) {
    // One process: no cluster in between.
    await serve(o, jwk, cookieKey, port);
    console.log(`http://127.0.0.1:${port}`);
  } else {
    let listening = 0;
    for (let i = 0; i < o.workers; i += 1) {
      const w = cluster.fork({ PEER_JWK: JSON.stringify(jwk), PEER_COOKIE_KEY: cookieKey, PEER_PORT: String(port) });
      w.on('message', (m) => {
        if (m === 'listening') {
          listening += 1;
          if (listening === o.workers) console.log(`http://127.0.0.1:${port}`);
        }
      });
      w.on('exit', (code) => { console.error(`a worker exited (${code})`); process.exit(1); });
    }
    const stop = () => { for (const w of Object.values(cluster.workers)) w.process.kill(); process.exit(0); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }
} else {
  await serve(o, JSON.parse(process.env.PEER_JWK), process.env.PEER_COOKIE_KEY, Number(process.env.PEER_PORT));
  process.send('listening');
}
