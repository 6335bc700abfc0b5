import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import { AppError } from '../errors.js';
import { type Locale, pickLocale } from '../i18n.js';
import { accepts } from '../interactions/sign-in-flow.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import { passwordFormError } from './password-errors.js';
import { RESET_CODE_TTL_SECONDS, type PasswordResets } from './password-reset.js';

export interface PasswordResetRouteDeps {
  resets: PasswordResets;
  providers: ProviderHolder;
  renderer: PageRenderer;
  queries: Queries;
  clock: Clock;
  defaultLocale: Locale;
}

const requestForm = z.object({ email: z.email().max(320) });
const codeForm = z
  .object({
    email: z.email().max(320),
    code: z.string().trim().min(1).max(32),
    password: z.string().min(1).max(1024),
    password_again: z.string().max(1024),
  })
  .refine((form) => form.password === form.password_again, { path: ['password_again'] });
const FIELD_ERRORS: Record<string, string> = {
  email: 'reset.error.email',
  code: 'reset.error.code',
  password: 'account.error.password_short',
  password_again: 'account.error.password_mismatch',
};

type FormError = { field?: string; key: string; vars?: Record<string, string | number> };
/** Where a reset started: a sign-in (the user goes back to it afterwards) or the page linked from the mail. */
interface Place {
  locale: Locale;
  /** The URL of this flow's first page; its other pages are under it. */
  action: string;
  /** Back to signing in. */
  back: string;
  uiLocales?: unknown;
}

/**
 * Forgotten password pages, twice: inside a sign-in (`/interaction/:uid/forgot`, reached from the login page, so the
 * user returns to the app afterwards) and on their own (`/password-reset`, where the mail's link and an admin's code
 * lead). The logic is in password-reset.ts; these parse, call it and render.
 */
export function createPasswordResetRouter(deps: PasswordResetRouteDeps) {
  const router = new Router();

  const interactionPlace = async (ctx: Context): Promise<Place> => {
    const interaction = await deps.providers.provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== ctx.params.uid || interaction.prompt.name !== 'login') throw new AppError(400, 'interaction_step');
    // Only before the sign-in has a user: a reset never changes whose sign-in it is, nor skips a step of it.
    const signIn = await deps.queries.signIns.find(interaction.uid, deps.clock.now());
    if (!accepts(signIn?.step ?? 'started', 'reset_password')) throw new AppError(400, 'interaction_step');
    const uiLocales = interaction.params.ui_locales;
    const locale = pickLocale({ uiLocales, acceptsLanguages: (...l) => ctx.acceptsLanguages(...l), fallback: deps.defaultLocale });
    return { locale, action: `/interaction/${interaction.uid}/forgot`, back: `/interaction/${interaction.uid}`, uiLocales };
  };
  const standalonePlace = async (ctx: Context): Promise<Place> => ({
    locale: pickLocale({ acceptsLanguages: (...l) => ctx.acceptsLanguages(...l), fallback: deps.defaultLocale }),
    action: '/password-reset',
    back: '/account',
  });

  const page = (ctx: Context, place: Place, data: { step: 'request' | 'code' | 'done'; values?: Record<string, unknown>; error?: FormError; sent?: boolean }, status = 200) => {
    ctx.state.locale = place.locale;
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = deps.renderer.render('password-reset', place.locale, { values: {}, ...data, action: place.action, back: place.back, minutes: RESET_CODE_TTL_SECONDS / 60, csrf: ctx.state.csrf });
  };
  const typed = (ctx: Context) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const text = (value: unknown) => (typeof value === 'string' ? value.slice(0, 320) : '');
    return { email: text(body.email), code: text(body.code) };
  };
  const invalid = (issues: z.ZodError['issues']): FormError => {
    const field = String(issues[0]?.path[0] ?? 'email');
    return { field, key: FIELD_ERRORS[field] ?? 'reset.error.email' };
  };
  const throttled = (ctx: Context, retryAfterSeconds: number): FormError => {
    ctx.set('retry-after', String(retryAfterSeconds));
    return { key: 'reset.error.throttled', vars: { minutes: Math.max(1, Math.ceil(retryAfterSeconds / 60)) } };
  };

  const mount = (path: string, placeOf: (ctx: Context) => Promise<Place>, done: (ctx: Context, place: Place) => void) => {
    const available = (ctx: Context) => {
      if (!deps.resets.available) throw new AppError(404, 'not_found');
      return placeOf(ctx);
    };
    router.get(path, async (ctx) => page(ctx, await available(ctx), { step: 'request' }));
    router.get(`${path}/code`, async (ctx) => page(ctx, await available(ctx), { step: 'code' }));
    router.post(path, async (ctx) => {
      const place = await available(ctx);
      const form = requestForm.safeParse(ctx.request.body);
      if (!form.success) return page(ctx, place, { step: 'request', values: typed(ctx), error: invalid(form.error.issues) }, 400);
      const localeFor = (user: { locale: string | null }) =>
        pickLocale({ uiLocales: place.uiLocales, accountLocale: user.locale, acceptsLanguages: (...l) => ctx.acceptsLanguages(...l), fallback: deps.defaultLocale });
      const outcome = await deps.resets.request(form.data.email, localeFor, { ip: ctx.ip, userAgent: ctx.get('user-agent') });
      if (!outcome.ok) return page(ctx, place, { step: 'request', values: typed(ctx), error: throttled(ctx, outcome.retryAfterSeconds) }, 429);
      // The same answer whether or not the address has an account.
      page(ctx, place, { step: 'code', values: { email: form.data.email }, sent: true });
    });
    router.post(`${path}/code`, async (ctx) => {
      const place = await available(ctx);
      const form = codeForm.safeParse(ctx.request.body);
      if (!form.success) return page(ctx, place, { step: 'code', values: typed(ctx), error: invalid(form.error.issues) }, 400);
      let outcome;
      try {
        outcome = await deps.resets.complete(form.data, { ip: ctx.ip, userAgent: ctx.get('user-agent') });
      } catch (error) {
        const refused = passwordFormError(error);
        if (!refused) throw error;
        return page(ctx, place, { step: 'code', values: typed(ctx), error: { field: 'password', key: refused.message } }, 400);
      }
      if (!outcome.ok) {
        const error = outcome.reason === 'throttled' ? throttled(ctx, outcome.retryAfterSeconds) : { field: 'code', key: 'reset.error.code' };
        return page(ctx, place, { step: 'code', values: { email: form.data.email }, error }, outcome.reason === 'throttled' ? 429 : 401);
      }
      ctx.status = 303;
      done(ctx, place);
    });
  };

  router.use(['/interaction/:uid/forgot', '/password-reset'], async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  }, parseBody(), csrf());
  // After a reset inside a sign-in, the user signs in again with the new password: the ordinary sign-in, second
  // factor included. The reset itself never counts as having signed in.
  mount('/interaction/:uid/forgot', interactionPlace, (ctx, place) => ctx.redirect(`${place.back}?notice=password_changed`));
  mount('/password-reset', standalonePlace, (ctx) => ctx.redirect('/password-reset/done'));
  router.get('/password-reset/done', async (ctx) => page(ctx, await standalonePlace(ctx), { step: 'done' }));
  return router;
}
