import Router from '@koa/router';
import type { Context } from 'koa';
import QRCode from 'qrcode';
import { z } from 'zod';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { type Confirmation, confirmedOrAsk, type FailedForm, FormRefusal, keptValues, parseOrRefuse, seeOtherAfterPost, submitForm } from '../console/form-state.js';
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

const reauthSchema = z.object({ password: z.string().min(1).max(1024), return_to: z.string().max(200).default('/account/security') }).loose();
const methodSchema = z.object({ method: z.string().min(1).max(64) });
// A typed code, or a passkey's registration response (WebAuthn JSON): each factor parses its own.
const confirmSchema = z.object({ code: z.string().max(16_384).default('') });
const pinSchema = z.object({ code: z.string().max(64).default('') });
const factorParamSchema = z.enum(['totp', 'sms', 'email', 'passkey']);
const renameSchema = z.object({ method: z.string().min(1).max(64), label: z.string().trim().min(1, 'account.error.label').max(60, 'account.error.label') });
const profileSchema = z.object({
  name: z.string().trim().max(200, 'account.error.name'),
  locale: z.enum(['', 'en', 'ko']).transform((value) => value || null),
  time_zone: z.string().max(64, 'account.error.time_zone').refine((zone) => zone === '' || isTimeZone(zone), { message: 'account.error.time_zone' }).transform((zone) => zone || null),
});
const passwordChangeSchema = z.object({ current_password: z.string().max(MAX_PASSWORD_LENGTH), new_password: z.string().max(MAX_PASSWORD_LENGTH), new_password_again: z.string().max(MAX_PASSWORD_LENGTH) });
const deviceSchema = z.object({ device: z.uuid() });

