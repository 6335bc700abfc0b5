import type { SettingsStore } from '../config/settings.js';
import type { AuditEvent } from '../db/audit.js';
import type { UserFactors } from '../db/factors.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import type { Notifier } from '../notify/notifier.js';
import type { Clock } from '../security/clock.js';
import type { JoiningWrite, StatementPart } from '../db/throttle.js';
import type { StoredStep } from '../interactions/sign-in-flow.js';
import type { Throttle, ThrottleReservation, ThrottleRule } from '../security/throttle.js';
import type { EnrollingUser, Factor, FactorId, Method, SignInContext } from './factor.js';
import { graceLeft, postponable } from './enrolment-grace.js';
import { decideMfa, type MfaDecision } from './policy.js';
import { forgetAllDevices } from './remembered-device/index.js';
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

/** A sign-in's try and the account's guess, reserved together, with the user's factors as that statement read them. */
export interface SignInTry {
  failures: number;
  guess: ThrottleReservation;
  factors: UserFactors;
}

export const enrollingUser = (user: UserRow): EnrollingUser => ({ id: user.id, email: user.email, locale: user.locale === 'ko' ? 'ko' : 'en' });

export function createMfaService(deps: MfaDeps) {
  const { queries, registry, clock, throttle, notifier, settings } = deps;

  const throttleKeys = (userId: string) => ({ recent: `mfa:user:${userId}`, consecutive: `mfa:consecutive:${userId}` });
  /** The account's limits on second-factor guesses. */
  const attemptRules = async (userId: string): Promise<ThrottleRule[]> => {
    const keys = throttleKeys(userId);
    const limit = (await settings.read('lockout')).value.mfa_account_failures;
    return [
      { key: keys.recent, limit, windowSeconds: 900, baseLockSeconds: 30, onSuccess: 'reset' },
      { key: keys.consecutive, limit: MAX_CONSECUTIVE_FAILURES, windowSeconds: 10 * 365 * 86400, baseLockSeconds: 10 * 365 * 86400, onSuccess: 'reset' },
    ];
  };
  /** One second-factor guess on the account, taken before the code is checked. */
  const reserveAttempt = async (userId: string) => throttle.reserve(await attemptRules(userId));
  const event = (action: string, outcome: 'success' | 'failure' | 'denied', subjectId: string | undefined, actor: Partial<Actor>, details: Record<string, unknown> = {}): AuditEvent =>
    ({ action, outcome, subjectId, actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, clientId: actor.clientId, details });
  const audit = (...args: Parameters<typeof event>) => queries.audit.insert(event(...args));

  async function readEnforcement() {
    const { value, version } = await settings.read('enforce-mfa');
    return { value: value.enabled, version };
  }
  /** An admin may switch factors off: their methods then neither sign anyone in nor count as enrolled. */
  const enabledFactors = async () => new Set<string>((await settings.read('factors')).value.enabled);
  const usableMethods = async (userId: string, preferredId?: string | null, wanted?: (factor: Factor) => boolean, known?: UserFactors) => {
    const [methods, enabled] = await Promise.all([registry.methodsFor(userId, preferredId, wanted, known), enabledFactors()]);
    return methods.filter((m) => enabled.has(m.factor));
  };

  /** The enabled factor that can carry a whole sign-in by itself, if any. */
  const passwordlessFactor = async () => {
    const enabled = await enabledFactors();
    return registry.factors.find((f) => f.ceremony?.passwordless && enabled.has(f.id));
  };

  /** No factor left: its recovery codes, and the browsers remembered in its place, go too. */
  const clearSecrets = async (userId: string, actor: Partial<Actor>, reason: string) => {
    await queries.users.setPreferredFactor(userId, null);
    await queries.factors.removeAll(userId);
    await queries.recoveryCodes.removeAll(userId);
    await forgetAllDevices(deps, userId, actor, reason);
  };
  /** Turning MFA off, or an admin's reset, leaves no second step at all: a door PIN stops answering one too. */
  const clearEverySecondStep = async (userId: string, actor: Partial<Actor>, reason: string) => {
    await clearSecrets(userId, actor, reason);
    await queries.access.disableWebPin(userId);
  };

  /** What is left of the user's enrolment grace under enforcement, if the admin gives one (read only). */
  const enrolmentGrace = async (userId: string) => {
    const limits = (await settings.read('enrolment-grace')).value;
    if (limits.days === 0 && limits.sign_ins === 0) return undefined;
    return graceLeft(limits, await queries.enrolmentGrace.find(userId), clock.now());
  };

  return {
    /** One second-step guess against the account's limits (an emailed confirmation, say), taken before it is checked. */
    reserveAttempt,
    /** When the account may try second-factor codes again, if it is locked now. */
    lockedUntil: (userId: string) => throttle.lockedUntil(Object.values(throttleKeys(userId))),
    readEnforcement,
    async setEnforcement(enabled: boolean, actor: Actor, expectedVersion?: number) {
      const row = await settings.write('enforce-mfa', { enabled }, expectedVersion);
      if (!row) return undefined;
      await queries.audit.insert({ action: 'settings.enforce_mfa', outcome: 'success', actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, details: { enabled } });
      return { enabled, version: row.version };
    },

    /**
     * What this sign-in's second step must be, for this user, client and request. Door PINs (issued by access admins,
     * usable on the web once their owner opted in) are read only for users with nothing enrolled.
     */
    async decide(
      user: UserRow,
      client: { requireMfa: boolean; requirePhishingResistant?: boolean },
      acrValues?: string,
      reach: { adminRights?: boolean } = {},
      known?: UserFactors,
    ): Promise<MfaDecision> {
      const [enforced, pinSetting, adminSetting, enabled, enrolledMethods] = await Promise.all([
        readEnforcement(),
        settings.read('door-pin'),
        settings.read('admin-phishing-resistant'),
        enabledFactors(),
        registry.enrolledMethods(user.id, known),
      ]);
      const enrolled = enrolledMethods.filter((m) => enabled.has(m.factor));
      const hasWebPin = enrolled.length === 0 && (await registry.issuedMethods(user.id, undefined, known)).some((m) => enabled.has(m.factor));
      const decision = decideMfa({
        enforced: enforced.value,
        pinSatisfiesEnforcement: pinSetting.value.answers_enforcement,
        clientRequiresMfa: client.requireMfa,
        clientRequiresPhishingResistant: client.requirePhishingResistant,
        adminPhishingResistant: !!reach.adminRights && user.roles.length > 0 && adminSetting.value.required,
        acrValues,
        enrolledFactors: enrolled.length,
        enrolledPhishingResistant: enrolled.filter((m) => registry.get(m.factor)?.phishingResistant).length,
        hasWebPin,
      });
      return postponable(decision) ? { ...decision, grace: await enrolmentGrace(user.id) } : decision;
    },

    /**
     * The user chose "later": one postponed sign-in is taken from their grace, atomically (false once it has run
     * out, however many sign-ins ask at once). The caller has checked that the decision was postponable.
     */
    async postponeEnrolment(user: UserRow, actor: Actor) {
      const limits = (await settings.read('enrolment-grace')).value;
      const used = (limits.days > 0 || limits.sign_ins > 0) && (await queries.enrolmentGrace.use(user.id, limits, clock.now()));
      await audit('mfa.enrolment_postponed', used ? 'success' : 'denied', user.id, actor, used ? { sign_ins: used.sign_ins, started_at: used.started_at } : { reason: 'grace_over' });
      return !!used;
    },

    /**
     * The user's methods, preferred first; for a sign-in (given its decision), only those that answer it: the
     * enrolled factors, or the door PIN where the decision accepts one.
     */
    methodsFor: async (user: UserRow, signIn?: { pinAccepted: boolean; phishingResistant?: boolean }, known?: UserFactors) =>
      usableMethods(
        user.id,
        user.preferred_factor_id,
        signIn && ((factor) => signIn.pinAccepted === (factor.category === 'knowledge') && (!signIn.phishingResistant || !!factor.phishingResistant)),
        known,
      ),

    /**
     * One of a sign-in's tries (`signInTry`, the sign-in's own limit) and one guess on the account's limits, taken in
     * one statement before a code is checked; the user's factors are read in it too, for `verifyAtSignIn`. Undefined
     * when the sign-in has no try left (then the account's limits are not touched).
     */
    async reserveSignInTry(user: UserRow, signInTry: { interactionUid: string; step: StoredStep; limit: number }): Promise<SignInTry | undefined> {
      const { reservation, row } = await throttle.reserveBeside(await attemptRules(user.id), queries.signIns.tryBeside(signInTry.interactionUid, user.id, signInTry.step, signInTry.limit));
      const tried = queries.signIns.tryOf(row);
      return tried && reservation && { ...tried, guess: reservation };
    },
    enabledFactors,

    /**
     * The second step of a sign-in. Whatever the failure, the user hears only "that code didn't work"; the audit
     * log has the reason. The caller has already reserved this try against the sign-in's own limit; the account's
     * limit is reserved here, before the code is checked.
     */
    async verifyAtSignIn(
      user: UserRow,
      input: { methodId: string; code: string; pinAccepted: boolean; phishingResistant?: boolean; firstFailureAfterPassword: boolean },
      context: SignInContext,
      actor: Actor,
      signIn: { tried?: SignInTry; advance?: JoiningWrite } = {},
    ): Promise<{ ok: true; amr: string[]; methodId: string; moved?: boolean } | { ok: false; locked: boolean; retryAfterSeconds?: number }> {
      const reservation = signIn.tried?.guess ?? (await reserveAttempt(user.id));
      if (!reservation.allowed) {
        await audit('mfa.verify', 'denied', user.id, actor, { reason: 'throttled', method: input.methodId });
        return { ok: false, locked: true, retryAfterSeconds: reservation.retryAfterSeconds };
      }

      let factorId: FactorId | 'recovery' = 'recovery';
      let outcome: { ok: true } | { ok: false; reason: string };
      let use: StatementPart | undefined;
      let amr: string[] = ['pwd', 'mfa'];
      if (input.methodId === RECOVERY_METHOD_ID) {
        // Recovery codes stand in for an enrolled factor, never for a PIN, and are no phishing-resistant factor.
        const usable = !input.pinAccepted && !input.phishingResistant && (await useRecoveryCode(deps.recovery, user.id, input.code));
        outcome = usable ? { ok: true } : { ok: false, reason: 'wrong_code' };
      } else {
        const method = (await this.methodsFor(user, input, signIn.tried?.factors)).find((m) => m.id === input.methodId);
        const factor = method && registry.get(method.factor);
        if (!method || !factor) {
          outcome = { ok: false, reason: 'unknown_method' };
        } else {
          factorId = method.factor;
          const verified = await factor.verify(method, input.code, { ...context, joinUse: true });
          outcome = verified;
          use = verified.ok ? verified.use : undefined;
          amr = ['pwd', ...((verified.ok && verified.amr) || [factor.amr]), ...(factor.category === 'possession' ? ['mfa'] : [])];
        }
      }

      // A success spends the answer (`use`: its time step, atomically), settles the account's guess with its audit
      // entry and moves the sign-in on (`advance`, from the step it was read in), in one statement: where the answer
      // was spent by another request meanwhile, none of that happens and it is refused as a replay.
      const settled = outcome.ok && (await reservation.succeeded(event('mfa.verify', 'success', user.id, actor, { factor: factorId, method: input.methodId }), { guard: use, after: signIn.advance && [signIn.advance] }));
      if (settled && !settled.applied) outcome = { ok: false, reason: 'replayed' };
      if (outcome.ok) {
        if (factorId === 'recovery') {
          const left = await queries.recoveryCodes.countUnused(user.id);
          await audit('mfa.recovery_code_used', 'success', user.id, actor, { remaining: left });
          await notifier.notify(user, 'recovery_code_used', { remaining: String(left) });
        }
        return { ok: true, amr, methodId: input.methodId, moved: settled && signIn.advance ? settled.after[0] === 1 : undefined };
      }

      await audit('mfa.verify', 'failure', user.id, actor, { factor: factorId, method: input.methodId, reason: outcome.reason });
      if (input.firstFailureAfterPassword) await notifier.notify(user, 'mfa_failed_after_password');
      return { ok: false, locked: false };
    },

    /**
     * The whole sign-in from one factor that can carry it (a passkey with user verification). The response names
     * its user; their account's limit is reserved before it is checked, as for a second factor.
     */
    async verifyPasswordless(
      response: string,
      context: SignInContext,
      actor: Omit<Actor, 'actorId'>,
    ): Promise<{ ok: true; user: UserRow; amr: string[] } | { ok: false; retryAfterSeconds?: number }> {
      const factor = await passwordlessFactor();
      const method = factor && (await factor.ceremony!.passwordless!.identify(response));
      const user = method && (await queries.users.findById(method.record.user_id));
      if (!factor || !method || !user || user.status !== 'active') {
        await audit('login.passwordless', 'failure', user?.id ?? method?.record.user_id, { ...actor, actorId: null }, { reason: !method ? 'unknown_credential' : 'account_disabled' });
        return { ok: false };
      }
      const who = { ...actor, actorId: user.id };
      const reservation = await reserveAttempt(user.id);
      if (!reservation.allowed) {
        await audit('login.passwordless', 'denied', user.id, who, { reason: 'throttled', method: method.id });
        return { ok: false, retryAfterSeconds: reservation.retryAfterSeconds };
      }
      const outcome = await factor.verify(method, response, { ...context, passwordless: true });
      if (!outcome.ok) {
        await audit('login.passwordless', 'failure', user.id, who, { factor: factor.id, method: method.id, reason: outcome.reason });
        return { ok: false };
      }
      await reservation.succeeded(event('login.passwordless', 'success', user.id, who, { factor: factor.id, method: method.id }));
      // Possession of the key and the authenticator's own check of its user (PIN or biometric): two factors.
      return { ok: true, user, amr: [...(outcome.amr ?? [factor.amr]), 'mfa'] };
    },

    /** Options for the login page's passwordless ceremony, when a factor that can carry a sign-in is on. */
    passwordlessOptions: async (context: SignInContext) => (await passwordlessFactor())?.ceremony!.passwordless!.options(context),

    /**
     * Options for a challenge/response method chosen at a sign-in's second step: any of the user's methods of its
     * factor, from `methods`, the sign-in's methods as `methodsFor` gave them.
     */
    ceremonyOptions(methods: readonly Method[], methodId: string, context: SignInContext) {
      const factor = registry.get(methods.find((m) => m.id === methodId)?.factor ?? '');
      if (!factor?.ceremony) return undefined;
      return factor.ceremony.options(methods.filter((m) => m.factor === factor.id), context);
    },
    hasCeremony: (factorId: string) => registry.get(factorId)?.ceremony !== undefined,

    /** Sends a fresh code for a method that sends one (SMS, email), for this sign-in. */
    async sendCode(user: UserRow, methodId: string, context: SignInContext, actor: Actor) {
      const method = (await this.methodsFor(user, { pinAccepted: false })).find((m) => m.id === methodId);
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
      return { factor, pending, display: await factor.enrol.display(enrollingUser(user), pending) };
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
      const method = (await registry.enrolledMethods(user.id)).find((m) => m.id === methodId);
      const removed = (await queries.factors.remove(user.id, methodId)) > 0;
      if (!removed) return false;
      // Without any factor left the recovery codes would be a second factor of nothing: they go too.
      if ((await queries.factors.countConfirmed(user.id)) === 0) await clearSecrets(user.id, actor, 'last_factor_removed');
      else if (user.preferred_factor_id === methodId) await queries.users.setPreferredFactor(user.id, null);
      await audit('mfa.remove', 'success', user.id, actor, { method: methodId, factor: method?.factor });
      await notifier.notify(user, 'factor_removed', method ? { factor: method.factor } : {});
      return true;
    },

    /** A nickname for one of the user's own methods ("YubiKey on my keyring"). */
    async renameMethod(user: UserRow, methodId: string, label: string, actor: Actor) {
      if (!(await queries.factors.rename(user.id, methodId, label))) return false;
      await audit('mfa.rename', 'success', user.id, actor, { method: methodId });
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
      await clearEverySecondStep(user.id, actor, 'mfa_disabled');
      await audit('mfa.disable', 'success', user.id, actor);
      await notifier.notify(user, 'mfa_disabled');
    },

    /** A super admin's reset, e.g. for a lost phone: same effect, audited as the admin's act, lockouts lifted. */
    async reset(user: UserRow, actor: Actor) {
      await clearEverySecondStep(user.id, actor, 'mfa_reset');
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
