import crypto from 'node:crypto';
import { z } from 'zod';
import type { SettingsStore } from '../config/settings.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Notifier } from '../notify/notifier.js';
import type { Clock } from '../security/clock.js';
import { constantTimeEqual } from '../security/secret-box.js';
import type { Throttle } from '../security/throttle.js';
import { newTypedCode, normaliseTypedCode } from './recovery-codes.js';
import type { Actor } from './service.js';

/** 12 characters of Crockford's base32 (60 bits), read out as three groups of four. */
const CODE_LENGTH = 12;

export const bypassCodeRequestSchema = z
  .object({ reason: z.string({ message: 'say why the code is issued' }).trim().min(3, { message: 'say why the code is issued (3 characters or more)' }).max(500) })
  .strict();

export interface BypassCodeDeps {
  queries: Queries;
  clock: Clock;
  notifier: Notifier;
  settings: SettingsStore;
  /** Keyed hashing: the table alone does not let anyone test guesses offline. */
  hashKey: Buffer;
  /** One second-step guess against the account's limits, taken before the code is checked (the MFA service's). */
  reserveAttempt: (userId: string) => ReturnType<Throttle['reserve']>;
}

export type BypassUse = { ok: true } | { ok: false; locked: true; retryAfterSeconds: number } | { ok: false; locked: false };

/**
 * A helpdesk's way through for a user who lost their second factor, without switching MFA off: a one-time code for
 * one user, short-lived, that at sign-in opens enrolment of a new factor (see sign-in-flow.ts). Unlike an MFA reset
 * there is never a moment when the account has no second factor. Who may issue one for whom is the admin API's
 * concern (roles); this module keeps the code itself.
 */
export function createBypassCodes(deps: BypassCodeDeps) {
  const { queries, clock } = deps;
  // Bound to its user: a code given to one person is worth nothing typed into someone else's sign-in.
  const hash = (userId: string, code: string) => crypto.createHmac('sha256', deps.hashKey).update(`bypass:${userId}:${normaliseTypedCode(code)}`).digest('base64url');
  const audit = (action: string, outcome: 'success' | 'failure' | 'denied', subjectId: string, actor: Partial<Actor>, details: Record<string, unknown> = {}) =>
    queries.audit.insert({ action, outcome, subjectId, actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, clientId: actor.clientId, details });

  /** Spends the user's live code if `given` is it; of concurrent uses exactly one succeeds. */
  async function issuerMayStillLetThrough(userId: string, issuerId: string | null) {
    const [holder, issuer] = await Promise.all([queries.users.findById(userId), issuerId ? queries.users.findById(issuerId) : undefined]);
    if (!holder || holder.roles.length === 0) return true;
    return !!issuer && issuer.status === 'active' && issuer.roles.includes('super_admin');
  }

  async function consume(userId: string, given: string): Promise<{ ok: true } | { ok: false; reason: 'malformed' | 'no_live_code' | 'wrong_code' | 'already_used' | 'issuer_may_not' }> {
    if (!new RegExp(`^[0-9A-Z]{${CODE_LENGTH}}$`).test(normaliseTypedCode(given))) return { ok: false, reason: 'malformed' };
    const now = clock.now();
    const live = await queries.bypassCodes.findLive(userId, now);
    if (!live) return { ok: false, reason: 'no_live_code' };
    if (!constantTimeEqual(hash(userId, given), live.code_hash)) return { ok: false, reason: 'wrong_code' };
    // Checked again at use, not only at issue: a user given a role since then is no longer a helpdesk's to let through.
    if (!(await issuerMayStillLetThrough(userId, live.issued_by))) return { ok: false, reason: 'issuer_may_not' };
    return (await queries.bypassCodes.consume(userId, live.code_hash, now)) ? { ok: true } : { ok: false, reason: 'already_used' };
  }

  return {
    /**
     * Issues a code for `target`, replacing any earlier one, and returns it: the only time it exists in clear. The
     * issuer and the reason go to the audit log; the user is told by email.
     */
    async issue(target: UserRow, reason: string, by: Actor & { actorId: string }) {
      if (by.actorId === target.id) throw new AppError(409, 'own_account', 'a bypass code is issued by someone else', 'id');
      if (target.status !== 'active') throw new AppError(409, 'user_disabled', 'the account is disabled', 'id');
      // Without a factor there is nothing to get past: such a user sets one up at their next sign-in anyway.
      if ((await queries.factors.countConfirmed(target.id)) === 0) throw new AppError(409, 'no_second_factor', 'the user has no second factor to get past', 'id');
      const { ttl_minutes: minutes } = (await deps.settings.read('bypass-code')).value;
      const code = newTypedCode(CODE_LENGTH, 4);
      const expiresAt = new Date(clock.now().getTime() + minutes * 60_000);
      await queries.bypassCodes.replace({ user_id: target.id, code_hash: hash(target.id, code), issued_by: by.actorId, reason, expires_at: expiresAt });
      await audit('mfa.bypass_code_issued', 'success', target.id, by, { reason, expires_at: expiresAt.toISOString() });
      await deps.notifier.notify(target, 'bypass_code_issued', { minutes: String(minutes) });
      return { code, expiresAt };
    },

    /**
     * The code typed at a sign-in's second step. The caller has reserved this try against the sign-in's own limit;
     * the account's limit (the same as for any second-factor code) is reserved here, before the code is checked.
     * Whatever went wrong, the caller hears only "not ok"; the audit log has the reason.
     */
    async useAtSignIn(user: UserRow, given: string, actor: Actor): Promise<BypassUse> {
      const reservation = await deps.reserveAttempt(user.id);
      if (!reservation.allowed) {
        await audit('mfa.bypass_code_used', 'denied', user.id, actor, { reason: 'throttled' });
        return { ok: false, locked: true, retryAfterSeconds: reservation.retryAfterSeconds };
      }
      const outcome = await consume(user.id, given);
      if (!outcome.ok) {
        await audit('mfa.bypass_code_used', 'failure', user.id, actor, { reason: outcome.reason });
        return { ok: false, locked: false };
      }
      await reservation.succeeded();
      await audit('mfa.bypass_code_used', 'success', user.id, actor);
      return { ok: true };
    },

    consume,
  };
}

export type BypassCodes = ReturnType<typeof createBypassCodes>;
