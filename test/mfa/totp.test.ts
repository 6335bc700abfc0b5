import { describe, expect, test } from '@jest/globals';
import { DEFAULT_TOTP, generateTotpSecret, otpauthUri, toBase32, totpCode, verifyTotp } from '../../src/mfa/factors/totp/totp.js';
import { oathtoolTotpFromKey, referenceTotp, referenceTotpFromKey } from '../helpers/reference-totp.js';

// RFC 6238 appendix B: the seeds are "12345678901234567890" repeated to the hash's length.
const seeds = {
  sha1: Buffer.from('12345678901234567890'),
  sha256: Buffer.from('12345678901234567890123456789012'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};
const vectors: [number, string, keyof typeof seeds][] = [
  [59, '94287082', 'sha1'], [59, '46119246', 'sha256'], [59, '90693936', 'sha512'],
  [1111111109, '07081804', 'sha1'], [1111111109, '68084774', 'sha256'], [1111111109, '25091201', 'sha512'],
  [1111111111, '14050471', 'sha1'], [1111111111, '67062674', 'sha256'], [1111111111, '99943326', 'sha512'],
  [1234567890, '89005924', 'sha1'], [1234567890, '91819424', 'sha256'], [1234567890, '93441116', 'sha512'],
  [2000000000, '69279037', 'sha1'], [2000000000, '90698825', 'sha256'], [2000000000, '38618901', 'sha512'],
  [20000000000, '65353130', 'sha1'], [20000000000, '77737706', 'sha256'], [20000000000, '47863826', 'sha512'],
];

describe('TOTP (RFC 6238)', () => {
  test.each(vectors)('at %i s the code is %s (%s), and it verifies', async (seconds, expected, algorithm) => {
    const params = { algorithm, digits: 8 as const, period: 30 };
    const now = new Date(seconds * 1000);
    expect(await totpCode(seeds[algorithm], now, params)).toBe(expected);
    expect(await verifyTotp(seeds[algorithm], expected, { ...params, now })).toEqual({ ok: true, step: Math.floor(seconds / 30) });
  });

  test.each(vectors)('the reference authenticator the other tests use gives %i s → %s (%s)', (seconds, expected, algorithm) => {
    expect(referenceTotpFromKey(seeds[algorithm], new Date(seconds * 1000), { digits: 8, algorithm })).toBe(expected);
  });

  const oathtool = oathtoolTotpFromKey(seeds.sha1, new Date(59_000), { digits: 8 }) !== undefined;
  (oathtool ? test : test.skip)('oathtool, a third implementation, agrees (skipped where oathtool is not installed)', () => {
    for (const [seconds, expected, algorithm] of vectors) {
      expect(oathtoolTotpFromKey(seeds[algorithm], new Date(seconds * 1000), { digits: 8, algorithm })).toBe(expected);
    }
  });
  if (!oathtool) console.info('oathtool is not installed: the cross-check with a third TOTP implementation is skipped');

  test('a code accepted once is refused the second time (single use)', async () => {
    const secret = generateTotpSecret();
    const now = new Date('2026-05-05T10:00:10Z');
    const code = referenceTotp(toBase32(secret), now);
    const first = await verifyTotp(secret, code, { ...DEFAULT_TOTP, now });
    expect(first.ok).toBe(true);
    const step = (first as { step: number }).step;
    expect(await verifyTotp(secret, code, { ...DEFAULT_TOTP, now, afterStep: step })).toEqual({ ok: false, reason: 'replayed' });
    // The next step's code is still fine.
    const later = new Date(now.getTime() + 30_000);
    expect(await verifyTotp(secret, referenceTotp(toBase32(secret), later), { ...DEFAULT_TOTP, now: later, afterStep: step })).toMatchObject({ ok: true });
  });

  test('one step of drift either way is accepted; two steps old is refused', async () => {
    const secret = generateTotpSecret();
    const now = new Date('2026-05-05T10:00:40Z');
    const at = (offsetSteps: number) => referenceTotp(toBase32(secret), new Date(now.getTime() + offsetSteps * 30_000));
    expect(await verifyTotp(secret, at(-1), { ...DEFAULT_TOTP, now })).toMatchObject({ ok: true });
    expect(await verifyTotp(secret, at(1), { ...DEFAULT_TOTP, now })).toMatchObject({ ok: true });
    expect(await verifyTotp(secret, at(-2), { ...DEFAULT_TOTP, now })).toEqual({ ok: false, reason: 'wrong_code' });
    expect(await verifyTotp(secret, at(2), { ...DEFAULT_TOTP, now })).toEqual({ ok: false, reason: 'wrong_code' });
  });

  test('malformed codes are refused before any cryptography', async () => {
    const secret = generateTotpSecret();
    const now = new Date();
    for (const code of ['', '12345', '1234567', 'abcdef', '12 34 5x']) {
      expect(await verifyTotp(secret, code, { ...DEFAULT_TOTP, now })).toEqual({ ok: false, reason: 'malformed' });
    }
    const spaced = referenceTotp(toBase32(secret), now).replace(/(\d{3})/, '$1 ');
    expect(await verifyTotp(secret, spaced, { ...DEFAULT_TOTP, now })).toMatchObject({ ok: true });
  });

  test('secrets are 160 bits and the otpauth URI names issuer and account', () => {
    const secret = generateTotpSecret();
    expect(secret).toHaveLength(20);
    const uri = new URL(otpauthUri(secret, 'ada@example.test', 'Latchkey', DEFAULT_TOTP));
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/Latchkey:ada@example.test');
    expect(uri.searchParams.get('secret')).toBe(toBase32(secret));
    expect(uri.searchParams.get('issuer')).toBe('Latchkey');
  });
});
