/** Authentication context classes Latchkey issues and accepts in `acr_values`. */
export const ACR = {
  password: 'urn:latchkey:acr:pwd',
  mfa: 'urn:latchkey:acr:mfa',
} as const;

// Relying parties written against other providers ask for multi-factor with these; they mean our `mfa` class.
const MFA_ALIASES = new Set<string>([ACR.mfa, 'http://schemas.openid.net/pape/policies/2007/06/multi-factor', 'mfa']);

export interface MfaPolicyInput {
  /** The super admin's "Enforce multi-factor authentication" switch. */
  enforced: boolean;
  /** The client's `require_mfa` metadata. */
  clientRequiresMfa: boolean;
  /** `acr_values` of the authorization request, space-separated. */
  acrValues?: string;
  /** How many confirmed factors the user has. */
  enrolledFactors: number;
}

export interface MfaDecision {
  required: boolean;
  /** Required, but the user has nothing to use: they enrol during this sign-in. */
  mustEnrol: boolean;
  reasons: Array<'enrolled' | 'enforced' | 'client' | 'acr_values'>;
}

/**
 * The one place that decides whether a sign-in needs a second factor. A user who enrolled a factor always uses it;
 * the global switch, the client and the request can each demand one of users who have not.
 */
export function decideMfa(input: MfaPolicyInput): MfaDecision {
  const reasons: MfaDecision['reasons'] = [];
  if (input.enrolledFactors > 0) reasons.push('enrolled');
  if (input.enforced) reasons.push('enforced');
  if (input.clientRequiresMfa) reasons.push('client');
  if (requestsMfa(input.acrValues)) reasons.push('acr_values');
  const required = reasons.length > 0;
  return { required, mustEnrol: required && input.enrolledFactors === 0, reasons };
}

export function requestsMfa(acrValues?: string): boolean {
  return !!acrValues && acrValues.split(/\s+/).some((value) => MFA_ALIASES.has(value));
}

/** Whether a finished sign-in (its `amr`) already includes a second factor. */
export function hasSecondFactor(amr: readonly string[] | undefined): boolean {
  return !!amr && amr.includes('mfa');
}
