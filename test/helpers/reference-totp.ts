import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';

type Algorithm = 'sha1' | 'sha256' | 'sha512';
interface CodeOptions {
  digits?: number;
  algorithm?: Algorithm;
  period?: number;
}

/**
 * An authenticator written from RFC 6238 and RFC 4226 alone, sharing nothing with src/: tests sign in with its
 * codes, so they check our verifier against the standard rather than our code against itself.
 */
export function referenceTotpFromKey(key: Buffer, at: Date, options: CodeOptions = {}): string {
  const digits = options.digits ?? 6;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at.getTime() / 1000 / (options.period ?? 30))));
  const mac = crypto.createHmac(options.algorithm ?? 'sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

export function fromBase32(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of text.replace(/[\s=]/g, '').toUpperCase()) {
    const value = alphabet.indexOf(char);
    if (value < 0) throw new Error(`not base32: ${char}`);
    bits += value.toString(2).padStart(5, '0');
  }
  return Buffer.from(bits.match(/.{8}/g)?.map((byte) => parseInt(byte, 2)) ?? []);
}

export const referenceTotp = (secretBase32: string, at: Date, options: CodeOptions = {}) => referenceTotpFromKey(fromBase32(secretBase32), at, options);

/** Debian's oathtool, a third implementation, where it is installed (`.ci/run` installs it); undefined elsewhere. */
export function oathtoolTotpFromKey(key: Buffer, at: Date, options: CodeOptions = {}): string | undefined {
  const args = [`--totp=${options.algorithm ?? 'sha1'}`, '-d', String(options.digits ?? 6), '--now', at.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'), key.toString('hex')];
  try {
    return execFileSync('oathtool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
