import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { CSV_TEMPLATE } from '../access/csv.js';
import { DOOR_MODES } from '../access/decide.js';
import { SETTING_NAMES, type SettingName } from '../config/settings.js';
import { confirmedOrAsk, type FailedForm, formError, seeOtherAfterPost, submitForm } from '../console/form-state.js';
import type { ConsoleSession } from '../console/koa-console-session.js';
import { createConsolePage } from '../console/page.js';
import { AppError } from '../errors.js';
import type { Locale } from '../i18n.js';
import type { PageRenderer } from '../render.js';
import { parseBody } from '../security/koa-body.js';
import { csrf } from '../security/koa-csrf.js';
import type { AdminApi } from './api/index.js';
import { settingOperationId } from './api/settings.js';
import { auditPageQuerySchema, emailsOf, readableDetails, toAuditApiQuery } from './audit-page.js';
import { assertMayManage, ROLES } from './users.js';
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
  'door-pin': z.object({ answers_enforcement: checkbox }),
  'admin-phishing-resistant': z.object({ required: checkbox }),
  'remember-device': z.object({ days: z.coerce.number() }),
  factors: z.object({ enabled: z.union([z.string(), z.array(z.string())]).optional() }).transform((form) => ({ enabled: [form.enabled ?? []].flat() })),
  'password-policy': z.object({ min_length: z.coerce.number() }),
  lockout: z.object({
    login_account_failures: z.coerce.number(),
    login_ip_failures: z.coerce.number(),
    login_window_seconds: z.coerce.number(),
    mfa_account_failures: z.coerce.number(),
  }),
  'bypass-code': z.object({ ttl_minutes: z.coerce.number() }),
  'enrolment-grace': z.object({ days: z.coerce.number(), sign_ins: z.coerce.number() }),
  'audit-retention': z.object({ days: z.string().optional() }).transform((form) => ({ days: form.days?.trim() ? Number(form.days) : null })),
};
const doorBody = (values: Record<string, unknown>) => ({
  name: values.name,
  has_badge_reader: values.has_badge_reader === 'on',
  has_keypad: values.has_keypad === 'on',
  in_out: values.in_out === 'on',
  schedule_id: values.schedule_id || null,
});
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
  /** Whether this admin may act on this user at all (only a super admin acts on those who hold roles). */
  const mayManage = (ctx: Context, target: { roles: readonly string[] }) => {
    try {
      assertMayManage(ctx.state.user!, target);
      return true;
    } catch {
      return false;
    }
  };
  const notice = (ctx: Context) => (typeof ctx.query.notice === 'string' && /^[a-z_]{1,40}$/.test(ctx.query.notice) ? ctx.query.notice : undefined);
  const anyAdminRole: Middleware = async (ctx, next) => {
    if (!ROLES.some((role) => ctx.state.user!.roles.includes(role))) throw new AppError(403, 'forbidden');
    ctx.state.nav = {
      users: may(ctx, 'listUsers'),
      clients: may(ctx, 'listClients'),
      resources: may(ctx, 'listResources'),
      settings: may(ctx, 'listSettings'),
      audit: may(ctx, 'listAuditEvents'),
      doors: may(ctx, 'listSites') || may(ctx, 'importAccessCsv'),
    };
    ctx.set('cache-control', 'no-store');
    await next();
  };
  const render = (ctx: Context, template: string, data: Record<string, unknown>, status = 200) =>
    page(ctx, template, { nav: ctx.state.nav, notice: notice(ctx), ...data }, status);
  /** An operation's answer, or undefined where this admin may not call it for this target (an admin's codes). */
  const callIfAllowed = async (ctx: Context, id: string, raw: Parameters<AdminApi['call']>[2]) => {
    if (!may(ctx, id)) return undefined;
    try {
      return (await call(ctx, id, raw)).body;
    } catch (error) {
      if ((error as AppError).status === 403) return undefined;
      throw error;
    }
  };

  // The CSV import page takes a whole file in a form field: a larger limit for that one route, read only once its
  // sender is known to be an admin who may import (the usual checks then run again, with the CSRF token).
  const largeForm = bodyParser({ enableTypes: ['form'], formLimit: '10mb' }) as unknown as Middleware;
  const importForm: Middleware = (ctx, next) =>
    deps.console.requireAdminUser(ctx, async () => {
      if (!may(ctx, 'importAccessCsv')) throw new AppError(403, 'forbidden');
      await largeForm(ctx, next);
    });
  const smallBody = parseBody();
  pages.use(async (ctx, next) => (ctx.path === '/admin/doors/import' && ctx.method === 'POST' ? importForm(ctx, next) : smallBody(ctx, next)));
  pages.use(csrf(), deps.console.requireAdminUser, anyAdminRole, seeOtherAfterPost);

  pages.get('/', (ctx) => {
    const nav = ctx.state.nav as Record<string, boolean>;
    ctx.redirect(nav.users ? '/admin/users' : nav.audit ? '/admin/audit' : nav.doors ? '/admin/doors' : '/account');
  });

  // Forms. A failed form comes back as the same page with what was typed and the error on its field.
  // An admin typing a door code sees it again: it is theirs to hand out, not their own secret.
  const submit = (ctx: Context, id: string, values: Record<string, unknown>, act: () => Promise<void>, again: (form: FailedForm) => Promise<void>) =>
    submitForm(ctx, id, values, act, again, { keepCodes: true });
  /** An operation's answer; a 409 naming what still refers to the object is a failed form too. */
  const callOrRefuse = async (ctx: Context, id: string, raw: Parameters<AdminApi['call']>[2]) => {
    const reply = await call(ctx, id, raw);
    if (reply.status === 409) throw new AppError(409, 'in_use', String((reply.body as { detail?: string }).detail ?? 'still in use'));
    return reply;
  };
  /** The version the form was read at, sent as If-Match: a save over someone else's change is refused. */
  const atVersion = (ctx: Context) => {
    const { version } = z.object({ version: versionField.optional() }).loose().parse(ctx.request.body);
    if (version !== undefined) ctx.request.headers['if-match'] = `"${version}"`;
  };
  const form = (ctx: Context) => (ctx.request.body ?? {}) as Record<string, string | string[] | undefined>;
  type FormValues = ReturnType<typeof form>;
  /** The forms posted under `prefix`: each one's failure renders `again`, the page the form is on. */
  const formsUnder = (prefix: string, again: (ctx: Context, failed: FailedForm) => Promise<void>) =>
    (path: string, formId: string, act: (ctx: Context, values: FormValues) => Promise<void>) =>
      pages.post(`${prefix}${path}`, async (ctx) => {
        const values = form(ctx);
        await submit(ctx, formId, values, () => act(ctx, values), (failed) => again(ctx, failed));
      });
  const list = (value: unknown) => [value ?? []].flat().filter((v): v is string => typeof v === 'string' && v !== '');
  const minutes = (value: string | undefined, field: string) => {
    if (value === '24:00') return 1440;
    const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(value ?? '');
    if (!match) throw new AppError(400, 'invalid_request', 'expected a time such as 09:30', field);
    return Number(match[1]) * 60 + Number(match[2]);
  };
  /** Rows of start/end/mode (blank rows skipped) as windows: the grid editor without its script. */
  const windowRows = (body: Record<string, unknown>) => {
    const column = (value: unknown) => [value ?? []].flat() as string[];
    const [starts, ends, modes] = [column(body.start), column(body.end), column(body.mode)];
    return starts.flatMap((start, i) => (start || ends[i] ? [{ start: minutes(start, `windows.${i}.start`), end: minutes(ends[i], `windows.${i}.end`), mode: modes[i] }] : []));
  };


  // Users.
  const usersPage = async (ctx: Context, failed?: FailedForm) => {
    const query = failed ? {} : ctx.query;
    const list = (await call(ctx, 'listUsers', { query })).body as { users: unknown[]; next_cursor: string | null };
    render(ctx, 'admin-users', { ...list, q: typeof query.q === 'string' ? query.q : '', canInvite: may(ctx, 'inviteUser'), roles: ROLES, form: failed });
  };
  pages.get('/users', (ctx) => usersPage(ctx));
  pages.post('/users/invite', async (ctx) => {
    const values = form(ctx);
    await submit(ctx, 'invite', values, async () => {
      const invited = (await call(ctx, 'inviteUser', { body: { email: values.email ?? '', name: values.name ?? '', roles: list(values.roles) } })).body as { user: { id: string } };
      ctx.redirect(`/admin/users/${invited.user.id}?notice=invited`);
    }, (failed) => usersPage(ctx, failed));
  });
  /** A user's page; after generating an MFA code, the answer to that POST, showing the code this once. */
  const GENERATED_NOTICES = { mfa: 'code_generated', entry: 'entry_code_generated', password: 'temporary_password_generated', bypass: 'bypass_code_generated' } as const;
  const userPage = async (ctx: Context, id: string, generated?: { code: string; kind: keyof typeof GENERATED_NOTICES }, failed?: FailedForm) => {
    const params = { id, userId: id };
    const user = (await call(ctx, 'getUser', { params })).body as { id: string; roles: string[]; status: string; factors: unknown[] };
    // Codes and credentials of someone holding an admin role are a super admin's to see and change: for anyone
    // else the operations refuse, and the page leaves those parts out.
    const doorCodes = ((await callIfAllowed(ctx, 'listAccessCodes', { params })) as { codes: unknown[] } | undefined)?.codes;
    const credentials = ((await callIfAllowed(ctx, 'listCredentials', { params })) as { credentials: unknown[] } | undefined)?.credentials;
    render(ctx, 'admin-user', {
      user,
      doorCodes,
      credentials,
      roles: ROLES,
      can: Object.fromEntries(['updateUser', 'setUserRoles', 'resetUserMfa', 'revokeUserSessions', 'addMfaCode', 'addCredential', 'setEntryCode', 'sendPasswordReset', 'setTemporaryPassword'].map((op) => [op, may(ctx, op)])),
      form: failed,
      canBypass: may(ctx, 'issueBypassCode') && mayManage(ctx, user) && user.id !== ctx.state.user!.id && user.status === 'active' && user.factors.length > 0,
      ...(generated ? { notice: GENERATED_NOTICES[generated.kind], generated: generated.code } : {}),
    }, generated ? 201 : 200);
  };
  pages.get('/users/:id', (ctx) => userPage(ctx, ctx.params.id!));
  pages.get('/users/:id/reset-mfa', async (ctx) => {
    const user = (await call(ctx, 'getUser', { params: ctx.params })).body;
    if (!may(ctx, 'resetUserMfa')) throw new AppError(403, 'forbidden');
    render(ctx, 'admin-reset-mfa', { user });
  });
  pages.post('/users/:id/reset-mfa', async (ctx) => {
    await call(ctx, 'resetUserMfa', { params: ctx.params });
    ctx.redirect(`/admin/users/${ctx.params.id}?notice=mfa_reset`);
  });
  // A secret never travels in a URL (history, logs, Referer): the new code is shown on this answer itself, once.
  // Codes: typed, or generated (then shown on this answer, once); for MFA codes and the entry code alike.
  const codeBody = (values: Record<string, unknown>) => (values.code ? { code: values.code } : { generate: { length: Number(values.length) } });
  const userForms = formsUnder('/users/:id', (ctx, failed) => userPage(ctx, ctx.params.id!, undefined, failed));
  const userForm = (path: string, formId: string, act: (ctx: Context, values: FormValues, userId: string) => Promise<void>) =>
    userForms(path, formId, (ctx, values) => act(ctx, values, ctx.params.id!));
  userForm('/status', 'status', async (ctx, values, id) => {
    const { status } = z.object({ status: z.enum(['active', 'disabled']) }).parse(values);
    await call(ctx, 'updateUser', { params: { id }, body: { status } });
    ctx.redirect(`/admin/users/${id}?notice=${status === 'active' ? 'user_enabled' : 'user_disabled'}`);
  });
  userForm('/roles', 'roles', async (ctx, values, id) => {
    await call(ctx, 'setUserRoles', { params: { id }, body: { roles: list(values.roles) } });
    ctx.redirect(`/admin/users/${id}?notice=roles_saved`);
  });
  userForm('/sessions', 'sessions', async (ctx, _values, id) => {
    await call(ctx, 'revokeUserSessions', { params: { id } });
    ctx.redirect(`/admin/users/${id}?notice=sessions_revoked`);
  });
  userForm('/mfa-codes', 'mfa-new', async (ctx, values, userId) => {
    const added = (await call(ctx, 'addMfaCode', { params: { userId }, body: codeBody(values) })).body as { code: string };
    if (values.code) return ctx.redirect(`/admin/users/${userId}?notice=code_added`);
    await userPage(ctx, userId, { code: added.code, kind: 'mfa' });
  });
  userForm('/mfa-codes/:codeId', 'mfa-edit', async (ctx, values, userId) => {
    await call(ctx, 'changeMfaCode', { params: { userId, codeId: ctx.params.codeId }, body: { code: values.code } });
    ctx.redirect(`/admin/users/${userId}?notice=code_changed`);
  });
  userForm('/mfa-codes/:codeId/delete', 'mfa-delete', async (ctx, _values, userId) => {
    await call(ctx, 'removeMfaCode', { params: { userId, codeId: ctx.params.codeId } });
    ctx.redirect(`/admin/users/${userId}?notice=code_removed`);
  });
  // A helpdesk's one-time code, shown on this answer only.
  userForm('/bypass-code', 'bypass-code', async (ctx, values, userId) => {
    const issued = (await call(ctx, 'issueBypassCode', { params: { id: userId }, body: { reason: values.reason } })).body as { code: string };
    await userPage(ctx, userId, { code: issued.code, kind: 'bypass' });
  });
  userForm('/entry-code', 'entry-set', async (ctx, values, userId) => {
    const set = (await call(ctx, 'setEntryCode', { params: { userId }, body: codeBody(values) })).body as { code?: string };
    if (!set.code) return ctx.redirect(`/admin/users/${userId}?notice=entry_code_set`);
    await userPage(ctx, userId, { code: set.code, kind: 'entry' });
  });
  userForm('/entry-code/delete', 'entry-delete', async (ctx, _values, userId) => {
    await call(ctx, 'removeEntryCode', { params: { userId } });
    ctx.redirect(`/admin/users/${userId}?notice=entry_code_removed`);
  });
  userForm('/profile', 'user-edit', async (ctx, values, userId) => {
    await call(ctx, 'updateUser', { params: { id: userId }, body: { name: values.name, email: values.email } });
    ctx.redirect(`/admin/users/${userId}?notice=user_saved`);
  });
  userForm('/password-reset', 'password-reset', async (ctx, _values, userId) => {
    await call(ctx, 'sendPasswordReset', { params: { id: userId } });
    ctx.redirect(`/admin/users/${userId}?notice=reset_sent`);
  });
  userForm('/password', 'temporary-password', async (ctx, values, userId) => {
    const set = (await call(ctx, 'setTemporaryPassword', { params: { id: userId }, body: values.password ? { password: values.password } : {} })).body as { generated_password?: string };
    if (!set.generated_password) return ctx.redirect(`/admin/users/${userId}?notice=temporary_password_set`);
    await userPage(ctx, userId, { code: set.generated_password, kind: 'password' });
  });
  userForm('/credentials', 'credential-new', async (ctx, values, userId) => {
    await call(ctx, 'addCredential', { params: { userId }, body: { kind: values.kind, identifier: values.identifier } });
    ctx.redirect(`/admin/users/${userId}?notice=credential_added`);
  });
  userForm('/credentials/:credentialId/suspend', 'credential-suspend', async (ctx, values, userId) => {
    const suspended = values.suspended === 'on';
    await call(ctx, 'suspendCredential', { params: { userId, credentialId: ctx.params.credentialId }, body: { suspended } });
    ctx.redirect(`/admin/users/${userId}?notice=${suspended ? 'credential_suspended' : 'credential_resumed'}`);
  });
  userForm('/credentials/:credentialId/delete', 'credential-delete', async (ctx, _values, userId) => {
    await call(ctx, 'removeCredential', { params: { userId, credentialId: ctx.params.credentialId } });
    ctx.redirect(`/admin/users/${userId}?notice=credential_removed`);
  });

  // Clients.
  const clientsPage = async (ctx: Context, failed?: FailedForm) => {
    const list = (await call(ctx, 'listClients', { query: failed ? {} : ctx.query })).body as Record<string, unknown>;
    render(ctx, 'admin-clients', { ...list, canEdit: may(ctx, 'registerClient'), form: failed });
  };
  pages.get('/clients', (ctx) => clientsPage(ctx));
  const clientForm = formsUnder('/clients', clientsPage);
  clientForm('', 'client-new', async (ctx, values) => {
    const form = z.object({ client_name: z.string(), redirect_uri: z.string().default(''), require_mfa: checkbox, first_party: checkbox, kind: z.enum(['web', 'public', 'machine']) }).parse(values);
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
  clientForm('/:clientId/require-mfa', 'client-require-mfa', async (ctx, values) => {
    await call(ctx, 'editClient', { params: ctx.params, body: { require_mfa: values.require_mfa === 'on' } });
    ctx.redirect('/admin/clients?notice=client_saved');
  });
  clientForm('/:clientId/secret', 'client-secret', async (ctx) => {
    const client = (await call(ctx, 'getClient', { params: ctx.params })).body as { client_name: string };
    if (!confirmedOrAsk(ctx, (template, data) => render(ctx, template, data), { title: 'admin.rotate_secret', question: 'admin.rotate_confirm_named', params: { name: client.client_name }, button: 'admin.rotate_secret', back: '/admin/clients' })) return;
    const rotated = (await call(ctx, 'rotateClientSecret', { params: ctx.params })).body as { client_secret: string };
    render(ctx, 'admin-client-secret', { client, client_secret: rotated.client_secret });
  });
  clientForm('/:clientId/delete', 'client-delete', async (ctx) => {
    const client = (await call(ctx, 'getClient', { params: ctx.params })).body as { client_name: string };
    if (!confirmedOrAsk(ctx, (template, data) => render(ctx, template, data), { title: 'admin.delete_client', question: 'admin.delete_client_confirm_named', params: { name: client.client_name }, button: 'admin.delete', back: '/admin/clients' })) return;
    await call(ctx, 'deleteClient', { params: ctx.params });
    ctx.redirect('/admin/clients?notice=client_deleted');
  });

  // APIs (resource indicators): lists in forms are space-separated, as OAuth writes scopes.
  const words = z.string().max(13000).default('').transform((value) => value.split(/\s+/).filter(Boolean));
  const resourcesPage = async (ctx: Context, failed?: FailedForm) => {
    const list = (await call(ctx, 'listResources', { query: failed ? {} : ctx.query })).body as Record<string, unknown>;
    render(ctx, 'admin-resources', { ...list, canEdit: may(ctx, 'registerResource'), form: failed });
  };
  pages.get('/resources', (ctx) => resourcesPage(ctx));
  const resourceForm = formsUnder('/resources', resourcesPage);
  resourceForm('', 'resource-new', async (ctx, values) => {
    const body = z
      .object({ identifier: z.string(), name: z.string(), scopes: words, access_token_ttl: z.coerce.number(), token_format: z.string(), signing_alg: z.string(), machine_clients: words })
      .parse(values);
    await call(ctx, 'registerResource', { body });
    ctx.redirect('/admin/resources?notice=resource_registered');
  });
  resourceForm('/delete', 'resource-delete', async (ctx, values) => {
    const params = z.object({ identifier: z.string() }).parse(values);
    if (!confirmedOrAsk(ctx, (template, data) => render(ctx, template, data), { title: 'admin.resources.delete', question: 'admin.resources.delete_confirm', button: 'admin.delete', back: '/admin/resources' })) return;
    await call(ctx, 'deleteResource', { params });
    ctx.redirect('/admin/resources?notice=resource_deleted');
  });

  // Settings: each form carries the version it was read at, so a save over someone else's change is refused.
  const settingsPage = async (ctx: Context, failed?: FailedForm) => {
    render(ctx, 'admin-settings', { settings: (await call(ctx, 'listSettings')).body, canEdit: may(ctx, 'putEnforceMfaSetting'), factors: api.builtFactors, mailConfigured: api.mailConfigured, form: failed });
  };
  pages.get('/settings', (ctx) => settingsPage(ctx));
  pages.post('/settings/:name', async (ctx) => {
    const name = settingParam.parse(ctx.params.name);
    const values = form(ctx);
    await submit(ctx, `setting-${name}`, values, async () => {
      const { version } = z.object({ version: versionField }).parse(values);
      const body = settingForms[name].parse(values);
      ctx.request.headers['if-match'] = `"${version}"`;
      try {
        await call(ctx, settingOperationId('put', name), { body });
      } catch (error) {
        if ((error as AppError).status === 412) return ctx.redirect('/admin/settings?notice=settings_conflict');
        throw error;
      }
      ctx.redirect('/admin/settings?notice=settings_saved');
    }, (failed) => settingsPage(ctx, failed));
  });

  // Audit log.
  pages.get('/audit', async (ctx) => {
    const typed = Object.fromEntries(Object.entries(ctx.query).filter(([, value]) => typeof value === 'string' && value !== '')) as Record<string, string>;
    const filter = Object.fromEntries(Object.entries(typed).filter(([key]) => key !== 'cursor'));
    const pageQuery = new URLSearchParams(filter).toString();
    let query: Record<string, string>;
    try {
      query = await toAuditApiQuery(deps.queries, auditPageQuerySchema.parse(typed));
    } catch (error) {
      const failed = formError(error, typed);
      if (!failed) throw error;
      return render(ctx, 'admin-audit', { events: [], filter, pageQuery, exportQuery: '', people: {}, form: { id: 'audit', values: typed, error: failed } }, 400);
    }
    const list = (await call(ctx, 'listAuditEvents', { query })).body as { events: Array<{ actor_id: string | null; subject_id: string | null; details: unknown }> };
    const exportQuery = new URLSearchParams(Object.entries(query).filter(([key]) => key !== 'cursor')).toString();
    const people = await emailsOf(deps.queries, list.events);
    render(ctx, 'admin-audit', { ...list, events: list.events.map((e) => ({ ...e, readable: readableDetails(e.details) })), filter, pageQuery, exportQuery, people, canSeeUsers: may(ctx, 'getUser') });
  });
  pages.get('/audit/export.csv', async (ctx) => {
    const reply = await call(ctx, 'exportAuditEvents', { query: Object.fromEntries(Object.entries(ctx.query).filter(([, value]) => value !== '')) });
    ctx.body = reply.body;
  });

  // Doors.
  const doorsHome = async (ctx: Context, failed?: FailedForm) => {
    const sites = may(ctx, 'listSites') ? ((await call(ctx, 'listSites')).body as { sites: unknown[] }).sites : [];
    render(ctx, 'admin-doors', { sites, canImport: may(ctx, 'importAccessCsv'), canCreate: may(ctx, 'createSite'), form: failed });
  };
  pages.get('/doors', (ctx) => doorsHome(ctx));
  pages.post('/doors/sites', async (ctx) => {
    const values = form(ctx);
    await submit(ctx, 'site-new', values, async () => {
      const site = (await call(ctx, 'createSite', { body: { name: values.name, time_zone: values.time_zone } })).body as { id: string };
      ctx.redirect(`/admin/doors/sites/${site.id}?notice=site_created`);
    }, (failed) => doorsHome(ctx, failed));
  });

  const sitePage = async (ctx: Context, siteId: string, failed?: FailedForm) => {
    // The operation finds the site and checks the role first: after it, the id is a site this user may see.
    const detail = (await call(ctx, 'getSite', { params: { siteId } })).body as Record<string, unknown>;
    render(ctx, 'admin-site', { site: detail.site, detail, weekdays: WEEKDAYS, modes: DOOR_MODES, form: failed, canEditSite: may(ctx, 'updateSite') });
  };
  pages.get('/doors/sites/:siteId', (ctx) => sitePage(ctx, ctx.params.siteId!));
  const siteForm = formsUnder('/doors/sites/:siteId', (ctx, failed) => sitePage(ctx, ctx.params.siteId!, failed));
  siteForm('', 'site-edit', async (ctx, values) => {
    atVersion(ctx);
    await call(ctx, 'updateSite', { params: ctx.params, body: { name: values.name, time_zone: values.time_zone } });
    ctx.redirect(`/admin/doors/sites/${ctx.params.siteId}?notice=site_saved`);
  });
  siteForm('/delete', 'site-delete', async (ctx) => {
    atVersion(ctx);
    await callOrRefuse(ctx, 'deleteSite', { params: ctx.params });
    ctx.redirect('/admin/doors?notice=site_deleted');
  });
  siteForm('/doors', 'door-new', async (ctx, values) => {
    const door = (await call(ctx, 'createDoor', { params: ctx.params, body: doorBody(values) })).body as { id: string };
    ctx.redirect(`/admin/doors/doors/${door.id}?notice=door_created`);
  });
  siteForm('/schedules', 'schedule-new', async (ctx, values) => {
    const schedule = (await call(ctx, 'createSchedule', { params: ctx.params, body: { name: values.name, windows: [] } })).body as { id: string };
    ctx.redirect(`/admin/doors/schedules/${schedule.id}?notice=schedule_created`);
  });
  siteForm('/levels', 'level-new', async (ctx, values) => {
    const level = (await call(ctx, 'createAccessLevel', { params: ctx.params, body: { name: values.name, schedule_id: values.schedule_id || null, door_ids: list(values.door_ids) } })).body as { id: string };
    ctx.redirect(`/admin/doors/levels/${level.id}?notice=level_created`);
  });
  siteForm('/exceptions', 'exception-new', async (ctx, values) => {
    const doorId = typeof values.door_id === 'string' && values.door_id ? values.door_id : undefined;
    if (!doorId) throw new AppError(400, 'invalid_request', 'choose a door', 'door_id');
    await call(ctx, 'setDoorException', { params: { doorId }, body: { day: values.day, name: values.name ?? '', windows: windowRows(values).map((w) => ({ ...w, days: [0, 1, 2, 3, 4, 5, 6] })) } });
    ctx.redirect(`/admin/doors/sites/${ctx.params.siteId}?notice=exception_saved`);
  });
  siteForm('/controllers', 'controller-new', async (ctx, values) => {
    const created = (await call(ctx, 'createController', { params: ctx.params, body: { name: values.name } })).body as { id: string; name: string; token: string };
    // The token is on this answer only: never in a URL, never shown again.
    render(ctx, 'admin-controller-token', { controller: created, siteId: ctx.params.siteId }, 201);
  });
  pages.post('/doors/exceptions/:doorId/:day/delete', async (ctx) => {
    const door = (await call(ctx, 'getDoor', { params: ctx.params })).body as { site_id: string };
    await call(ctx, 'deleteDoorException', { params: ctx.params });
    ctx.redirect(`/admin/doors/sites/${door.site_id}?notice=exception_deleted`);
  });
  pages.post('/doors/controllers/:controllerId/token', async (ctx) => {
    const rotated = (await call(ctx, 'rotateControllerToken', { params: ctx.params })).body as { id: string; name: string; site_id: string; token: string };
    render(ctx, 'admin-controller-token', { controller: rotated, siteId: rotated.site_id, rotated: true });
  });
  pages.post('/doors/controllers/:controllerId/delete', async (ctx) => {
    const siteId = z.object({ site_id: z.uuid() }).parse(ctx.request.body).site_id;
    await call(ctx, 'deleteController', { params: ctx.params });
    ctx.redirect(`/admin/doors/sites/${siteId}?notice=controller_revoked`);
  });

  const doorPage = async (ctx: Context, doorId: string, failed?: FailedForm) => {
    const door = (await call(ctx, 'getDoor', { params: { doorId } })).body as { site_id: string };
    const site = (await call(ctx, 'getSite', { params: { siteId: door.site_id } })).body as Record<string, unknown>;
    render(ctx, 'admin-door', { door, site: site.site, schedules: site.schedules, form: failed });
  };
  pages.get('/doors/doors/:doorId', (ctx) => doorPage(ctx, ctx.params.doorId!));
  pages.post('/doors/doors/:doorId', async (ctx) => {
    const values = form(ctx);
    await submit(ctx, 'door-edit', values, async () => {
      atVersion(ctx);
      await call(ctx, 'updateDoor', { params: ctx.params, body: doorBody(values) });
      ctx.redirect(`/admin/doors/doors/${ctx.params.doorId}?notice=door_saved`);
    }, (failed) => doorPage(ctx, ctx.params.doorId!, failed));
  });
  pages.post('/doors/doors/:doorId/delete', async (ctx) => {
    const values = form(ctx);
    await submit(ctx, 'door-delete', values, async () => {
      const door = (await call(ctx, 'getDoor', { params: ctx.params })).body as { site_id: string };
      atVersion(ctx);
      await callOrRefuse(ctx, 'deleteDoor', { params: ctx.params });
      ctx.redirect(`/admin/doors/sites/${door.site_id}?notice=door_deleted`);
    }, (failed) => doorPage(ctx, ctx.params.doorId!, failed));
  });

  const schedulePage = async (ctx: Context, scheduleId: string, day: number, failed?: FailedForm) => {
    const schedule = (await call(ctx, 'getSchedule', { params: { scheduleId } })).body as { site_id: string };
    const site = (await call(ctx, 'getSite', { params: { siteId: schedule.site_id } })).body as Record<string, unknown>;
    render(ctx, 'admin-schedule', { schedule, site: site.site, day, weekdays: WEEKDAYS, modes: DOOR_MODES, form: failed, scripts: ['/static/doors.js'] });
  };
  const weekday = (value: unknown) => z.coerce.number().int().min(0).max(6).catch(1).parse(value ?? 1);
  pages.get('/doors/schedules/:scheduleId', (ctx) => schedulePage(ctx, ctx.params.scheduleId!, weekday(ctx.query.day)));
  pages.post('/doors/schedules/:scheduleId', async (ctx) => {
    const values = form(ctx);
    await submit(ctx, 'schedule-edit', values, async () => {
      atVersion(ctx);
      await call(ctx, 'updateSchedule', { params: ctx.params, body: { name: values.name } });
      ctx.redirect(`/admin/doors/schedules/${ctx.params.scheduleId}?notice=schedule_saved`);
    }, (failed) => schedulePage(ctx, ctx.params.scheduleId!, 1, failed));
  });
  // Seed 002: select a day, switch two-factor entry on (or off), set its start and end, save.
  pages.post('/doors/schedules/:scheduleId/days/:weekday', async (ctx) => {
    const values = form(ctx);
    const day = weekday(ctx.params.weekday);
    await submit(ctx, 'schedule-day', values, async () => {
      atVersion(ctx);
      // The day as posted: one that is not 0–6 is no day of this schedule (404), not Monday.
      await call(ctx, 'setScheduleDay', { params: { scheduleId: ctx.params.scheduleId, weekday: ctx.params.weekday }, body: { windows: windowRows(values) } });
      ctx.redirect(`/admin/doors/schedules/${ctx.params.scheduleId}?day=${day}&notice=schedule_saved`);
    }, (failed) => schedulePage(ctx, ctx.params.scheduleId!, day, failed));
  });
  pages.post('/doors/schedules/:scheduleId/delete', async (ctx) => {
    const values = form(ctx);
    await submit(ctx, 'schedule-delete', values, async () => {
      const schedule = (await call(ctx, 'getSchedule', { params: ctx.params })).body as { site_id: string };
      atVersion(ctx);
      await callOrRefuse(ctx, 'deleteSchedule', { params: ctx.params });
      ctx.redirect(`/admin/doors/sites/${schedule.site_id}?notice=schedule_deleted`);
    }, (failed) => schedulePage(ctx, ctx.params.scheduleId!, 1, failed));
  });

  const levelPage = async (ctx: Context, levelId: string, failed?: FailedForm) => {
    const level = (await call(ctx, 'getAccessLevel', { params: { levelId } })).body as { site_id: string };
    const site = (await call(ctx, 'getSite', { params: { siteId: level.site_id } })).body as Record<string, unknown>;
    render(ctx, 'admin-level', { level, site: site.site, doors: site.doors, schedules: site.schedules, form: failed });
  };
  pages.get('/doors/levels/:levelId', (ctx) => levelPage(ctx, ctx.params.levelId!));
  const levelForm = formsUnder('/doors/levels/:levelId', (ctx, failed) => levelPage(ctx, ctx.params.levelId!, failed));
  levelForm('', 'level-edit', async (ctx, values) => {
    atVersion(ctx);
    await call(ctx, 'updateAccessLevel', { params: ctx.params, body: { name: values.name, schedule_id: values.schedule_id || null, door_ids: list(values.door_ids) } });
    ctx.redirect(`/admin/doors/levels/${ctx.params.levelId}?notice=level_saved`);
  });
  levelForm('/members', 'member-new', async (ctx, values) => {
    await call(ctx, 'addAccessLevelMember', { params: ctx.params, body: { email: values.email } });
    ctx.redirect(`/admin/doors/levels/${ctx.params.levelId}?notice=member_added`);
  });
  levelForm('/members/:userId/delete', 'member-delete', async (ctx) => {
    await call(ctx, 'removeAccessLevelMember', { params: ctx.params });
    ctx.redirect(`/admin/doors/levels/${ctx.params.levelId}?notice=member_removed`);
  });
  levelForm('/delete', 'level-delete', async (ctx) => {
    const level = (await call(ctx, 'getAccessLevel', { params: ctx.params })).body as { site_id: string };
    atVersion(ctx);
    await call(ctx, 'deleteAccessLevel', { params: ctx.params });
    ctx.redirect(`/admin/doors/sites/${level.site_id}?notice=level_deleted`);
  });

  pages.get('/doors/import', (ctx) => render(ctx, 'admin-import', { csv: '', scripts: ['/static/doors.js'] }));
  pages.get('/doors/import/template.csv', (ctx) => {
    if (!may(ctx, 'importAccessCsv')) throw new AppError(403, 'forbidden');
    ctx.type = 'text/csv';
    ctx.attachment('latchkey-access-template.csv');
    ctx.body = CSV_TEMPLATE;
  });
  pages.post('/doors/import', async (ctx) => {
    const values = z.object({ csv: z.string().max(10 * 1024 * 1024), dry_run: checkbox }).parse(ctx.request.body);
    const reply = await call(ctx, 'importAccessCsv', { query: { dry_run: String(values.dry_run) }, body: values.csv });
    render(ctx, 'admin-import', { csv: values.dry_run || reply.status !== 200 ? values.csv : '', report: reply.body, scripts: ['/static/doors.js'] }, reply.status);
  });
  return pages;
}
