import { z } from 'zod';
import type { SettingsStore } from '../config/settings.js';
import type { AuditEvent } from '../db/audit.js';
import type { UserFactors } from '../db/factors.js';
import type { Queries } from '../db/index.js';
import type { JoiningWrite } from '../db/throttle.js';
import { signInReadBeside, signInReadOf, type UserRow } from '../db/users.js';
import { canonicalEmail } from '../security/email.js';
import { accountGuessKey, accountGuessRule } from '../security/password-guesses.js';
import type { PasswordHasher } from '../security/passwords.js';
import type { Throttle } from '../security/throttle.js';

export const loginFormSchema = z.object({
  email: z.string().trim().min(1, { message: 'required' }).max(320),
  password: z.string().min(1, { message: 'required' }).max(1024),
});

export interface PasswordLoginDeps {
  queries: Queries;
  hasher: PasswordHasher;
  throttle: Throttle;
  settings: SettingsStore;
  /** The shortest door PIN that may answer on the web (the door side's rule): given, the PIN is read with the user. */
  webPinMinLength?: number;
}

export interface LoginAttempt {
  email: string;
  password: string;
  ip: string;
  userAgent?: string;
  clientId?: string;
}

export type LoginOutcome =
  | { ok: true; user: UserRow }
  | { ok: false; reason: 'invalid_credentials' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

/**
 * A verified password whose attempt is not settled yet: `settle` gives the attempt back and writes its audit entry,
 * with `after` (binding the sign-in) in the same statement, and says whether `after` wrote its row. It must be called
 * on every way on from here; a second call writes only `after`.
 */
export type PasswordCheck =
  | { ok: true; user: UserRow; factors: UserFactors; settle(after?: JoiningWrite): Promise<boolean> }
  | { ok: false; reason: 'invalid_credentials' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export const throttleKeys = {
  account: accountGuessKey,
  ip: (ip: string) => `login:ip:${ip}`,
};

/**
 * The first factor. Whatever went wrong (no such account, wrong password, disabled account) the caller learns
 * only "invalid credentials", after the same argon2 work; the audit log keeps the real reason. Every attempt is
 * reserved against the email (whether or not it exists, so a lockout reveals nothing) and the client IP before the
 * hash is checked, so a burst of concurrent guesses evaluates at most the limit.
 */
export async function authenticateWithPassword(deps: PasswordLoginDeps, attempt: LoginAttempt): Promise<LoginOutcome> {
  const outcome = await checkPassword(deps, attempt);
  if (outcome.ok) await outcome.settle();
  return outcome;
}

/**
 * `authenticateWithPassword` for the sign-in, which binds itself in the statement that settles the attempt. The user
 * is read, with their factors, in the statement that reserves the attempt.
 */
export async function checkPassword(deps: PasswordLoginDeps, attempt: LoginAttempt): Promise<PasswordCheck> {
  const { queries, hasher, throttle, settings } = deps;
  const ipKey = throttleKeys.ip(attempt.ip);
  const event = (outcome: 'success' | 'failure', reason: string, subjectId?: string): AuditEvent => ({
    action: 'login.password',
    outcome,
    subjectId,
    clientId: attempt.clientId,
    ip: attempt.ip,
    userAgent: attempt.userAgent,
    details: { reason, email: canonicalEmail(attempt.email).slice(0, 320) },
  });
  const audit = (outcome: 'success' | 'failure', reason: string, subjectId?: string) => queries.audit.insert(event(outcome, reason, subjectId));

  const lockout = (await settings.read('lockout')).value;
  const reserved = await throttle.reserveBeside(
    [
      accountGuessRule(lockout, attempt.email),
      { key: ipKey, limit: lockout.login_ip_failures, windowSeconds: lockout.login_window_seconds, baseLockSeconds: lockout.login_window_seconds, onSuccess: 'release' },
    ],
    signInReadBeside(attempt.email, deps.webPinMinLength),
  );
  const reservation = reserved.reservation!;
  if (!reservation.allowed) {
    await audit('failure', 'throttled');
    return { ok: false, reason: 'throttled', retryAfterSeconds: reservation.retryAfterSeconds };
  }

  const found = signInReadOf(reserved.row);
  const user = found?.user;
  const check = await hasher.verify(user?.password_hash, attempt.password);

  if (!user || !check.valid || user.status !== 'active') {
    const reason = !user ? 'unknown_user' : !check.valid ? 'wrong_password' : 'account_disabled';
    await audit('failure', reason, user?.id);
    return { ok: false, reason: 'invalid_credentials' };
  }

  if (check.needsRehash) await queries.users.setPasswordHash(user.id, await hasher.hash(attempt.password));
  let settledOnce = false;
  const settle = async (after?: JoiningWrite) => {
    const beside = after && { after: [after] };
    const first = !settledOnce;
    settledOnce = true;
    const settled = first ? await reservation.succeeded(event('success', 'password_verified', user.id), beside) : beside && (await queries.throttle.settle([], [], undefined, beside));
    return !after || settled!.after[0] === 1;
  };
  return { ok: true, user, factors: found!.factors, settle };
}
