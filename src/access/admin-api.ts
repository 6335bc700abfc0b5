import { z } from 'zod';
import { actorOf } from '../admin/api/common.js';
import { operation, Reply } from '../admin/api/operation.js';
import type { Role } from '../admin/users.js';
import type { Queries } from '../db/index.js';
import { AppError } from '../errors.js';
import type { SecretBox } from '../security/secret-box.js';
import { accessCodeSchema } from './codes.js';
import { exportAccessCsv, importAccessCsv } from './csv.js';
import { type AccessService, credentialSchema, doorSchema, exceptionSchema, levelSchema, newCodeSchema, scheduleSchema, siteSchema } from './service.js';

/** Who may manage people's door credentials and codes. */
export const CREDENTIAL_ROLES: readonly Role[] = ['super_admin', 'access_user_admin', 'access_user_manager', 'access_credential_manager'];
/** Super admins, or Access Site Admins of the site in question. */
const SITE_ROLES: readonly Role[] = ['super_admin', 'access_site_admin'];

const uuid = z.uuid({ message: 'expected an id' });
const userParams = z.object({ userId: uuid });
const siteParams = z.object({ siteId: uuid });
const doorParams = z.object({ doorId: uuid });
const created = (description: string, schema?: z.ZodType) => ({ 201: { description, ...(schema ? { schema } : {}) } });
const idOnly = z.object({ id: z.string() }).loose();
const decisionSchema = z.object({ result: z.enum(['grant', 'deny', 'code_required']), reason: z.string(), mode: z.string().optional() });

