import crypto from 'node:crypto';
import { z } from 'zod';

export const MIN_CODE_LENGTH = 4;
export const MAX_CODE_LENGTH = 16;

/** A keypad code: digits only, 4 to 16 of them. */
export const accessCodeSchema = z
  .string({ message: 'expected a code of 4 to 16 digits' })
  .regex(/^\d*$/, { message: 'a code has digits only (0-9)' })
  .min(MIN_CODE_LENGTH, { message: `a code has at least ${MIN_CODE_LENGTH} digits` })
  .max(MAX_CODE_LENGTH, { message: `a code has at most ${MAX_CODE_LENGTH} digits` });

/** Codes anyone would try first: one digit repeated, or a run up or down (0000, 1234, 9876, 123456…). */
export function isTrivialCode(code: string): boolean {
  const digits = [...code].map(Number);
  const steps = new Set(digits.slice(1).map((d, i) => (d - digits[i]! + 10) % 10));
  return steps.size === 1 && [0, 1, 9].includes([...steps][0]!);
}

export function generateAccessCode(length: number): string {
  const size = accessCodeSchema.parse('0'.repeat(length)).length;
  for (;;) {
    const code = Array.from({ length: size }, () => crypto.randomInt(0, 10)).join('');
    if (!isTrivialCode(code)) return code;
  }
}

/** Keyed hash used to find a code without decrypting every stored one; the sealed copy is for display only. */
export function codeLookup(key: Buffer, code: string): string {
  return crypto.createHmac('sha256', key).update(code).digest('base64url');
}
