import crypto from 'node:crypto';

/**
 * Seals secrets at rest (signing keys, client secrets, TOTP seeds, PINs) with AES-256-GCM under a key derived
 * from the master key. The context (e.g. "client-secret:<id>") is bound as associated data, so a sealed value
 * copied into another row or purpose fails to open instead of being silently accepted.
 */
export interface SecretBox {
  seal(plaintext: string | Buffer, context: string): string;
  open(sealed: string, context: string): Buffer;
}

const VERSION = 'v1';

/** A key of its own for each use of the master key (HKDF), so no two purposes ever share one. */
export function deriveKey(masterKey: Buffer, purpose: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', masterKey, Buffer.alloc(0), purpose, 32));
}

export const recoveryCodeHashKey = (masterKey: Buffer) => deriveKey(masterKey, 'latchkey recovery codes v1');
export const sentCodeHashKey = (masterKey: Buffer) => deriveKey(masterKey, 'latchkey sent codes v1');
export const accessCodeLookupKey = (masterKey: Buffer) => deriveKey(masterKey, 'latchkey access codes v1');

export function createSecretBox(masterKey: Buffer): SecretBox {
  if (masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
  const key = deriveKey(masterKey, 'latchkey secret-box v1');
  return {
    seal(plaintext, context) {
      const iv = crypto.randomBytes(12);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
    },
    open(sealed, context) {
      const [version, data] = sealed.split('.');
      if (version !== VERSION || !data) throw new Error('sealed secret has an unknown format');
      const raw = Buffer.from(data, 'base64url');
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
    },
  };
}

/** Equal-length-independent constant-time comparison (hashing first hides the length too). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}
