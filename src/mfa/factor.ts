import type { FactorRow, UserFactors } from '../db/factors.js';
import type { StatementPart } from '../db/throttle.js';

/** Every kind of second factor Latchkey knows. */
export const FACTOR_IDS = ['totp', 'sms', 'email', 'pin', 'passkey'] as const;
export type FactorId = (typeof FACTOR_IDS)[number];

/** One way a given user can pass the second step: an authenticator app, a phone, an inbox, a door PIN. */
export interface Method {
  id: string;
  factor: FactorId;
  label: string;
  /** What the login page may show to tell methods apart, e.g. a masked phone number "+82 ••• ••12". */
  hint?: string;
  /** A word the pages translate (`factor_detail.<detail>`), e.g. whether a passkey is synced or device-bound. */
  detail?: string;
  record: FactorRow;
}

export interface SignInContext {
  /** oidc-provider's interaction uid: codes sent during a sign-in are bound to it. */
  interactionUid: string;
  locale: 'en' | 'ko';
  /** The whole sign-in rests on this one verification (no password before it): it must prove the user too. */
  passwordless?: boolean;
  /**
   * The caller writes the answer's use (a TOTP time step) in its own statement, with what a success changes: a factor
   * that spends its answer in one conditional write returns it as `use` instead of running it, and the answer counts
   * only where that write changes its row.
   */
  joinUse?: boolean;
}

/**
 * Every failure answers the user the same ("that code didn't work"); the reason is for the audit log only.
 */
export type FailureReason =
  | 'malformed'
  | 'wrong_code'
  | 'replayed'
  | 'expired'
  | 'no_code_sent'
  | 'too_many_attempts'
  | 'unknown_credential'
  | 'wrong_origin'
  | 'wrong_rp_id'
  | 'wrong_challenge'
  | 'no_user_verification'
  | 'counter_regressed';

/** `amr`, when given, is what this verification proved, in place of the factor's own value (e.g. `hwk` + `user`). */
export type VerifyOutcome = { ok: true; amr?: string[]; use?: StatementPart } | { ok: false; reason: FailureReason };

export type ChallengeOutcome =
  | { sent: true; retryAfterSeconds: number }
  | { sent: false; reason: 'cooldown' | 'rate_limited' | 'destination_rejected' | 'delivery_failed'; retryAfterSeconds?: number; detail?: string };

export interface EnrollingUser {
  id: string;
  email: string;
  locale: 'en' | 'ko';
}

/**
 * What a pending enrolment shows: TOTP a secret and its otpauth URI; SMS or email where the code went; a
 * challenge/response factor the options its page hands the browser (the response comes back as the code).
 */
export interface EnrolmentDisplay {
  secret?: string;
  otpauthUri?: string;
  /** How many digits the codes to type have (an authenticator app's setting). */
  digits?: number;
  sentTo?: string;
  ceremony?: object;
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
  /**
   * SP 800-63B's factor category. Only a factor of another category than the password (something the user has)
   * makes a sign-in multi-factor; a second thing the user knows does not.
   */
  readonly category: 'possession' | 'knowledge';
  /**
   * Bound to our origin by the browser, so a look-alike site cannot relay it (SP 800-63B-4 3.2.5). Only such a
   * factor answers a demand for phishing resistance.
   */
  readonly phishingResistant?: boolean;
  /**
   * For challenge/response factors (WebAuthn): the page runs a ceremony with these options and posts its result as
   * the code. The challenge is stored with the sign-in and taken by the verification that answers it.
   */
  readonly ceremony?: {
    /** Options for this sign-in's second step, limited to the user's own credentials (`methods`). */
    options(methods: Method[], context: SignInContext): Promise<object>;
    /**
     * A factor that can be the whole sign-in: options for a browser that has not said who it is, and the method a
     * response names (its user then fixed by `verify`, called with `context.passwordless`).
     */
    passwordless?: {
      options(context: SignInContext): Promise<object>;
      identify(response: string): Promise<Method | undefined>;
    };
  };
  /** Self-service enrolment: start (creates a pending method, maybe sends a code), then confirm with a code. */
  readonly enrol?: {
    start(user: EnrollingUser, input: Record<string, unknown>): Promise<{ pendingId: string }>;
    display(user: EnrollingUser, pending: FactorRow): EnrolmentDisplay | Promise<EnrolmentDisplay>;
    confirm(user: EnrollingUser, pendingId: string, code: string): Promise<ConfirmOutcome>;
  };
  /** For factors that send something: send a fresh code for this sign-in. */
  challenge?(method: Method, context: SignInContext): Promise<ChallengeOutcome>;
  verify(method: Method, code: string, context: SignInContext): Promise<VerifyOutcome>;
  /** How a stored method shows in the UI. */
  describe(record: FactorRow): Method;
  /**
   * Factors whose methods live elsewhere than user_factors (door PINs) list them themselves; from `known` where the
   * request already read them.
   */
  listOwnMethods?(userId: string, known?: UserFactors): Promise<Method[]>;
}
