import { z } from 'zod';
import type { Context } from 'koa';
import { actorOf, PEOPLE_ADMINS } from '../admin/api/common.js';
import { type ApiResponse, ifMatchVersion, operation, Reply } from '../admin/api/operation.js';
import { assertMayManage, type Role } from '../admin/users.js';
import type { NamedRef, VersionedTable } from '../db/access.js';
import type { Queries } from '../db/index.js';
import type { Notifier } from '../notify/notifier.js';
import { AppError } from '../errors.js';
import type { SecretBox } from '../security/secret-box.js';
import { accessCodeSchema } from './codes.js';
import { exportAccessCsv, importAccessCsv } from './csv.js';
import { type AccessService, credentialSchema, dayWindowsSchema, doorPatchSchema, doorSchema, exceptionSchema, levelPatchSchema, levelSchema, nameSchema, newCodeSchema, schedulePatchSchema, scheduleSchema, sitePatchSchema, siteSchema } from './service.js';

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
const etag = (row: { version: number }) => ({ etag: `"${row.version}"` });
/** An edited object, with its new version as ETag for the next edit. */
const edited = (row: { version: number }) => new Reply(200, row, etag(row));
const ifMatch = {
  ifMatch: true,
  description: 'Send If-Match with the ETag from GET (or the `version` read) so that a change made meanwhile by someone else is not overwritten.',
};
const editResponses = (what: string) => ({
  200: { description: `the ${what}, with its new version`, schema: z.object({ id: z.string(), version: z.number() }).loose(), headers: { ETag: 'the new version' } },
  404: { description: `no such ${what}` },
  412: { description: `the ${what} changed since it was read` },
});
const inUseSchema = z.object({ code: z.literal('in_use'), referenced_by: z.record(z.string(), z.array(z.object({ id: z.string(), name: z.string() }).loose())) }).loose();
/** A delete refused because something still refers to the object: the answer names each referrer. */
function removed(outcome: { referenced_by: Record<string, NamedRef[]> } | undefined, what: string) {
  if (!outcome) return undefined;
  const names = Object.entries(outcome.referenced_by).map(([kind, list]) => `${kind}: ${list.map((r) => r.name).join(', ')}`).join('; ');
  return new Reply(409, { type: 'about:blank', title: `this ${what} is still in use`, status: 409, code: 'in_use', detail: `still used by ${names}`, referenced_by: outcome.referenced_by });
}
function deleteResponses(what: string, inUse: boolean): Record<number, ApiResponse> {
  const responses: Record<number, ApiResponse> = { 204: { description: 'deleted' }, 404: { description: `no such ${what}` }, 412: { description: `the ${what} changed since it was read` } };
  if (inUse) responses[409] = { description: 'still in use: the answer lists what refers to it', schema: inUseSchema };
  return responses;
}
const decisionSchema = z.object({ result: z.enum(['grant', 'deny', 'code_required']), reason: z.string(), mode: z.string().optional() });

const bulkSchema = z
  .object({
    add: z.array(z.union([z.object({ user_id: uuid, code: accessCodeSchema }).strict(), z.object({ user_id: uuid, generate: z.object({ length: z.number().int().min(4).max(16) }) }).strict()])).max(1000).default([]),
    delete: z.array(z.object({ user_id: uuid, code_id: uuid }).strict()).max(1000).default([]),
  })
  .strict();

