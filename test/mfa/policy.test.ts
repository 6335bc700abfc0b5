import { describe, expect, test } from '@jest/globals';
import { ACR, decideMfa, hasSecondFactor } from '../../src/mfa/policy.js';

const base = { enforced: false, clientRequiresMfa: false, acrValues: undefined, enrolledFactors: 0 };

describe('the MFA policy', () => {
  test.each([
    ['nothing asks for it and nothing is enrolled', {}, { required: false, mustEnrol: false }],
    ['the user enrolled a factor', { enrolledFactors: 1 }, { required: true, mustEnrol: false }],
    ['enforcement is on, nothing enrolled', { enforced: true }, { required: true, mustEnrol: true }],
    ['enforcement is on, a factor enrolled', { enforced: true, enrolledFactors: 2 }, { required: true, mustEnrol: false }],
    ['the client requires it', { clientRequiresMfa: true }, { required: true, mustEnrol: true }],
    ['acr_values asks for mfa', { acrValues: `${ACR.mfa}` }, { required: true, mustEnrol: true }],
    ['acr_values asks with the PAPE URI', { acrValues: 'foo http://schemas.openid.net/pape/policies/2007/06/multi-factor' }, { required: true, mustEnrol: true }],
    ['acr_values asks for password only', { acrValues: ACR.password }, { required: false, mustEnrol: false }],
  ])('%s', (_name, input, expected) => {
    expect(decideMfa({ ...base, ...input })).toMatchObject(expected);
  });

  test('names every reason that applies', () => {
    expect(decideMfa({ enforced: true, clientRequiresMfa: true, acrValues: ACR.mfa, enrolledFactors: 1 }).reasons).toEqual([
      'enrolled', 'enforced', 'client', 'acr_values',
    ]);
  });

  test('a session has a second factor only when its amr says mfa', () => {
    expect(hasSecondFactor(['pwd'])).toBe(false);
    expect(hasSecondFactor(['pwd', 'otp', 'mfa'])).toBe(true);
    expect(hasSecondFactor(undefined)).toBe(false);
  });
});
