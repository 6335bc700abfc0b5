import crypto from 'node:crypto';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Locale } from '../i18n.js';
import type { EmailSender } from '../notify/email.js';
import type { Notifier } from '../notify/notifier.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { canonicalEmail } from '../security/email.js';
import { accountGuessKey } from '../security/password-guesses.js';
import { assertPasswordAllowed, type PasswordPolicyDeps } from '../security/password-policy.js';
import type { PasswordHasher } from '../security/passwords.js';
import { constantTimeEqual } from '../security/secret-box.js';
import type { Throttle, ThrottleRule } from '../security/throttle.js';
import { forgetAllDevices } from '../mfa/remembered-device/index.js';
import { signOutEverywhere } from './sessions.js';

/**
 * Forgotten passwords: an 8-digit code mailed to the account's address, typed on the page where it was asked for
 * (or on /password-reset), together with the new password.
 *
 * A code rather than a link: mail scanners open every link in a message before the user does, and a link that is
 * spent (or even just looked at) by a GET would be spent by the scanner; a code does nothing until a person types it.
 * It also keeps the secret out of URLs, browser history and Referer headers. The link in the mail only leads to the
 * page (built from the configured issuer, never from the request's Host header) and carries nothing secret.
 *
 * A reset sets the password and nothing else: second factors stay, and the user then signs in as usual (password,
 * then their second factor). It never signs anyone in.
 */
export const RESET_CODE_DIGITS = 8;
export const RESET_CODE_TTL_SECONDS = 600;
/** Wrong guesses per mailed code; a guess spends one try of every live code of the account at once. */
export const RESET_CODE_TRIES = 5;

/** Per address (whether or not an account has it, so a refusal tells nothing) and per client IP. */
export const resetRules = {
  sendToAddress: (email: string): ThrottleRule => ({ key: `reset-send:email:${canonicalEmail(email)}`, limit: 5, windowSeconds: 3600, baseLockSeconds: 900, onSuccess: 'release' }),
  sendFromIp: (ip: string): ThrottleRule => ({ key: `reset-send:ip:${ip}`, limit: 30, windowSeconds: 3600, baseLockSeconds: 900, onSuccess: 'release' }),
  guessAddress: (email: string): ThrottleRule => ({ key: `reset-try:email:${canonicalEmail(email)}`, limit: 10, windowSeconds: 3600, baseLockSeconds: 900, onSuccess: 'reset' }),
  guessFromIp: (ip: string): ThrottleRule => ({ key: `reset-try:ip:${ip}`, limit: 50, windowSeconds: 3600, baseLockSeconds: 900, onSuccess: 'release' }),
};

export interface PasswordResetDeps extends PasswordPolicyDeps {
  queries: Queries;
  hasher: PasswordHasher;
  throttle: Throttle;
  clock: Clock;
  renderer: PageRenderer;
  notifier: Notifier;
  /** Without a mail transport there is no reset by email: the pages and operations say so. */
  sender: EmailSender | undefined;
  /** Keyed hashing: the stored value alone does not let anyone test codes offline. */
  hashKey: Buffer;
  /** The configured issuer: the only origin links in mails are built from. */
  issuer: string;
  /** Where a code that could not be mailed is reported to the operator. */
  onDeliveryFailure: (error: unknown, userId: string) => void;
}

export interface Requester {
  ip?: string;
  userAgent?: string;
  /** An admin sending the code; absent when the user asked from a sign-in page. */
  actorId?: string;
}

