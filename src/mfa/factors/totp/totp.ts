import crypto from 'node:crypto';
import { NobleCryptoPlugin, ScureBase32Plugin, TOTP } from 'otplib';

export interface TotpParameters {
  algorithm: 'sha1' | 'sha256' | 'sha512';
  digits: 6 | 8;
  period: number;
}

/** SHA-1, 6 digits, 30 s: what Google and Microsoft Authenticator expect from a scanned QR code. */
export const DEFAULT_TOTP: TotpParameters = { algorithm: 'sha1', digits: 6, period: 30 };

const plugins = { crypto: new NobleCryptoPlugin(), base32: new ScureBase32Plugin() };

/** 160-bit secrets (RFC 4226 recommends at least 128, 160 matches SHA-1's block). */
export function generateTotpSecret(): Buffer {
  return crypto.randomBytes(20);
}

export function toBase32(secret: Uint8Array): string {
  return plugins.base32.encode(secret, { padding: false });
}

export function otpauthUri(secret: Uint8Array, account: string, issuer: string, params: TotpParameters): string {
  const totp = new TOTP({ ...params, ...plugins });
  return totp.toURI({ secret: toBase32(secret), label: account, issuer });
}

export function normaliseCode(code: string): string {
  return code.replace(/[\s-]/g, '');
}

/**
 * RFC 6238 verification with ±1 step of clock drift. `afterStep` is the last step this secret accepted: a code for
 * that step or an earlier one is refused, so every code works once (NIST SP 800-63B 5.1.4.2).
 */
export async function verifyTotp(
  secret: Uint8Array,
  code: string,
  options: TotpParameters & { now: Date; afterStep?: number | null },
): Promise<{ ok: true; step: number } | { ok: false; reason: 'malformed' | 'wrong_code' | 'replayed' }> {
  const token = normaliseCode(code);
  if (!new RegExp(`^\\d{${options.digits}}$`).test(token)) return { ok: false, reason: 'malformed' };
  const totp = new TOTP({ algorithm: options.algorithm, digits: options.digits, period: options.period, ...plugins });
  const epoch = Math.floor(options.now.getTime() / 1000);
  const tolerance = options.period;
  const result = await totp.verify(token, { secret, epoch, epochTolerance: tolerance });
  if (!result.valid) return { ok: false, reason: 'wrong_code' };
  if (options.afterStep !== null && options.afterStep !== undefined && result.timeStep <= options.afterStep) {
    return { ok: false, reason: 'replayed' };
  }
  return { ok: true, step: result.timeStep };
}

export async function totpCode(secret: Uint8Array, at: Date, params: TotpParameters = DEFAULT_TOTP): Promise<string> {
  const totp = new TOTP({ ...params, ...plugins });
  return totp.generate({ secret, epoch: Math.floor(at.getTime() / 1000) });
}
