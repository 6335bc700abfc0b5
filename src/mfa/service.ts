import type { SettingsStore } from '../config/settings.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import type { Notifier } from '../notify/notifier.js';
import type { Clock } from '../security/clock.js';
import type { Throttle } from '../security/throttle.js';
import type { EnrollingUser, FactorId, Method, SignInContext } from './factor.js';
import { decideMfa, type MfaDecision } from './policy.js';
import { issueRecoveryCodes, type RecoveryCodeDeps, useRecoveryCode } from './recovery-codes.js';
import type { FactorRegistry } from './registry.js';

export interface MfaDeps {
  queries: Queries;
  registry: FactorRegistry;
  clock: Clock;
  throttle: Throttle;
  notifier: Notifier;
  recovery: RecoveryCodeDeps;
  settings: SettingsStore;
}

export interface Actor {
  /** The user acting; null when the server's operator acts through the CLI. */
  actorId: string | null;
  ip?: string;
  userAgent?: string;
  clientId?: string;
}

/** Wrong codes allowed within one sign-in before it is ended. */
export const MAX_FAILURES_PER_SIGN_IN = 5;
// NIST SP 800-63B 5.2.2: no more than 100 consecutive failed attempts on one account.
const MAX_CONSECUTIVE_FAILURES = 100;
export const RECOVERY_METHOD_ID = 'recovery';

export const enrollingUser = (user: UserRow): EnrollingUser => ({ id: user.id, email: user.email, locale: user.locale === 'ko' ? 'ko' : 'en' });