export type ResetOutcome =
  | { ok: true; user: UserRow }
  | { ok: false; reason: 'invalid_code' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export function createPasswordResets(deps: PasswordResetDeps) {
  const { queries, clock } = deps;
  const hash = (userId: string, resetId: string, code: string) =>
    crypto.createHmac('sha256', deps.hashKey).update(`password-reset:${userId}:${resetId}:${code}`).digest('base64url');
  const audit = (action: string, outcome: 'success' | 'failure', by: Requester, subjectId: string | undefined, details: Record<string, unknown> = {}) =>
    queries.audit.insert({ action, outcome, subjectId, actorId: by.actorId ?? subjectId ?? null, ip: by.ip, userAgent: by.userAgent, details });

  /** Stores a fresh code's hash, then mails the code in the account's language. */
  async function issue(user: UserRow, locale: Locale, by: Requester) {
    const id = crypto.randomUUID();
    const code = crypto.randomInt(0, 10 ** RESET_CODE_DIGITS).toString().padStart(RESET_CODE_DIGITS, '0');
    const now = clock.now();
    await queries.passwordResets.insert({ id, user_id: user.id, code_hash: hash(user.id, id, code), requested_by: by.actorId ?? null, created_at: now, expires_at: new Date(now.getTime() + RESET_CODE_TTL_SECONDS * 1000) });
    const t = deps.renderer.translator(locale);
    const data = { code, minutes: RESET_CODE_TTL_SECONDS / 60, link: `${deps.issuer}/password-reset/code`, byAdmin: by.actorId !== undefined, issuer: deps.issuerName };
    await deps.sender!.send({
      to: user.email,
      subject: t('reset.email.subject', { issuer: deps.issuerName }),
      text: deps.renderer.render('email/password-reset-text', locale, data),
      html: deps.renderer.render('email/password-reset-html', locale, data),
    });
  }

  return {
    available: deps.sender !== undefined,

    /**
     * Someone on a sign-in page asks for a code. Whatever the address, they are told the same thing ("if an account
     * exists, we sent a code"), and the answer does not wait for the mail server: an account that exists and one
     * that does not take the same time to answer, give or take one insert. Refusals for too many requests are per
     * address typed and per IP, so they reveal nothing either.
     */
    async request(email: string, localeFor: (user: UserRow) => Locale, by: Requester): Promise<{ ok: true } | { ok: false; retryAfterSeconds: number }> {
      if (!deps.sender) throw new AppError(404, 'not_found');
      const address = canonicalEmail(email).slice(0, 320);
      const quota = await deps.throttle.reserve([resetRules.sendToAddress(address), resetRules.sendFromIp(by.ip ?? 'unknown')]);
      if (!quota.allowed) {
        await audit('password_reset.request', 'failure', by, undefined, { reason: 'throttled', email: address });
        return { ok: false, retryAfterSeconds: quota.retryAfterSeconds };
      }
      const user = await queries.users.findByEmail(address);
      if (!user || user.status !== 'active') {
        await audit('password_reset.request', 'failure', by, user?.id, { reason: user ? 'account_disabled' : 'unknown_user', email: address });
        return { ok: true };
      }
      await audit('password_reset.request', 'success', by, user.id, { email: address });
      const deliver = async () => {
        try {
          await issue(user, localeFor(user), by);
        } catch (error) {
          deps.onDeliveryFailure(error, user.id);
          return audit('password_reset.code_sent', 'failure', by, user.id, { reason: 'delivery_failed' });
        }
        return audit('password_reset.code_sent', 'success', by, user.id);
      };
      deliver().catch((error: unknown) => deps.onDeliveryFailure(error, user.id));
      return { ok: true };
    },

    /** An admin sends the user a code (same code, same page, same limits); the admin hears if the mail failed. */
    async sendByAdmin(user: UserRow, by: Requester & { actorId: string }) {
      if (!deps.sender) throw new AppError(409, 'mail_not_configured', 'no mail transport is configured', 'email');
      if (user.status !== 'active') throw new AppError(409, 'user_disabled', 'the account is disabled', 'status');
      const quota = await deps.throttle.reserve([resetRules.sendToAddress(user.email)]);
      if (!quota.allowed) {
        await audit('password_reset.code_sent', 'failure', by, user.id, { reason: 'throttled' });
        throw new AppError(429, 'throttled', `too many codes sent to this address: try again in ${Math.ceil(quota.retryAfterSeconds / 60)} minutes`);
      }
      try {
        await issue(user, user.locale === 'ko' ? 'ko' : 'en', by);
      } catch (error) {
        deps.onDeliveryFailure(error, user.id);
        await audit('password_reset.code_sent', 'failure', by, user.id, { reason: 'delivery_failed' });
        throw new AppError(502, 'delivery_failed', 'the mail could not be sent');
      }
      await audit('password_reset.code_sent', 'success', by, user.id);
      return { expiresAt: new Date(clock.now().getTime() + RESET_CODE_TTL_SECONDS * 1000) };
    },

    /**
     * The code and the new password. Tries are reserved before the code is compared (per address typed, per IP, and
     * on the codes themselves); wrong, expired, spent, another account's or no account at all answer the same; the
     * audit log keeps the real reason. The code is spent only once the new password passes the policy, by one
     * conditional update: of concurrent requests with the right code one wins. The user's sessions and grants end,
     * whoever held the old password may hold them, and the sign-in lockout is lifted.
     */
    async complete(input: { email: string; code: string; password: string }, by: Requester): Promise<ResetOutcome> {
      const address = canonicalEmail(input.email).slice(0, 320);
      const reservation = await deps.throttle.reserve([resetRules.guessAddress(address), resetRules.guessFromIp(by.ip ?? 'unknown')]);
      if (!reservation.allowed) {
        await audit('password_reset.complete', 'failure', by, undefined, { reason: 'throttled', email: address });
        return { ok: false, reason: 'throttled', retryAfterSeconds: reservation.retryAfterSeconds };
      }
      const user = await queries.users.findByEmail(address);
      const now = clock.now();
      const codes = user?.status === 'active' ? await queries.passwordResets.reserveTry(user.id, now, RESET_CODE_TRIES) : [];
      const typed = input.code.replace(/[\s-]/g, '');
      // Every live code is compared, each in constant time.
      const matches = /^\d+$/.test(typed) ? codes.filter((c) => constantTimeEqual(hash(user!.id, c.id, typed), c.code_hash)) : [];
      const match = matches[0];
      if (!user || !match) {
        const reason = !user ? 'unknown_user' : user.status !== 'active' ? 'account_disabled' : codes.length === 0 ? 'no_live_code' : 'wrong_code';
        await audit('password_reset.complete', 'failure', by, user?.id, { reason, email: address });
        return { ok: false, reason: 'invalid_code' };
      }
      await assertPasswordAllowed(deps, input.password, user);
      const passwordHash = await deps.hasher.hash(input.password);
      if (!(await queries.passwordResets.use(user.id, match.id, clock.now()))) {
        await audit('password_reset.complete', 'failure', by, user.id, { reason: 'code_already_used', email: address });
        return { ok: false, reason: 'invalid_code' };
      }
      await queries.users.setPasswordHash(user.id, passwordHash, { mustChange: false });
      await reservation.succeeded();
      await queries.throttle.clear(accountGuessKey(user.email));
      const sessions = await signOutEverywhere({ queries }, user.id);
      // A sign-in someone has taken past the old password (waiting at its second factor) ends too.
      const signIns = await queries.signIns.endAllOf(user.id);
      // A new password starts over everywhere: no remembered browser skips the second factor after it.
      await forgetAllDevices({ queries }, user.id, { ...by, actorId: user.id }, 'password_reset');
      await audit('password_reset.complete', 'success', by, user.id, { sessions, sign_ins: signIns });
      await deps.notifier.notify(user, 'password_changed');
      return { ok: true, user };
    },
  };
}

export type PasswordResets = ReturnType<typeof createPasswordResets>;
