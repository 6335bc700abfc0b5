/**
 * The sign-in as an explicit state machine. Everything a reader needs to know about which request may happen when
 * is in this file; the routes only parse, call one transition and render.
 *
 *   started ──password──▶ second_factor ──factor or remembered browser──▶ finished
 *      │                       ▲
 *      │    (session step-up) ─┘
 *      ├──passwordless──▶ finished (a passkey that verified its user: both factors at once)
 *      ├──reset_password──▶ started (a forgotten password set anew by an emailed code; the user then signs in)
 *      ├──password──▶ confirm_email ──emailed code──▶ enrolling ──new factor──▶ verified ──continue──▶ finished
 *      ├──password──▶ enrolling (no mail configured)
 *      └──password──▶ finished (no second factor needed)
 *
 *   second_factor ──helpdesk bypass code──▶ enrolling (a new factor before the sign-in finishes)
 *   confirm_email, enrolling ──later──▶ finished (enrolment grace: enforcement alone asked, password-only claims)
 *
 * Rules that hold by construction:
 * - The user of a sign-in is fixed by its first verified authenticator (a password, a passwordless passkey, or the
 *   session it steps up) and never changes: there is no transition out of `started` but the first, and none that
 *   takes a user id.
 * - Each request is accepted in its own steps only (ACTIONS); anything else is refused by `accepts`, not by each
 *   route remembering to check.
 * - Failures only grow: a wrong code is reserved before it is checked and never given back.
 */
export const SIGN_IN_STEPS = ['second_factor', 'confirm_email', 'enrolling', 'verified', 'finished'] as const;
export type StoredStep = (typeof SIGN_IN_STEPS)[number];
export type SignInStep = 'started' | StoredStep;

export type SignInAction =
  | 'password'
  | 'passwordless'
  | 'reset_password'
  | 'verify_factor'
  | 'remembered_device'
  | 'send_code'
  | 'bypass'
  | 'confirm_email'
  | 'resend_email'
  | 'enrol'
  | 'later'
  | 'continue'
  | 'abort';

/** Which requests each step accepts. */
export const ACTIONS: Record<SignInStep, readonly SignInAction[]> = {
  started: ['password', 'passwordless', 'reset_password', 'abort'],
  second_factor: ['verify_factor', 'remembered_device', 'send_code', 'bypass', 'abort'],
  confirm_email: ['confirm_email', 'resend_email', 'later', 'abort'],
  enrolling: ['enrol', 'later', 'abort'],
  verified: ['continue', 'abort'],
  finished: [],
};

export const accepts = (step: SignInStep, action: SignInAction) => ACTIONS[step].includes(action);

/** Wrong codes (second factor, emailed confirmation, enrolment) allowed within one sign-in before it is ended. */
export const MAX_FAILURES_PER_SIGN_IN = 5;

/** What the policy asked of the user whose password was just verified. */
export type SecondStep = 'none' | 'second_factor' | 'enrolment';

/** The step a verified password leads to. */
export function afterPassword(needed: SecondStep, mailConfigured: boolean): StoredStep {
  if (needed === 'none') return 'finished';
  if (needed === 'second_factor') return 'second_factor';
  // Enrolment hijack: whoever knows only the password of a user without a factor must not bind their own
  // authenticator to that account. Where mail reaches the account's owner, their inbox has to agree first.
  return mailConfigured ? 'confirm_email' : 'enrolling';
}

/** The step each successful action leads to, from the step it was accepted in. */
export function nextStep(step: SignInStep, action: SignInAction): StoredStep | undefined {
  if (!accepts(step, action)) return undefined;
  switch (action) {
    case 'verify_factor':
    case 'remembered_device':
    case 'passwordless':
      return 'finished';
    case 'confirm_email':
    // A helpdesk's code stands in for the lost factor only to let the user bind a new one: the sign-in finishes
    // through that enrolment, never on the code alone, and no existing factor is removed.
    case 'bypass':
      return 'enrolling';
    case 'enrol':
      // The new factor's recovery codes are shown once before the user goes on.
      return 'verified';
    case 'continue':
    case 'later':
    case 'abort':
      return 'finished';
    default:
      return step === 'started' ? undefined : step;
  }
}
