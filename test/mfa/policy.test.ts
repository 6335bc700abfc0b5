import { describe, expect, test } from '@jest/globals';
import { ACR, acrFor, decideMfa, hasSecondFactor, satisfies } from '../../src/mfa/policy.js';

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

  test.each([
    ['opted in to their PIN, nothing else asks', {}, { required: true, mustEnrol: false, pinAccepted: true }],
    ['enforcement on, the PIN does not answer it by default', { enforced: true }, { required: true, mustEnrol: true, pinAccepted: false }],
    ['enforcement on, a super admin let the PIN answer it', { enforced: true, pinSatisfiesEnforcement: true }, { required: true, mustEnrol: false, pinAccepted: true }],
    ['acr_values asks for mfa: never a PIN', { acrValues: ACR.mfa, enforced: true, pinSatisfiesEnforcement: true }, { mustEnrol: true, pinAccepted: false }],
    ['the client requires mfa: never a PIN', { clientRequiresMfa: true }, { mustEnrol: true, pinAccepted: false }],
    ['an enrolled factor is used instead of the PIN', { enrolledFactors: 1 }, { mustEnrol: false, pinAccepted: false }],
  ])('door PIN: %s', (_name, input, expected) => {
    expect(decideMfa({ ...base, hasWebPin: true, ...input })).toMatchObject(expected);
  });

  test('a password and a PIN earn their own acr, below mfa, and never satisfy a demand for mfa', () => {
    expect(acrFor(['pwd', 'pin'])).toBe(ACR.pin);
    expect(acrFor(['pwd', 'otp', 'mfa'])).toBe(ACR.mfa);
    expect(acrFor(['pwd'])).toBe(ACR.password);
    const demanded = decideMfa({ ...base, hasWebPin: true, acrValues: ACR.mfa });
    expect(satisfies(demanded, ['pwd', 'pin'])).toBe(false);
    expect(satisfies(demanded, ['pwd', 'otp', 'mfa'])).toBe(true);
    expect(satisfies(decideMfa({ ...base, hasWebPin: true }), ['pwd', 'pin'])).toBe(true);
  });

  test('a session has a second factor only when its amr says mfa', () => {
    expect(hasSecondFactor(['pwd'])).toBe(false);
    expect(hasSecondFactor(['pwd', 'otp', 'mfa'])).toBe(true);
    expect(hasSecondFactor(undefined)).toBe(false);
  });

  describe('phishing resistance', () => {
    test.each([
      ['acr_values asks for phr', { acrValues: ACR.phr }, 'acr_values'],
      ['the client requires it', { clientRequiresPhishingResistant: true }, 'client'],
      ['admin rights under the admin setting', { adminPhishingResistant: true }, 'role'],
    ] as const)('%s: only a passkey answers; without one there is nothing to enrol into', (_name, input, reason) => {
      const withoutPasskey = decideMfa({ ...base, enrolledFactors: 1, ...input });
      expect(withoutPasskey).toMatchObject({ required: true, phishingResistant: true, mustEnrol: true, pinAccepted: false });
      expect(withoutPasskey.reasons).toContain(reason);
      expect(decideMfa({ ...base, enrolledFactors: 2, enrolledPhishingResistant: 1, ...input })).toMatchObject({ required: true, phishingResistant: true, mustEnrol: false });
    });

    test('a passkey sign-in earns phr, which answers demands for phr and for mfa; an app code answers only mfa', () => {
      for (const amr of [['hwk', 'user', 'mfa'], ['swk', 'user', 'mfa'], ['pwd', 'hwk', 'mfa']]) expect(acrFor(amr)).toBe(ACR.phr);
      const phr = decideMfa({ ...base, enrolledFactors: 1, enrolledPhishingResistant: 1, acrValues: 'phr' });
      expect(satisfies(phr, ['hwk', 'user', 'mfa'])).toBe(true);
      expect(satisfies(phr, ['pwd', 'otp', 'mfa'])).toBe(false);
      expect(satisfies(decideMfa({ ...base, enrolledFactors: 1, acrValues: ACR.mfa }), ['swk', 'user', 'mfa'])).toBe(true);
      // hwk without the mfa the sign-in would have earned is no claim to phishing resistance.
      expect(acrFor(['hwk'])).toBe(ACR.password);
    });
  });
});
