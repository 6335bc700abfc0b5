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
import type { RememberedDevices } from '../mfa/remembered-device/index.js';
import type { PageRenderer } from '../render.js';
import { changePassword, type PeopleDeps } from '../admin/users.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { AccessService } from '../access/service.js';
import { isTimeZone } from '../access/time.js';
import type { Clock } from '../security/clock.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import { MAX_PASSWORD_LENGTH } from '../security/password-policy.js';
import { passwordFormError } from './password-errors.js';

export interface AccountDeps {
  console: ConsoleSession;
  mfa: MfaService;
  access: Pick<AccessService, 'webPinStatus' | 'enableWebPin' | 'disableWebPin'>;
  renderer: PageRenderer;
  passwordLogin: PasswordLoginDeps;
  clock: Clock;
  defaultLocale: Locale;
  people: PeopleDeps;
  providers: ProviderHolder;
  rememberedDevices: RememberedDevices;
}

const reauthSchema = z.object({ password: z.string().min(1).max(1024), next: z.string().max(200).default('/account/security') });
const methodSchema = z.object({ method: z.string().min(1).max(64) });
// A typed code, or a passkey's registration response (WebAuthn JSON): each factor parses its own.
const confirmSchema = z.object({ code: z.string().max(16_384).default('') });
const pinSchema = z.object({ code: z.string().max(64).default('') });
const factorParamSchema = z.enum(['totp', 'sms', 'email', 'passkey']);
const renameSchema = z.object({ method: z.string().min(1).max(64), label: z.string().trim().min(1).max(60) });
const profileSchema = z.object({
  name: z.string().trim().max(200),
  locale: z.enum(['', 'en', 'ko']).transform((value) => value || null),
  time_zone: z.string().max(64).refine((zone) => zone === '' || isTimeZone(zone), { message: 'expected an IANA time zone such as Asia/Seoul' }).transform((zone) => zone || null),
});
const passwordChangeSchema = z.object({ current_password: z.string().max(MAX_PASSWORD_LENGTH), new_password: z.string().max(MAX_PASSWORD_LENGTH), new_password_again: z.string().max(MAX_PASSWORD_LENGTH) });
const deviceSchema = z.object({ device: z.uuid() });

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

  const securityPage = async (ctx: Context, notice?: string, pinError?: string, status = 200) => {
    const user = ctx.state.user!;
    const methods = await mfa.methodsFor(user);
    page(ctx, 'account-security', {
      webPin: await deps.access.webPinStatus(user.id),
      pinError,
      canEnrol: Object.fromEntries((await mfa.enrollableFactors()).map((id) => [id, true])),
      methods: methods.map((m) => ({ id: m.id, factor: m.factor, label: m.label, hint: m.hint, detail: m.detail, preferred: m.id === user.preferred_factor_id || (!user.preferred_factor_id && m === methods[0]), addedAt: m.record.confirmed_at, lastUsedAt: m.record.last_used_at })),
      recoveryLeft: await mfa.remainingRecoveryCodes(user.id),
      rememberedDevices: (await deps.rememberedDevices.list(user.id)).map((d) => ({ id: d.id, label: d.label, createdAt: d.created_at, lastUsedAt: d.last_used_at, expiresAt: d.expires_at })),
      enforced: (await mfa.readEnforcement()).value,
      reauthenticated: deps.console.isRecentlyReauthenticated(ctx, user.id, clock.now()),
      notice,
    }, status);
  };

  router.use(parseBody(), csrf(), deps.console.requireUser, async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });

  router.get('/', (ctx) => ctx.redirect('/account/profile'));

  const profilePage = (ctx: Context, extra: Record<string, unknown> = {}, status = 200) => {
    const user = ctx.state.user!;
    page(ctx, 'account-profile', { profile: { name: user.name, email: user.email, locale: user.locale ?? '', time_zone: user.time_zone ?? '' }, notice: typeof ctx.query.notice === 'string' ? ctx.query.notice : undefined, ...extra }, status);
  };
  router.get('/profile', (ctx) => profilePage(ctx));
  router.post('/profile', async (ctx) => {
    const form = profileSchema.safeParse(ctx.request.body);
    if (!form.success) return profilePage(ctx, { error: 'account.error.time_zone' }, 400);
    await deps.people.queries.users.update(ctx.state.user!.id, form.data);
    await deps.people.queries.audit.insert({ action: 'user.profile', outcome: 'success', subjectId: ctx.state.user!.id, ...actor(ctx), details: { changed: Object.keys(form.data) } });
    ctx.redirect('/account/profile?notice=profile_saved');
  });
  // The current password is itself the re-authentication here (ASVS 2.1.5).
  router.post('/password', async (ctx) => {
    const form = passwordChangeSchema.parse(ctx.request.body);
    if (form.new_password !== form.new_password_again) return profilePage(ctx, { passwordError: 'account.error.password_mismatch' }, 400);
    try {
      await changePassword(deps.people, ctx.state.user!, form.current_password, form.new_password, actor(ctx));
    } catch (error) {
      const refused = passwordFormError(error);
      if (!refused) throw error;
      if (refused.retryAfterSeconds) ctx.set('retry-after', String(refused.retryAfterSeconds));
      return profilePage(ctx, { passwordError: refused.message, detail: refused.detail }, refused.retryAfterSeconds ? 429 : 400);
    }
    ctx.redirect('/account/profile?notice=password_changed');
  });

  router.get('/security', (ctx) => securityPage(ctx, typeof ctx.query.notice === 'string' ? ctx.query.notice : undefined));

  router.post('/reauth', async (ctx) => {
    const user = ctx.state.user!;
    const form = reauthSchema.safeParse(ctx.request.body);
    if (!form.success) return page(ctx, 'account-reauth', { next: '/account/security', error: 'login.error.missing' }, 400);
    const outcome = await authenticateWithPassword(deps.passwordLogin, { email: user.email, password: form.data.password, ip: ctx.ip, userAgent: ctx.get('user-agent') });
    if (!outcome.ok || outcome.user.id !== user.id) {
      if (!outcome.ok && outcome.reason === 'throttled') ctx.set('retry-after', String(outcome.retryAfterSeconds));
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
    const template = pending.display.ceremony ? 'mfa-enrol-passkey' : pending.factor.id === 'totp' ? 'mfa-enrol' : 'mfa-enrol-sent';
    page(ctx, template, {
      action: `/account/security/enrol/${pending.factor.id}/${pendingId}`,
      secret: pending.display.secret?.replace(/(.{4})/g, '$1 ').trim(),
      qr,
      sentTo: pending.display.sentTo,
      ceremony: pending.display.ceremony,
      label: pending.pending.label,
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

  router.post('/security/rename', afterReauth(async (ctx, user) => {
    const form = renameSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'invalid_request', 'a name of 1 to 60 characters', form.error.issues[0]?.path.join('.'));
    if (!(await mfa.renameMethod(user, form.data.method, form.data.label, actor(ctx)))) throw new AppError(404, 'method_not_found', 'no such method', 'method');
    ctx.redirect('/account/security?notice=factor_renamed');
  }));

  router.post('/security/recovery-codes', afterReauth(async (ctx, user) => {
    const codes = await mfa.regenerateRecoveryCodes(user, actor(ctx));
    if (!codes) throw new AppError(409, 'no_factors');
    page(ctx, 'recovery-codes', { codes, continueAction: '/account/security/done' });
  }));

  // A door PIN serves at sign-in only once its owner opts in, naming it by its digits; the access admins who issue
  // PINs cannot turn one into a user's second factor.
  router.post('/security/pin', afterReauth(async (ctx, user) => {
    const form = pinSchema.parse(ctx.request.body);
    try {
      await deps.access.enableWebPin(user.id, form.code, actor(ctx));
    } catch (error) {
      if (error instanceof z.ZodError) return securityPage(ctx, undefined, 'account.error.pin_not_found', 400);
      if (!(error instanceof AppError) || (error.status !== 400 && error.status !== 429)) throw error;
      return securityPage(ctx, undefined, `account.error.${error.code}`, error.status);
    }
    ctx.redirect('/account/security?notice=pin_enabled');
  }));

  router.post('/security/pin/disable', afterReauth(async (ctx, user) => {
    await deps.access.disableWebPin(user.id, actor(ctx));
    ctx.redirect('/account/security?notice=pin_disabled');
  }));

  // Forgetting a browser only takes away a shortcut: no password needed, as for signing other sessions out.
  router.post('/security/devices/forget', async (ctx) => {
    const form = deviceSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'malformed_body', 'invalid form', 'device');
    if (!(await deps.rememberedDevices.forget(ctx.state.user!, form.data.device, actor(ctx)))) throw new AppError(404, 'device_not_found', 'no such device', 'device');
    ctx.redirect('/account/security?notice=device_forgotten');
  });
  router.post('/security/devices/forget-all', async (ctx) => {
    await deps.rememberedDevices.forgetAll(ctx.state.user!, actor(ctx));
    ctx.redirect('/account/security?notice=devices_forgotten');
  });

  router.post('/security/disable', afterReauth(async (ctx, user) => {
    await mfa.disable(user, actor(ctx));
    ctx.redirect('/account/security?notice=mfa_disabled');
  }));

  return router;
}
