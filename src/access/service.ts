import crypto from 'node:crypto';
import { z } from 'zod';
import { type AccessCodeRow, CREDENTIAL_KINDS, type NamedRef, type PendingChange, type VersionedTable } from '../db/access.js';
import { type ChangeFeed, createLocalChangeFeed, invalidatedCache } from '../db/change-feed.js';
import type { Queries } from '../db/index.js';
import { AppError } from '../errors.js';
import type { Notifier, SecurityEvent } from '../notify/notifier.js';
import type { Clock } from '../security/clock.js';
import type { Throttle, ThrottleRule } from '../security/throttle.js';
import type { SecretBox } from '../security/secret-box.js';
import { accessCodeSchema, codeLookup, generateAccessCode, isTrivialCode } from './codes.js';
import { type Decision, decideCredential, DOOR_MODES, type Direction, twoFactorAllowed, type Window, windowsSchema } from './decide.js';
import { isTimeZone, localMoment } from './time.js';

export interface AccessDeps {
  queries: Queries;
  box: SecretBox;
  clock: Clock;
  lookupKey: Buffer;
  throttle: Throttle;
  notifier: Notifier;
  /** LATCHKEY_PIN_WEB_MIN_LENGTH: a door PIN shorter than this (or than WEB_PIN_MIN_LENGTH) works at doors only. */
  webPinMinLength: number;
  /**
   * Every administrative change is published on topic 'access' with a key naming what changed (`site:<id>`,
   * `door:<id>`, `schedule:<id>`, `exception:<doorId>`, `level:<id>`, `controller:<id>`, `credential:<id>`,
   * `codes:<userId>`), so that every instance drops what it holds at once.
   */
  feed?: ChangeFeed;
  /** Called on this instance with the same key, before the feed is told (for in-memory decision state). */
  onAccessChanged?: (key: string) => void;
}

/** NIST SP 800-63B (rev. 3, 5.1.1.2): a secret chosen for the user has at least 6 characters; no setting goes below. */
const WEB_PIN_MIN_LENGTH = 6;
// Opting in names a code by typing it: a guess at the user's door PIN, limited like one.
const WEB_PIN_OPT_IN_TRIES = 5;
const WEB_PIN_OPT_IN_WINDOW_SECONDS = 900;

export interface Acting {
  actorId: string | null;
  ip?: string;
}

/** Printable text only: a control character (a NUL above all, which PostgreSQL cannot store) is refused, naming the field. */
export const withoutControlCharacters = (text: z.ZodString) => text.regex(/^[^\p{Cc}]*$/u, { message: 'a name has no control characters' });
/** What an administrator names a site, door, schedule, exception, level or controller. */
const optionalName = withoutControlCharacters(z.string().trim().max(200));
export const nameSchema = optionalName.min(1);

export const siteSchema = z.object({
  name: nameSchema,
  time_zone: z.string().refine(isTimeZone, { message: 'expected an IANA time zone such as Asia/Seoul' }),
});
export const scheduleSchema = z.object({ name: nameSchema, windows: windowsSchema });
const doorFields = {
  name: nameSchema,
  has_badge_reader: z.boolean(),
  has_keypad: z.boolean(),
  in_out: z.boolean(),
  schedule_id: z.string().uuid().nullable(),
};
export const doorSchema = z.object({
  ...doorFields,
  has_badge_reader: doorFields.has_badge_reader.default(true),
  has_keypad: doorFields.has_keypad.default(false),
  in_out: doorFields.in_out.default(false),
  schedule_id: doorFields.schedule_id.default(null),
});
// Changes name only what they change; an unknown field is refused by name rather than ignored.
export const sitePatchSchema = siteSchema.partial().strict();
export const doorPatchSchema = z.object(doorFields).partial().strict();
export const schedulePatchSchema = scheduleSchema.partial().strict();
/** One weekday's windows (seed 002: select a day, switch two-factor entry on, set its start and end). */
export const dayWindowsSchema = z.object({
  windows: z
    .array(
      z
        .object({ start: z.number().int().min(0).max(1440), end: z.number().int().min(0).max(1440), mode: z.enum(DOOR_MODES) })
        .refine((w) => w.end > w.start, { message: 'a window ends after it starts', path: ['end'] }),
    )
    .max(24)
    .refine((ws) => ws.every((w, i) => ws.every((o, j) => i === j || w.end <= o.start || o.end <= w.start)), { message: 'windows of one day must not overlap' }),
}).strict();
export const exceptionSchema = z.object({
  day: z.iso.date({ message: 'expected a date such as 2026-12-25' }),
  name: optionalName.default(''),
  windows: windowsSchema,
});
const levelFields = {
  name: nameSchema,
  schedule_id: z.string().uuid().nullable(),
  door_ids: z.array(z.string().uuid()).max(1000),
  user_ids: z.array(z.string().uuid()).max(100000),
};
export const levelSchema = z.object({
  name: levelFields.name,
  schedule_id: levelFields.schedule_id.default(null),
  door_ids: levelFields.door_ids.default([]),
  user_ids: levelFields.user_ids.default([]),
});
export const levelPatchSchema = z.object(levelFields).partial().strict();
export const credentialSchema = z.object({
  kind: z.enum(CREDENTIAL_KINDS),
  identifier: z.string().trim().regex(/^[A-Za-z0-9:_-]{1,64}$/, { message: 'expected 1–64 letters, digits, : _ or -' }),
});
export const newCodeSchema = z.union([
  z.object({ code: accessCodeSchema }),
  z.object({ generate: z.object({ length: z.number().int().min(4).max(16) }) }),
]);
const webPinSchema = z.object({ code: z.string().trim().regex(/^\d{1,16}$/, { message: 'expected the digits of your door PIN' }) });

