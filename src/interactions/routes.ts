import Router from '@koa/router';
import type { Context } from 'koa';
import type { InteractionResults } from 'oidc-provider';
import QRCode from 'qrcode';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import { pickLocale, type Locale } from '../i18n.js';
import { ACR } from '../mfa/policy.js';
import { MAX_FAILURES_PER_SIGN_IN, type Method, type MfaService, RECOVERY_METHOD_ID } from '../mfa/service.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import { TOKEN_TTL } from '../oidc/provider.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import { authenticateWithPassword, loginFormSchema, type PasswordLoginDeps } from './password-login.js';

export interface InteractionDeps {
  providers: ProviderHolder;
  renderer: PageRenderer;
  passwordLogin: PasswordLoginDeps;
  mfa: MfaService;
  queries: Queries;
  clock: Clock;
  defaultLocale: Locale;
  /** Told of every completed sign-in (metrics). */
  onSignedIn?: (amr: readonly string[]) => void;
}

const codeFormSchema = z.object({
  method: z.string().min(1).max(64),
  code: z.string().max(64).default(''),
});
const enrolFormSchema = z.object({ code: z.string().max(64).default('') });

/**
 * The sign-in pages oidc-provider sends users to: password, then (when the policy says so) a second factor or an
 * enrolment. Every POST re-reads the interaction and checks it is at the step the form belongs to, so a stale or
 * replayed form cannot skip one.
 */
