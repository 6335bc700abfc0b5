import { z } from 'zod';
import type { SettingsStore } from '../config/settings.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
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
  account: (email: string) => `login:account:${email.trim().toLowerCase()}`,
  ip: (ip: string) => `login:ip:${ip}`,
};

/**
 * The first factor. Whatever went wrong (no such account, wrong password, disabled account) the caller learns
 * only "invalid credentials", after the same argon2 work; the audit log keeps the real reason. Failures count
 * against the email (whether or not it exists, so a lockout reveals nothing) and against the client IP.
 */
export async function authenticateWithPassword(deps: PasswordLoginDeps, attempt: LoginAttempt): Promise<LoginOutcome> {
  const { queries, hasher, throttle, settings } = deps;
  const accountKey = throttleKeys.account(attempt.email);
  const ipKey = throttleKeys.ip(attempt.ip);
  const audit = (outcome: 'success' | 'failure', reason: string, subjectId?: string) =>
    queries.audit.insert({
      action: 'login.password',
      outcome,
      subjectId,
      clientId: attempt.clientId,
      ip: attempt.ip,
      userAgent: attempt.userAgent,
      details: { reason, email: attempt.email.trim().toLowerCase().slice(0, 320) },
    });

  const verdict = await throttle.check([accountKey, ipKey]);
  if (!verdict.allowed) {
    await audit('failure', 'throttled');
    return { ok: false, reason: 'throttled', retryAfterSeconds: verdict.retryAfterSeconds };
  }

  const user = await queries.users.findByEmail(attempt.email.trim());
  const check = await hasher.verify(user?.password_hash, attempt.password);

  if (!user || !check.valid || user.status !== 'active') {
    const reason = !user ? 'unknown_user' : !check.valid ? 'wrong_password' : 'account_disabled';
    const lockout = (await settings.read('lockout')).value;
    const window = lockout.login_window_seconds;
    await throttle.recordFailure({ key: accountKey, limit: lockout.login_account_failures, windowSeconds: window, baseLockSeconds: 30 });
    await throttle.recordFailure({ key: ipKey, limit: lockout.login_ip_failures, windowSeconds: window, baseLockSeconds: window });
    await audit('failure', reason, user?.id);
    return { ok: false, reason: 'invalid_credentials' };
  }

  if (check.needsRehash) await queries.users.setPasswordHash(user.id, await hasher.hash(attempt.password));
  if (verdict.hadFailures) await throttle.clear(accountKey);
  await audit('success', 'password_verified', user.id);
  return { ok: true, user };
}
