import { z } from 'zod';
import type { SettingsStore } from '../config/settings.js';
import type { AuditEvent } from '../db/audit.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
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
  const reservation = await throttle.reserve([
    accountGuessRule(lockout, attempt.email),
    { key: ipKey, limit: lockout.login_ip_failures, windowSeconds: lockout.login_window_seconds, baseLockSeconds: lockout.login_window_seconds, onSuccess: 'release' },
  ]);
  if (!reservation.allowed) {
    await audit('failure', 'throttled');
    return { ok: false, reason: 'throttled', retryAfterSeconds: reservation.retryAfterSeconds };
  }

  const user = await queries.users.findByEmail(attempt.email);
  const check = await hasher.verify(user?.password_hash, attempt.password);

  if (!user || !check.valid || user.status !== 'active') {
    const reason = !user ? 'unknown_user' : !check.valid ? 'wrong_password' : 'account_disabled';
    await audit('failure', reason, user?.id);
    return { ok: false, reason: 'invalid_credentials' };
  }

  if (check.needsRehash) await queries.users.setPasswordHash(user.id, await hasher.hash(attempt.password));
  await reservation.succeeded(event('success', 'password_verified', user.id));
  return { ok: true, user };
}
