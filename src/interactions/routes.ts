import Router from '@koa/router';
import type { Context } from 'koa';
import type { InteractionResults } from 'oidc-provider';
import QRCode from 'qrcode';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import type { SignInRow } from '../db/sign-ins.js';
import type { UserFactors } from '../db/factors.js';
import type { JoiningWrite } from '../db/throttle.js';
import { passwordFormError } from '../account/password-errors.js';
import { CONSOLE_CLIENT_ID } from '../oidc/console-client.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import { pickLocale, type Locale } from '../i18n.js';
import type { BypassCodes } from '../mfa/bypass-codes.js';
import { acrFor, type MfaDecision, satisfies } from '../mfa/policy.js';
import { type Method, type MfaService, RECOVERY_METHOD_ID, type SignInTry } from '../mfa/service.js';
import { rememberConsent } from '../oidc/consents.js';
import { rememberReadInRequest, requestRowsScope } from '../oidc/adapter.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import { TOKEN_TTL } from '../oidc/provider.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import type { Throttle } from '../security/throttle.js';
import type { EmailConfirmation } from './email-confirmation.js';
import { checkPassword, loginFormSchema, type PasswordLoginDeps } from './password-login.js';
import type { RememberedDevices } from '../mfa/remembered-device/index.js';
import { createRememberedDeviceRoutes, rememberKeyField, type SecondStepFlow } from './remembered-device.js';
import { accepts, afterPassword, MAX_FAILURES_PER_SIGN_IN, type SecondStep, type SignInAction, type SignInStep, type StoredStep } from './sign-in-flow.js';

/** The second-factor page's entry for a helpdesk's one-time code. */
const BYPASS_METHOD_ID = 'helpdesk';

/** The new password a user with a temporary one chooses on the login form, typed twice. */
const temporaryPasswordFormSchema = z.object({ new_password: z.string().min(1).max(1024), new_password_again: z.string().max(1024) });

export interface InteractionDeps {
  providers: ProviderHolder;
  renderer: PageRenderer;
  passwordLogin: PasswordLoginDeps;
  mfa: MfaService;
  /** A helpdesk's one-time codes: at the second step, they open enrolment of a new factor. */
  bypassCodes: BypassCodes;
  queries: Queries;
  clock: Clock;
  throttle: Throttle;
  defaultLocale: Locale;
  /** Present where mail is configured: a first factor bound at sign-in is then confirmed through the inbox. */
  emailConfirmation?: EmailConfirmation;
  /** Browsers remembered after a second factor, answering for it in later sign-ins. */
  rememberedDevices: RememberedDevices;
  /** Told of every completed sign-in (metrics). */
  onSignedIn?: (amr: readonly string[]) => void;
  /** Where a mail that could not be sent is reported to the operator. */
  onDeliveryFailure?: (error: unknown, userId: string) => void;
  /** Told when a password was verified in this browser: the console counts it as a recent re-entry. */
  onPasswordVerified?: (ctx: Context, userId: string) => void;
  /** Replaces a temporary password with one the user chose (the policy applies), before the sign-in goes on. */
  replaceTemporaryPassword: (user: UserRow, next: string, by: { actorId: string; ip?: string; userAgent?: string }) => Promise<void>;
}

/** A wait in whole minutes (at least one), for messages that say when to try again. */
const minutesOf = (seconds: number) => Math.max(1, Math.ceil(seconds / 60));
// A lock longer than this is not waited out: the user asks an administrator.
const LONG_LOCK_MS = 24 * 3600 * 1000;

const codeFormSchema = z.object({
  method: z.string().min(1).max(64),
  // A typed code, or a challenge/response factor's whole response (WebAuthn JSON): each factor parses its own.
  code: z.string().max(16_384).default(''),
  remember_key: rememberKeyField,
});
const passwordlessFormSchema = z.object({ code: z.string().min(1).max(16_384) });
const enrolFormSchema = z.object({ code: z.string().max(64).default('') });

/** A sign-in as stored: its step, and from the first verified password on, its one user. */
type SignIn = { step: 'started' } | { step: StoredStep; row: SignInRow; user: UserRow };
type BoundSignIn = Extract<SignIn, { row: SignInRow }>;

const OIDC_SCOPES = new Set(['openid', 'email', 'profile', 'offline_access']);
const requestedOidcScopes = (scope: unknown) => (typeof scope === 'string' ? scope.split(' ').filter((s) => OIDC_SCOPES.has(s)) : []);

/**
 * The sign-in pages oidc-provider sends users to. Which request is allowed in which step is decided by the state
 * machine in sign-in-flow.ts; every POST re-reads the interaction and its stored step, and every write is
 * conditional on the step it was read in, so a stale, replayed or racing form changes nothing.
 */
