import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { createConsolePage } from '../console/page.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Locale } from '../i18n.js';
import type { MfaService } from '../mfa/service.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';

export interface AdminDeps {
  console: ConsoleSession;
  providers: ProviderHolder;
  queries: Queries;
  mfa: MfaService;
  renderer: PageRenderer;
  defaultLocale: Locale;
}

export const enforcementSchema = z.object({ enabled: z.boolean({ message: 'expected true or false' }) });
const enforcementFormSchema = z.object({ enforce: z.literal('on').optional(), version: z.coerce.number().int().min(0) });
const searchSchema = z.object({ q: z.string().trim().max(320).default('') });
const userIdSchema = z.string().uuid({ message: 'expected a user id' });

/**
 * The admin API accepts access tokens only from clients registered for it (`latchkey_admin_api`), and acts with
 * the roles of the user the token was issued to. A token an admin handed to any other app does not reach it.
 */
export function adminBearer(providers: ProviderHolder, queries: Queries): Middleware {
  return async (ctx, next) => {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]{10,1024})$/.exec(ctx.get('authorization'));
    if (!match) {
      ctx.set('www-authenticate', 'Bearer');
      throw new AppError(401, 'invalid_token', 'a bearer access token is required');
    }
    const provider = providers.provider;
    const token = await provider.AccessToken.find(match[1]!);
    const client = token && !token.isExpired ? await provider.Client.find(token.clientId!) : undefined;
    if (!token || !client) {
      ctx.set('www-authenticate', 'Bearer error="invalid_token"');
      throw new AppError(401, 'invalid_token', 'the access token is invalid or expired');
    }
    const user = token.accountId ? await queries.users.findById(token.accountId) : undefined;
    if (client.metadata().latchkey_admin_api !== true || !user || user.status !== 'active') {
      throw new AppError(403, 'forbidden', 'this token may not use the admin API');
    }
    ctx.state.user = user;
    await next();
  };
}

/** Lets the request on only if the user holds one of these roles. */
export function requireRoles(...roles: string[]): Middleware {
  return async (ctx, next) => {
    if (!roles.some((role) => ctx.state.user?.roles.includes(role))) throw new AppError(403, 'forbidden', `needs one of the roles ${roles.join(', ')}`);
    await next();
  };
}

export function createAdminRouter(deps: AdminDeps) {
  const { mfa, queries } = deps;
  const actor = (ctx: Context) => ({ actorId: ctx.state.user!.id, ip: ctx.ip, userAgent: ctx.get('user-agent') });
  const findUser = async (id: string): Promise<UserRow> => {
    const parsed = userIdSchema.safeParse(id);
    const user = parsed.success ? await queries.users.findById(parsed.data) : undefined;
    if (!user) throw new AppError(404, 'user_not_found', 'no such user', 'id');
    return user;
  };

  const pages = new Router({ prefix: '/admin' });
  const page = createConsolePage(deps.renderer, deps.defaultLocale);
  pages.use(parseBody(), csrf(), deps.console.requireUser, deps.console.requireRole('super_admin'), async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });

  pages.get('/', async (ctx) => {
    const { q } = searchSchema.parse(ctx.query);
    const found = q ? await queries.users.findByEmail(q) : undefined;
    const enforcement = await mfa.readEnforcement();
    page(ctx, 'admin-security', {
      enforced: enforcement.value,
      version: enforcement.version,
      q,
      found: found && { id: found.id, email: found.email, name: found.name, factors: (await mfa.methodsFor(found)).map((m) => m.factor) },
      notice: typeof ctx.query.notice === 'string' ? ctx.query.notice : undefined,
    });
  });

  pages.post('/settings/mfa', async (ctx) => {
    // A bad form is a ZodError: the error handler answers 400 naming the field.
    const form = enforcementFormSchema.parse(ctx.request.body);
    const saved = await mfa.setEnforcement(form.enforce === 'on', actor(ctx), form.version);
    ctx.redirect(saved ? '/admin?notice=settings_saved' : '/admin?notice=settings_conflict');
  });

  pages.get('/users/:id/reset-mfa', async (ctx) => {
    const user = await findUser(ctx.params.id!);
    page(ctx, 'admin-reset-mfa', { user: { id: user.id, email: user.email } });
  });

  pages.post('/users/:id/reset-mfa', async (ctx) => {
    const user = await findUser(ctx.params.id!);
    await mfa.reset(user, actor(ctx));
    ctx.redirect(`/admin?notice=mfa_reset&q=${encodeURIComponent(user.email)}`);
  });

  const api = new Router({ prefix: '/api/admin' });
  api.use(parseBody(), adminBearer(deps.providers, queries), requireRoles('super_admin'));

  api.get('/settings/enforce-mfa', async (ctx) => {
    const enforcement = await mfa.readEnforcement();
    ctx.set('etag', `"${enforcement.version}"`);
    ctx.body = { enabled: enforcement.value };
  });

  api.put('/settings/enforce-mfa', async (ctx) => {
    const body = enforcementSchema.parse(ctx.request.body);
    const ifMatch = ctx.get('if-match').replace(/"/g, '');
    const expected = ifMatch ? Number(ifMatch) : undefined;
    if (ifMatch && !Number.isInteger(expected)) throw new AppError(400, 'invalid_request', 'If-Match must be an ETag from GET', 'If-Match');
    const saved = await mfa.setEnforcement(body.enabled, actor(ctx), expected);
    if (!saved) throw new AppError(412, 'precondition_failed', 'the setting changed since it was read');
    ctx.set('etag', `"${saved.version}"`);
    ctx.body = { enabled: saved.enabled };
  });

  api.delete('/users/:id/mfa', async (ctx) => {
    const user = await findUser(ctx.params.id!);
    await mfa.reset(user, actor(ctx));
    ctx.status = 204;
  });

  return { pages, api };
}