export function createMfaService(deps: MfaDeps) {
  const { queries, registry, clock, throttle, notifier, settings } = deps;

  const throttleKeys = (userId: string) => ({ recent: `mfa:user:${userId}`, consecutive: `mfa:consecutive:${userId}` });
  const audit = (action: string, outcome: 'success' | 'failure' | 'denied', subjectId: string, actor: Partial<Actor>, details: Record<string, unknown> = {}) =>
    queries.audit.insert({ action, outcome, subjectId, actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, clientId: actor.clientId, details });

  async function readEnforcement() {
    const { value, version } = await settings.read('enforce-mfa');
    return { value: value.enabled, version };
  }
  /** An admin may switch factors off: their methods then neither sign anyone in nor count as enrolled. */
  const enabledFactors = async () => new Set<string>((await settings.read('factors')).value.enabled);
  const usableMethods = async (userId: string, preferredId?: string | null) => {
    const [methods, enabled] = await Promise.all([registry.methodsFor(userId, preferredId), enabledFactors()]);
    return methods.filter((m) => enabled.has(m.factor));
  };

  const clearSecrets = async (userId: string) => {
    await queries.users.setPreferredFactor(userId, null);
    await queries.factors.removeAll(userId);
    await queries.recoveryCodes.removeAll(userId);
  };

  return {
    readEnforcement,
    async setEnforcement(enabled: boolean, actor: Actor, expectedVersion?: number) {
      const row = await settings.write('enforce-mfa', { enabled }, expectedVersion);
      if (!row) return undefined;
      await queries.audit.insert({ action: 'settings.enforce_mfa', outcome: 'success', actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, details: { enabled } });
      return { enabled, version: row.version };
    },

    /**
     * Door PINs are issued by access admins, not enrolled by the user: one counts as the user's own factor only once
     * they chose it as preferred, but it always spares them an enrolment when MFA is required.
     */
    async decide(user: UserRow, client: { requireMfa: boolean }, acrValues?: string): Promise<MfaDecision> {
      const [enforced, enabled, enrolledMethods] = await Promise.all([readEnforcement(), enabledFactors(), registry.enrolledMethods(user.id)]);
      const enrolled = enrolledMethods.filter((m) => enabled.has(m.factor)).length;
      // Issued methods matter only for a user with nothing enrolled: most sign-ins never need to read them.
      const issued = async () => (await registry.issuedMethods(user.id)).filter((m) => enabled.has(m.factor));
      const choseIssuedMethod = enrolled === 0 && user.preferred_factor_id !== null && (await issued()).some((m) => m.id === user.preferred_factor_id);
      const decision = decideMfa({ enforced: enforced.value, clientRequiresMfa: client.requireMfa, acrValues, enrolledFactors: enrolled + (choseIssuedMethod ? 1 : 0) });
      if (decision.mustEnrol && (await issued()).length > 0) return { ...decision, mustEnrol: false };
      return decision;
    },

    methodsFor: (user: UserRow) => usableMethods(user.id, user.preferred_factor_id),
    enabledFactors,

    /**
     * The second step of a sign-in. Whatever the failure, the user hears only "that code didn't work"; the audit
     * log has the reason. The first failure after a correct password tells the user someone may know it.
     */
    async verifyAtSignIn(
      user: UserRow,
      input: { methodId: string; code: string; failuresSoFar: number; afterPassword: boolean },
      context: SignInContext,
      actor: Actor,
    ): Promise<{ ok: true; amr: string[]; methodId: string } | { ok: false; locked: boolean; retryAfterSeconds?: number }> {
      const keys = throttleKeys(user.id);
      const verdict = await throttle.check([keys.recent, keys.consecutive]);
      if (!verdict.allowed) {
        await audit('mfa.verify', 'denied', user.id, actor, { reason: 'throttled', method: input.methodId });
        return { ok: false, locked: true, retryAfterSeconds: verdict.retryAfterSeconds };
      }

      let factorId: FactorId | 'recovery' = 'recovery';
      let outcome: { ok: true } | { ok: false; reason: string };
      if (input.methodId === RECOVERY_METHOD_ID) {
        outcome = (await useRecoveryCode(deps.recovery, user.id, input.code)) ? { ok: true } : { ok: false, reason: 'wrong_code' };
      } else {
        const method = (await usableMethods(user.id)).find((m) => m.id === input.methodId);
        const factor = method && registry.get(method.factor);
        if (!method || !factor) {
          outcome = { ok: false, reason: 'unknown_method' };
        } else {
          factorId = method.factor;
          outcome = await factor.verify(method, input.code, context);
        }
      }

      if (outcome.ok) {
        if (verdict.hadFailures) await Promise.all([throttle.clear(keys.recent), throttle.clear(keys.consecutive)]);
        await audit('mfa.verify', 'success', user.id, actor, { factor: factorId, method: input.methodId });
        if (factorId === 'recovery') {
          const left = await queries.recoveryCodes.countUnused(user.id);
          await audit('mfa.recovery_code_used', 'success', user.id, actor, { remaining: left });
          await notifier.notify(user, 'recovery_code_used', { remaining: String(left) });
          return { ok: true, amr: ['pwd', 'mfa'], methodId: input.methodId };
        }
        return { ok: true, amr: ['pwd', registry.get(factorId)!.amr, 'mfa'], methodId: input.methodId };
      }

      await audit('mfa.verify', 'failure', user.id, actor, { factor: factorId, method: input.methodId, reason: outcome.reason });
      await throttle.recordFailure({ key: keys.recent, limit: (await settings.read('lockout')).value.mfa_account_failures, windowSeconds: 900, baseLockSeconds: 30 });
      await throttle.recordFailure({ key: keys.consecutive, limit: MAX_CONSECUTIVE_FAILURES, windowSeconds: 10 * 365 * 86400, baseLockSeconds: 10 * 365 * 86400 });
      if (input.afterPassword && input.failuresSoFar === 0) await notifier.notify(user, 'mfa_failed_after_password');
      return { ok: false, locked: false };
    },

    /** Sends a fresh code for a method that sends one (SMS, email), for this sign-in. */
    async sendCode(user: UserRow, methodId: string, context: SignInContext, actor: Actor) {
      const method = (await usableMethods(user.id)).find((m) => m.id === methodId);
      const factor = method && registry.get(method.factor);
      if (!method || !factor?.challenge) return undefined;
      const outcome = await factor.challenge(method, context);
      await audit('mfa.challenge', outcome.sent ? 'success' : 'failure', user.id, actor, {
        factor: method.factor,
        method: methodId,
        ...(outcome.sent ? {} : { reason: outcome.reason, detail: outcome.detail }),
      });
      return outcome;
    },

    sendsCode: (factorId: string) => registry.get(factorId)?.challenge !== undefined,
    /** Factors the user may set up now: built, able to enrol, and not switched off by an admin. */
    enrollableFactors: async () => {
      const enabled = await enabledFactors();
      return registry.factors.filter((f) => f.enrol && enabled.has(f.id)).map((f) => f.id);
    },

    startEnrolment: async (user: UserRow, factorId: FactorId, input: Record<string, unknown> = {}) => {
      const factor = registry.get(factorId);
      if (!factor?.enrol || !(await enabledFactors()).has(factorId)) return undefined;
      return factor.enrol.start(enrollingUser(user), input);
    },

    async pendingEnrolment(user: UserRow, pendingId: string) {
      const pending = await queries.factors.findPending(user.id, pendingId, clock.now());
      const factor = pending && registry.get(pending.factor);
      if (!pending || !factor?.enrol) return undefined;
      return { factor, pending, display: factor.enrol.display(enrollingUser(user), pending) };
    },

    /** Confirms an enrolment; the first factor also gets the user their recovery codes (shown once) and is preferred. */
    async confirmEnrolment(user: UserRow, pendingId: string, code: string, actor: Actor) {
      const pending = await queries.factors.findPending(user.id, pendingId, clock.now());
      const factor = pending && registry.get(pending.factor);
      if (!pending || !factor?.enrol) return { ok: false as const, reason: 'not_found' };
      const hadFactors = (await queries.factors.countConfirmed(user.id)) > 0;
      const result = await factor.enrol.confirm(enrollingUser(user), pendingId, code);
      if (!result.ok) {
        await audit('mfa.enrol', 'failure', user.id, actor, { factor: factor.id, reason: result.reason });
        return result;
      }
      const recoveryCodes = hadFactors ? undefined : await issueRecoveryCodes(deps.recovery, user.id);
      if (!user.preferred_factor_id || !hadFactors) await queries.users.setPreferredFactor(user.id, result.method.id);
      await audit('mfa.enrol', 'success', user.id, actor, { factor: factor.id, method: result.method.id });
      await notifier.notify(user, 'factor_added', { factor: factor.id });
      return { ok: true as const, method: result.method, amr: ['pwd', factor.amr, 'mfa'], recoveryCodes };
    },

    async removeFactor(user: UserRow, methodId: string, actor: Actor) {
      const removed = (await queries.factors.remove(user.id, methodId)) > 0;
      if (!removed) return false;
      // Without any factor left the recovery codes would be a second factor of nothing: they go too.
      if ((await queries.factors.countConfirmed(user.id)) === 0) await clearSecrets(user.id);
      else if (user.preferred_factor_id === methodId) await queries.users.setPreferredFactor(user.id, null);
      await audit('mfa.remove', 'success', user.id, actor, { method: methodId });
      await notifier.notify(user, 'factor_removed');
      return true;
    },

    async setPreferred(user: UserRow, methodId: string, actor: Actor) {
      const method = (await usableMethods(user.id)).find((m) => m.id === methodId);
      if (!method) return false;
      await queries.users.setPreferredFactor(user.id, method.id);
      await audit('mfa.preferred', 'success', user.id, actor, { method: methodId });
      return true;
    },

    async regenerateRecoveryCodes(user: UserRow, actor: Actor) {
      if ((await queries.factors.countConfirmed(user.id)) === 0) return undefined;
      const codes = await issueRecoveryCodes(deps.recovery, user.id);
      await audit('mfa.recovery_codes', 'success', user.id, actor);
      await notifier.notify(user, 'recovery_codes_regenerated');
      return codes;
    },

    /** The user turns MFA off: every factor and recovery code goes. */
    async disable(user: UserRow, actor: Actor) {
      await clearSecrets(user.id);
      await audit('mfa.disable', 'success', user.id, actor);
      await notifier.notify(user, 'mfa_disabled');
    },

    /** A super admin's reset, e.g. for a lost phone: same effect, audited as the admin's act, lockouts lifted. */
    async reset(user: UserRow, actor: Actor) {
      await clearSecrets(user.id);
      const keys = throttleKeys(user.id);
      await Promise.all([throttle.clear(keys.recent), throttle.clear(keys.consecutive)]);
      await audit('mfa.reset', 'success', user.id, actor);
      await notifier.notify(user, 'mfa_reset_by_admin');
    },

    remainingRecoveryCodes: (userId: string) => queries.recoveryCodes.countUnused(userId),
  };
}

export type MfaService = ReturnType<typeof createMfaService>;
export type { Method };