export function accessAdminOperations(deps: { access: AccessService; queries: Queries; box: SecretBox; notifier: Notifier }) {
  const { access, queries } = deps;
  const by = actorOf;
  /**
   * The person whose codes or credentials are managed. Someone holding an admin role is a super admin's business
   * only: an MFA code set on an admin by a credential manager would become that admin's door PIN, and a card theirs.
   */
  const existingUser = async (ctx: Context, userId: string) => {
    const target = await queries.users.findById(userId);
    if (!target) throw new AppError(404, 'user_not_found', 'no such user', 'userId');
    assertMayManage(ctx.state.user!, target);
    return userId;
  };
  const siteOf = async (params: { siteId: string }) => ((await queries.access.findSite(params.siteId)) ? params.siteId : undefined);
  const doorSiteOf = (params: { doorId: string }) => access.doorSite(params.doorId);
  const siteOfRow = (table: VersionedTable) => async (id: string) => (await queries.access.findVersioned(table, id))?.site_id;
  const scheduleSite = siteOfRow('door_schedules');
  const levelSite = siteOfRow('access_levels');
  const controllerSite = siteOfRow('access_controllers');
  const scheduleParams = z.object({ scheduleId: uuid });
  const levelParams = z.object({ levelId: uuid });
  const controllerParams = z.object({ controllerId: uuid });
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
      handle: async (ctx, { params }) => ({ codes: await access.listCodes(await existingUser(ctx, params.userId)) }),
    }),
    operation({
      ...people,
      id: 'addMfaCode',
      method: 'post',
      path: `${prefix}/users/:userId/mfa-codes`,
      summary: 'Add an MFA code (4–16 digits), given or generated',
      body: newCodeSchema,
      responses: created('the code', idOnly),
      handle: async (ctx, { params, body }) => access.addMfaCode(await existingUser(ctx, params.userId), body, by(ctx)),
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
        await access.updateCode(await existingUser(ctx, params.userId), params.codeId, body, by(ctx));
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
        await access.removeCode(await existingUser(ctx, params.userId), params.codeId, by(ctx));
      },
    }),
    operation({
      ...people,
      id: 'setEntryCode',
      method: 'put',
      path: `${prefix}/users/:userId/entry-code`,
      summary: "Set the user's entry code, given or generated (unique across users; trivial codes refused); a generated one is in this answer",
      body: newCodeSchema,
      responses: { 200: { description: 'set', schema: z.object({ id: z.string(), code: z.string().optional() }) }, 409: { description: 'another user has it' } },
      handle: async (ctx, { params, body }) => access.setEntryCode(await existingUser(ctx, params.userId), body, by(ctx)),
    }),
    operation({
      ...people,
      id: 'listCredentials',
      method: 'get',
      path: `${prefix}/users/:userId/credentials`,
      summary: "A user's cards, NFC phones and Bluetooth unlocks",
      responses: { 200: { description: 'credentials', schema: z.object({ credentials: z.array(z.object({ id: z.string(), kind: z.string(), identifier: z.string() }).loose()) }) } },
      handle: async (ctx, { params }) => ({ credentials: await access.listCredentials(await existingUser(ctx, params.userId)) }),
    }),
    operation({
      ...people,
      id: 'addCredential',
      method: 'post',
      path: `${prefix}/users/:userId/credentials`,
      summary: 'Add a card, NFC phone or Bluetooth unlock',
      body: credentialSchema,
      responses: { ...created('the credential', idOnly), 409: { description: 'someone else holds it' } },
      handle: async (ctx, { params, body }) => access.addCredential(await existingUser(ctx, params.userId), body, by(ctx)),
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
        await access.removeCredential(await existingUser(ctx, params.userId), params.credentialId, by(ctx));
      },
    }),
    operation({
      ...people,
      id: 'suspendCredential',
      method: 'patch',
      path: `${prefix}/users/:userId/credentials/:credentialId`,
      summary: 'Suspend a lost card or phone (kept, but it opens nothing) or resume it',
      params: z.object({ userId: uuid, credentialId: uuid }),
      body: z.object({ suspended: z.boolean() }).strict(),
      responses: { 200: { description: 'the credential', schema: z.object({ id: z.string(), suspended_at: z.unknown() }).loose() }, 404: { description: 'no such credential' } },
      handle: async (ctx, { params, body }) => access.suspendCredential(await existingUser(ctx, params.userId), params.credentialId, body.suspended, by(ctx)),
    }),
    operation({
      ...people,
      id: 'removeEntryCode',
      method: 'delete',
      path: `${prefix}/users/:userId/entry-code`,
      summary: "Remove the user's entry code",
      responses: { 204: { description: 'removed (also when there was none)' } },
      handle: async (ctx, { params }) => {
        await access.removeEntryCode(await existingUser(ctx, params.userId), by(ctx));
      },
    }),
    operation({
      id: 'bulkMfaCodes',
      tag: 'door credentials',
      roles: CREDENTIAL_ROLES,
      method: 'post',
      path: `${prefix}/mfa-codes/bulk`,
      summary: 'Add and delete MFA codes of many users at once (deletes first); every user is checked before anything is written',
      body: bulkSchema,
      responses: { 200: { description: 'what was done', schema: z.object({ added: z.array(z.object({ user_id: z.string(), id: z.string(), code: z.string() })), deleted: z.number() }) } },
      handle: async (ctx, { body }) => {
        // The same checks as one by one, for every user named, before the first write.
        const users = [...new Set([...body.add.map((a) => a.user_id), ...body.delete.map((d) => d.user_id)])];
        for (const [i, userId] of users.entries()) {
          await existingUser(ctx, userId).catch((error: AppError) => {
            throw new AppError(error.status, error.code, error.message, 'user_id', `user_id: ${userId} (user ${i + 1} of the request)`);
          });
        }
        let deleted = 0;
        for (const item of body.delete) deleted += (await access.removeCode(item.user_id, item.code_id, by(ctx))) ? 1 : 0;
        const added = [];
        for (const { user_id, ...code } of body.add) added.push({ user_id, ...(await access.addMfaCode(user_id, code, by(ctx))) });
        return { added: added.map((a) => ({ user_id: a.user_id, id: a.id, code: a.code })), deleted };
      },
    }),
    operation({
      id: 'importAccessCsv',
      tag: 'door credentials',
      roles: CREDENTIAL_ROLES,
      method: 'post',
      path: `${prefix}/import`,
      summary: 'Import credentials and codes from CSV (email,name,kind,value[,action]; action add or delete): a dry run reports, a real run writes all or nothing',
      bodyMediaType: 'text/csv',
      query: z.object({ dry_run: z.enum(['true', 'false']).default('true').describe('true: check and report only') }),
      responses: {
        200: { description: 'the report (written unless a dry run)', schema: z.object({ dry_run: z.boolean(), ok: z.boolean(), rows: z.number() }).loose() },
        422: { description: 'the report naming each bad line; nothing was written' },
      },
      handle: async (ctx, { query, body }) => {
        const dryRun = query.dry_run !== 'false';
        const caller = ctx.state.user!;
        const report = await importAccessCsv({ queries, box: deps.box, lookup: access.lookup, notifier: deps.notifier, changed: access.announce }, body as string, dryRun, {
          // The roles POST /users allows; and whom they may manage, as on every code and credential operation.
          mayCreateUsers: PEOPLE_ADMINS.some((role) => caller.roles.includes(role)),
          mayManageAdmins: caller.roles.includes('super_admin'),
        });
        await queries.audit.insert({ action: 'access.import', outcome: report.ok ? 'success' : 'failure', actorId: by(ctx).actorId, ip: ctx.ip, details: { dry_run: dryRun, rows: report.rows, problems: report.problems.length, created: report.created, deleted: report.deleted } });
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
        return exportAccessCsv({ queries, box: deps.box }, { withAdmins: ctx.state.user!.roles.includes('super_admin') });
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
      handle: async (_ctx, { params }) => {
        const site = (await queries.access.findVersioned('sites', params.siteId))!;
        return new Reply(200, { site, ...(await queries.access.siteDetail(params.siteId)) }, etag(site));
      },
    }),
    operation({
      id: 'updateSite',
      tag: 'doors',
      roles: ['super_admin'],
      method: 'patch',
      path: `${prefix}/sites/:siteId`,
      summary: "Rename a site or change its time zone (its schedules' windows are read in the new zone)",
      ...ifMatch,
      params: siteParams,
      body: sitePatchSchema,
      responses: editResponses('site'),
      handle: async (ctx, { params, body }) => edited(await access.updateSite(params.siteId, body, ifMatchVersion(ctx), by(ctx))),
    }),
    operation({
      id: 'deleteSite',
      tag: 'doors',
      roles: ['super_admin'],
      method: 'delete',
      path: `${prefix}/sites/:siteId`,
      summary: 'Delete an empty site (409 lists the doors, schedules, levels and controllers still in it)',
      ...ifMatch,
      params: siteParams,
      responses: deleteResponses('site', true),
      handle: async (ctx, { params }) => removed(await access.deleteSite(params.siteId, ifMatchVersion(ctx), by(ctx)), 'site'),
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
        if (!(await queries.users.findById(body.user_id))) throw new AppError(404, 'user_not_found', 'no such user', 'user_id');
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
      body: z.object({ name: nameSchema }),
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
      id: 'getDoor',
      method: 'get',
      path: `${prefix}/doors/:doorId`,
      summary: 'A door, its exceptions, and its version as ETag',
      params: doorParams,
      site: doorSiteOf,
      responses: { 200: { description: 'the door', schema: z.object({ id: z.string(), version: z.number(), exceptions: z.array(z.object({}).loose()) }).loose(), headers: { ETag: 'the version' } } },
      handle: async (_ctx, { params }) => {
        const door = await access.getDoor(params.doorId);
        return new Reply(200, door, etag(door));
      },
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'updateDoor',
      method: 'patch',
      path: `${prefix}/doors/:doorId`,
      summary: 'Rename a door, change its hardware (reader, keypad, in/out) or its schedule',
      params: doorParams,
      site: doorSiteOf,
      body: doorPatchSchema,
      responses: editResponses('door'),
      handle: async (ctx, { params, body }) => edited(await access.updateDoor(params.doorId, body, ifMatchVersion(ctx), by(ctx))),
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'deleteDoor',
      method: 'delete',
      path: `${prefix}/doors/:doorId`,
      summary: 'Delete a door and its exceptions (409 lists the access levels that still name it); its decisions stay in the log',
      params: doorParams,
      site: doorSiteOf,
      responses: deleteResponses('door', true),
      handle: async (ctx, { params }) => removed(await access.deleteDoor(params.doorId, ifMatchVersion(ctx), by(ctx)), 'door'),
    }),
    operation({
      ...sites,
      id: 'deleteDoorException',
      method: 'delete',
      path: `${prefix}/doors/:doorId/exceptions/:day`,
      summary: "Remove a door's exception for one day: the schedule applies again",
      params: z.object({ doorId: uuid, day: z.iso.date({ message: 'expected a date such as 2026-12-25' }) }),
      site: doorSiteOf,
      responses: { 204: { description: 'removed' }, 404: { description: 'no exception that day' } },
      handle: async (ctx, { params }) => {
        if (!(await access.deleteException(params.doorId, params.day, by(ctx)))) throw new AppError(404, 'exception_not_found', 'no exception on this day', 'day');
      },
    }),
    operation({
      ...sites,
      id: 'getSchedule',
      method: 'get',
      path: `${prefix}/schedules/:scheduleId`,
      summary: 'A schedule, with its version as ETag',
      params: scheduleParams,
      site: (p) => scheduleSite(p.scheduleId),
      responses: { 200: { description: 'the schedule', schema: z.object({ id: z.string(), version: z.number(), windows: z.array(z.object({}).loose()) }).loose(), headers: { ETag: 'the version' } } },
      handle: async (_ctx, { params }) => {
        const schedule = await access.getSchedule(params.scheduleId);
        return new Reply(200, schedule, etag(schedule));
      },
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'updateSchedule',
      method: 'patch',
      path: `${prefix}/schedules/:scheduleId`,
      summary: 'Rename a schedule or replace its whole week of windows',
      params: scheduleParams,
      site: (p) => scheduleSite(p.scheduleId),
      body: schedulePatchSchema,
      responses: editResponses('schedule'),
      handle: async (ctx, { params, body }) => edited(await access.updateSchedule(params.scheduleId, body, ifMatchVersion(ctx), by(ctx))),
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'setScheduleDay',
      method: 'put',
      path: `${prefix}/schedules/:scheduleId/days/:weekday`,
      summary: "Replace one weekday's windows (0 = Sunday … 6 = Saturday), e.g. switch two-factor entry on from 09:00 to 18:00; the other days stay",
      params: z.object({ scheduleId: uuid, weekday: z.coerce.number().int().min(0).max(6) }),
      site: (p) => scheduleSite(p.scheduleId),
      body: dayWindowsSchema,
      responses: editResponses('schedule'),
      handle: async (ctx, { params, body }) => edited(await access.setScheduleDay(params.scheduleId, params.weekday, body, ifMatchVersion(ctx), by(ctx))),
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'deleteSchedule',
      method: 'delete',
      path: `${prefix}/schedules/:scheduleId`,
      summary: 'Delete a schedule (409 lists the doors and access levels that use it)',
      params: scheduleParams,
      site: (p) => scheduleSite(p.scheduleId),
      responses: deleteResponses('schedule', true),
      handle: async (ctx, { params }) => removed(await access.deleteSchedule(params.scheduleId, ifMatchVersion(ctx), by(ctx)), 'schedule'),
    }),
    operation({
      ...sites,
      id: 'getAccessLevel',
      method: 'get',
      path: `${prefix}/levels/:levelId`,
      summary: 'An access level with its doors and members, and its version as ETag',
      params: levelParams,
      site: (p) => levelSite(p.levelId),
      responses: { 200: { description: 'the level', schema: z.object({ id: z.string(), version: z.number(), door_ids: z.array(z.string()), user_ids: z.array(z.string()) }).loose(), headers: { ETag: 'the version' } } },
      handle: async (_ctx, { params }) => {
        const level = await access.getLevel(params.levelId);
        return new Reply(200, level, etag(level));
      },
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'updateAccessLevel',
      method: 'patch',
      path: `${prefix}/levels/:levelId`,
      summary: "Rename a level, change its schedule, or replace its doors or members (each id is checked: it must exist, a door on this level's site)",
      params: levelParams,
      site: (p) => levelSite(p.levelId),
      body: levelPatchSchema,
      responses: editResponses('level'),
      handle: async (ctx, { params, body }) => edited(await access.updateLevel(params.levelId, body, ifMatchVersion(ctx), by(ctx))),
    }),
    operation({
      ...sites,
      id: 'addAccessLevelMember',
      method: 'post',
      path: `${prefix}/levels/:levelId/users`,
      summary: 'Add one user to a level, by id or email',
      params: levelParams,
      site: (p) => levelSite(p.levelId),
      body: z.union([z.object({ user_id: uuid }).strict(), z.object({ email: z.email({ message: 'expected an email address' }).max(320) }).strict()]),
      responses: { 204: { description: 'added (also when already a member)' } },
      handle: async (ctx, { params, body }) => {
        const userId = 'user_id' in body ? body.user_id : (await queries.users.findByEmail(body.email))?.id;
        if (!userId) throw new AppError(400, 'invalid_request', 'no user has this email', 'email');
        await access.addLevelMember(params.levelId, userId, by(ctx));
      },
    }),
    operation({
      ...sites,
      id: 'removeAccessLevelMember',
      method: 'delete',
      path: `${prefix}/levels/:levelId/users/:userId`,
      summary: 'Remove one user from a level',
      params: z.object({ levelId: uuid, userId: uuid }),
      site: (p) => levelSite(p.levelId),
      responses: { 204: { description: 'removed (also when not a member)' } },
      handle: async (ctx, { params }) => {
        await access.removeLevelMember(params.levelId, params.userId, by(ctx));
      },
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'deleteAccessLevel',
      method: 'delete',
      path: `${prefix}/levels/:levelId`,
      summary: 'Delete an access level: its members lose the access it gave',
      params: levelParams,
      site: (p) => levelSite(p.levelId),
      responses: deleteResponses('level', false),
      handle: async (ctx, { params }) => {
        await access.deleteLevel(params.levelId, ifMatchVersion(ctx), by(ctx));
      },
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'renameController',
      method: 'patch',
      path: `${prefix}/controllers/:controllerId`,
      summary: 'Rename a door controller',
      params: controllerParams,
      site: (p) => controllerSite(p.controllerId),
      body: z.object({ name: nameSchema }).strict(),
      responses: editResponses('controller'),
      handle: async (ctx, { params, body }) => edited(await access.renameController(params.controllerId, body, ifMatchVersion(ctx), by(ctx))),
    }),
    operation({
      ...sites,
      id: 'rotateControllerToken',
      method: 'post',
      path: `${prefix}/controllers/:controllerId/token`,
      summary: 'A new token for a controller, in this answer only; the old token stops working at once on every instance',
      params: controllerParams,
      site: (p) => controllerSite(p.controllerId),
      responses: { 200: { description: 'the controller and its new token', schema: z.object({ id: z.string(), token: z.string() }).loose() } },
      handle: async (ctx, { params }) => access.rotateControllerToken(params.controllerId, by(ctx)),
    }),
    operation({
      ...sites,
      ...ifMatch,
      id: 'deleteController',
      method: 'delete',
      path: `${prefix}/controllers/:controllerId`,
      summary: 'Revoke a (lost) controller: its token stops working at once on every instance',
      params: controllerParams,
      site: (p) => controllerSite(p.controllerId),
      responses: deleteResponses('controller', false),
      handle: async (ctx, { params }) => {
        await access.deleteController(params.controllerId, ifMatchVersion(ctx), by(ctx));
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
