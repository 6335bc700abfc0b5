import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { SETTING_NAMES, type SettingName } from '../config/settings.js';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { createConsolePage } from '../console/page.js';
import { AppError } from '../errors.js';
import type { Locale } from '../i18n.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import type { AdminApi } from './api/index.js';
import { settingOperationId } from './api/settings.js';
import { ROLES } from './users.js';
import type { Queries } from '../db/index.js';

export interface AdminDeps {
  console: ConsoleSession;
  api: AdminApi;
  queries: Queries;
  renderer: PageRenderer;
  defaultLocale: Locale;
}

const checkbox = z.literal('on').optional().transform((value) => value === 'on');
const versionField = z.coerce.number().int().min(0);
/** Form fields become the API's JSON bodies; these say how, per setting. */
const settingForms: { [N in SettingName]: z.ZodType } = {
  'enforce-mfa': z.object({ enforce: checkbox }).transform((form) => ({ enabled: form.enforce })),
  factors: z.object({ enabled: z.union([z.string(), z.array(z.string())]).optional() }).transform((form) => ({ enabled: [form.enabled ?? []].flat() })),
  'password-policy': z.object({ min_length: z.coerce.number() }),
  lockout: z.object({
    login_account_failures: z.coerce.number(),
    login_ip_failures: z.coerce.number(),
    login_window_seconds: z.coerce.number(),
    mfa_account_failures: z.coerce.number(),
  }),
};
const settingParam = z.enum(SETTING_NAMES as [SettingName, ...SettingName[]]);
const WEEKDAYS = [1, 2, 3, 4, 5, 6, 0];

/**
 * The admin console: pages over the same operations as the API (same role checks, same validation), for anyone
 * holding an admin role; each page shows what that role may see and do.
 */
