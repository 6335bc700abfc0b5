import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { createConsolePage } from '../console/page.js';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { AppError } from '../errors.js';
import type { Locale } from '../i18n.js';
import type { MfaService } from '../mfa/service.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';

export interface AdminDeps {
  console: ConsoleSession;
  queries: Queries;
  mfa: MfaService;
  renderer: PageRenderer;
  defaultLocale: Locale;
}

const enforcementFormSchema = z.object({ enforce: z.literal('on').optional(), version: z.coerce.number().int().min(0) });
const searchSchema = z.object({ q: z.string().trim().max(320).default('') });
const userIdSchema = z.string().uuid({ message: 'expected a user id' });

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

  return pages;
}
