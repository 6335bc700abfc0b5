import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { createConsolePage } from '../console/page.js';
import { AppError } from '../errors.js';
import { type Locale, pickLocale } from '../i18n.js';
import { revokeSessions, type PeopleDeps } from '../admin/users.js';
import { rememberedDeviceIds } from '../interactions/remembered-device.js';
import { browserSession, forgetBrowserSession } from '../oidc/browser-session.js';
import type { ClientStore } from '../oidc/clients.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import { describeDevice, listConnectedApps, listSessions, revokeConnectedApp, signOutSession } from './sessions.js';

export interface SessionsRouteDeps {
  console: ConsoleSession;
  renderer: PageRenderer;
  defaultLocale: Locale;
  people: PeopleDeps;
  providers: ProviderHolder;
  clients: Pick<ClientStore, 'findMetadata'>;
}

// Session uids and client ids are short URL-safe strings (nanoid; clients.ts's client_id rule).
const sessionFormSchema = z.object({ session: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) });
const appFormSchema = z.object({ client_id: z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/) });
const RECENT_SIGN_INS = 10;
const SIGNED_OUT_PAGE = '/account/signed-out';

/**
 * The user's sessions and connected apps (`/account/sessions`), and signing out from any console page. Every
 * change names its session or app in a form, is looked up among the signed-in user's own, and is audited.
 */
export function createSessionsRouters(deps: SessionsRouteDeps) {
  const { people } = deps;
  const page = createConsolePage(deps.renderer, deps.defaultLocale);
  const actor = (ctx: Context) => ({ actorId: ctx.state.user?.id ?? null, ip: ctx.ip, userAgent: ctx.get('user-agent') });
  const clientName = async (clientId: string) => ((await deps.clients.findMetadata(clientId))?.client_name as string | undefined) ?? clientId;

  /** Ends this browser's session (its apps' tokens with it) and forgets its cookies. */
  const signOutHere = async (ctx: Context) => {
    const here = await browserSession(deps.providers, ctx);
    if (here.accountId) await signOutSession(people, here.accountId, here.uid, { ...actor(ctx), actorId: here.accountId }, true);
    forgetBrowserSession(deps.providers, ctx);
    deps.console.forgetReauthentication(ctx);
    ctx.status = 303;
    ctx.redirect(SIGNED_OUT_PAGE);
  };

  const account = new Router({ prefix: '/account' });
  account.use(parseBody(), csrf(), deps.console.requireUser, async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });

  account.get('/sessions', async (ctx) => {
    const user = ctx.state.user!;
    const here = await browserSession(deps.providers, ctx);
    const sessions = await listSessions(people, user.id, here.id);
    const names = new Map(await Promise.all([...new Set(sessions.flatMap((s) => s.clientIds))].map(async (id) => [id, await clientName(id)] as const)));
    const signIns = await people.queries.audit.search({ userId: user.id, action: 'login.password', limit: RECENT_SIGN_INS });
    page(ctx, 'account-sessions', {
      sessions: sessions.map((s) => ({ ...s, apps: s.clientIds.map((id) => names.get(id)!) })),
      apps: await listConnectedApps(people, user.id),
      signIns: signIns.map((e) => ({ at: e.occurred_at, outcome: e.outcome, ip: e.ip, device: describeDevice(e.user_agent) })),
      notice: typeof ctx.query.notice === 'string' ? ctx.query.notice : undefined,
    });
  });

  account.post('/sessions/sign-out-others', async (ctx) => {
    const here = await browserSession(deps.providers, ctx);
    await revokeSessions(people, ctx.state.user!, actor(ctx), { sessionId: here.id, deviceIds: rememberedDeviceIds(ctx) });
    ctx.redirect('/account/sessions?notice=signed_out_others');
  });

  account.post('/sessions/sign-out', async (ctx) => {
    const form = sessionFormSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'invalid_request', 'expected a session', 'session');
    const here = await browserSession(deps.providers, ctx);
    if (form.data.session === here.uid) return signOutHere(ctx);
    if (!(await signOutSession(people, ctx.state.user!.id, form.data.session, actor(ctx)))) throw new AppError(404, 'session_not_found', 'no such session', 'session');
    ctx.redirect('/account/sessions?notice=signed_out_session');
  });

  account.post('/apps/revoke', async (ctx) => {
    const form = appFormSchema.safeParse(ctx.request.body);
    if (!form.success) throw new AppError(400, 'invalid_request', 'expected an app', 'client_id');
    if (!(await revokeConnectedApp(people, ctx.state.user!.id, form.data.client_id, actor(ctx)))) throw new AppError(404, 'app_not_found', 'no such app', 'client_id');
    ctx.redirect('/account/sessions?notice=app_revoked');
  });

  // Signing out needs no more than the session it ends: a user asked to change their password or to step up may
  // still leave. The form token keeps other sites from signing anyone out.
  const signOut = new Router({ prefix: '/account' });
  signOut.use(parseBody(), csrf());
  signOut.post('/sign-out', signOutHere);
  signOut.get('/signed-out', (ctx) => {
    const locale = pickLocale({ uiLocales: ctx.query.ui_locales, acceptsLanguages: (...langs) => ctx.acceptsLanguages(...langs), fallback: deps.defaultLocale });
    ctx.state.locale = locale;
    ctx.set('cache-control', 'no-store');
    ctx.type = 'html';
    ctx.body = deps.renderer.render('logged-out', locale, { signInAgain: '/account' });
  });

  return [signOut, account] as const;
}
