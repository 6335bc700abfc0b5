import crypto from 'node:crypto';
import type { Queries } from '../db/index.js';
import type { Clock } from '../security/clock.js';

// Crockford's base32 alphabet: no I, L, O or U to misread when typed from paper.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const RECOVERY_CODE_COUNT = 10;

/** Characters of a 32-letter alphabet, 5 bits each, in groups of `group` (recovery codes: 10 in two groups of five). */
export function newTypedCode(length = 10, group = 5): string {
  const bytes = crypto.randomBytes(length);
  const chars = [...bytes].map((b) => ALPHABET[b & 31]).join('');
  return chars.match(new RegExp(`.{1,${group}}`, 'g'))!.join('-');
}
const newCode = () => newTypedCode();

/** What a person typed, as the code was issued: case, spaces and dashes ignored, I/L/O read as 1/0. */
export function normaliseTypedCode(code: string): string {
  return code
    .toUpperCase()
    .replace(/[\s-]/g, '')
    .replace(/[IL]/g, '1')
    .replace(/O/g, '0');
}

export interface RecoveryCodeDeps {
  queries: Queries;
  clock: Clock;
  /** Keyed hashing: a stolen table alone is not enough to test guesses offline. */
  hashKey: Buffer;
}



function hash(deps: RecoveryCodeDeps, code: string): string {
  return crypto.createHmac('sha256', deps.hashKey).update(normaliseTypedCode(code)).digest('base64url');
}

/** A fresh set, replacing any previous one; the plain codes exist only in the return value. */
export async function issueRecoveryCodes(deps: RecoveryCodeDeps, userId: string): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newCode);
  await deps.queries.recoveryCodes.replace(userId, codes.map((code) => hash(deps, code)));
  return codes;
}

/**
 * Spends a code. Lookup is by keyed hash, so no stored secret is compared character by character, and the
 * conditional update lets only one of several concurrent uses of a code succeed.
 */
export async function useRecoveryCode(deps: RecoveryCodeDeps, userId: string, code: string): Promise<boolean> {
  const cleaned = normaliseTypedCode(code);
  if (!/^[0-9A-Z]{10}$/.test(cleaned)) return false;
  return deps.queries.recoveryCodes.use(userId, hash(deps, cleaned), deps.clock.now());
}

export const remainingRecoveryCodes = (deps: RecoveryCodeDeps, userId: string) => deps.queries.recoveryCodes.countUnused(userId);