export function accessAdminOperations(deps: { access: AccessService; queries: Queries; box: SecretBox }) {
  const { access, queries } = deps;
  const by = actorOf;
  const existingUser = async (userId: string) => {
    if (!(await queries.users.findById(userId))) throw new AppError(404, 'user_not_found', 'no such user', 'userId');
    return userId;
  };
  const siteOf = async (params: { siteId: string }) => ((await queries.access.findSite(params.siteId)) ? params.siteId : undefined);
  const doorSiteOf = (params: { doorId: string }) => access.doorSite(params.doorId);
  const people = { tag: 'door credentials', roles: CREDENTIAL_ROLES, params: userParams };
  const sites = { tag: 'doors', roles: SITE_ROLES };
  const prefix = '/access';

  return [
    operation({
      ...people,
      id: 'listAccessCodes',
      method: 'get',
      path: `${prefix}/users/:userId/codes`,
      summary: "A user's MFA codes and entry code (shown to credential managers, as on a keypad reader's admin screen)",
      responses: { 200: { description: 'codes', schema: z.object({ codes: z.array(z.object({ id: z.string(), kind: z.enum(['mfa', 'entry']), code: z.string() }).loose()) }) } },
      handle: async (_ctx, { params }) => ({ codes: await access.listCodes(await existingUser(params.userId)) }),
    }),
    operation({
      ...people,
      id: 'addMfaCode',
      method: 'post',
      path: `${prefix}/users/:userId/mfa-codes`,
      summary: 'Add an MFA code (4–16 digits), given or generated',
      body: newCodeSchema,
      responses: created('the code', idOnly),
      handle: async (ctx, { params, body }) => access.addMfaCode(await existingUser(params.userId), body, by(ctx)),
    }),
    operation({
      ...people,
      id: 'changeMfaCode',
      method: 'patch',
      path: `${prefix}/users/:userId/mfa-codes/:codeId`,
      summary: 'Change an MFA code',
      params: z.object({ userId: uuid, codeId: uuid }),
      body: z.object({ code: accessCodeSchema }),
      responses: { 204: { description: 'changed' } },
      handle: async (ctx, { params, body }) => {
        await access.updateCode(await existingUser(params.userId), params.codeId, body, by(ctx));
      },
    }),
    operation({
      ...people,
      id: 'removeMfaCode',
      method: 'delete',
      path: `${prefix}/users/:userId/mfa-codes/:codeId`,
      summary: 'Remove an MFA code',
      params: z.object({ userId: uuid, codeId: uuid }),
      responses: { 204: { description: 'removed (also when already gone)' } },
      handle: async (ctx, { params }) => {
        await access.removeCode(await existingUser(params.userId), params.codeId, by(ctx));
      },
    }),
    operation({
      ...people,
      id: 'setEntryCode',
      method: 'put',
      path: `${prefix}/users/:userId/entry-code`,
      summary: "Set the user's entry code (unique across users; trivial codes refused)",
      body: z.object({ code: accessCodeSchema }),
      responses: { 200: { description: 'set', schema: idOnly }, 409: { description: 'another user has it' } },
      handle: async (ctx, { params, body }) => access.setEntryCode(await existingUser(params.userId), body, by(ctx)),
    }),
    operation({
      ...people,
      id: 'listCredentials',
      method: 'get',
      path: `${prefix}/users/:userId/credentials`,
      summary: "A user's cards, NFC phones and Bluetooth unlocks",
      responses: { 200: { description: 'credentials', schema: z.object({ credentials: z.array(z.object({ id: z.string(), kind: z.string(), identifier: z.string() }).loose()) }) } },
      handle: async (_ctx, { params }) => ({ credentials: await access.listCredentials(await existingUser(params.userId)) }),
    }),
    operation({
      ...people,
      id: 'addCredential',
      method: 'post',
      path: `${prefix}/users/:userId/credentials`,
      summary: 'Add a card, NFC phone or Bluetooth unlock',
      body: credentialSchema,
      responses: { ...created('the credential', idOnly), 409: { description: 'someone else holds it' } },
      handle: async (ctx, { params, body }) => access.addCredential(await existingUser(params.userId), body, by(ctx)),
    }),
    operation({
      ...people,
      id: 'removeCredential',
      method: 'delete',
      path: `${prefix}/users/:userId/credentials/:credentialId`,
      summary: 'Remove a credential',
      params: z.object({ userId: uuid, credentialId: uuid }),
      responses: { 204: { description: 'removed (also when already gone)' } },
      handle: async (ctx, { params }) => {
        await access.removeCredential(await existingUser(params.userId), params.credentialId, by(ctx));
      },
    }),
    operation({
      id: 'importAccessCsv',
      tag: 'door credentials',
      roles: CREDENTIAL_ROLES,
      method: 'post',
      path: `${prefix}/import`,
      summary: 'Import credentials and codes from CSV (email,name,kind,value): a dry run reports, a real run writes all or nothing',
      bodyMediaType: 'text/csv',
      query: z.object({ dry_run: z.enum(['true', 'false']).default('true').describe('true: check and report only') }),
      responses: {
        200: { description: 'the report (written unless a dry run)', schema: z.object({ dry_run: z.boolean(), ok: z.boolean(), rows: z.number() }).loose() },
        422: { description: 'the report naming each bad line; nothing was written' },
      },
      handle: async (ctx, { query, body }) => {
        const dryRun = query.dry_run !== 'false';
        const report = await importAccessCsv({ queries, box: deps.box, lookup: access.lookup }, body as string, dryRun);
        await queries.audit.insert({ action: 'access.import', outcome: report.ok ? 'success' : 'failure', actorId: by(ctx).actorId, ip: ctx.ip, details: { dry_run: dryRun, rows: report.rows, problems: report.problems.length, created: report.created } });
        return new Reply(report.ok ? 200 : 422, { dry_run: dryRun, ...report });
      },
    }),
    operation({
      id: 'exportAccessCsv',
      tag: 'door credentials',
      roles: CREDENTIAL_ROLES,
      method: 'get',
      path: `${prefix}/export.csv`,
      summary: 'Every credential and code as CSV, in the import format',
      responses: { 200: { description: 'CSV', mediaType: 'text/csv' } },
      handle: async (ctx) => {
        await queries.audit.insert({ action: 'access.export', outcome: 'success', actorId: by(ctx).actorId, ip: ctx.ip });
        ctx.type = 'text/csv';
        ctx.attachment('latchkey-access.csv');
        return exportAccessCsv({ queries, box: deps.box });
      },
    }),
    operation({
      id: 'listSites',
      tag: 'doors',
      roles: ['super_admin', 'auditor', 'access_site_admin'],
      method: 'get',
      path: `${prefix}/sites`,
      summary: 'Sites (an access site admin sees the sites they administer)',
      responses: { 200: { description: 'sites', schema: z.object({ sites: z.array(z.object({ id: z.string(), name: z.string(), time_zone: z.string() })) }) } },
      handle: async (ctx) => {
        const user = ctx.state.user!;
        const all = await queries.access.listSites();
        const seesAll = user.roles.includes('super_admin') || user.roles.includes('auditor');
        const visible = seesAll ? all : (await Promise.all(all.map(async (site) => ((await access.isSiteAdmin(site.id, user.id)) ? site : undefined)))).filter((site) => site !== undefined);
        return { sites: visible };
      },
    }),
    operation({
      id: 'createSite',
      tag: 'doors',
      roles: ['super_admin'],
      method: 'post',
      path: `${prefix}/sites`,
      summary: 'Create a site with its IANA time zone',
      body: siteSchema,
      responses: created('the site', idOnly),
      handle: async (ctx, { body }) => access.createSite(body, by(ctx)),
    }),
    operation({
      ...sites,
      id: 'getSite',
      method: 'get',
      path: `${prefix}/sites/:siteId`,
      summary: "A site's doors, schedules, exceptions, access levels and controllers",
      params: siteParams,
      site: siteOf,
      responses: { 200: { description: 'the site', schema: z.object({ doors: z.array(idOnly), schedules: z.array(idOnly), levels: z.array(idOnly), controllers: z.array(idOnly), exceptions: z.array(z.object({}).loose()) }) } },
      handle: async (_ctx, { params }) => queries.access.siteDetail(params.siteId),
    }),
    operation({
      id: 'addSiteAdmin',
      tag: 'doors',
      roles: ['super_admin'],
      method: 'post',
      path: `${prefix}/sites/:siteId/admins`,
      summary: 'Make a user an access site admin of this site',
      params: siteParams,
      body: z.object({ user_id: uuid }),
      responses: { 204: { description: 'added (also when already one)' } },
      handle: async (_ctx, { params, body }) => {
        if (!(await siteOf(params))) throw new AppError(404, 'not_found', 'no such site', 'siteId');
        await existingUser(body.user_id);
        await access.addSiteAdmin(params.siteId, body.user_id);
      },
    }),
    operation({
      ...sites,
      id: 'createSchedule',
      method: 'post',
      path: `${prefix}/sites/:siteId/schedules`,
      summary: 'A weekly schedule: windows in the site’s wall-clock time, each with a door mode',
      params: siteParams,
      site: siteOf,
      body: scheduleSchema,
      responses: created('the schedule', idOnly),
      handle: async (ctx, { params, body }) => access.createSchedule(params.siteId, body, by(ctx)),
    }),
    operation({
      ...sites,
      id: 'createDoor',
      method: 'post',
      path: `${prefix}/sites/:siteId/doors`,
      summary: 'A door with a badge reader, a keypad or both',
      params: siteParams,
      site: siteOf,
      body: doorSchema,
      responses: created('the door', idOnly),
      handle: async (ctx, { params, body }) => access.createDoor(params.siteId, body, by(ctx)),
    }),
    operation({
      ...sites,
      id: 'createAccessLevel',
      method: 'post',
      path: `${prefix}/sites/:siteId/levels`,
      summary: 'An access level: which users may open which doors during which schedule',
      params: siteParams,
      site: siteOf,
      body: levelSchema,
      responses: created('the level', idOnly),
      handle: async (ctx, { params, body }) => access.createLevel(params.siteId, body, by(ctx)),
    }),
    operation({
      ...sites,
      id: 'createController',
      method: 'post',
      path: `${prefix}/sites/:siteId/controllers`,
      summary: 'A door controller; its token is in this answer only',
      params: siteParams,
      site: siteOf,
      body: z.object({ name: z.string().trim().min(1).max(200) }),
      responses: created('the controller and its token', z.object({ id: z.string(), token: z.string() }).loose()),
      handle: async (ctx, { params, body }) => access.createController(params.siteId, body.name, by(ctx)),
    }),
    operation({
      ...sites,
      id: 'setDoorException',
      method: 'put',
      path: `${prefix}/doors/:doorId/exceptions`,
      summary: "Replace one local day's windows for a door (a holiday, an event)",
      params: doorParams,
      site: doorSiteOf,
      body: exceptionSchema,
      responses: { 204: { description: 'set' } },
      handle: async (ctx, { params, body }) => {
        await access.setException(params.doorId, body, by(ctx));
      },
    }),
    operation({
      ...sites,
      id: 'unlockDoor',
      method: 'post',
      path: `${prefix}/doors/:doorId/unlock`,
      summary: 'Open a door from afar (audited like any decision)',
      params: doorParams,
      site: doorSiteOf,
      responses: { 200: { description: 'the decision', schema: decisionSchema } },
      handle: async (ctx, { params }) => access.remoteUnlock(params.doorId, by(ctx)),
    }),
    operation({
      ...sites,
      roles: [...SITE_ROLES, 'auditor'],
      id: 'listDoorDecisions',
      method: 'get',
      path: `${prefix}/doors/:doorId/decisions`,
      summary: 'Access decisions at a door, newest first',
      params: doorParams,
      site: doorSiteOf,
      query: z.object({ user_id: uuid.optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      responses: { 200: { description: 'decisions', schema: z.object({ decisions: z.array(z.object({}).loose()) }) } },
      handle: async (_ctx, { params, query }) => ({ decisions: await access.decisions({ doorId: params.doorId, userId: query.user_id, limit: query.limit }) }),
    }),
  ];
}
