import crypto from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Queries } from '../db/index.js';
import type { KeyRow, NewKey } from '../db/keys.js';
import type { Clock } from '../security/clock.js';
import type { SecretBox } from '../security/secret-box.js';

/**
 * One key per algorithm, each published in the JWKS. RS256 is every client's default (OpenID Connect requires it);
 * ES256 and EdDSA (Ed25519) sign roughly ten times cheaper and are chosen per client or per API.
 */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

const generateKeyPair = {
  RS256: () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
  ES256: () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  EdDSA: () => crypto.generateKeyPairSync('ed25519'),
} satisfies Record<SigningAlgorithm, () => crypto.KeyPairKeyObjectResult>;

export interface KeyMaterial {
  /** Private JWKs in the order oidc-provider should use them: for each algorithm the signing key comes first. */
  jwks: { keys: JWK[] };
  /** Cookie signing keys, the signing one first; the others still verify cookies already handed out. */
  cookieKeys: string[];
  /** Changes whenever the published set or its order changes: instances rebuild their provider when it does. */
  fingerprint: string;
}

async function newSigningKey(alg: SigningAlgorithm, box: SecretBox, activatesAt: Date): Promise<NewKey> {
  const pair = generateKeyPair[alg]();
  const privateJwk = pair.privateKey.export({ format: 'jwk' }) as JWK;
  const publicJwk = pair.publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    kind: 'signing',
    alg,
    public_jwk: { ...publicJwk, kid, alg, use: 'sig' },
    secret_sealed: box.seal(JSON.stringify(privateJwk), `signing-key:${kid}`),
    activates_at: activatesAt,
  };
}

function newCookieKey(box: SecretBox, activatesAt: Date): NewKey {
  const kid = `cookie-${crypto.randomUUID()}`;
  return {
    kid,
    kind: 'cookie',
    alg: null,
    public_jwk: null,
    secret_sealed: box.seal(crypto.randomBytes(32).toString('base64url'), `cookie-key:${kid}`),
    activates_at: activatesAt,
  };
}

/**
 * Signing keys first, then keys waiting to activate (published, not yet signing), then retired ones (still
 * published so that what they signed verifies). A rotated-out key's retirement is the successor's activation.
 */
function rank(row: KeyRow, now: Date): number {
  if (row.retired_at !== null && row.retired_at <= now) return 2;
  return row.activates_at <= now ? 0 : 1;
}

export async function loadKeyMaterial(queries: Queries, box: SecretBox, clock: Clock): Promise<KeyMaterial> {
  const now = clock.now();
  const rows = [...(await queries.keys.listLive(now))].sort((a, b) => rank(a, now) - rank(b, now));
  const jwks = rows
    .filter((row) => row.kind === 'signing')
    .map((row) => ({
      ...(JSON.parse(box.open(row.secret_sealed, `signing-key:${row.kid}`).toString('utf8')) as JWK),
      kid: row.kid,
      alg: row.alg ?? undefined,
      use: 'sig',
    }));
  const cookies = rows.filter((row) => row.kind === 'cookie');
  return {
    jwks: { keys: jwks },
    cookieKeys: cookies.map((row) => box.open(row.secret_sealed, `cookie-key:${row.kid}`).toString('utf8')),
    fingerprint: rows.map((row) => `${row.kid}:${rank(row, now)}`).join(','),
  };
}

/** First start: one signing key per algorithm and one cookie key, active at once. */
export async function ensureKeys(queries: Queries, box: SecretBox, clock: Clock): Promise<boolean> {
  const now = clock.now();
  const live = await queries.keys.listLive(now);
  const missing: NewKey[] = [];
  for (const alg of SIGNING_ALGORITHMS) {
    if (!live.some((row) => row.kind === 'signing' && row.alg === alg && row.retired_at === null)) {
      missing.push(await newSigningKey(alg, box, now));
    }
  }
  if (!live.some((row) => row.kind === 'cookie' && row.retired_at === null)) missing.push(newCookieKey(box, now));
  if (missing.length) await queries.keys.replace([], missing, now);
  return missing.length > 0;
}

export interface RotationOptions {
  /**
   * How long new keys are published before they sign anything, so every instance (and every relying party's
   * JWKS cache) knows them first. At least two key-reload intervals.
   */
  activationDelaySeconds: number;
  /** How long the old keys stay published after the new ones take over: the longest lifetime of what they signed. */
  retainSeconds: number;
}

export async function rotateKeys(queries: Queries, box: SecretBox, clock: Clock, options: RotationOptions) {
  const now = clock.now();
  const activatesAt = new Date(now.getTime() + options.activationDelaySeconds * 1000);
  const expiresAt = new Date(activatesAt.getTime() + options.retainSeconds * 1000);
  const add = [...(await Promise.all(SIGNING_ALGORITHMS.map((alg) => newSigningKey(alg, box, activatesAt)))), newCookieKey(box, activatesAt)];
  // The old keys keep signing until the new ones activate: retiring them only moves them behind the new ones.
  const retire = [
    ...SIGNING_ALGORITHMS.map((alg) => ({ kind: 'signing' as const, alg, expiresAt })),
    { kind: 'cookie' as const, alg: null, expiresAt },
  ];
  await queries.keys.replace(retire, add, activatesAt);
  return { activatesAt, oldKeysExpireAt: expiresAt, kids: add.map((k) => k.kid) };
}