export function createInteractionRouter(deps: InteractionDeps) {
  const { mfa, queries, clock } = deps;
  const router = new Router({ prefix: '/interaction/:uid' });
  const provider = () => deps.providers.provider;
  const remembered = createRememberedDeviceRoutes(deps.rememberedDevices);

  const details = async (ctx: Context, expectedPrompt?: string) => {
    // The interaction, its sign-in and user in one read: oidc-provider then finds the interaction already read, and
    // the request's first look at its sign-in (load) is this one.
    const read = await queries.signIns.findWithInteraction(ctx.params.uid!, clock.now());
    rememberReadInRequest('Interaction', ctx.params.uid!, read.interaction);
    ctx.state.signInRead = { uid: ctx.params.uid, found: read.signIn };
    const interaction = await provider().interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== ctx.params.uid) throw new AppError(400, 'interaction_mismatch');
    if (expectedPrompt && interaction.prompt.name !== expectedPrompt) throw new AppError(400, 'interaction_step');
    const locale = pickLocale({
      uiLocales: interaction.params.ui_locales,
      acceptsLanguages: (...langs) => ctx.acceptsLanguages(...langs),
      fallback: deps.defaultLocale,
    });
    ctx.state.locale = locale;
    const client = await provider().Client.find(String(interaction.params.client_id));
    ctx.state.neverRememberDevices = client?.metadata().never_remember_devices === true;
    // Kept for the enrolment pages, which offer "later" only where this client and request leave it open.
    return (ctx.state.signInDetails = {
      interaction,
      locale,
      clientName: client?.clientName ?? String(interaction.params.client_id),
      clientRequiresMfa: client?.metadata().require_mfa === true,
      clientRequiresPhishingResistant: client?.metadata().require_phishing_resistant === true,
      acrValues: typeof interaction.params.acr_values === 'string' ? interaction.params.acr_values : undefined,
    });
  };

  const page = (ctx: Context, template: string, locale: Locale, data: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = deps.renderer.render(template, locale, { ...data, csrf: ctx.state.csrf, uid: ctx.params.uid });
  };

  type Interaction = Awaited<ReturnType<typeof details>>['interaction'];
  /** oidc-provider's interactionResult, on the interaction this request already read (it would read it again). */
  const settle = async (interaction: Interaction, result: InteractionResults, merge: boolean) => {
    interaction.result = merge ? { ...interaction.lastSubmission, ...result } : result;
    await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));
  };
  const finish = async (ctx: Context, interaction: Interaction, result: InteractionResults, merge: boolean) => {
    await settle(interaction, result, merge);
    ctx.status = 303;
    ctx.redirect(interaction.returnTo);
  };

  const finishLogin = async (ctx: Context, interaction: Interaction, accountId: string, amr: string[]) => {
    await finish(ctx, interaction, { login: { accountId, amr, acr: acrFor(amr), remember: true } }, false);
    deps.onSignedIn?.(amr);
  };

  const deny = (ctx: Context, interaction: Interaction, description: string) =>
    finish(ctx, interaction, { error: 'access_denied', error_description: description }, false);

  const actorOf = (ctx: Context, userId: string, clientId?: unknown) => ({
    actorId: userId,
    ip: ctx.ip,
    userAgent: ctx.get('user-agent'),
    clientId: typeof clientId === 'string' ? clientId : undefined,
  });

  /** The sign-in as stored; with `ctx`, as this request's details() read it, where that is its first look at it. */
  const load = async (uid: string, ctx?: Context): Promise<SignIn> => {
    const preread = ctx?.state.signInRead as { uid: string; found: Awaited<ReturnType<typeof queries.signIns.findWithUser>> } | undefined;
    if (ctx) delete ctx.state.signInRead;
    const found = preread?.uid === uid ? preread.found : await queries.signIns.findWithUser(uid, clock.now());
    if (!found) return { step: 'started' };
    const { row, user } = found;
    // A user disabled mid-sign-in gets no further: their sign-in is treated as over.
    return user?.status === 'active' ? { step: row.step, row, user } : { step: 'finished', row, user: user! };
  };

  /** Loads the sign-in and refuses the request unless its step accepts `action`. */
  const signInFor = async (ctx: Context, action: Exclude<SignInAction, 'password'>): Promise<BoundSignIn> => {
    const signIn = await load(ctx.params.uid!, ctx);
    if (!accepts(signIn.step, action) || !('row' in signIn)) throw new AppError(400, 'interaction_step');
    return signIn;
  };

  const expiresAt = () => new Date(clock.now().getTime() + TOKEN_TTL.Interaction * 1000);
  const secondStep = (decision: { required: boolean; mustEnrol: boolean }): SecondStep =>
    !decision.required ? 'none' : decision.mustEnrol ? 'enrolment' : 'second_factor';
  /**
   * A demand for phishing resistance from a user with no passkey: enrolment at sign-in (an authenticator app) would
   * not answer it, so the sign-in ends and the app hears why. The user adds a passkey on their account page.
   */
  const unanswerable = (decision: MfaDecision) => decision.phishingResistant && decision.mustEnrol;
  const PASSKEY_REQUIRED = 'a phishing-resistant authenticator (passkey) is required';
  /**
   * A helpdesk's code answers a second step a recovery code could answer (not a PIN's, not a passkey demand), and only
   * after a password verified in this very sign-in: a session stepping up brings no password.
   */
  const bypassAnswers = (row: SignInRow) => !row.pin_accepted && !row.phishing_resistant && row.password_verified_at !== null;
  const decide = (user: UserRow, d: Awaited<ReturnType<typeof details>>, known?: UserFactors) =>
    mfa.decide(user, { requireMfa: d.clientRequiresMfa, requirePhishingResistant: d.clientRequiresPhishingResistant }, d.acrValues, {}, known);
  /**
   * The language of codes and notices sent for a sign-in: the app's ui_locales, else the account's, and only then the
   * browser's (the page's own language follows the browser; a message may be read on another device).
   */
  const messageLocale = (ctx: Context, interaction: Interaction, user: UserRow): Locale =>
    pickLocale({ uiLocales: interaction.params.ui_locales, accountLocale: user.locale, acceptsLanguages: (...langs) => ctx.acceptsLanguages(...langs), fallback: deps.defaultLocale });
  const signInFilter = (row: SignInRow) => ({ pinAccepted: row.pin_accepted, phishingResistant: row.phishing_resistant });

  /** The login page; where a factor can carry a whole sign-in, its ceremony (button and autofill) too. */
  const renderLogin = async (ctx: Context, locale: Locale, data: { clientName: string; email: unknown; error?: string; notice?: string; minutes?: number; mustChange?: boolean }, status = 200) =>
    // A forgotten password is reset through the inbox: offered where mail is configured (src/account/password-reset.ts).
    page(ctx, 'login', locale, { ...data, forgotPassword: !!deps.emailConfirmation, passkey: await mfa.passwordlessOptions({ interactionUid: ctx.params.uid!, locale }) }, status);

  /**
   * Sends the inbox confirmation that opens enrolment at sign-in, and keeps its hash on the sign-in. Every send, the
   * first included, spends the user's hourly quota: new sign-ins must not be a way around it (or a way to flood an
   * inbox). The hash is stored only once the mail is out.
   */
  const sendEnrolmentConfirmation = async (signIn: BoundSignIn, locale: Locale): Promise<{ sent: true } | { sent: false; error: string; status: number; retryAfterSeconds?: number }> => {
    const quota = await deps.throttle.reserve([{ key: `enrol-email:${signIn.user.id}`, limit: 5, windowSeconds: 3600, baseLockSeconds: 3600, onSuccess: 'release' }]);
    if (!quota.allowed) return { sent: false, error: 'mfa.send.rate_limited', status: 429, retryAfterSeconds: quota.retryAfterSeconds };
    let sent;
    try {
      sent = await deps.emailConfirmation!.send(signIn.row.interaction_uid, { email: signIn.user.email, locale });
    } catch (err) {
      await quota.succeeded();
      deps.onDeliveryFailure?.(err, signIn.user.id);
      return { sent: false, error: 'mfa.send.delivery_failed', status: 502 };
    }
    await queries.signIns.addEmailCode(signIn.row.interaction_uid, signIn.user.id, sent.email_code_hash, sent.email_code_expires_at);
    await queries.audit.insert({ action: 'mfa.enrolment_confirmation_sent', outcome: 'success', subjectId: signIn.user.id });
    return { sent: true };
  };
  /** Renders the inbox step, after a send that may have been refused. */
  const afterSend = (ctx: Context, locale: Locale, signIn: BoundSignIn, outcome: Awaited<ReturnType<typeof sendEnrolmentConfirmation>>) => {
    if (outcome.sent) return renderEmailConfirmation(ctx, locale, signIn);
    if (outcome.retryAfterSeconds) ctx.set('retry-after', String(outcome.retryAfterSeconds));
    return renderEmailConfirmation(ctx, locale, signIn, outcome.error, outcome.status);
  };

  /**
   * Takes one of the sign-in's tries before a code is checked. When none is left the sign-in is over: the app gets
   * access_denied and the user starts again.
   */
  const reserveTry = async (ctx: Context, interaction: Interaction, signIn: BoundSignIn) => {
    const failures = await queries.signIns.reserveFailure(signIn.row.interaction_uid, signIn.user.id, signIn.row.step, MAX_FAILURES_PER_SIGN_IN);
    if (failures !== undefined) return failures;
    await endSignIn(ctx, interaction, signIn);
    return undefined;
  };
  /** `reserveTry` for a code's check: the account's guess is taken in the same statement (see MfaService). */
  const reserveTryAndGuess = async (ctx: Context, interaction: Interaction, signIn: BoundSignIn) => {
    const tried = await mfa.reserveSignInTry(signIn.user, { interactionUid: signIn.row.interaction_uid, step: signIn.row.step, limit: MAX_FAILURES_PER_SIGN_IN });
    if (tried) return tried;
    await endSignIn(ctx, interaction, signIn);
    return undefined;
  };
  /** After a wrong code: the sign-in ends if that was its last try. */
  const endIfLastTry = async (ctx: Context, interaction: Interaction, signIn: BoundSignIn, failures: number) => {
    if (failures < MAX_FAILURES_PER_SIGN_IN) return false;
    await endSignIn(ctx, interaction, signIn);
    return true;
  };
  /**
   * Ends a sign-in that used up its tries; a request that finds it already moved on (a concurrent one) is refused.
   * The app's answer (access_denied) is settled now, but the user first reads on our page what happened and when
   * they may try again; its link takes them back to the app with that answer.
   */
  async function endSignIn(ctx: Context, interaction: Interaction, signIn: BoundSignIn) {
    if (!(await queries.signIns.advance(signIn.row.interaction_uid, signIn.user.id, signIn.row.step, 'finished'))) throw new AppError(400, 'interaction_step');
    await settle(interaction, { error: 'access_denied', error_description: 'too many wrong codes' }, false);
    await renderStopped(ctx, interaction, signIn.user, 'ended', await mfa.lockedUntil(signIn.user.id), interaction.returnTo);
  }
  /**
   * Too many wrong codes: this sign-in's (`ended`) or the account's for a while (`locked`). Says when to try again
   * and offers the way back to the app: the settled answer's link, or leaving (abort) while the sign-in is open.
   */
  async function renderStopped(ctx: Context, interaction: Interaction, user: UserRow, reason: 'ended' | 'locked', until: Date | undefined, backHref?: string) {
    const locale = ctx.state.locale as Locale;
    const client = await provider().Client.find(String(interaction.params.client_id));
    const wait = until ? until.getTime() - clock.now().getTime() : 0;
    if (until) ctx.set('retry-after', String(Math.ceil(wait / 1000)));
    page(ctx, 'sign-in-stopped', locale, {
      reason,
      until: until && wait < LONG_LOCK_MS ? until : undefined,
      minutes: minutesOf(wait / 1000),
      permanent: wait >= LONG_LOCK_MS,
      timeZone: user.time_zone ?? 'UTC',
      clientName: client?.clientName ?? String(interaction.params.client_id),
      backHref,
    }, 429);
  }

  const renderSecondFactor = async (
    ctx: Context,
    locale: Locale,
    clientName: string,
    signIn: BoundSignIn,
    error?: string,
    status = 200,
    sent?: { notice?: string; retryAfterSeconds?: number },
  ) => {
    const filter = signInFilter(signIn.row);
    // Any one of the user's passkeys answers one ceremony: they are offered once, as one way to sign in (the
    // ceremony itself is then offered for all of them).
    const answering = await mfa.methodsFor(signIn.user, filter);
    const methods: Method[] = answering.filter(
      (m, i, all) => !mfa.hasCeremony(m.factor) || all.findIndex((other) => other.factor === m.factor) === i,
    );
    const recoveryOffered = !signIn.row.pin_accepted && !signIn.row.phishing_resistant;
    const bypassOffered = bypassAnswers(signIn.row);
    const requested = typeof ctx.query.method === 'string' ? ctx.query.method : undefined;
    const chosenId =
      (requested === RECOVERY_METHOD_ID && recoveryOffered) || (requested === BYPASS_METHOD_ID && bypassOffered) || methods.some((m) => m.id === requested) ? requested : methods[0]?.id;
    const chosen = methods.find((m) => m.id === chosenId);
    const ceremony = chosen && (await mfa.ceremonyOptions(answering, chosen.id, { interactionUid: signIn.row.interaction_uid, locale }));
    // "We sent a code" only once one was: before "Send me a code" is pressed the page says one will be.
    const codeSent = !!sent?.notice || (!!chosen && mfa.sendsCode(chosen.factor) && !!(await queries.sentCodes.lastSentAt(chosen.id, signIn.row.interaction_uid)));
    return page(ctx, 'mfa', locale, {
      clientName,
      methods: methods.map((m) => ({ id: m.id, factor: m.factor, label: mfa.hasCeremony(m.factor) ? undefined : m.label, hint: m.hint })),
      recoveryOffered,
      bypassOffered,
      chosen:
        chosenId === RECOVERY_METHOD_ID || chosenId === BYPASS_METHOD_ID
          ? { id: chosenId, factor: chosenId }
          : chosen && { id: chosen.id, factor: chosen.factor, label: chosen.label, hint: chosen.hint, sendsCode: mfa.sendsCode(chosen.factor), ceremony },
      codeSent,
      minutes: sent?.retryAfterSeconds ? minutesOf(sent.retryAfterSeconds) : undefined,
      error,
      sent,
      remember: await remembered.pageData(ctx, signIn),
    }, status);
  };

  const renderEmailConfirmation = async (ctx: Context, locale: Locale, signIn: BoundSignIn, error?: string, status = 200) =>
    page(ctx, 'mfa-enrol-email', locale, { email: signIn.user.email, error, grace: await graceFor(ctx, signIn) }, status);

  /** The enrolment grace this sign-in may still use ("later"), from the decision for its client and request. */
  const graceFor = async (ctx: Context, signIn: BoundSignIn) =>
    (await decide(signIn.user, (ctx.state.signInDetails as Awaited<ReturnType<typeof details>> | undefined) ?? (await details(ctx)))).grace;

  const renderEnrolment = async (ctx: Context, locale: Locale, signIn: BoundSignIn, error?: string, status = 200) => {
    let pendingId = signIn.row.pending_factor_id;
    let pending = pendingId ? await mfa.pendingEnrolment(signIn.user, pendingId) : undefined;
    if (!pending) {
      pendingId = (await mfa.startEnrolment(signIn.user, 'totp'))?.pendingId ?? null;
      if (!pendingId || !(await queries.signIns.update(signIn.row.interaction_uid, signIn.user.id, 'enrolling', { pending_factor_id: pendingId }))) {
        throw new AppError(400, 'interaction_step');
      }
      pending = await mfa.pendingEnrolment(signIn.user, pendingId);
    }
    if (!pending) throw new AppError(400, 'interaction_step');
    const qr = pending.display.otpauthUri ? await QRCode.toDataURL(pending.display.otpauthUri, { margin: 1, width: 220 }) : undefined;
    const grace = await graceFor(ctx, signIn);
    return page(ctx, 'mfa-enrol', locale, {
      grace,
      // Only a helpdesk's code brings a user who holds a factor here (the grace is never offered to them).
      afterBypass: !grace && (await queries.factors.countConfirmed(signIn.user.id)) > 0,
      action: `/interaction/${ctx.params.uid}/enrol`,
      secret: pending.display.secret?.replace(/(.{4})/g, '$1 ').trim(),
      otpauthUri: pending.display.otpauthUri,
      digits: pending.display.digits,
      qr,
      error,
      atSignIn: true,
    }, status);
  };

  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });
  router.use(parseBody(), csrf(), requestRowsScope(queries));

  router.get('/', async (ctx) => {
    const d = await details(ctx);
    const { interaction, locale, clientName } = d;
    const { prompt, session } = interaction;
    if (prompt.name === 'consent') {
      return page(ctx, 'consent', locale, {
        clientName,
        // prompt=consent asks again for what was allowed before: the page then lists what the app asks for.
        scopes: (prompt.details.missingOIDCScope as string[] | undefined)?.length ? (prompt.details.missingOIDCScope as string[]) : requestedOidcScopes(interaction.params.scope),
        // What the app asks of an API in the user's name (RFC 8707): each scope with the API it is for.
        resourceScopes: Object.entries((prompt.details.missingResourceScopes as Record<string, string[]> | undefined) ?? {}).flatMap(([resource, scopes]) => scopes.map((scope) => ({ resource, scope }))),
      });
    }
    if (prompt.name !== 'login') throw new AppError(400, 'interaction_step');

    let signIn = await load(interaction.uid, ctx);
    // Step-up: the session passed the password in an earlier sign-in; only its second step is missing. The session's
    // user becomes this sign-in's user, as a password would have made them.
    if (signIn.step === 'started' && session?.accountId && prompt.reasons.length === 1 && prompt.reasons[0] === 'mfa_required') {
      const user = await queries.users.findById(session.accountId);
      if (user?.status === 'active') {
        const decision = await decide(user, d);
        if (unanswerable(decision)) return deny(ctx, interaction, PASSKEY_REQUIRED);
        const step = afterPassword(secondStep(decision), !!deps.emailConfirmation);
        if (step !== 'finished') {
          const bound = await queries.signIns.claim({ interaction_uid: interaction.uid, user_id: user.id, step, password_verified_at: null, pin_accepted: decision.pinAccepted, phishing_resistant: decision.phishingResistant, expires_at: expiresAt() });
          signIn = await load(interaction.uid);
          // Of concurrent GETs only the one that bound the sign-in sends its code (a later code would void the first).
          if (bound && 'row' in signIn && signIn.step === 'confirm_email') return afterSend(ctx, locale, signIn, await sendEnrolmentConfirmation(signIn, messageLocale(ctx, interaction, signIn.user)));
        }
      }
    }
    switch (signIn.step) {
      case 'started':
        return renderLogin(ctx, locale, { clientName, email: interaction.params.login_hint ?? '', notice: ctx.query.notice === 'password_changed' ? 'reset.done' : undefined });
      case 'second_factor':
        return renderSecondFactor(ctx, locale, clientName, signIn);
      case 'confirm_email':
        return renderEmailConfirmation(ctx, locale, signIn);
      case 'enrolling':
        return renderEnrolment(ctx, locale, signIn);
      case 'verified':
        return page(ctx, 'mfa-continue', locale, {});
      default:
        throw new AppError(400, 'interaction_step');
    }
  });

  router.post('/login', async (ctx) => {
    const d = await details(ctx, 'login');
    const { interaction, locale, clientName } = d;
    // The first verified password fixes the sign-in's user: a password posted to a sign-in already past that step
    // is refused before it is even checked, whoever's it is.
    if (!accepts((await load(interaction.uid, ctx)).step, 'password')) throw new AppError(400, 'interaction_step');
    const form = loginFormSchema.safeParse(ctx.request.body);
    const body = ctx.request.body as { email?: unknown } | undefined;
    const email = typeof body?.email === 'string' ? body.email : '';
    if (!form.success) return renderLogin(ctx, locale, { clientName, email, error: 'login.error.missing' }, 400);
    const clientId = String(interaction.params.client_id);
    const outcome = await checkPassword(deps.passwordLogin, { ...form.data, ip: ctx.ip, userAgent: ctx.get('user-agent'), clientId });
    if (!outcome.ok) {
      const throttled = outcome.reason === 'throttled';
      if (throttled) ctx.set('retry-after', String(outcome.retryAfterSeconds));
      return renderLogin(ctx, locale, { clientName, email: form.data.email, error: throttled ? 'login.error.throttled_for' : 'login.error.invalid', minutes: throttled ? minutesOf(outcome.retryAfterSeconds) : undefined }, throttled ? 429 : 401);
    }
    deps.onPasswordVerified?.(ctx, outcome.user.id);
    // A temporary password (set by an admin) opens no app until the user has chosen their own. The consoles ask on
    // their own page, which every console page sends back to until it is done.
    if (outcome.user.must_change_password && clientId !== CONSOLE_CLIENT_ID) {
      await outcome.settle();
      const chosen = temporaryPasswordFormSchema.safeParse(ctx.request.body);
      const again = (error?: string, status = 400) => renderLogin(ctx, locale, { clientName, email: form.data.email, mustChange: true, error }, status);
      if (!chosen.success) return again(undefined, 200);
      if (chosen.data.new_password !== chosen.data.new_password_again) return again('account.error.password_mismatch');
      try {
        await deps.replaceTemporaryPassword(outcome.user, chosen.data.new_password, actorOf(ctx, outcome.user.id, clientId));
      } catch (error) {
        const refused = passwordFormError(error);
        if (!refused) throw error;
        return again(refused.message);
      }
    }
    const decision = await decide(outcome.user, d, outcome.factors);
    const step = unanswerable(decision) ? 'finished' : afterPassword(secondStep(decision), !!deps.emailConfirmation);
    // Of two passwords racing into one sign-in, only the first to bind it goes on. The attempt is settled (and
    // audited) in the same statement, whichever wins.
    const bound = await outcome.settle(queries.signIns.claimWrite({ interaction_uid: interaction.uid, user_id: outcome.user.id, step, password_verified_at: clock.now(), pin_accepted: decision.pinAccepted, phishing_resistant: decision.phishingResistant, expires_at: expiresAt() }));
    if (!bound) throw new AppError(400, 'interaction_step');
    if (unanswerable(decision)) return deny(ctx, interaction, PASSKEY_REQUIRED);
    if (step === 'finished') return finishLogin(ctx, interaction, outcome.user.id, ['pwd']);
    if (step === 'confirm_email') {
      const signIn = await load(interaction.uid);
      if ('row' in signIn) {
        const sent = await sendEnrolmentConfirmation(signIn, messageLocale(ctx, interaction, signIn.user));
        if (!sent.sent) return afterSend(ctx, locale, signIn, sent);
      }
    }
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
  });

  // The other way out of `started`: a passkey that verified its user is the whole sign-in, and binds its user exactly
  // as a password would (first to claim the sign-in wins).
  router.post('/passwordless', async (ctx) => {
    const d = await details(ctx, 'login');
    const { interaction, locale, clientName } = d;
    if (!accepts((await load(interaction.uid, ctx)).step, 'passwordless')) throw new AppError(400, 'interaction_step');
    const form = passwordlessFormSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', 'code');
    const context = { interactionUid: interaction.uid, locale };
    const outcome = await mfa.verifyPasswordless(form.data.code, context, { ip: ctx.ip, userAgent: ctx.get('user-agent'), clientId: String(interaction.params.client_id) });
    if (!outcome.ok) {
      if (outcome.retryAfterSeconds) ctx.set('retry-after', String(outcome.retryAfterSeconds));
      return renderLogin(ctx, locale, { clientName, email: '', error: outcome.retryAfterSeconds ? 'login.error.throttled' : 'login.error.passkey' }, outcome.retryAfterSeconds ? 429 : 401);
    }
    // It answers every demand the policy can make today (multi-factor, phishing resistant); checked all the same.
    if (!satisfies(await decide(outcome.user, d), outcome.amr)) return renderLogin(ctx, locale, { clientName, email: '', error: 'login.error.passkey' }, 401);
    const bound = await queries.signIns.claim({ interaction_uid: interaction.uid, user_id: outcome.user.id, step: 'finished', password_verified_at: null, pin_accepted: false, phishing_resistant: false, expires_at: expiresAt() });
    if (!bound) throw new AppError(400, 'interaction_step');
    return finishLogin(ctx, interaction, outcome.user.id, outcome.amr);
  });

  /**
   * One answer at the second step (a code, a passkey, a remembered browser): the sign-in's try is taken before
   * `verify` runs; then the sign-in finishes, or the page comes back with `error`.
   */
  const answerSecondStep = async (
    ctx: Context,
    action: 'verify_factor' | 'remembered_device',
    // `moved`: the verification moved the sign-in on itself (`advance`, in its own statement); otherwise it is moved here.
    verify: (answer: { signIn: BoundSignIn; actor: ReturnType<typeof actorOf>; failures: number; locale: Locale; tried?: SignInTry; advance: JoiningWrite }) => Promise<{ ok: true; amr: string[]; moved?: boolean } | { ok: false; locked: boolean; retryAfterSeconds?: number }>,
    error = 'mfa.error.invalid',
    afterSuccess?: (signIn: BoundSignIn, actor: ReturnType<typeof actorOf>) => Promise<void>,
    withGuess = false,
  ) => {
    const { interaction, locale, clientName } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, action);
    const tried = withGuess ? await reserveTryAndGuess(ctx, interaction, signIn) : undefined;
    const failures = withGuess ? tried?.failures : await reserveTry(ctx, interaction, signIn);
    if (failures === undefined) return;
    const actor = actorOf(ctx, signIn.user.id, interaction.params.client_id);
    const advance = queries.signIns.advanceWrite(interaction.uid, signIn.user.id, 'second_factor', 'finished');
    const outcome = await verify({ signIn, actor, failures, locale, tried, advance });
    if (outcome.ok) {
      if (!(outcome.moved ?? (await queries.signIns.advance(interaction.uid, signIn.user.id, 'second_factor', 'finished')))) throw new AppError(400, 'interaction_step');
      await afterSuccess?.(signIn, actor);
      return finishLogin(ctx, interaction, signIn.user.id, outcome.amr);
    }
    if (outcome.locked) {
      return renderStopped(ctx, interaction, signIn.user, 'locked', new Date(clock.now().getTime() + (outcome.retryAfterSeconds ?? 60) * 1000));
    }
    if (await endIfLastTry(ctx, interaction, signIn, failures)) return;
    return renderSecondFactor(ctx, locale, clientName, signIn, error, 401);
  };
  const secondStepFlow: SecondStepFlow = { answerSecondStep };

  router.post('/mfa', async (ctx) => {
    const form = codeFormSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', form.error.issues[0]?.path.join('.'));
    ctx.query.method = form.data.method;
    await answerSecondStep(
      ctx,
      'verify_factor',
      ({ signIn, actor, failures, locale, tried, advance }) =>
        mfa.verifyAtSignIn(
          signIn.user,
          {
            methodId: form.data.method,
            code: form.data.code,
            pinAccepted: signIn.row.pin_accepted,
            phishingResistant: signIn.row.phishing_resistant,
            firstFailureAfterPassword: failures === 1 && signIn.row.password_verified_at !== null,
          },
          { interactionUid: signIn.row.interaction_uid, locale },
          actor,
          { tried, advance },
        ),
      'mfa.error.invalid',
      (signIn, actor) => remembered.rememberAfterSecondFactor(ctx, signIn, form.data.remember_key, actor),
      true,
    );
  });
  remembered.register(router, secondStepFlow);

  router.post('/mfa/send', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'send_code');
    const form = codeFormSchema.pick({ method: true }).safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', 'method');
    ctx.query.method = form.data.method;
    const outcome = await mfa.sendCode(signIn.user, form.data.method, { interactionUid: interaction.uid, locale: messageLocale(ctx, interaction, signIn.user) }, actorOf(ctx, signIn.user.id, interaction.params.client_id));
    if (!outcome) throw new AppError(400, 'method_not_found', 'no such method', 'method');
    if (outcome.sent) return renderSecondFactor(ctx, locale, clientName, signIn, undefined, 200, { notice: 'mfa.sent', retryAfterSeconds: outcome.retryAfterSeconds });
    if (outcome.retryAfterSeconds) ctx.set('retry-after', String(outcome.retryAfterSeconds));
    // The provider's own words (English, about its account) are for the operator's log, not this page.
    const status = outcome.reason === 'delivery_failed' ? 503 : outcome.reason === 'destination_rejected' ? 400 : 429;
    return renderSecondFactor(ctx, locale, clientName, signIn, `mfa.send.${outcome.reason}`, status, { retryAfterSeconds: outcome.retryAfterSeconds });
  });

  // The user lost their factor and the helpdesk gave them a one-time code: it opens enrolment of a new factor, never
  // the sign-in itself. Each try counts against the sign-in's and the account's limits like any code.
  router.post('/bypass', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'bypass');
    if (!bypassAnswers(signIn.row)) throw new AppError(400, 'interaction_step');
    const form = enrolFormSchema.parse(ctx.request.body);
    ctx.query.method = BYPASS_METHOD_ID;
    const failures = await reserveTry(ctx, interaction, signIn);
    if (failures === undefined) return;
    const outcome = await deps.bypassCodes.useAtSignIn(signIn.user, form.code, actorOf(ctx, signIn.user.id, interaction.params.client_id));
    if (outcome.ok) {
      if (!(await queries.signIns.advance(interaction.uid, signIn.user.id, 'second_factor', 'enrolling'))) throw new AppError(400, 'interaction_step');
      ctx.status = 303;
      return ctx.redirect(`/interaction/${interaction.uid}`);
    }
    if (outcome.locked) {
      ctx.set('retry-after', String(outcome.retryAfterSeconds));
      return renderSecondFactor(ctx, locale, clientName, signIn, 'mfa.error.locked', 429);
    }
    if (await endIfLastTry(ctx, interaction, signIn, failures)) return;
    return renderSecondFactor(ctx, locale, clientName, signIn, 'mfa.error.invalid', 401);
  });

  router.post('/enrol/email', async (ctx) => {
    const { interaction, locale } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'confirm_email');
    const form = enrolFormSchema.parse(ctx.request.body);
    const failures = await reserveTry(ctx, interaction, signIn);
    if (failures === undefined) return;
    // The account's own limit too: otherwise each new sign-in (a password away) would bring five fresh guesses.
    const guess = await mfa.reserveAttempt(signIn.user.id);
    if (!guess.allowed) return renderStopped(ctx, interaction, signIn.user, 'locked', new Date(clock.now().getTime() + guess.retryAfterSeconds * 1000));
    if (deps.emailConfirmation?.matches(interaction.uid, signIn.row, form.code)) {
      await guess.succeeded();
      const opened = await queries.signIns.advance(interaction.uid, signIn.user.id, 'confirm_email', 'enrolling', { email_code_hash: null, email_code_expires_at: null });
      if (!opened) throw new AppError(400, 'interaction_step');
      await queries.audit.insert({ action: 'mfa.enrolment_confirmed_by_email', outcome: 'success', subjectId: signIn.user.id, ip: ctx.ip });
      ctx.status = 303;
      return ctx.redirect(`/interaction/${interaction.uid}`);
    }
    await queries.audit.insert({ action: 'mfa.enrolment_confirmed_by_email', outcome: 'failure', subjectId: signIn.user.id, ip: ctx.ip, details: { reason: 'wrong_code' } });
    if (await endIfLastTry(ctx, interaction, signIn, failures)) return;
    return renderEmailConfirmation(ctx, locale, signIn, 'mfa.error.invalid', 401);
  });

  router.post('/enrol/email/resend', async (ctx) => {
    const { interaction, locale } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'resend_email');
    return afterSend(ctx, locale, signIn, await sendEnrolmentConfirmation(signIn, messageLocale(ctx, interaction, signIn.user)));
  });

  // Enrolment grace: where the global switch alone asks for a factor and the admin gives a grace, the user may finish
  // this sign-in without one. Its claims say so (amr pwd, acr pwd); an app or acr_values that asks for MFA never
  // leaves this open (the decision is not postponable), however the form is posted.
  router.post('/later', async (ctx) => {
    const d = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'later');
    if (!(await decide(signIn.user, d)).grace) throw new AppError(400, 'interaction_step');
    if (!(await queries.signIns.advance(d.interaction.uid, signIn.user.id, signIn.row.step, 'finished'))) throw new AppError(400, 'interaction_step');
    // Another sign-in may have taken the last of the grace meanwhile: this one then ends without a login.
    if (!(await mfa.postponeEnrolment(signIn.user, actorOf(ctx, signIn.user.id, d.interaction.params.client_id)))) return deny(ctx, d.interaction, 'a second factor is required');
    return finishLogin(ctx, d.interaction, signIn.user.id, ['pwd']);
  });

  router.post('/enrol', async (ctx) => {
    const { interaction, locale } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'enrol');
    const pendingId = signIn.row.pending_factor_id;
    if (!pendingId) throw new AppError(400, 'interaction_step');
    const form = enrolFormSchema.parse(ctx.request.body);
    const failures = await reserveTry(ctx, interaction, signIn);
    if (failures === undefined) return;
    const result = await mfa.confirmEnrolment(signIn.user, pendingId, form.code, actorOf(ctx, signIn.user.id, interaction.params.client_id));
    if (!result.ok) {
      // A double-click: the other submit bound the factor and moved on; this one just says so.
      if ((await load(interaction.uid)).step === 'verified') return page(ctx, 'mfa-continue', locale, {});
      if (await endIfLastTry(ctx, interaction, signIn, failures)) return;
      return renderEnrolment(ctx, locale, signIn, 'mfa.error.invalid', 401);
    }
    if (!(await queries.signIns.advance(interaction.uid, signIn.user.id, 'enrolling', 'verified', { verified_amr: result.amr }))) throw new AppError(400, 'interaction_step');
    return page(ctx, 'recovery-codes', locale, { codes: result.recoveryCodes ?? [], continueAction: `/interaction/${interaction.uid}/continue` });
  });

  router.post('/continue', async (ctx) => {
    const { interaction } = await details(ctx, 'login');
    const signIn = await signInFor(ctx, 'continue');
    const amr = signIn.row.verified_amr;
    // The factor enrolled in this sign-in must still be there: an admin's reset or its removal since ends the claim.
    const factorId = signIn.row.pending_factor_id;
    const factor = factorId ? await queries.factors.findConfirmed(signIn.user.id, factorId) : undefined;
    if (!amr || !factor || !(await queries.signIns.advance(interaction.uid, signIn.user.id, 'verified', 'finished'))) throw new AppError(400, 'interaction_step');
    await finishLogin(ctx, interaction, signIn.user.id, amr);
  });

  router.post('/confirm', async (ctx) => {
    const { interaction } = await details(ctx, 'consent');
    const { params, prompt, session } = interaction;
    if (!session?.accountId) throw new AppError(400, 'interaction_step');
    const Grant = provider().Grant;
    const grant = interaction.grantId
      ? await Grant.find(interaction.grantId)
      : new Grant({ accountId: session.accountId, clientId: String(params.client_id) });
    if (!grant) throw new AppError(400, 'interaction_step');
    const missingScope = prompt.details.missingOIDCScope as string[] | undefined;
    const missingClaims = prompt.details.missingOIDCClaims as string[] | undefined;
    if (missingScope) grant.addOIDCScope(missingScope.join(' '));
    if (missingClaims) grant.addOIDCClaims(missingClaims);
    for (const [resource, scopes] of Object.entries((prompt.details.missingResourceScopes as Record<string, string[]> | undefined) ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    const grantId = await grant.save();
    await rememberConsent(queries, grant);
    await finish(ctx, interaction, { consent: interaction.grantId ? {} : { grantId } }, true);
  });

  router.post('/abort', async (ctx) => {
    const { interaction } = await details(ctx);
    const signIn = await load(interaction.uid, ctx);
    if (!accepts(signIn.step, 'abort')) throw new AppError(400, 'interaction_step');
    if ('row' in signIn && !(await queries.signIns.advance(interaction.uid, signIn.user.id, signIn.row.step, 'finished'))) {
      throw new AppError(400, 'interaction_step');
    }
    await deny(ctx, interaction, 'End-User aborted interaction');
  });

  return router;
}