const codeView = (box: SecretBox) => (row: AccessCodeRow) => ({
  id: row.id,
  kind: row.kind,
  code: box.open(row.code_sealed, `access-code:${row.user_id}:${row.id}`).toString('utf8'),
  created_at: row.created_at,
});

function twoFactorWindowsAllowed(windows: Window[], door: { has_badge_reader: boolean; has_keypad: boolean }, field = 'windows') {
  if (windows.some((w) => w.mode === 'card_and_code') && !twoFactorAllowed({ hasBadgeReader: door.has_badge_reader, hasKeypad: door.has_keypad })) {
    throw new AppError(400, 'two_factor_needs_reader_and_keypad', 'card + code entry needs a badge reader and a keypad', field);
  }
}

const controllerSecretHash = (value: string) => crypto.hash('sha256', value, 'buffer');

/** A controller's secret: shown once (in its token), kept only as a hash. */
function newControllerSecret() {
  const value = crypto.randomBytes(32).toString('base64url');
  return { value, hash: controllerSecretHash(value).toString('base64url') };
}

/** Both are SHA-256 digests, of equal length whatever was sent: compared as they are, in constant time. */
function sameSecret(secret: string, storedHash: string) {
  const stored = Buffer.from(storedHash, 'base64url');
  return stored.length === 32 && crypto.timingSafeEqual(controllerSecretHash(secret), stored);
}

// A backstop only: a rotated or revoked controller is dropped on every instance through the change feed.
const CONTROLLER_CACHE_MS = 30_000;
// Built once: a controller authenticates on every request, and making a schema costs more than using it.
const controllerIdSchema = z.uuid();

