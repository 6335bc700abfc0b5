import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { adminBearer, requireRoles } from '../admin/routes.js';
import type { Queries } from '../db/index.js';
import { AppError } from '../errors.js';
import type { ProviderHolder } from '../oidc/provider-holder.js';
import type { SecretBox } from '../security/secret-box.js';
import { parseBody } from '../security/koa-body.js';
import { exportAccessCsv, importAccessCsv } from './csv.js';
import { type AccessService, keypadSchema, scanSchema } from './service.js';

/** Who may manage people's door credentials and codes. */
export const CREDENTIAL_ROLES = ['super_admin', 'access_user_admin', 'access_user_manager', 'access_credential_manager'];
const uuid = z.string().uuid({ message: 'expected an id' });
const MAX_CSV_BYTES = 10 * 1024 * 1024;

async function readText(ctx: Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError(413, 'body_too_large', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createAccessRouters(deps: { access: AccessService; providers: ProviderHolder; queries: Queries; box: SecretBox }) {
  const { access } = deps;
  const by = (ctx: Context) => ({ actorId: ctx.state.user?.id ?? null, ip: ctx.ip });
  const param = (ctx: Context, name: string) => {
    const parsed = uuid.safeParse(ctx.params[name]);
    if (!parsed.success) throw new AppError(404, 'not_found', `no such ${name}`, name);
    return parsed.data;
  };
  const userParam = async (ctx: Context) => {
    const id = param(ctx, 'userId');
    if (!(await deps.queries.users.findById(id))) throw new AppError(404, 'user_not_found', 'no such user', 'userId');
    return id;
  };

  /** Super admins, or Access Site Admins of the site in question. */
  const siteAdmin = (siteOf: (ctx: Context) => Promise<string | undefined>): Middleware => async (ctx, next) => {
    const siteId = await siteOf(ctx);
    if (!siteId) throw new AppError(404, 'not_found', 'no such site or door');
    const user = ctx.state.user!;
    const allowed = user.roles.includes('super_admin') || (user.roles.includes('access_site_admin') && (await access.isSiteAdmin(siteId, user.id)));
    if (!allowed) throw new AppError(403, 'forbidden', 'needs super_admin, or access_site_admin of this site');
    ctx.state.siteId = siteId;
    await next();
  };
  const siteParam = siteAdmin(async (ctx) => param(ctx, 'siteId'));
  const doorSite = siteAdmin(async (ctx) => access.doorSite(param(ctx, 'doorId')));

  // Door controllers: each authenticates with its own token and may ask only about its own site's doors.
  const controllers = new Router({ prefix: '/api/access/v1' });
  controllers.use(parseBody(), async (ctx, next) => {
    const match = /^Bearer (\S{10,200})$/.exec(ctx.get('authorization'));
    const controller = match ? await access.authenticateController(match[1]!) : undefined;
    if (!controller) {
      ctx.set('www-authenticate', 'Bearer');
      throw new AppError(401, 'invalid_token', 'a controller token is required');
    }
    const body = ctx.request.body as { door_id?: unknown } | undefined;
    const doorSiteId = typeof body?.door_id === 'string' && uuid.safeParse(body.door_id).success ? await access.doorSite(body.door_id) : undefined;
    if (doorSiteId && doorSiteId !== controller.site_id) throw new AppError(403, 'forbidden', 'this door is not on the controller\'s site', 'door_id');
    await next();
  });
  controllers.post('/credential', async (ctx) => {
    ctx.body = await access.presentCredential(scanSchema.parse(ctx.request.body));
  });
  controllers.post('/keypad', async (ctx) => {
    ctx.body = await access.enterCode(keypadSchema.parse(ctx.request.body));
  });

  const admin = new Router({ prefix: '/api/admin/access' });
  admin.use(adminBearer(deps.providers, deps.queries));

  // Codes and credentials of people.
  const people = [parseBody(), requireRoles(...CREDENTIAL_ROLES)];
  admin.get('/users/:userId/codes', ...people, async (ctx) => {
    ctx.body = { codes: await access.listCodes(await userParam(ctx)) };
  });
  admin.post('/users/:userId/mfa-codes', ...people, async (ctx) => {
    ctx.status = 201;
    ctx.body = await access.addMfaCode(await userParam(ctx), ctx.request.body, by(ctx));
  });
  admin.patch('/users/:userId/mfa-codes/:codeId', ...people, async (ctx) => {
    await access.updateCode(await userParam(ctx), param(ctx, 'codeId'), ctx.request.body, by(ctx));
    ctx.status = 204;
  });
  admin.delete('/users/:userId/mfa-codes/:codeId', ...people, async (ctx) => {
    await access.removeCode(await userParam(ctx), param(ctx, 'codeId'), by(ctx));
    ctx.status = 204;
  });
  admin.put('/users/:userId/entry-code', ...people, async (ctx) => {
    ctx.body = await access.setEntryCode(await userParam(ctx), ctx.request.body, by(ctx));
  });
  admin.get('/users/:userId/credentials', ...people, async (ctx) => {
    ctx.body = { credentials: await access.listCredentials(await userParam(ctx)) };
  });
  admin.post('/users/:userId/credentials', ...people, async (ctx) => {
    ctx.status = 201;
    ctx.body = await access.addCredential(await userParam(ctx), ctx.request.body, by(ctx));
  });
  admin.delete('/users/:userId/credentials/:credentialId', ...people, async (ctx) => {
    await access.removeCredential(await userParam(ctx), param(ctx, 'credentialId'), by(ctx));
    ctx.status = 204;
  });
  admin.post('/import', requireRoles(...CREDENTIAL_ROLES), async (ctx) => {
    if (!ctx.is('text/csv')) throw new AppError(415, 'unsupported_media_type', 'send the file as text/csv');
    const dryRun = ctx.query.dry_run !== 'false';
    const report = await importAccessCsv({ queries: deps.queries, box: deps.box, lookup: access.lookup }, await readText(ctx, MAX_CSV_BYTES), dryRun);
    await deps.queries.audit.insert({ action: 'access.import', outcome: report.ok ? 'success' : 'failure', actorId: by(ctx).actorId, ip: ctx.ip, details: { dry_run: dryRun, rows: report.rows, problems: report.problems.length, created: report.created } });
    ctx.status = report.ok ? 200 : 422;
    ctx.body = { dry_run: dryRun, ...report };
  });
  admin.get('/export.csv', requireRoles(...CREDENTIAL_ROLES), async (ctx) => {
    await deps.queries.audit.insert({ action: 'access.export', outcome: 'success', actorId: by(ctx).actorId, ip: ctx.ip });
    ctx.type = 'text/csv';
    ctx.attachment('latchkey-access.csv');
    ctx.body = await exportAccessCsv({ queries: deps.queries, box: deps.box });
  });

  // Sites, doors, schedules, exceptions, levels and controllers.
  admin.post('/sites', parseBody(), requireRoles('super_admin'), async (ctx) => {
    ctx.status = 201;
    ctx.body = await access.createSite(ctx.request.body, by(ctx));
  });
  admin.post('/sites/:siteId/admins', parseBody(), requireRoles('super_admin'), async (ctx) => {
    const { user_id } = z.object({ user_id: uuid }).parse(ctx.request.body);
    await access.addSiteAdmin(param(ctx, 'siteId'), user_id);
    ctx.status = 204;
  });
  admin.post('/sites/:siteId/schedules', parseBody(), siteParam, async (ctx) => {
    ctx.status = 201;
    ctx.body = await access.createSchedule(ctx.state.siteId, ctx.request.body, by(ctx));
  });
  admin.post('/sites/:siteId/doors', parseBody(), siteParam, async (ctx) => {
    ctx.status = 201;
    ctx.body = await access.createDoor(ctx.state.siteId, ctx.request.body, by(ctx));
  });
  admin.post('/sites/:siteId/levels', parseBody(), siteParam, async (ctx) => {
    ctx.status = 201;
    ctx.body = await access.createLevel(ctx.state.siteId, ctx.request.body, by(ctx));
  });
  admin.post('/sites/:siteId/controllers', parseBody(), siteParam, async (ctx) => {
    const { name } = z.object({ name: z.string() }).parse(ctx.request.body);
    ctx.status = 201;
    ctx.body = await access.createController(ctx.state.siteId, name, by(ctx));
  });
  admin.put('/doors/:doorId/exceptions', parseBody(), doorSite, async (ctx) => {
    await access.setException(param(ctx, 'doorId'), ctx.request.body, by(ctx));
    ctx.status = 204;
  });
  admin.post('/doors/:doorId/unlock', parseBody(), doorSite, async (ctx) => {
    ctx.body = await access.remoteUnlock(param(ctx, 'doorId'), by(ctx));
  });
  admin.get('/doors/:doorId/decisions', doorSite, async (ctx) => {
    const { user_id, limit } = z.object({ user_id: uuid.optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }).parse(ctx.query);
    ctx.body = { decisions: await access.decisions({ doorId: param(ctx, 'doorId'), userId: user_id, limit }) };
  });

  return { controllers, admin };
}
