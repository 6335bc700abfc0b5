import { execFileSync } from 'node:child_process';

/**
 * An authenticator that is not our code: Debian's oathtool computes TOTP codes independently of otplib, so a test
 * that signs in with its codes checks interoperability, not our library against itself.
 */
export function oathtoolTotp(secretBase32: string, at: Date, options: { digits?: number; algorithm?: 'sha1' | 'sha256' | 'sha512' } = {}): string {
  const args = [`--totp=${options.algorithm ?? 'sha1'}`, '-b', '-d', String(options.digits ?? 6), '--now', at.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'), secretBase32];
  return execFileSync('oathtool', args, { encoding: 'utf8' }).trim();
}

export function oathtoolTotpHex(secretHex: string, at: Date, options: { digits?: number; algorithm?: 'sha1' | 'sha256' | 'sha512' } = {}): string {
  const args = [`--totp=${options.algorithm ?? 'sha1'}`, '-d', String(options.digits ?? 6), '--now', at.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'), secretHex];
  return execFileSync('oathtool', args, { encoding: 'utf8' }).trim();
}
