import { describe, expect, test } from '@jest/globals';
import { accessCodeSchema, generateAccessCode, isTrivialCode } from '../../src/access/codes.js';

describe('door codes', () => {
  test.each(['1357', '2468013579246801'])('%s (4 and 16 digits) is accepted', (code) => {
    expect(accessCodeSchema.safeParse(code).success).toBe(true);
  });

  test.each([
    ['135', 'a code has at least 4 digits'],
    ['24680135792468013', 'a code has at most 16 digits'],
    ['12a4', 'a code has digits only (0-9)'],
    ['12 34', 'a code has digits only (0-9)'],
    ['١٢٣٤', 'a code has digits only (0-9)'],
  ])('%s is refused: %s', (code, message) => {
    const result = accessCodeSchema.safeParse(code);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.message).toBe(message);
  });

  test('trivial codes are recognised', () => {
    for (const code of ['0000', '1111', '1234', '4321', '7890', '123456', '9876543210']) expect(isTrivialCode(code)).toBe(true);
    for (const code of ['1357', '1122', '2580', '902817']) expect(isTrivialCode(code)).toBe(false);
  });

  test('Generate gives the asked length and never a trivial code', () => {
    for (const length of [4, 6, 16]) {
      for (let i = 0; i < 200; i++) {
        const code = generateAccessCode(length);
        expect(code).toMatch(new RegExp(`^\\d{${length}}$`));
        expect(isTrivialCode(code)).toBe(false);
      }
    }
    expect(() => generateAccessCode(3)).toThrow();
  });
});
