import crypto from 'node:crypto';
import Provider, { type Configuration } from 'oidc-provider';
import { mintRefreshTokens } from './tokens.js';

/**
 * The baseline for the token benchmarks: oidc-provider alone, with its in-memory adapter, the same client, the same
 * signing algorithm and token lifetimes as Latchkey, and nothing else. Prints one JSON line when it listens.
 */
const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const client = JSON.parse(process.env.BENCH_CLIENT!) as { client_id: string; client_secret: string };
const configuration: Configuration = {
  clients: [{ ...client, grant_types: ['client_credentials', 'refresh_token', 'authorization_code'], redirect_uris: ['http://127.0.0.1:9/callback'], response_types: ['code'] }],
  jwks: { keys: [{ ...(privateKey.export({ format: 'jwk' }) as object), kid: 'bench', alg: 'RS256', use: 'sig' }] } as Configuration['jwks'],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
  rotateRefreshToken: true,
  ttl: { AccessToken: 3600, ClientCredentials: 600, IdToken: 3600, RefreshToken: 14 * 24 * 3600, Grant: 14 * 24 * 3600 },
};
const provider = new Provider(issuer, configuration);
const refreshTokens = await mintRefreshTokens(provider, client.client_id, 'bench-user', Number(process.env.BENCH_REFRESH_CHAINS ?? 8));
provider.listen(port, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ ready: true, refreshTokens })}\n`));