export function createAccessService(deps: AccessDeps) {
  const { queries, box, clock, notifier } = deps;
  const webPinMinLength = Math.max(WEB_PIN_MIN_LENGTH, deps.webPinMinLength);
  const access = queries.access;
  // Keyed `controller:<id>`, the key a rotation or revocation publishes: every instance drops the old secret at once.
  // (The loader is async so that the cache holds a settled promise, not a query builder that re-runs when awaited.)
  const feed = deps.feed ?? createLocalChangeFeed();
  const controllerCache = invalidatedCache(feed, 'access', async (key) => access.findController(key.slice('controller:'.length)), CONTROLLER_CACHE_MS);
  /** A controller's cache key: PostgreSQL reads a uuid in any case, so one key for all of them (else a token used
   *  with its id in capitals, or a rotation naming it so, misses the other's entry and outlives the rotation). */
  const controllerKey = (id: string) => `controller:${id.toLowerCase()}`;
  /** Tells this instance and every other one that something a decision reads has changed. */
  async function changed(key: string) {
    deps.onAccessChanged?.(key);
    await feed.publish('access', key);
  }
  /** An update at the version the admin read (`expected`, from If-Match): 404 when gone, 412 when changed since. */
  async function versioned(table: VersionedTable, id: string, patch: Record<string, unknown>, expected: number | undefined, what: string) {
    return found(await access.updateVersioned(table, id, patch, expected), what);
  }
  function found<T>(row: T | 'missing' | 'stale', what: string): T {
    if (row === 'missing') throw new AppError(404, `${what}_not_found`, `no such ${what}`, `${what}_id`);
    if (row === 'stale') throw new AppError(412, 'precondition_failed', `the ${what} changed since it was read`, 'If-Match');
    return row;
  }
  /** A write naming a schedule, door or user that was deleted meanwhile (after the checks) is refused, not a 500. */
  const referenceGone = (field: string) => (error: { code?: string; constraint?: string }) => {
    // The site (or door) in the path, deleted meanwhile: as if it had been gone when the request came.
    if (error.code === '23503' && error.constraint?.endsWith('_site_id_foreign')) throw new AppError(404, 'site_not_found', 'no such site', 'siteId');
    if (error.code === '23503' && error.constraint === 'door_exceptions_door_id_foreign') throw new AppError(404, 'door_not_found', 'no such door', 'doorId');
    if (error.code === '23503') throw new AppError(409, 'reference_gone', 'something this names was just deleted: reload and try again', field);
    throw error;
  };
  /** Windows asking for card + code on any of these doors that lacks a reader or keypad are refused. */
  function twoFactorOnDoors(windows: Window[], doors: Array<NamedRef & { has_badge_reader: boolean; has_keypad: boolean }>) {
    if (!windows.some((w) => w.mode === 'card_and_code')) return;
    const unable = doors.filter((d) => !twoFactorAllowed({ hasBadgeReader: d.has_badge_reader, hasKeypad: d.has_keypad }));
    if (unable.length) throw new AppError(400, 'two_factor_needs_reader_and_keypad', 'card + code entry needs a badge reader and a keypad', 'windows', `windows: used by ${unable.map((d) => d.name).join(', ')}, which cannot do two-factor entry`);
  }
  const lookup = (code: string) => codeLookup(deps.lookupKey, code);
  const audit = (action: string, outcome: 'success' | 'failure' | 'denied', by: Acting, subjectId: string | null, details: Record<string, unknown>) =>
    queries.audit.insert({ action, outcome, actorId: by.actorId, subjectId, ip: by.ip, details });

  /** The owner hears of every PIN issued, changed, removed, opted in or out (never the code itself). */
  async function tellOwner(userId: string, event: SecurityEvent, details?: Record<string, string>) {
    const user = await queries.users.findById(userId);
    if (user) await notifier.notify(user, event, details);
  }

  // Ids in a request about one site must exist and be of that site: a site admin's rights end at their sites.
  async function scheduleOfSite(siteId: string, scheduleId: string | null) {
    if (!scheduleId) return undefined;
    const schedule = await access.findSchedule(scheduleId);
    if (!schedule || schedule.site_id !== siteId) throw new AppError(400, 'invalid_request', 'no such schedule at this site', 'schedule_id');
    return schedule;
  }
  async function assertDoorsOfSite(siteId: string, doorIds: string[]) {
    const found = new Map((await access.doorSites(doorIds)).map((d) => [d.id, d.site_id]));
    const stray = doorIds.find((id) => found.get(id) !== siteId);
    if (stray) throw new AppError(400, 'invalid_request', 'no such door at this site', 'door_ids', `door_ids: no door ${stray} at this site`);
  }
  async function assertUsersExist(userIds: string[]) {
    const found = new Set(await access.existingUserIds(userIds));
    const stranger = userIds.find((id) => !found.has(id));
    if (stranger) throw new AppError(400, 'invalid_request', 'no such user', 'user_ids', `user_ids: no user ${stranger}`);
  }

  async function sealCode(userId: string, id: string, code: string) {
    return { code_sealed: box.seal(code, `access-code:${userId}:${id}`), code_lookup: lookup(code), length: code.length };
  }

  async function updateSchedule(scheduleId: string, input: unknown, expected: number | undefined, by: Acting) {
    const patch = schedulePatchSchema.parse(input);
    if (patch.windows) twoFactorOnDoors(patch.windows, (await access.scheduleReferences(scheduleId)).doors);
    const row = await versioned('door_schedules', scheduleId, patch.windows ? { ...patch, windows: JSON.stringify(patch.windows) } : patch, expected, 'schedule');
    await changed(`schedule:${scheduleId}`);
    await audit('access.schedule_updated', 'success', by, null, { site_id: row.site_id, schedule_id: scheduleId, version: row.version });
    return row;
  }

  return {
    async createSite(input: unknown, by: Acting) {
      const site = await access.insertSite(siteSchema.parse(input));
      await audit('access.site_created', 'success', by, null, { site_id: site.id });
      return site;
    },
    async createSchedule(siteId: string, input: unknown, by: Acting) {
      const schedule = await access.insertSchedule({ site_id: siteId, ...scheduleSchema.parse(input) }).catch(referenceGone('siteId'));
      await changed(`schedule:${schedule.id}`);
      await audit('access.schedule_created', 'success', by, null, { site_id: siteId, schedule_id: schedule.id });
      return schedule;
    },
    async createDoor(siteId: string, input: unknown, by: Acting) {
      const door = doorSchema.parse(input);
      const schedule = await scheduleOfSite(siteId, door.schedule_id);
      if (schedule) twoFactorWindowsAllowed(schedule.windows as Window[], door, 'schedule_id');
      const row = await access.insertDoor({ site_id: siteId, ...door }).catch(referenceGone('schedule_id'));
      await changed(`door:${row.id}`);
      await audit('access.door_created', 'success', by, null, { site_id: siteId, door_id: row.id });
      return row;
    },
    async setException(doorId: string, input: unknown, by: Acting) {
      const door = await access.findDoor(doorId);
      if (!door) throw new AppError(404, 'door_not_found', 'no such door', 'door_id');
      const exception = exceptionSchema.parse(input);
      twoFactorWindowsAllowed(exception.windows, door);
      await access.upsertException({ door_id: doorId, ...exception }).catch(referenceGone('doorId'));
      await changed(`exception:${doorId}`);
      await audit('access.exception_set', 'success', by, null, { door_id: doorId, day: exception.day });
    },
    async createLevel(siteId: string, input: unknown, by: Acting) {
      const level = levelSchema.parse(input);
      const [doorIds, userIds] = [[...new Set(level.door_ids)], [...new Set(level.user_ids)]];
      await scheduleOfSite(siteId, level.schedule_id);
      await assertDoorsOfSite(siteId, doorIds);
      await assertUsersExist(userIds);
      const row = await access.insertLevel({ site_id: siteId, name: level.name, schedule_id: level.schedule_id }, doorIds, userIds).catch(referenceGone('door_ids'));
      await changed(`level:${row.id}`);
      await audit('access.level_created', 'success', by, null, { site_id: siteId, level_id: row.id });
      return row;
    },
    /** A controller's credential: shown once; only its hash is kept. */
    async createController(siteId: string, name: string, by: Acting) {
      const secret = newControllerSecret();
      const row = await access.insertController({ site_id: siteId, name: nameSchema.parse(name), secret_hash: secret.hash }).catch(referenceGone('siteId'));
      await audit('access.controller_created', 'success', by, null, { site_id: siteId, controller_id: row.id });
      return { ...row, token: `${row.id}.${secret.value}` };
    },
    async authenticateController(token: string) {
      const parts = token.split('.');
      const [id, secret] = parts;
      if (parts.length !== 2 || !id || !secret || !controllerIdSchema.safeParse(id).success) return undefined;
      // While this instance cannot hear the feed, the cache reads the controller: a rotation elsewhere counts at once.
      const row = await controllerCache.get(controllerKey(id));
      const ok = row && sameSecret(secret, row.secret_hash);
      return ok ? { id: row.id, site_id: row.site_id } : undefined;
    },
    doorSite: async (doorId: string) => (await access.findDoor(doorId))?.site_id,
    isSiteAdmin: (siteId: string, userId: string) => access.isSiteAdmin(siteId, userId),
    addSiteAdmin: (siteId: string, userId: string) => access.addSiteAdmin(siteId, userId),

    // Changing and removing what was created. A delete that would leave something pointing at nothing (or silently
    // change it, as a door losing its schedule would become access controlled all day) answers 409 naming it.
    async updateSite(siteId: string, input: unknown, expected: number | undefined, by: Acting) {
      const row = await versioned('sites', siteId, sitePatchSchema.parse(input), expected, 'site');
      await changed(`site:${siteId}`);
      await audit('access.site_updated', 'success', by, null, { site_id: siteId, version: row.version });
      return row;
    },
    async deleteSite(siteId: string, expected: number | undefined, by: Acting) {
      const outcome = found(await access.deleteUnreferenced('sites', siteId, expected, (q) => access.siteReferences(siteId, q)), 'site');
      if (outcome !== 'deleted') return outcome;
      await changed(`site:${siteId}`);
      await audit('access.site_deleted', 'success', by, null, { site_id: siteId });
      return undefined;
    },
    getDoor: async (doorId: string) => ({ ...found((await access.findVersioned('doors', doorId)) ?? 'missing', 'door'), exceptions: await access.doorExceptions(doorId) }),
    async updateDoor(doorId: string, input: unknown, expected: number | undefined, by: Acting) {
      const patch = doorPatchSchema.parse(input);
      const door = found((await access.findDoor(doorId)) ?? 'missing', 'door');
      const next = { ...door, ...patch };
      const schedule = await scheduleOfSite(door.site_id, next.schedule_id);
      // The field at fault: the schedule just chosen, or the reader or keypad just taken away.
      const field = patch.schedule_id ? 'schedule_id' : next.has_badge_reader ? 'has_keypad' : 'has_badge_reader';
      if (schedule) twoFactorWindowsAllowed(schedule.windows as Window[], next, field);
      for (const exception of await access.doorExceptions(doorId)) twoFactorWindowsAllowed(exception.windows as Window[], next, field);
      const row = await versioned('doors', doorId, patch, expected, 'door').catch(referenceGone('schedule_id'));
      await changed(`door:${doorId}`);
      await audit('access.door_updated', 'success', by, null, { site_id: door.site_id, door_id: doorId, version: row.version });
      return row;
    },
    async deleteDoor(doorId: string, expected: number | undefined, by: Acting) {
      const outcome = found(await access.deleteUnreferenced('doors', doorId, expected, async (q) => ({ levels: await access.doorLevels(doorId, q) })), 'door');
      if (outcome !== 'deleted') return outcome;
      await changed(`door:${doorId}`);
      await audit('access.door_deleted', 'success', by, null, { door_id: doorId });
      return undefined;
    },
    getSchedule: async (scheduleId: string) => found((await access.findVersioned('door_schedules', scheduleId)) ?? 'missing', 'schedule'),
    updateSchedule,
    /**
     * Replaces one weekday's windows and leaves the other days as they were: a window shared with other days loses
     * this day. At the version read, so a save over someone else's edit of the same schedule is refused.
     */
    async setScheduleDay(scheduleId: string, weekday: number, input: unknown, expected: number | undefined, by: Acting) {
      const { windows } = dayWindowsSchema.parse(input);
      const schedule = found((await access.findVersioned('door_schedules', scheduleId)) ?? 'missing', 'schedule');
      const others = (schedule.windows as Window[]).flatMap((w) => {
        const days = w.days.filter((d) => d !== weekday);
        return days.length ? [{ ...w, days }] : [];
      });
      const next = windowsSchema.parse([...others, ...windows.map((w) => ({ ...w, days: [weekday] }))]);
      return updateSchedule(scheduleId, { windows: next }, expected ?? schedule.version, by);
    },
    async deleteSchedule(scheduleId: string, expected: number | undefined, by: Acting) {
      const outcome = found(await access.deleteUnreferenced('door_schedules', scheduleId, expected, (q) => access.scheduleReferences(scheduleId, q)), 'schedule');
      if (outcome !== 'deleted') return outcome;
      await changed(`schedule:${scheduleId}`);
      await audit('access.schedule_deleted', 'success', by, null, { schedule_id: scheduleId });
      return undefined;
    },
    async deleteException(doorId: string, day: string, by: Acting) {
      const removed = await access.deleteException(doorId, z.iso.date({ message: 'expected a date such as 2026-12-25' }).parse(day));
      if (!removed) return false;
      await changed(`exception:${doorId}`);
      await audit('access.exception_deleted', 'success', by, null, { door_id: doorId, day });
      return true;
    },
    getLevel: async (levelId: string) => found((await access.findLevel(levelId)) ?? 'missing', 'level'),
    async updateLevel(levelId: string, input: unknown, expected: number | undefined, by: Acting) {
      const patch = levelPatchSchema.parse(input);
      const level = found((await access.findLevel(levelId)) ?? 'missing', 'level');
      const doorIds = patch.door_ids && [...new Set(patch.door_ids)];
      const userIds = patch.user_ids && [...new Set(patch.user_ids)];
      if (patch.schedule_id !== undefined) await scheduleOfSite(level.site_id, patch.schedule_id);
      if (doorIds) await assertDoorsOfSite(level.site_id, doorIds);
      if (userIds) await assertUsersExist(userIds);
      const fields = { ...(patch.name !== undefined ? { name: patch.name } : {}), ...(patch.schedule_id !== undefined ? { schedule_id: patch.schedule_id } : {}) };
      const row = found(await access.updateLevel(levelId, fields, expected, doorIds, userIds).catch(referenceGone(doorIds ? 'door_ids' : 'schedule_id')), 'level');
      await changed(`level:${levelId}`);
      await audit('access.level_updated', 'success', by, null, { site_id: level.site_id, level_id: levelId, version: row.version });
      return row;
    },
    async addLevelMember(levelId: string, userId: string, by: Acting) {
      await assertUsersExist([userId]);
      await access.addLevelUser(levelId, userId).catch(referenceGone('user_id'));
      await changed(`level:${levelId}`);
      await audit('access.level_member_added', 'success', by, userId, { level_id: levelId });
    },
    async removeLevelMember(levelId: string, userId: string, by: Acting) {
      if (!(await access.removeLevelUser(levelId, userId))) return;
      await changed(`level:${levelId}`);
      await audit('access.level_member_removed', 'success', by, userId, { level_id: levelId });
    },
    async deleteLevel(levelId: string, expected: number | undefined, by: Acting) {
      // Its doors and members are the level's own parts: they go with it.
      found(await access.deleteUnreferenced('access_levels', levelId, expected, async () => ({})), 'level');
      await changed(`level:${levelId}`);
      await audit('access.level_deleted', 'success', by, null, { level_id: levelId });
    },
    async renameController(controllerId: string, input: unknown, expected: number | undefined, by: Acting) {
      const { name } = z.object({ name: nameSchema }).strict().parse(input);
      const row = await versioned('access_controllers', controllerId, { name }, expected, 'controller');
      await audit('access.controller_renamed', 'success', by, null, { controller_id: controllerId });
      return { id: row.id, site_id: row.site_id, name: row.name, version: row.version };
    },
    /** A new token, shown once; the old one stops working on every instance when this returns. */
    async rotateControllerToken(controllerId: string, by: Acting) {
      const secret = newControllerSecret();
      const row = found((await access.rotateController(controllerId, secret.hash)) ?? 'missing', 'controller');
      await changed(controllerKey(controllerId));
      await audit('access.controller_token_rotated', 'success', by, null, { site_id: row.site_id, controller_id: controllerId });
      return { ...row, token: `${row.id}.${secret.value}` };
    },
    /** A lost controller: gone, and refused on every instance when this returns. */
    async deleteController(controllerId: string, expected: number | undefined, by: Acting) {
      found(await access.deleteUnreferenced('access_controllers', controllerId, expected, async () => ({})), 'controller');
      await changed(controllerKey(controllerId));
      await audit('access.controller_revoked', 'success', by, null, { controller_id: controllerId });
    },

    // Codes and credentials: managed by access user admins/managers and credential managers.
    async addMfaCode(userId: string, input: unknown, by: Acting) {
      const parsed = newCodeSchema.safeParse(input);
      if (!parsed.success) throw parsed.error;
      const code = 'code' in parsed.data ? parsed.data.code : generateAccessCode(parsed.data.generate.length);
      const id = crypto.randomUUID();
      const row = await access.insertCode({ id, user_id: userId, kind: 'mfa', ...(await sealCode(userId, id, code)) });
      await changed(`codes:${userId}`);
      await audit('access.mfa_code_added', 'success', by, userId, { code_id: id, generated: !('code' in parsed.data) });
      await tellOwner(userId, 'door_pin_issued');
      return codeView(box)(row);
    },
    /** Changes an MFA code (entry codes are set whole, with their own checks): its web opt-in does not carry over. */
    async updateCode(userId: string, codeId: string, input: unknown, by: Acting) {
      const { code } = z.object({ code: accessCodeSchema }).parse(input);
      const updated = await access.updateMfaCode(userId, codeId, await sealCode(userId, codeId, code));
      if (!updated) throw new AppError(404, 'code_not_found', 'no such code', 'code_id');
      await changed(`codes:${userId}`);
      await audit('access.code_changed', 'success', by, userId, { code_id: codeId });
      await tellOwner(userId, 'door_pin_changed');
    },
    async removeCode(userId: string, codeId: string, by: Acting) {
      const removed = await access.removeCode(userId, codeId, 'mfa');
      if (removed) {
        await changed(`codes:${userId}`);
        await audit('access.code_removed', 'success', by, userId, { code_id: codeId });
        await tellOwner(userId, 'door_pin_changed');
      }
      return removed > 0;
    },
    listCodes: async (userId: string) => (await access.listCodes(userId)).map(codeView(box)),
    /** One entry code per user, unique across users (it identifies them on a keypad alone); trivial codes are refused. */
    async setEntryCode(userId: string, input: unknown, by: Acting) {
      const parsed = newCodeSchema.parse(input);
      let code: string | undefined;
      if ('generate' in parsed) {
        // A generated code is never trivial; one that happens to be someone's is drawn again.
        for (let draw = 0; draw < 5 && !code; draw++) {
          const candidate = generateAccessCode(parsed.generate.length);
          if (!(await access.findEntryCode(lookup(candidate)))) code = candidate;
        }
        if (!code) throw new AppError(409, 'entry_code_taken', 'no free entry code of this length: choose more digits', 'length');
      } else {
        code = z.object({ code: accessCodeSchema.refine((c) => !isTrivialCode(c), { message: 'too easy to guess (like 0000 or 1234)' }) }).parse(parsed).code;
      }
      const taken = await access.findEntryCode(lookup(code));
      if (taken && taken.user_id !== userId) throw new AppError(409, 'entry_code_taken', 'another user has this entry code', 'code');
      const id = crypto.randomUUID();
      await access.replaceEntryCode({ id, user_id: userId, ...(await sealCode(userId, id, code)) }).catch((error: { code?: string }) => {
        // Two admins giving the same code to two people at once: the unique index decides, the loser is told.
        if (error.code === '23505') throw new AppError(409, 'entry_code_taken', 'another user has this entry code', 'code');
        if (error.code === '23503') throw new AppError(404, 'user_not_found', 'no such user', 'userId');
        throw error;
      });
      await changed(`codes:${userId}`);
      await audit('access.entry_code_set', 'success', by, userId, { code_id: id, generated: 'generate' in parsed });
      return 'generate' in parsed ? { id, code } : { id };
    },
    async removeEntryCode(userId: string, by: Acting) {
      let removed = 0;
      for (const old of await access.listCodes(userId, 'entry')) removed += await access.removeCode(userId, old.id, 'entry');
      if (!removed) return false;
      await changed(`codes:${userId}`);
      await audit('access.entry_code_removed', 'success', by, userId, {});
      return true;
    },
    async addCredential(userId: string, input: unknown, by: Acting) {
      const credential = credentialSchema.parse(input);
      const row = await access.insertCredential({ user_id: userId, ...credential }).catch((error: { code?: string }) => {
        if (error.code === '23505') throw new AppError(409, 'credential_taken', 'this credential belongs to someone', 'identifier');
        throw error;
      });
      await changed(`credential:${row.id}`);
      await audit('access.credential_added', 'success', by, userId, { credential_id: row.id, kind: row.kind });
      return row;
    },
    listCredentials: (userId: string) => access.listCredentials(userId),
    async removeCredential(userId: string, id: string, by: Acting) {
      const removed = await access.removeCredential(userId, id);
      if (removed) {
        await changed(`credential:${id}`);
        await audit('access.credential_removed', 'success', by, userId, { credential_id: id });
      }
      return removed > 0;
    },
    /** A lost card or phone: kept (it may turn up) but denied with its own reason, at once on every instance. */
    async suspendCredential(userId: string, id: string, suspended: boolean, by: Acting) {
      const row = found((await access.setCredentialSuspended(userId, id, suspended)) ?? 'missing', 'credential');
      await changed(`credential:${id}`);
      await audit(suspended ? 'access.credential_suspended' : 'access.credential_resumed', 'success', by, userId, { credential_id: id, kind: row.kind });
      return row;
    },

    /** An authorised admin opens a door from afar: no card, no code, and it is in the audit log like any decision. */
    async remoteUnlock(doorId: string, by: Acting) {
      if (!(await access.findDoor(doorId))) throw new AppError(404, 'door_not_found', 'no such door', 'door_id');
      const decision: Decision = { result: 'grant', mode: 'unlocked', reason: 'remote_unlock' };
      await queries.audit.insert({ action: 'door.decision', outcome: 'success', actorId: by.actorId, ip: by.ip, details: { door_id: doorId, result: 'grant', reason: 'remote_unlock', mode: 'unlocked' } });
      return decision;
    },

    /** Door decisions from the audit log, newest first. */
    decisions: (filter: { doorId?: string; userId?: string; limit?: number }) => access.listDecisions(filter),

    // The door PIN as a web second factor: an MFA code its owner opted in to use, at least webPinMinLength digits,
    // not trivial, and nobody else's (a shared code would let its other holders pass as this user).
    webPinSince: (userId: string) => access.webPinSince(userId, webPinMinLength),
    /** The user's web PIN equal to `code`, if any. */
    findWebPin: async (userId: string, code: string) => (isTrivialCode(code) ? undefined : access.findWebPin(userId, lookup(code), webPinMinLength)),
    /** What the account page shows: the opted-in PIN (and whether it can be used now), and whether one could be. */
    async webPinStatus(userId: string) {
      const candidates = await access.webPinCandidates(userId, webPinMinLength);
      const enabled = candidates.find((c) => c.web_enabled_at !== null);
      return {
        enabled: enabled ? { length: enabled.length, since: enabled.web_enabled_at!, usable: !enabled.shared } : null,
        canOptIn: candidates.length > 0,
        minLength: webPinMinLength,
      };
    },
    /** The user opts in one of their MFA codes, naming it by its digits (after re-entering their password). */
    async enableWebPin(userId: string, digits: string, by: Acting) {
      const { code } = webPinSchema.parse({ code: digits });
      const guess = await deps.throttle.reserve([{ key: `door:pin-opt-in:${userId}`, limit: WEB_PIN_OPT_IN_TRIES, windowSeconds: WEB_PIN_OPT_IN_WINDOW_SECONDS, baseLockSeconds: WEB_PIN_OPT_IN_WINDOW_SECONDS, onSuccess: 'reset' }]);
      if (!guess.allowed) throw new AppError(429, 'too_many_attempts', 'too many tries: wait a while', 'code');
      const row = await access.findUserCode(userId, lookup(code), 'mfa');
      if (!row) {
        await audit('access.pin_web_enabled', 'failure', by, userId, { reason: 'not_found' });
        throw new AppError(400, 'pin_not_found', 'this is not one of your door PINs', 'code');
      }
      await guess.succeeded();
      const candidate = (await access.webPinCandidates(userId, webPinMinLength)).find((c) => c.id === row.id);
      if (!candidate || candidate.shared || isTrivialCode(code)) {
        await audit('access.pin_web_enabled', 'failure', by, userId, { code_id: row.id, reason: !candidate ? 'too_short' : candidate.shared ? 'shared' : 'trivial' });
        throw new AppError(400, 'pin_not_eligible', `this PIN cannot be used to sign in: it must have at least ${webPinMinLength} digits, not be easy to guess, and be yours alone`, 'code');
      }
      await access.enableWebPin(userId, row.id);
      await audit('access.pin_web_enabled', 'success', by, userId, { code_id: row.id });
      await tellOwner(userId, 'factor_added', { factor: 'pin' });
    },
    async disableWebPin(userId: string, by: Acting) {
      if (!(await access.disableWebPin(userId))) return;
      await audit('access.pin_web_disabled', 'success', by, userId, {});
      await tellOwner(userId, 'factor_removed', { factor: 'pin' });
    },
    sealCode,
    lookup,
    /** For changes made elsewhere (a CSV import): tells every instance, as the functions above do. */
    announce: changed,
  };
}

export type AccessService = ReturnType<typeof createAccessService>;
