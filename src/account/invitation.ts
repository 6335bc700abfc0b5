import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { acceptInvitation, findInvitation, type PeopleDeps } from '../admin/users.js';
import { passwordFormError } from './password-errors.js';
import { AppError } from '../errors.js';
import { type Locale, pickLocale } from '../i18n.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import { MAX_PASSWORD_LENGTH } from '../security/password-policy.js';

const tokenSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const TOKEN_IN_PATH = /^\/invitation\/(?!accepted\/?$)[^/]+/;
const formSchema = z.object({ password: z.string().max(MAX_PASSWORD_LENGTH), password_again: z.string().max(MAX_PASSWORD_LENGTH) });

/** The page an invited user opens from their email to choose a password: the link works once, for 7 days. */
export function createInvitationRouter(deps: { people: PeopleDeps; renderer: PageRenderer; defaultLocale: Locale }) {
  const router = new Router({ prefix: '/invitation' });
  // The token is in the path: it stays out of the request log (first, so that a body or CSRF refusal is logged
  // without it too) and out of Referer headers sent to anything the page links to.
  router.use(async (ctx, next) => {
    ctx.state.loggedPath = ctx.path.replace(TOKEN_IN_PATH, '/invitation/:token');
    ctx.set('referrer-policy', 'no-referrer');
    await next();
  });
  router.use(parseBody(), csrf(), async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });
  const render = (ctx: Context, template: string, data: Record<string, unknown>, accountLocale: string | null = null, status = 200) => {
    const locale = pickLocale({ uiLocales: ctx.query.ui_locales, accountLocale, acceptsLanguages: (...l) => ctx.acceptsLanguages(...l), fallback: deps.defaultLocale });
    ctx.state.locale = locale;
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = deps.renderer.render(template, locale, { ...data, csrf: ctx.state.csrf });
  };
  const invited = async (ctx: Context) => {
    const token = tokenSchema.safeParse(ctx.params.token);
    const user = token.success ? await findInvitation(deps.people, token.data) : undefined;
    if (!user) throw new AppError(404, 'invitation_invalid');
    return { user, token: token.data! };
  };

  router.get('/accepted', (ctx) => render(ctx, 'invitation-accepted', {}));
  router.get('/:token', async (ctx) => {
    const { user } = await invited(ctx);
    render(ctx, 'invitation', { email: user.email, action: ctx.path }, user.locale);
  });
  router.post('/:token', async (ctx) => {
    const { user, token } = await invited(ctx);
    const form = formSchema.parse(ctx.request.body);
    const again = (error: string, detail?: string) => render(ctx, 'invitation', { email: user.email, action: ctx.path, error, detail }, user.locale, 400);
    if (form.password !== form.password_again) return again('account.error.password_mismatch');
    try {
      if (!(await acceptInvitation(deps.people, token, form.password, { actorId: user.id, ip: ctx.ip, userAgent: ctx.get('user-agent') }))) throw new AppError(404, 'invitation_invalid');
    } catch (error) {
      const refused = passwordFormError(error);
      if (!refused) throw error;
      return again(refused.message, refused.detail);
    }
    ctx.status = 303;
    ctx.redirect('/invitation/accepted');
  });
  return router;
}
