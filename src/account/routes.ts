import Router from '@koa/router';
import type { Context } from 'koa';
import QRCode from 'qrcode';
import { z } from 'zod';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { createConsolePage } from '../console/page.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Locale } from '../i18n.js';
import { authenticateWithPassword, type PasswordLoginDeps } from '../interactions/password-login.js';
import type { MfaService } from '../mfa/service.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';

export interface AccountDeps {
  console: ConsoleSession;
  mfa: MfaService;
  renderer: PageRenderer;
  passwordLogin: PasswordLoginDeps;
  clock: Clock;
  defaultLocale: Locale;
}

const reauthSchema = z.object({ password: z.string().min(1).max(1024), next: z.string().max(200).default('/account/security') });
const methodSchema = z.object({ method: z.string().min(1).max(64) });
const confirmSchema = z.object({ code: z.string().max(64).default('') });
const factorParamSchema = z.enum(['totp', 'sms', 'email']);

/** Self-service: the user's own sign-in methods. Every change needs the password entered in the last 5 minutes. */
export function createAccountRouter(deps: AccountDeps) {
  const { mfa, clock } = deps;
  const router = new Router({ prefix: '/account' });

  const page = createConsolePage(deps.renderer, deps.defaultLocale);

  const actor = (ctx: Context) => ({ actorId: ctx.state.user!.id, ip: ctx.ip, userAgent: ctx.get('user-agent') });

  /** Runs a change only after a recent password entry; otherwise asks for it and comes back. */
  const afterReauth = (handler: (ctx: Context, user: UserRow) => Promise<void>) => async (ctx: Context) => {
    const user = ctx.state.user!;
    if (!deps.console.isRecentlyReauthenticated(ctx, user.id, clock.now())) {
      return page(ctx, 'account-reauth', { next: '/account/security' }, 401);
    }
    await handler(ctx, user);
  };

  const securityPage = async (ctx: Context, notice?: string) => {
    const user = ctx.state.user!;
    const methods = await mfa.methodsFor(user);
    page(ctx, 'account-security', {
      canEnrol: Object.fromEntries((await mfa.enrollableFactors()).map((id) => [id, true])),
      methods: methods.map((m) => ({ id: m.id, factor: m.factor, label: m.label, hint: m.hint, preferred: m.id === user.preferred_factor_id || (!user.preferred_factor_id && m === methods[0]), addedAt: m.record.confirmed_at, lastUsedAt: m.record.last_used_at })),
      recoveryLeft: await mfa.remainingRecoveryCodes(user.id),
      enforced: (await mfa.readEnforcement()).value,
      reauthenticated: deps.console.isRecentlyReauthenticated(ctx, user.id, clock.now()),
      notice,
    });
  };

  router.use(parseBody(), csrf(), deps.console.requireUser, async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });

  router.get('/', (ctx) => ctx.redirect('/account/security'));
  router.get('/security', (ctx) => securityPage(ctx, typeof ctx.query.notice === 'string' ? ctx.query.notice : undefined));

  router.post('/reauth', async (ctx) => {
    const user = ctx.state.user!;
    const form = reauthSchema.safeParse(ctx.request.body);
    if (!form.success) return page(ctx, 'account-reauth', { next: '/account/security', error: 'login.error.missing' }, 400);
    const outcome = await authenticateWithPassword(deps.passwordLogin, { email: user.email, password: form.data.password, ip: ctx.ip, userAgent: ctx.get('user-agent') });
    if (!outcome.ok || outcome.user.id !== user.id) {
      return page(ctx, 'account-reauth', { next: form.data.next, error: outcome.ok ? 'login.error.invalid' : outcome.reason === 'throttled' ? 'login.error.throttled' : 'login.error.invalid' }, 401);
    }
    deps.console.markReauthenticated(ctx, user.id, clock.now());
    ctx.redirect(form.data.next.startsWith('/account') ? form.data.next : '/account/security');
  });

  // Starting an enrolment may send a code (SMS, email): it needs the password too, so it cannot be used to spam.
  router.post('/security/enrol/:factor', afterReauth(async (ctx, user) => {
    const factor = factorParamSchema.safeParse(ctx.params.factor);
    if (!factor.success) throw new AppError(404, 'factor_unavailable');
    const started = await mfa.startEnrolment(user, factor.data, (ctx.request.body ?? {}) as Record<string, unknown>);
    if (!started) throw new AppError(404, 'factor_unavailable');
    ctx.redirect(`/account/security/enrol/${factor.data}/${started.pendingId}`);
  }));

  const enrolmentPage = async (ctx: Context, pendingId: string, error?: string, status = 200) => {
    const pending = await mfa.pendingEnrolment(ctx.state.user!, pendingId);
    if (!pending) throw new AppError(404, 'enrolment_expired');
    const qr = pending.display.otpauthUri ? await QRCode.toDataURL(pending.display.otpauthUri, { margin: 1, width: 220 }) : undefined;
    page(ctx, pending.factor.id === 'totp' ? 'mfa-enrol' : 'mfa-enrol-sent', {
      action: `/account/security/enrol/${pending.factor.id}/${pendingId}`,
      secret: pending.display.secret?.replace(/(.{4})/g, '$1 ').trim(),
      qr,
      sentTo: pending.display.sentTo,
      error,
    }, status);
  };

  router.get('/security/enrol/:factor/:pendingId', (ctx) => enrolmentPage(ctx, ctx.params.pendingId!));

  router.post('/security/enrol/:factor/:pendingId', afterReauth(async (ctx, user) => {
    const form = confirmSchema.parse(ctx.request.body);
    const result = await mfa.confirmEnrolment(user, ctx.params.pendingId!, form.code, actor(ctx));
    if (!result.ok) return enrolmentPage(ctx, ctx.params.pendingId!, 'mfa.error.invalid', result.reason === 'not_found' ? 404 : 401);
    if (result.recoveryCodes) return page(ctx, 'recovery-codes', { codes: result.recoveryCodes, continueAction: '/account/security/done' });
    ctx.redirect('/account/security?notice=factor_added');
  }));

  router.post('/security/done', (ctx) => ctx.redirect('/account/security?notice=factor_added'));

  router.post('/security/preferred', afterReauth(async (ctx, user) => {
    const form = methodSchema.parse(ctx.request.body);
    if (!(await mfa.setPreferred(user, form.method, actor(ctx)))) throw new AppError(404, 'method_not_found', 'no such method', 'method');
    ctx.redirect('/account/security?notice=preferred_set');
  }));

  router.post('/security/remove', afterReauth(async (ctx, user) => {
    const form = methodSchema.parse(ctx.request.body);
    if (!(await mfa.removeFactor(user, form.method, actor(ctx)))) throw new AppError(404, 'method_not_found', 'no such method', 'method');
    ctx.redirect('/account/security?notice=factor_removed');
  }));

  router.post('/security/recovery-codes', afterReauth(async (ctx, user) => {
    const codes = await mfa.regenerateRecoveryCodes(user, actor(ctx));
    if (!codes) throw new AppError(409, 'no_factors');
    page(ctx, 'recovery-codes', { codes, continueAction: '/account/security/done' });
  }));

  router.post('/security/disable', afterReauth(async (ctx, user) => {
    await mfa.disable(user, actor(ctx));
    ctx.redirect('/account/security?notice=mfa_disabled');
  }));

  return router;
}
