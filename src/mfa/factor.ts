import type { FactorRow } from '../db/factors.js';

/** Every kind of second factor Latchkey knows. */
export const FACTOR_IDS = ['totp', 'sms', 'email', 'pin'] as const;
export type FactorId = (typeof FACTOR_IDS)[number];

/** One way a given user can pass the second step: an authenticator app, a phone, an inbox, a door PIN. */
export interface Method {
  id: string;
  factor: FactorId;
  label: string;
  /** What the login page may show to tell methods apart, e.g. a masked phone number "+82 ••• ••12". */
  hint?: string;
  record: FactorRow;
}

export interface SignInContext {
  /** oidc-provider's interaction uid: codes sent during a sign-in are bound to it. */
  interactionUid: string;
  locale: 'en' | 'ko';
}

/**
 * Every failure answers the user the same ("that code didn't work"); the reason is for the audit log only.
 */
export type FailureReason = 'malformed' | 'wrong_code' | 'replayed' | 'expired' | 'no_code_sent' | 'too_many_attempts';

export type VerifyOutcome = { ok: true } | { ok: false; reason: FailureReason };

export type ChallengeOutcome =
  | { sent: true; retryAfterSeconds: number }
  | { sent: false; reason: 'cooldown' | 'rate_limited' | 'delivery_failed'; retryAfterSeconds?: number; detail?: string };

export interface EnrollingUser {
  id: string;
  email: string;
  locale: 'en' | 'ko';
}

/** What a pending enrolment shows: TOTP a secret and its otpauth URI; SMS or email where the code went. */
export interface EnrolmentDisplay {
  secret?: string;
  otpauthUri?: string;
  sentTo?: string;
}

export type ConfirmOutcome = { ok: true; method: Method } | { ok: false; reason: FailureReason | 'not_found' };

/**
 * A second factor. It gets a narrow set of dependencies (queries, clock, crypto, a sender) and knows nothing of
 * Koa or oidc-provider: the login flow and the account pages drive every factor through this interface alone.
 */
export interface Factor {
  readonly id: FactorId;
  /** The RFC 8176 `amr` value a successful verification adds to the ID token. */
  readonly amr: string;
  /** Self-service enrolment: start (creates a pending method, maybe sends a code), then confirm with a code. */
  readonly enrol?: {
    start(user: EnrollingUser, input: Record<string, unknown>): Promise<{ pendingId: string }>;
    display(user: EnrollingUser, pending: FactorRow): EnrolmentDisplay;
    confirm(user: EnrollingUser, pendingId: string, code: string): Promise<ConfirmOutcome>;
  };
  /** For factors that send something: send a fresh code for this sign-in. */
  challenge?(method: Method, context: SignInContext): Promise<ChallengeOutcome>;
  verify(method: Method, code: string, context: SignInContext): Promise<VerifyOutcome>;
  /** How a stored method shows in the UI. */
  describe(record: FactorRow): Method;
  /** Factors whose methods live elsewhere than user_factors (door PINs) list them themselves. */
  listOwnMethods?(userId: string): Promise<Method[]>;
}