export function createInteractionRouter(deps: InteractionDeps) {
  const { mfa, queries, clock } = deps;
  const router = new Router({ prefix: '/interaction/:uid' });
  const provider = () => deps.providers.provider;

  const details = async (ctx: Context, expectedPrompt?: string) => {
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
    return {
      interaction,
      locale,
      clientName: client?.clientName ?? String(interaction.params.client_id),
      clientRequiresMfa: client?.metadata().require_mfa === true,
    };
  };

  const page = (ctx: Context, template: string, locale: Locale, data: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = deps.renderer.render(template, locale, { ...data, csrf: ctx.state.csrf, uid: ctx.params.uid });
  };

  type Interaction = Awaited<ReturnType<typeof details>>['interaction'];
  /** oidc-provider's interactionResult, on the interaction this request already read (it would read it again). */
  const finish = async (ctx: Context, interaction: Interaction, result: InteractionResults, merge: boolean) => {
    interaction.result = merge ? { ...interaction.lastSubmission, ...result } : result;
    await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));
    ctx.status = 303;
    ctx.redirect(interaction.returnTo);
  };

  /** `progressKept`: the sign-in went through a second-factor step whose progress row must go. */
  const finishLogin = async (ctx: Context, interaction: Interaction, accountId: string, amr: string[], progressKept = true) => {
    if (progressKept) await queries.loginProgress.finish(interaction.uid);
    await finish(ctx, interaction, { login: { accountId, amr, acr: amr.includes('mfa') ? ACR.mfa : ACR.password, remember: true } }, false);
    deps.onSignedIn?.(amr);
  };

  const actorOf = (ctx: Context, userId: string, clientId?: unknown) => ({
    actorId: userId,
    ip: ctx.ip,
    userAgent: ctx.get('user-agent'),
    clientId: typeof clientId === 'string' ? clientId : undefined,
  });

  /** The user between their password and their second factor in this interaction, if any. */
  const progressOf = async (ctx: Context) => {
    const progress = await queries.loginProgress.find(ctx.params.uid!, clock.now());
    const user = progress && (await queries.users.findById(progress.user_id));
    return progress && user?.status === 'active' ? { progress, user } : undefined;
  };

  const renderSecondFactor = async (
    ctx: Context,
    locale: Locale,
    clientName: string,
    user: UserRow,
    error?: string,
    status = 200,
    sent?: { notice?: string; detail?: string; retryAfterSeconds?: number },
    listed?: Method[],
  ) => {
    const methods = listed ?? (await mfa.methodsFor(user));
    const requested = typeof ctx.query.method === 'string' ? ctx.query.method : undefined;
    const chosenId = requested === RECOVERY_METHOD_ID || methods.some((m) => m.id === requested) ? requested : methods[0]?.id;
    const chosen = methods.find((m) => m.id === chosenId);
    return page(ctx, 'mfa', locale, {
      clientName,
      methods: methods.map((m) => ({ id: m.id, factor: m.factor, label: m.label, hint: m.hint })),
      chosen:
        chosenId === RECOVERY_METHOD_ID
          ? { id: RECOVERY_METHOD_ID, factor: 'recovery' }
          : chosen && { id: chosen.id, factor: chosen.factor, label: chosen.label, hint: chosen.hint, sendsCode: mfa.sendsCode(chosen.factor) },
      error,
      sent,
    }, status);
  };

  const renderEnrolment = async (ctx: Context, locale: Locale, user: UserRow, pendingId: string, error?: string, status = 200) => {
    const pending = await mfa.pendingEnrolment(user, pendingId);
    if (!pending) throw new AppError(400, 'interaction_step');
    const qr = pending.display.otpauthUri ? await QRCode.toDataURL(pending.display.otpauthUri, { margin: 1, width: 220 }) : undefined;
    return page(ctx, 'mfa-enrol', locale, {
      action: `/interaction/${ctx.params.uid}/enrol`,
      secret: pending.display.secret?.replace(/(.{4})/g, '$1 ').trim(),
      otpauthUri: pending.display.otpauthUri,
      qr,
      error,
      atSignIn: true,
    }, status);
  };

  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });
  router.use(parseBody(), csrf());

  router.get('/', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx);
    const { prompt, session } = interaction;
    if (prompt.name === 'consent') {
      return page(ctx, 'consent', locale, {
        clientName,
        scopes: [...((prompt.details.missingOIDCScope as string[] | undefined) ?? [])],
      });
    }
    if (prompt.name !== 'login') throw new AppError(400, 'interaction_step');

    let current = await progressOf(ctx);
    // Step-up: the session passed the password already and only its second factor is missing.
    if (!current && session?.accountId && prompt.reasons.length === 1 && prompt.reasons[0] === 'mfa_required') {
      await queries.loginProgress.start({ interaction_uid: interaction.uid, user_id: session.accountId, password_verified_at: null, expires_at: new Date(clock.now().getTime() + TOKEN_TTL.Interaction * 1000) });
      current = await progressOf(ctx);
    }
    if (!current) return page(ctx, 'login', locale, { clientName, email: interaction.params.login_hint ?? '' });
    if (current.progress.verified_amr) return page(ctx, 'mfa-continue', locale, {});
    const methods = await mfa.methodsFor(current.user);
    if (methods.length > 0) return renderSecondFactor(ctx, locale, clientName, current.user, undefined, 200, undefined, methods);

    let pendingId = current.progress.pending_factor_id;
    if (!pendingId || !(await mfa.pendingEnrolment(current.user, pendingId))) {
      pendingId = (await mfa.startEnrolment(current.user, 'totp'))?.pendingId ?? null;
      if (!pendingId) throw new AppError(400, 'interaction_step');
      await queries.loginProgress.setPendingFactor(interaction.uid, pendingId);
    }
    return renderEnrolment(ctx, locale, current.user, pendingId);
  });

  router.post('/login', async (ctx) => {
    const { interaction, locale, clientName, clientRequiresMfa } = await details(ctx, 'login');
    const form = loginFormSchema.safeParse(ctx.request.body);
    const body = ctx.request.body as { email?: unknown } | undefined;
    const email = typeof body?.email === 'string' ? body.email : '';
    if (!form.success) return page(ctx, 'login', locale, { clientName, email, error: 'login.error.missing' }, 400);
    const clientId = String(interaction.params.client_id);
    const outcome = await authenticateWithPassword(deps.passwordLogin, { ...form.data, ip: ctx.ip, userAgent: ctx.get('user-agent'), clientId });
    if (!outcome.ok) {
      const throttled = outcome.reason === 'throttled';
      if (throttled) ctx.set('retry-after', String(outcome.retryAfterSeconds));
      return page(ctx, 'login', locale, { clientName, email: form.data.email, error: throttled ? 'login.error.throttled' : 'login.error.invalid' }, throttled ? 429 : 401);
    }
    const acrValues = typeof interaction.params.acr_values === 'string' ? interaction.params.acr_values : undefined;
    const decision = await mfa.decide(outcome.user, { requireMfa: clientRequiresMfa }, acrValues);
    // No second factor: no progress row was made for this sign-in.
    if (!decision.required) return finishLogin(ctx, interaction, outcome.user.id, ['pwd'], false);
    const now = clock.now();
    await queries.loginProgress.start({ interaction_uid: interaction.uid, user_id: outcome.user.id, password_verified_at: now, expires_at: new Date(now.getTime() + TOKEN_TTL.Interaction * 1000) });
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
  });

  router.post('/mfa', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx, 'login');
    const current = await progressOf(ctx);
    if (!current) throw new AppError(400, 'interaction_step');
    const form = codeFormSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', form.error.issues[0]?.path.join('.'));
    ctx.query.method = form.data.method;
    const outcome = await mfa.verifyAtSignIn(
      current.user,
      { methodId: form.data.method, code: form.data.code, failuresSoFar: current.progress.mfa_failures, afterPassword: current.progress.password_verified_at !== null },
      { interactionUid: interaction.uid, locale },
      actorOf(ctx, current.user.id, interaction.params.client_id),
    );
    if (outcome.ok) return finishLogin(ctx, interaction, current.user.id, outcome.amr);
    if (outcome.locked) {
      ctx.set('retry-after', String(outcome.retryAfterSeconds ?? 60));
      return renderSecondFactor(ctx, locale, clientName, current.user, 'mfa.error.locked', 429);
    }
    const failures = await queries.loginProgress.recordFailure(interaction.uid);
    if (failures >= MAX_FAILURES_PER_SIGN_IN) {
      // Enough guesses for this sign-in: end it, the app gets access_denied and the user starts again.
      await queries.loginProgress.finish(interaction.uid);
      return finish(ctx, interaction, { error: 'access_denied', error_description: 'too many wrong codes' }, false);
    }
    return renderSecondFactor(ctx, locale, clientName, current.user, 'mfa.error.invalid', 401);
  });

  router.post('/mfa/send', async (ctx) => {
    const { interaction, locale, clientName } = await details(ctx, 'login');
    const current = await progressOf(ctx);
    if (!current) throw new AppError(400, 'interaction_step');
    const form = codeFormSchema.pick({ method: true }).safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', 'method');
    ctx.query.method = form.data.method;
    const outcome = await mfa.sendCode(current.user, form.data.method, { interactionUid: interaction.uid, locale }, actorOf(ctx, current.user.id, interaction.params.client_id));
    if (!outcome) throw new AppError(400, 'method_not_found', 'no such method', 'method');
    if (outcome.sent) return renderSecondFactor(ctx, locale, clientName, current.user, undefined, 200, { notice: 'mfa.sent', retryAfterSeconds: outcome.retryAfterSeconds });
    if (outcome.retryAfterSeconds) ctx.set('retry-after', String(outcome.retryAfterSeconds));
    const status = outcome.reason === 'delivery_failed' ? 502 : 429;
    return renderSecondFactor(ctx, locale, clientName, current.user, `mfa.send.${outcome.reason}`, status, { detail: outcome.detail, retryAfterSeconds: outcome.retryAfterSeconds });
  });

  router.post('/enrol', async (ctx) => {
    const { interaction, locale } = await details(ctx, 'login');
    const current = await progressOf(ctx);
    const pendingId = current?.progress.pending_factor_id;
    if (!current || !pendingId) throw new AppError(400, 'interaction_step');
    const form = enrolFormSchema.parse(ctx.request.body);
    const result = await mfa.confirmEnrolment(current.user, pendingId, form.code, actorOf(ctx, current.user.id, interaction.params.client_id));
    if (!result.ok) return renderEnrolment(ctx, locale, current.user, pendingId, 'mfa.error.invalid', 401);
    await queries.loginProgress.markVerified(interaction.uid, result.amr);
    return page(ctx, 'recovery-codes', locale, { codes: result.recoveryCodes ?? [], continueAction: `/interaction/${interaction.uid}/continue` });
  });

  router.post('/continue', async (ctx) => {
    const { interaction } = await details(ctx, 'login');
    const current = await progressOf(ctx);
    if (!current?.progress.verified_amr) throw new AppError(400, 'interaction_step');
    await finishLogin(ctx, interaction, current.user.id, current.progress.verified_amr);
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
    const grantId = await grant.save();
    await finish(ctx, interaction, { consent: interaction.grantId ? {} : { grantId } }, true);
  });

  router.post('/abort', async (ctx) => {
    const { interaction } = await details(ctx);
    await queries.loginProgress.finish(interaction.uid);
    await finish(ctx, interaction, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  });

  return router;
}