/** Self-service: the user's own sign-in methods. Every change needs the password entered in the last 5 minutes. */
export function createAccountRouter(deps: AccountDeps) {
  const { mfa, clock } = deps;
  const router = new Router({ prefix: '/account' });

  const page = createConsolePage(deps.renderer, deps.defaultLocale);

  const actor = (ctx: Context) => ({ actorId: ctx.state.user!.id, ip: ctx.ip, userAgent: ctx.get('user-agent') });
  const notice = (ctx: Context) => (typeof ctx.query.notice === 'string' && /^[a-z_]{1,40}$/.test(ctx.query.notice) ? ctx.query.notice : undefined);
  const values = (ctx: Context) => (ctx.request.body ?? {}) as Record<string, unknown>;

  /** The password page; its form carries the action the user started, which runs once the password is right. */
  const askPassword = (ctx: Context, returnTo: string, fields: Array<[string, string]>, error?: string, status = 401, minutes?: number) =>
    page(ctx, 'account-reauth', { returnTo, fields, error, minutes }, status);
  /** Runs a change only after a recent password entry; otherwise asks for it and then runs it. */
  const afterReauth = (handler: (ctx: Context, user: UserRow) => Promise<void>) => async (ctx: Context) => {
    const user = ctx.state.user!;
    if (!deps.console.isRecentlyReauthenticated(ctx, user.id, clock.now())) {
      return askPassword(ctx, ctx.path, resumableFields(values(ctx)));
    }
    await handler(ctx, user);
  };
  const ask = (ctx: Context, confirmation: Confirmation) => confirmedOrAsk(ctx, (template, data) => page(ctx, template, data), confirmation);

  const securityPage = async (ctx: Context, failed?: FailedForm) => {
    const user = ctx.state.user!;
    const methods = await mfa.methodsFor(user);
    page(ctx, 'account-security', {
      webPin: await deps.access.webPinStatus(user.id),
      canEnrol: Object.fromEntries((await mfa.enrollableFactors()).map((id) => [id, true])),
      // The nickname is what the user named it; a stored label that only repeats the hint is none.
      methods: methods.map((m) => ({ id: m.id, factor: m.factor, nickname: m.record.label && m.record.label !== m.hint ? m.record.label : undefined, hint: m.hint, detail: m.detail, preferred: m.id === user.preferred_factor_id || (!user.preferred_factor_id && m === methods[0]), addedAt: m.record.confirmed_at, lastUsedAt: m.record.last_used_at })),
      recoveryLeft: await mfa.remainingRecoveryCodes(user.id),
      rememberedDevices: (await deps.rememberedDevices.list(user.id)).map((d) => ({ id: d.id, label: d.label, createdAt: d.created_at, lastUsedAt: d.last_used_at, expiresAt: d.expires_at })),
      enforced: (await mfa.readEnforcement()).value,
      reauthenticated: deps.console.isRecentlyReauthenticated(ctx, user.id, clock.now()),
      notice: failed ? undefined : notice(ctx),
      form: failed,
    });
  };
  /** A security-page form: on a refusal the page comes back with what was typed and the error on its field. */
  const securityForm = (path: string, formId: string, act: (ctx: Context, user: UserRow) => Promise<void>) =>
    router.post(path, afterReauth((ctx, user) => submitForm(ctx, formId, values(ctx), () => act(ctx, user), (failed) => securityPage(ctx, failed))));

  router.use(parseBody(), csrf(), deps.console.requireUser, seeOtherAfterPost, async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });

  router.get('/', (ctx) => ctx.redirect('/account/profile'));

  const profilePage = (ctx: Context, failed?: FailedForm) => {
    const user = ctx.state.user!;
    page(ctx, 'account-profile', { profile: { name: user.name, email: user.email, locale: user.locale ?? '', time_zone: user.time_zone ?? '' }, notice: failed ? undefined : notice(ctx), form: failed });
  };
  router.get('/profile', (ctx) => profilePage(ctx));
  router.post('/profile', (ctx) =>
    submitForm(ctx, 'profile', values(ctx), async () => {
      const form = parseOrRefuse(profileSchema, ctx.request.body);
      await deps.people.queries.users.update(ctx.state.user!.id, form);
      await deps.people.queries.audit.insert({ action: 'user.profile', outcome: 'success', subjectId: ctx.state.user!.id, ...actor(ctx), details: { changed: Object.keys(form) } });
      ctx.redirect('/account/profile?notice=profile_saved');
    }, (failed) => profilePage(ctx, failed)));
  // The current password is itself the re-authentication here (ASVS 2.1.5).
  router.post('/password', (ctx) =>
    submitForm(ctx, 'password', values(ctx), async () => {
      const form = parseOrRefuse(passwordChangeSchema, ctx.request.body);
      if (form.new_password !== form.new_password_again) throw new FormRefusal(400, 'new_password_again', 'account.error.password_mismatch');
      try {
        const current = await deps.providers.provider.Session.get(ctx);
        await changePassword(deps.people, ctx.state.user!, form.current_password, form.new_password, actor(ctx), current.jti);
      } catch (error) {
        const refused = passwordFormError(error);
        if (!refused) throw error;
        const field = (error as AppError).field === 'current_password' || refused.retryAfterSeconds ? 'current_password' : 'new_password';
        throw refused.retryAfterSeconds
          ? new FormRefusal(429, field, 'login.error.throttled_for', { minutes: Math.ceil(refused.retryAfterSeconds / 60), seconds: refused.retryAfterSeconds })
          : new FormRefusal(400, field, refused.message, { detail: refused.detail ?? '' });
      }
      deps.console.markReauthenticated(ctx, ctx.state.user!.id, clock.now());
      ctx.redirect('/account/profile?notice=password_changed');
    }, (failed) => profilePage(ctx, failed)));

  router.get('/security', (ctx) => securityPage(ctx));

  router.post('/reauth', async (ctx) => {
    const user = ctx.state.user!;
    const form = reauthSchema.safeParse(ctx.request.body);
    const body = values(ctx);
    const returnTo = safeReturnTo(typeof body.return_to === 'string' ? body.return_to : '');
    const fields = resumableFields(body);
    if (!form.success) return askPassword(ctx, returnTo, fields, 'login.error.missing', 400);
    const outcome = await authenticateWithPassword(deps.passwordLogin, { email: user.email, password: form.data.password, ip: ctx.ip, userAgent: ctx.get('user-agent') });
    if (!outcome.ok || outcome.user.id !== user.id) {
      if (!outcome.ok && outcome.reason === 'throttled') {
        ctx.set('retry-after', String(outcome.retryAfterSeconds));
        return askPassword(ctx, returnTo, fields, 'login.error.throttled_for', 429, Math.ceil(outcome.retryAfterSeconds / 60));
      }
      return askPassword(ctx, returnTo, fields, 'login.error.invalid', 401);
    }
    deps.console.markReauthenticated(ctx, user.id, clock.now());
    // Back to the action the user started: a change is run now with what they had typed (this request's form token
    // already checked), a page is shown again.
    const action = router.match(`${returnTo}`, 'POST');
    if (returnTo !== '/account/reauth' && action.route) {
      ctx.path = returnTo;
      ctx.request.body = Object.fromEntries([...fields, ['_csrf', body._csrf]]);
      return router.routes()(ctx, async () => undefined);
    }
    ctx.status = 303;
    ctx.redirect(returnTo);
  });

  // Starting an enrolment may send a code (SMS, email): it needs the password too, so it cannot be used to spam.
  const enrolStart = async (ctx: Context, user: UserRow) => {
    const factor = factorParamSchema.safeParse(ctx.params.factor);
    if (!factor.success) throw new AppError(404, 'factor_unavailable');
    const started = await mfa.startEnrolment(user, factor.data, values(ctx));
    if (!started) throw new AppError(404, 'factor_unavailable');
    ctx.redirect(`/account/security/enrol/${factor.data}/${started.pendingId}`);
  };
  router.post('/security/enrol/:factor', afterReauth((ctx, user) => submitForm(ctx, `enrol-${ctx.params.factor}`, values(ctx), async () => {
    try {
      await enrolStart(ctx, user);
    } catch (error) {
      throw enrolmentRefusal(error);
    }
  }, (failed) => securityPage(ctx, failed))));

  const enrolmentPage = async (ctx: Context, pendingId: string, error?: string, status = 200) => {
    const pending = await mfa.pendingEnrolment(ctx.state.user!, pendingId);
    if (!pending) throw new AppError(404, 'enrolment_expired');
    const qr = pending.display.otpauthUri ? await QRCode.toDataURL(pending.display.otpauthUri, { margin: 1, width: 220 }) : undefined;
    const template = pending.display.ceremony ? 'mfa-enrol-passkey' : pending.factor.id === 'totp' ? 'mfa-enrol' : 'mfa-enrol-sent';
    page(ctx, template, {
      action: `/account/security/enrol/${pending.factor.id}/${pendingId}`,
      secret: pending.display.secret?.replace(/(.{4})/g, '$1 ').trim(),
      otpauthUri: pending.display.otpauthUri,
      digits: pending.display.digits,
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

  securityForm('/security/preferred', 'preferred', async (ctx, user) => {
    const form = parseOrRefuse(methodSchema, ctx.request.body);
    if (!(await mfa.setPreferred(user, form.method, actor(ctx)))) throw new FormRefusal(404, undefined, 'account.error.method_not_found');
    ctx.redirect('/account/security?notice=preferred_set');
  });

  securityForm('/security/remove', 'remove', async (ctx, user) => {
    const form = parseOrRefuse(methodSchema, ctx.request.body);
    const method = (await mfa.methodsFor(user)).find((m) => m.id === form.method);
    if (!method) throw new FormRefusal(404, undefined, 'account.error.method_not_found');
    if (!ask(ctx, { title: 'account.remove_title', question: 'account.remove_confirm', params: { method: method.label || method.hint || '' }, button: 'account.remove', back: '/account/security' })) return;
    if (!(await mfa.removeFactor(user, form.method, actor(ctx)))) throw new FormRefusal(404, undefined, 'account.error.method_not_found');
    ctx.redirect('/account/security?notice=factor_removed');
  });

  securityForm('/security/rename', 'rename', async (ctx, user) => {
    const form = parseOrRefuse(renameSchema, ctx.request.body);
    if (!(await mfa.renameMethod(user, form.method, form.label, actor(ctx)))) throw new FormRefusal(404, undefined, 'account.error.method_not_found');
    ctx.redirect('/account/security?notice=factor_renamed');
  });

  securityForm('/security/recovery-codes', 'recovery', async (ctx, user) => {
    if (!ask(ctx, { title: 'account.regenerate', question: 'account.regenerate_confirm', button: 'account.regenerate', back: '/account/security' })) return;
    const codes = await mfa.regenerateRecoveryCodes(user, actor(ctx));
    if (!codes) throw new FormRefusal(409, undefined, 'account.error.no_factors');
    page(ctx, 'recovery-codes', { codes, continueAction: '/account/security/done' });
  });

  // A door PIN serves at sign-in only once its owner opts in, naming it by its digits; the access admins who issue
  // PINs cannot turn one into a user's second factor.
  securityForm('/security/pin', 'pin', async (ctx, user) => {
    const form = pinSchema.parse(ctx.request.body);
    try {
      await deps.access.enableWebPin(user.id, form.code, actor(ctx));
    } catch (error) {
      if (error instanceof z.ZodError) throw new FormRefusal(400, 'code', 'account.error.pin_not_found');
      if (!(error instanceof AppError) || (error.status !== 400 && error.status !== 429)) throw error;
      throw new FormRefusal(error.status, 'code', `account.error.${error.code}`, { min: (await deps.access.webPinStatus(user.id)).minLength });
    }
    ctx.redirect('/account/security?notice=pin_enabled');
  });

  securityForm('/security/pin/disable', 'pin-disable', async (ctx, user) => {
    await deps.access.disableWebPin(user.id, actor(ctx));
    ctx.redirect('/account/security?notice=pin_disabled');
  });

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

  securityForm('/security/disable', 'disable', async (ctx, user) => {
    if ((await mfa.readEnforcement()).value) {
      await deps.people.queries.audit.insert({ action: 'mfa.disable', outcome: 'denied', subjectId: user.id, ...actor(ctx), details: { reason: 'enforced' } });
      throw new FormRefusal(409, undefined, 'account.error.mfa_enforced');
    }
    if (!ask(ctx, { title: 'account.disable', question: 'account.disable_confirm', button: 'account.disable', back: '/account/security' })) return;
    await mfa.disable(user, actor(ctx));
    ctx.redirect('/account/security?notice=mfa_disabled');
  });

  return router;
}

/** The fields of a form interrupted by the password page, to post again once it is right: never a secret. */
function resumableFields(body: Record<string, unknown>): Array<[string, string]> {
  return Object.entries(keptValues(body)).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && entry[0] !== 'return_to' && entry[0] !== 'confirm');
}

/** Where the password page may send the user back: a path of this console, on this origin. */
export function safeReturnTo(value: string): string {
  return /^\/account(\/[A-Za-z0-9_-]+)*$/.test(value) ? value : '/account/security';
}

/** Why an enrolment could not start, said on the field the user can fix, or above the form when it is not theirs. */
function enrolmentRefusal(error: unknown): unknown {
  if (!(error instanceof AppError)) return error;
  if (error.code === 'invalid_phone') return new FormRefusal(400, 'phone', 'error.invalid_phone');
  if (error.code === 'invalid_email') return new FormRefusal(400, 'email', 'error.invalid_email');
  if (error.code === 'phone_rejected') return new FormRefusal(400, 'phone', 'account.error.phone_rejected');
  if (error.code === 'email_rejected') return new FormRefusal(400, 'email', 'error.invalid_email');
  if (error.code === 'delivery_failed') return new FormRefusal(503, undefined, 'account.error.delivery_failed');
  if (error.code === 'send_rate_limited') return new FormRefusal(429, error.field, 'account.error.send_rate_limited');
  return error;
}
