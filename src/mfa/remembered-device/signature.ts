import crypto from 'node:crypto';
import { calculateJwkThumbprint } from 'jose';
import { z } from 'zod';

// A P-256 coordinate: 32 bytes, base64url without padding.
const coordinate = z.string().regex(/^[A-Za-z0-9_-]{43}$/, { message: 'expected a P-256 coordinate (base64url)' });

/**
 * The public half of the key a browser made for itself (WebCrypto ECDSA P-256), as the JWK it exports. Only the
 * members a public key has are kept; a point off the curve is refused here, before anything is stored.
 */
export const publicKeySchema: z.ZodType<DevicePublicKey, unknown> = z
  .object({ kty: z.literal('EC'), crv: z.literal('P-256'), x: coordinate, y: coordinate })
  .transform((jwk): DevicePublicKey => ({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }))
  .refine((jwk) => toKeyObject(jwk) !== undefined, { message: 'not a P-256 public key' });
export interface DevicePublicKey {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/** WebCrypto's ECDSA signature: r and s, 32 bytes each (IEEE P1363), base64url. */
export const signatureSchema = z.string().regex(/^[A-Za-z0-9_-]{86}$/, { message: 'expected an ECDSA P-256 signature (base64url)' });

function toKeyObject(jwk: DevicePublicKey): crypto.KeyObject | undefined {
  try {
    return crypto.createPublicKey({ key: { ...jwk }, format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** RFC 7638: how the page finds, in its IndexedDB, the private key that goes with a stored public key. */
export const thumbprintOf = (jwk: DevicePublicKey) => calculateJwkThumbprint(jwk, 'sha256');

/**
 * What the browser signs: our issuer, this sign-in, this device and the fresh challenge, each on its own line. A
 * signature made for another sign-in, device or server (or for anything else the key might ever sign) does not
 * verify over these bytes.
 */
export const signedPayload = (issuer: string, interactionUid: string, deviceId: string, challenge: string) =>
  ['latchkey remembered device v1', issuer, interactionUid, deviceId, challenge].join('\n');

export function verifySignature(jwk: DevicePublicKey, payload: string, signature: string): boolean {
  const key = toKeyObject(jwk);
  return !!key && crypto.verify('sha256', Buffer.from(payload), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
}