export function createAdminRouter(deps: AdminDeps) {
  const { api } = deps;
  const pages = new Router({ prefix: '/admin' });
  const page = createConsolePage(deps.renderer, deps.defaultLocale);
  const call = (ctx: Context, id: string, raw: Parameters<AdminApi['call']>[2] = {}) => api.call(id, ctx, raw);
  const may = (ctx: Context, id: string) => api.mayCall(id, ctx.state.user!);
  const notice = (ctx: Context) => (typeof ctx.query.notice === 'string' && /^[a-z_]{1,40}$/.test(ctx.query.notice) ? ctx.query.notice : undefined);
  const anyAdminRole: Middleware = async (ctx, next) => {
    if (!ROLES.some((role) => ctx.state.user!.roles.includes(role))) throw new AppError(403, 'forbidden');
    ctx.state.nav = {
      users: may(ctx, 'listUsers'),
      clients: may(ctx, 'listClients'),
      settings: may(ctx, 'listSettings'),
      audit: may(ctx, 'listAuditEvents'),
      doors: may(ctx, 'listSites') || may(ctx, 'importAccessCsv'),
    };
    ctx.set('cache-control', 'no-store');
    await next();
  };
  const render = (ctx: Context, template: string, data: Record<string, unknown>, status = 200) =>
    page(ctx, template, { ...data, nav: ctx.state.nav, notice: notice(ctx) }, status);

  // The CSV import page takes a whole file in a form field: a larger limit for that one route.
  const largeForm = bodyParser({ enableTypes: ['form'], formLimit: '10mb' }) as unknown as Middleware;
  const smallBody = parseBody();
  pages.use(async (ctx, next) => (ctx.path === '/admin/doors/import' ? largeForm(ctx, next) : smallBody(ctx, next)));
  pages.use(csrf(), deps.console.requireUser, anyAdminRole);

  pages.get('/', (ctx) => {
    const nav = ctx.state.nav as Record<string, boolean>;
    ctx.redirect(nav.users ? '/admin/users' : nav.audit ? '/admin/audit' : nav.doors ? '/admin/doors' : '/account');
  });

  // Users.
  pages.get('/users', async (ctx) => {
    const list = (await call(ctx, 'listUsers', { query: ctx.query })).body as { users: unknown[]; next_cursor: string | null };
    render(ctx, 'admin-users', { ...list, q: typeof ctx.query.q === 'string' ? ctx.query.q : '', canInvite: may(ctx, 'inviteUser'), roles: ROLES });
  });
  pages.post('/users/invite', async (ctx) => {
    const form = z.object({ email: z.string(), name: z.string().default(''), roles: z.union([z.string(), z.array(z.string())]).optional() }).parse(ctx.request.body);
    const invited = (await call(ctx, 'inviteUser', { body: { email: form.email, name: form.name, roles: [form.roles ?? []].flat() } })).body as { user: { id: string } };
    ctx.redirect(`/admin/users/${invited.user.id}?notice=invited`);
  });
  pages.get('/users/:id', async (ctx) => {
    const params = { id: ctx.params.id, userId: ctx.params.id };
    const user = (await call(ctx, 'getUser', { params })).body;
    const doorCodes = may(ctx, 'listAccessCodes') ? ((await call(ctx, 'listAccessCodes', { params })).body as { codes: unknown[] }).codes : undefined;
    const credentials = may(ctx, 'listCredentials') ? ((await call(ctx, 'listCredentials', { params })).body as { credentials: unknown[] }).credentials : undefined;
    render(ctx, 'admin-user', {
      user,
      doorCodes,
      credentials,
      roles: ROLES,
      can: Object.fromEntries(['updateUser', 'setUserRoles', 'resetUserMfa', 'revokeUserSessions', 'addMfaCode', 'addCredential'].map((id) => [id, may(ctx, id)])),
      generated: typeof ctx.query.generated === 'string' ? ctx.query.generated : undefined,
    });
  });
  pages.post('/users/:id/status', async (ctx) => {
    const { status } = z.object({ status: z.enum(['active', 'disabled']) }).parse(ctx.request.body);
    await call(ctx, 'updateUser', { params: ctx.params, body: { status } });
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=${status === 'active' ? 'user_enabled' : 'user_disabled'}`);
  });
  pages.post('/users/:id/roles', async (ctx) => {
    const form = z.object({ roles: z.union([z.string(), z.array(z.string())]).optional() }).parse(ctx.request.body);
    await call(ctx, 'setUserRoles', { params: ctx.params, body: { roles: [form.roles ?? []].flat() } });
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=roles_saved`);
  });
  pages.post('/users/:id/sessions', async (ctx) => {
    await call(ctx, 'revokeUserSessions', { params: ctx.params });
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=sessions_revoked`);
  });
  pages.get('/users/:id/reset-mfa', async (ctx) => {
    const user = (await call(ctx, 'getUser', { params: ctx.params })).body;
    if (!may(ctx, 'resetUserMfa')) throw new AppError(403, 'forbidden');
    render(ctx, 'admin-reset-mfa', { user });
  });
  pages.post('/users/:id/reset-mfa', async (ctx) => {
    await call(ctx, 'resetUserMfa', { params: ctx.params });
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=mfa_reset`);
  });
  pages.post('/users/:id/mfa-codes', async (ctx) => {
    const form = z.object({ length: z.coerce.number() }).parse(ctx.request.body);
    const code = (await call(ctx, 'addMfaCode', { params: { userId: ctx.params.id }, body: { generate: { length: form.length } } })).body as { code: string };
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=code_generated&generated=${encodeURIComponent(code.code)}`);
  });
  pages.post('/users/:id/credentials', async (ctx) => {
    await call(ctx, 'addCredential', { params: { userId: ctx.params.id }, body: ctx.request.body });
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=credential_added`);
  });

  // Clients.
  pages.get('/clients', async (ctx) => {
    const list = (await call(ctx, 'listClients', { query: ctx.query })).body as Record<string, unknown>;
    render(ctx, 'admin-clients', { ...list, canEdit: may(ctx, 'registerClient') });
  });
  pages.post('/clients', async (ctx) => {
    const form = z.object({ client_name: z.string(), redirect_uri: z.string(), require_mfa: checkbox, first_party: checkbox, kind: z.enum(['web', 'public', 'machine']) }).parse(ctx.request.body);
    const body = {
      client_name: form.client_name,
      require_mfa: form.require_mfa,
      first_party: form.first_party,
      ...(form.kind === 'machine'
        ? { grant_types: ['client_credentials'] }
        : { redirect_uris: form.redirect_uri ? [form.redirect_uri] : [], ...(form.kind === 'public' ? { token_endpoint_auth_method: 'none' } : {}) }),
    };
    const registered = (await call(ctx, 'registerClient', { body })).body as { client: unknown; client_secret: string | null };
    render(ctx, 'admin-client-secret', registered, 201);
  });
  pages.post('/clients/:clientId/require-mfa', async (ctx) => {
    const form = z.object({ require_mfa: checkbox }).parse(ctx.request.body);
    await call(ctx, 'editClient', { params: ctx.params, body: { require_mfa: form.require_mfa } });
    ctx.redirect('/admin/clients?notice=client_saved');
  });
  pages.post('/clients/:clientId/secret', async (ctx) => {
    const rotated = (await call(ctx, 'rotateClientSecret', { params: ctx.params })).body as { client_secret: string };
    render(ctx, 'admin-client-secret', { client: (await call(ctx, 'getClient', { params: ctx.params })).body, client_secret: rotated.client_secret });
  });
  pages.post('/clients/:clientId/delete', async (ctx) => {
    await call(ctx, 'deleteClient', { params: ctx.params });
    ctx.redirect('/admin/clients?notice=client_deleted');
  });

  // Settings: each form carries the version it was read at, so a save over someone else's change is refused.
  pages.get('/settings', async (ctx) => {
    render(ctx, 'admin-settings', { settings: (await call(ctx, 'listSettings')).body, canEdit: may(ctx, 'putEnforceMfaSetting'), factors: api.builtFactors });
  });
  pages.post('/settings/:name', async (ctx) => {
    const name = settingParam.parse(ctx.params.name);
    const { version } = z.object({ version: versionField }).parse(ctx.request.body);
    const body = settingForms[name].parse(ctx.request.body);
    ctx.request.headers['if-match'] = `"${version}"`;
    try {
      await call(ctx, settingOperationId('put', name), { body });
    } catch (error) {
      if ((error as AppError).status === 412) return ctx.redirect('/admin/settings?notice=settings_conflict');
      throw error;
    }
    ctx.redirect('/admin/settings?notice=settings_saved');
  });

  // Audit log.
  pages.get('/audit', async (ctx) => {
    const query = Object.fromEntries(Object.entries(ctx.query).filter(([, value]) => value !== ''));
    const list = (await call(ctx, 'listAuditEvents', { query })).body as Record<string, unknown>;
    const exportQuery = new URLSearchParams(Object.entries(query).filter(([key]) => key !== 'cursor') as Array<[string, string]>).toString();
    render(ctx, 'admin-audit', { ...list, filter: query, exportQuery });
  });
  pages.get('/audit/export.csv', async (ctx) => {
    const reply = await call(ctx, 'exportAuditEvents', { query: Object.fromEntries(Object.entries(ctx.query).filter(([, value]) => value !== '')) });
    ctx.body = reply.body;
  });

  // Doors.
  pages.get('/doors', async (ctx) => {
    const sites = may(ctx, 'listSites') ? ((await call(ctx, 'listSites')).body as { sites: unknown[] }).sites : [];
    render(ctx, 'admin-doors', { sites, canImport: may(ctx, 'importAccessCsv') });
  });
  pages.get('/doors/sites/:siteId', async (ctx) => {
    // The operation finds the site and checks the role first: after it, the id is a site this user may see.
    const detail = (await call(ctx, 'getSite', { params: ctx.params })).body;
    const site = await deps.queries.access.findSite(ctx.params.siteId!);
    render(ctx, 'admin-site', { site, detail, weekdays: WEEKDAYS });
  });
  pages.get('/doors/import', (ctx) => render(ctx, 'admin-import', { csv: '' }));
  pages.post('/doors/import', async (ctx) => {
    const form = z.object({ csv: z.string().max(10 * 1024 * 1024), dry_run: checkbox }).parse(ctx.request.body);
    const reply = await call(ctx, 'importAccessCsv', { query: { dry_run: String(form.dry_run) }, body: form.csv });
    render(ctx, 'admin-import', { csv: form.dry_run || reply.status !== 200 ? form.csv : '', report: reply.body }, reply.status);
  });

  return pages;
}
