/**
 * Authentication context classes Latchkey issues and accepts in `acr_values`, weakest first. `pin` is a password
 * and a door PIN: two things the user knows, which SP 800-63B counts as one factor, so it sits below `mfa`. `phr` is
 * multi-factor with a phishing-resistant authenticator (a passkey: SP 800-63B-4 3.2.5, bound to our origin by the
 * browser), so it sits above `mfa` and answers a request for either.
 */
export const ACR = {
  password: 'urn:latchkey:acr:pwd',
  pin: 'urn:latchkey:acr:pin',
  mfa: 'urn:latchkey:acr:mfa',
  phr: 'urn:latchkey:acr:phr',
} as const;

// Relying parties written against other providers ask for these; they mean our `phr` (OpenID EAP) and `mfa` classes.
const PHR_ALIASES = new Set<string>([ACR.phr, 'phr']);
const MFA_ALIASES = new Set<string>([ACR.mfa, 'http://schemas.openid.net/pape/policies/2007/06/multi-factor', 'mfa', ...PHR_ALIASES]);
/**
 * The `amr` values only a phishing-resistant factor earns here (RFC 8176 proof of possession of a key): a passkey
 * signs our origin's challenge. No other factor may claim them.
 */
const PHISHING_RESISTANT_AMR = new Set(['hwk', 'swk']);

export interface MfaPolicyInput {
  /** The super admin's "Enforce multi-factor authentication" switch. */
  enforced: boolean;
  /** The super admin's "a door PIN answers enforcement" setting (off by default). */
  pinSatisfiesEnforcement?: boolean;
  /** The client's `require_mfa` metadata. */
  clientRequiresMfa: boolean;
  /** `acr_values` of the authorization request, space-separated. */
  acrValues?: string;
  /** How many confirmed factors separate from the password the user has (authenticator app, phone, inbox). */
  enrolledFactors: number;
  /** The user opted in to their door PIN at web sign-in. */
  hasWebPin?: boolean;
  /** The client's `require_phishing_resistant` metadata. */
  clientRequiresPhishingResistant?: boolean;
  /** The super admin's "admins must use a phishing-resistant factor", where this request reaches admin rights. */
  adminPhishingResistant?: boolean;
  /** How many of the enrolled factors are phishing resistant (passkeys). */
  enrolledPhishingResistant?: number;
}

export interface MfaDecision {
  /** A second step is asked of this sign-in. */
  required: boolean;
  /** Required, but the user has nothing that answers it: they enrol during this sign-in. */
  mustEnrol: boolean;
  /** The door PIN answers this sign-in's second step (it never answers a demand for multi-factor). */
  pinAccepted: boolean;
  /** Only a phishing-resistant factor answers this sign-in's second step. */
  phishingResistant: boolean;
  reasons: Array<'enrolled' | 'enforced' | 'client' | 'acr_values' | 'role'>;
  /** Set only where enforcement alone asks and the user's enrolment grace lasts: they may choose "later". */
  grace?: { days?: number; signIns?: number };
}

/**
 * The one place that decides what a sign-in's second step must be. A user who enrolled a factor always uses it;
 * the global switch, the client and the request can each demand one of users who have not. A door PIN is asked of
 * users who opted in, and answers only what asks for less than multi-factor.
 */
export function decideMfa(input: MfaPolicyInput): MfaDecision {
  const reasons: MfaDecision['reasons'] = [];
  const clientAsks = input.clientRequiresMfa || !!input.clientRequiresPhishingResistant;
  if (input.enrolledFactors > 0 || input.hasWebPin) reasons.push('enrolled');
  if (input.enforced) reasons.push('enforced');
  if (clientAsks) reasons.push('client');
  if (requestsMfa(input.acrValues)) reasons.push('acr_values');
  if (input.adminPhishingResistant) reasons.push('role');
  const required = reasons.length > 0;
  const phishingResistant = !!input.clientRequiresPhishingResistant || requestsPhishingResistant(input.acrValues) || !!input.adminPhishingResistant;
  const needsMultiFactor =
    input.enrolledFactors > 0 || clientAsks || requestsMfa(input.acrValues) || phishingResistant || (input.enforced && !input.pinSatisfiesEnforcement);
  const pinAccepted = required && !needsMultiFactor && !!input.hasWebPin;
  const nothingAnswers = input.enrolledFactors === 0 || (phishingResistant && !input.enrolledPhishingResistant);
  return { required, mustEnrol: required && nothingAnswers && !pinAccepted, pinAccepted, phishingResistant, reasons };
}

const asks = (acrValues: string | undefined, values: Set<string>) => !!acrValues && acrValues.split(/\s+/).some((value) => values.has(value));
export const requestsMfa = (acrValues?: string) => asks(acrValues, MFA_ALIASES);
export const requestsPhishingResistant = (acrValues?: string) => asks(acrValues, PHR_ALIASES);

/** Whether a finished sign-in (its `amr`) already includes a second factor. */
export function hasSecondFactor(amr: readonly string[] | undefined): boolean {
  return !!amr && amr.includes('mfa');
}

/** Whether a finished sign-in (its `amr`) was multi-factor with a phishing-resistant authenticator. */
export function isPhishingResistant(amr: readonly string[] | undefined): boolean {
  return hasSecondFactor(amr) && amr!.some((value) => PHISHING_RESISTANT_AMR.has(value));
}

/** Whether a sign-in that ended with `amr` meets this decision (a session asked again by a later request). */
export function satisfies(decision: MfaDecision, amr: readonly string[] | undefined): boolean {
  if (decision.phishingResistant) return isPhishingResistant(amr);
  return !decision.required || hasSecondFactor(amr) || (decision.pinAccepted && !!amr?.includes('pin')) || !!decision.grace;
}

/** The class a sign-in earned: claims say exactly what happened, never more. */
export function acrFor(amr: readonly string[]): string {
  if (isPhishingResistant(amr)) return ACR.phr;
  if (hasSecondFactor(amr)) return ACR.mfa;
  return amr.includes('pin') ? ACR.pin : ACR.password;
}
