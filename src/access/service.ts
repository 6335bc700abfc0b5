import crypto from 'node:crypto';
import { z } from 'zod';
import type { AccessCodeRow, PendingChange } from '../db/access.js';
import type { Queries } from '../db/index.js';
import { AppError } from '../errors.js';
import type { Clock } from '../security/clock.js';
import type { Throttle } from '../security/throttle.js';
import { constantTimeEqual, type SecretBox } from '../security/secret-box.js';
import { accessCodeSchema, codeLookup, generateAccessCode, isTrivialCode } from './codes.js';
import { type Decision, decideCredential, type Direction, twoFactorAllowed, type Window, windowsSchema } from './decide.js';
import { isTimeZone, localMoment } from './time.js';

/** How long after a card its code may be entered on the keypad. */
export const CODE_WINDOW_SECONDS = 20;
const MAX_KEYPAD_TRIES = 3;

export interface AccessDeps {
  queries: Queries;
  box: SecretBox;
  clock: Clock;
  lookupKey: Buffer;
  throttle: Throttle;
}

// A card gets 3 tries per scan, and scans are free: without this a stolen card could guess its code at leisure.
const WRONG_CODES_PER_CREDENTIAL = 10;
const CREDENTIAL_LOCK_SECONDS = 3600;
export const credentialThrottleKey = (credentialId: string) => `door:credential:${credentialId}`;

export interface Acting {
  actorId: string | null;
  ip?: string;
}

export const siteSchema = z.object({
  name: z.string().trim().min(1).max(200),
  time_zone: z.string().refine(isTimeZone, { message: 'expected an IANA time zone such as Asia/Seoul' }),
});
export const scheduleSchema = z.object({ name: z.string().trim().min(1).max(200), windows: windowsSchema });
export const doorSchema = z.object({
  name: z.string().trim().min(1).max(200),
  has_badge_reader: z.boolean().default(true),
  has_keypad: z.boolean().default(false),
  in_out: z.boolean().default(false),
  schedule_id: z.string().uuid().nullable().default(null),
});
export const exceptionSchema = z.object({
  day: z.iso.date({ message: 'expected a date such as 2026-12-25' }),
  name: z.string().trim().max(200).default(''),
  windows: windowsSchema,
});
export const levelSchema = z.object({
  name: z.string().trim().min(1).max(200),
  schedule_id: z.string().uuid().nullable().default(null),
  door_ids: z.array(z.string().uuid()).max(1000).default([]),
  user_ids: z.array(z.string().uuid()).max(100000).default([]),
});
export const credentialSchema = z.object({
  kind: z.enum(['card', 'nfc', 'ble']),
  identifier: z.string().trim().regex(/^[A-Za-z0-9:_-]{1,64}$/, { message: 'expected 1–64 letters, digits, : _ or -' }),
});
export const newCodeSchema = z.union([
  z.object({ code: accessCodeSchema }),
  z.object({ generate: z.object({ length: z.number().int().min(4).max(16) }) }),
]);
export const scanSchema = z.object({
  door_id: z.string().uuid(),
  credential: z.string().trim().min(1).max(64),
  direction: z.enum(['in', 'out']).default('in'),
});
export const keypadSchema = z.object({ door_id: z.string().uuid(), code: z.string().max(32) });

const codeView = (box: SecretBox) => (row: AccessCodeRow) => ({
  id: row.id,
  kind: row.kind,
  code: box.open(row.code_sealed, `access-code:${row.user_id}:${row.id}`).toString('utf8'),
  created_at: row.created_at,
});

function twoFactorWindowsAllowed(windows: Window[], door: { has_badge_reader: boolean; has_keypad: boolean }) {
  if (windows.some((w) => w.mode === 'card_and_code') && !twoFactorAllowed({ hasBadgeReader: door.has_badge_reader, hasKeypad: door.has_keypad })) {
    throw new AppError(400, 'two_factor_needs_reader_and_keypad', 'card + code entry needs a badge reader and a keypad', 'windows');
  }
}

/** A small time-bounded cache: door configuration and controller credentials are read on every decision. */
function ttlCache<V>(ttlMs: number, now: () => number) {
  const entries = new Map<string, { value: V; until: number }>();
  return {
    async get(key: string, load: () => Promise<V>): Promise<V> {
      const hit = entries.get(key);
      if (hit && hit.until > now()) return hit.value;
      const value = await load();
      if (entries.size > 10_000) entries.clear();
      entries.set(key, { value, until: now() + ttlMs });
      return value;
    },
    clear: () => entries.clear(),
  };
}

// Other instances see a changed schedule, exception or door within this time; the changing instance at once.
const DOOR_CACHE_MS = 5000;
const CONTROLLER_CACHE_MS = 30_000;

export function createAccessService(deps: AccessDeps) {
  const { queries, box, clock } = deps;
  const access = queries.access;
  const monotonic = () => performance.now();
  const doorCache = ttlCache<Awaited<ReturnType<typeof access.doorContext>> | null>(DOOR_CACHE_MS, monotonic);
  const siteCache = ttlCache<{ siteId: string; timeZone: string } | null>(DOOR_CACHE_MS, monotonic);
  const controllerCache = ttlCache<{ id: string; site_id: string } | null>(CONTROLLER_CACHE_MS, monotonic);
  const lookup = (code: string) => codeLookup(deps.lookupKey, code);
  const audit = (action: string, outcome: 'success' | 'failure' | 'denied', by: Acting, subjectId: string | null, details: Record<string, unknown>) =>
    queries.audit.insert({ action, outcome, actorId: by.actorId, subjectId, ip: by.ip, details });

  async function sealCode(userId: string, id: string, code: string) {
    return { code_sealed: box.seal(code, `access-code:${userId}:${id}`), code_lookup: lookup(code), length: code.length };
  }

  async function recordDecision(doorId: string, decision: Decision, facts: Record<string, unknown>, userId: string | null, pending: PendingChange = null) {
    await access.recordDecision(
      { subject_id: userId, outcome: decision.result === 'deny' ? 'denied' : 'success', details: { door_id: doorId, result: decision.result, reason: decision.reason, mode: decision.mode, ...facts } },
      pending,
    );
  }

  const doorSite = (doorId: string) =>
    siteCache.get(doorId, async () => {
      const door = await access.findDoor(doorId);
      const site = door && (await access.findSite(door.site_id));
      return site ? { siteId: site.id, timeZone: site.time_zone } : null;
    });

  async function doorFacts(doorId: string) {
    const now = clock.now();
    const site = await doorSite(doorId);
    if (!site) return undefined;
    const at = localMoment(now, site.timeZone);
    const row = await doorCache.get(`${doorId}|${at.day}`, async () => (await access.doorContext(doorId, at.day)) ?? null);
    if (!row) return undefined;
    return {
      at,
      now,
      door: {
        id: row.id,
        hasBadgeReader: row.has_badge_reader,
        hasKeypad: row.has_keypad,
        inOut: row.in_out,
        schedule: (row.schedule_windows as Window[] | null) ?? undefined,
        exception: (row.exception_windows as Window[] | null) ?? undefined,
      },
    };
  }

  return {
    async createSite(input: unknown, by: Acting) {
      const site = await access.insertSite(siteSchema.parse(input));
      await audit('access.site_created', 'success', by, null, { site_id: site.id });
      return site;
    },
    async createSchedule(siteId: string, input: unknown, by: Acting) {
      doorCache.clear();
      const schedule = await access.insertSchedule({ site_id: siteId, ...scheduleSchema.parse(input) });
      await audit('access.schedule_created', 'success', by, null, { site_id: siteId, schedule_id: schedule.id });
      return schedule;
    },
    async createDoor(siteId: string, input: unknown, by: Acting) {
      const door = doorSchema.parse(input);
      if (door.schedule_id) {
        const schedule = await access.findSchedule(door.schedule_id);
        if (!schedule || schedule.site_id !== siteId) throw new AppError(400, 'invalid_request', 'no such schedule at this site', 'schedule_id');
        twoFactorWindowsAllowed(schedule.windows as Window[], door);
      }
      const row = await access.insertDoor({ site_id: siteId, ...door });
      doorCache.clear();
      await audit('access.door_created', 'success', by, null, { site_id: siteId, door_id: row.id });
      return row;
    },
    async setException(doorId: string, input: unknown, by: Acting) {
      const door = await access.findDoor(doorId);
      if (!door) throw new AppError(404, 'door_not_found', 'no such door', 'door_id');
      const exception = exceptionSchema.parse(input);
      twoFactorWindowsAllowed(exception.windows, door);
      await access.upsertException({ door_id: doorId, ...exception });
      doorCache.clear();
      await audit('access.exception_set', 'success', by, null, { door_id: doorId, day: exception.day });
    },
    async createLevel(siteId: string, input: unknown, by: Acting) {
      const level = levelSchema.parse(input);
      const row = await access.insertLevel({ site_id: siteId, name: level.name, schedule_id: level.schedule_id }, level.door_ids, level.user_ids);
      await audit('access.level_created', 'success', by, null, { site_id: siteId, level_id: row.id });
      return row;
    },
    /** A controller's credential: shown once; only its hash is kept. */
    async createController(siteId: string, name: string, by: Acting) {
      const secret = crypto.randomBytes(32).toString('base64url');
      const row = await access.insertController({ site_id: siteId, name: z.string().trim().min(1).max(200).parse(name), secret_hash: crypto.createHash('sha256').update(secret).digest('base64url') });
      await audit('access.controller_created', 'success', by, null, { site_id: siteId, controller_id: row.id });
      return { ...row, token: `${row.id}.${secret}` };
    },
    async authenticateController(token: string) {
      const [id, secret] = token.split('.');
      if (!id || !secret || !z.string().uuid().safeParse(id).success) return undefined;
      // Cached under the hash of the whole token: a wrong secret never matches a cached entry.
      const key = crypto.createHash('sha256').update(token).digest('base64url');
      return (
        (await controllerCache.get(key, async () => {
          const row = await access.findController(id);
          const ok = row && constantTimeEqual(crypto.createHash('sha256').update(secret).digest('base64url'), row.secret_hash);
          return ok ? { id: row.id, site_id: row.site_id } : null;
        })) ?? undefined
      );
    },
    doorSite: async (doorId: string) => (await doorSite(doorId))?.siteId,
    isSiteAdmin: (siteId: string, userId: string) => access.isSiteAdmin(siteId, userId),
    addSiteAdmin: (siteId: string, userId: string) => access.addSiteAdmin(siteId, userId),

    // Codes and credentials: managed by access user admins/managers and credential managers.
    async addMfaCode(userId: string, input: unknown, by: Acting) {
      const parsed = newCodeSchema.safeParse(input);
      if (!parsed.success) throw parsed.error;
      const code = 'code' in parsed.data ? parsed.data.code : generateAccessCode(parsed.data.generate.length);
      const id = crypto.randomUUID();
      const row = await access.insertCode({ id, user_id: userId, kind: 'mfa', ...(await sealCode(userId, id, code)) });
      await audit('access.mfa_code_added', 'success', by, userId, { code_id: id, generated: !('code' in parsed.data) });
      return codeView(box)(row);
    },
    async updateCode(userId: string, codeId: string, input: unknown, by: Acting) {
      const { code } = z.object({ code: accessCodeSchema }).parse(input);
      const changed = await access.updateCode(userId, codeId, await sealCode(userId, codeId, code));
      if (!changed) throw new AppError(404, 'code_not_found', 'no such code', 'code_id');
      await audit('access.code_changed', 'success', by, userId, { code_id: codeId });
    },
    async removeCode(userId: string, codeId: string, by: Acting) {
      const removed = await access.removeCode(userId, codeId);
      if (removed) await audit('access.code_removed', 'success', by, userId, { code_id: codeId });
      return removed > 0;
    },
    listCodes: async (userId: string) => (await access.listCodes(userId)).map(codeView(box)),
    /** One entry code per user, unique across users (it identifies them on a keypad alone); trivial codes are refused. */
    async setEntryCode(userId: string, input: unknown, by: Acting) {
      const { code } = z.object({ code: accessCodeSchema.refine((c) => !isTrivialCode(c), { message: 'too easy to guess (like 0000 or 1234)' }) }).parse(input);
      const taken = await access.findEntryCode(lookup(code));
      if (taken && taken.user_id !== userId) throw new AppError(409, 'entry_code_taken', 'another user has this entry code', 'code');
      for (const old of await access.listCodes(userId, 'entry')) await access.removeCode(userId, old.id);
      const id = crypto.randomUUID();
      await access.insertCode({ id, user_id: userId, kind: 'entry', ...(await sealCode(userId, id, code)) });
      await audit('access.entry_code_set', 'success', by, userId, { code_id: id });
      return { id };
    },
    async addCredential(userId: string, input: unknown, by: Acting) {
      const credential = credentialSchema.parse(input);
      const row = await access.insertCredential({ user_id: userId, ...credential }).catch((error: { code?: string }) => {
        if (error.code === '23505') throw new AppError(409, 'credential_taken', 'this credential belongs to someone', 'identifier');
        throw error;
      });
      await audit('access.credential_added', 'success', by, userId, { credential_id: row.id, kind: row.kind });
      return row;
    },
    listCredentials: (userId: string) => access.listCredentials(userId),
    async removeCredential(userId: string, id: string, by: Acting) {
      const removed = await access.removeCredential(userId, id);
      if (removed) await audit('access.credential_removed', 'success', by, userId, { credential_id: id });
      return removed > 0;
    },

    /** A card (or NFC phone, or Bluetooth unlock) at a door's reader. */
    async presentCredential(input: z.infer<typeof scanSchema>): Promise<Decision> {
      const facts = await doorFacts(input.door_id);
      if (!facts) throw new AppError(404, 'door_not_found', 'no such door', 'door_id');
      const holder = await access.credentialContext(input.credential, input.door_id);
      if (!holder) {
        const decision: Decision = { result: 'deny', mode: null, reason: 'unknown_credential' };
        await recordDecision(input.door_id, decision, { credential: input.credential.slice(0, 64), direction: input.direction }, null);
        return decision;
      }
      const locked = holder.locked_until !== null && holder.locked_until > facts.now;
      const decision: Decision = locked ? { result: 'deny', mode: null, reason: 'credential_locked' } : decideCredential({
        door: facts.door,
        at: facts.at,
        credentialKind: holder.kind,
        userActive: holder.status === 'active',
        levelSchedules: holder.levels.map((l) => (l.windows as Window[] | null) ?? null),
        direction: input.direction as Direction,
      });
      const waiting = decision.result === 'code_required'
        ? { put: { door_id: input.door_id, user_id: holder.user_id, credential_id: holder.credential_id, expires_at: new Date(facts.now.getTime() + CODE_WINDOW_SECONDS * 1000) } }
        : null;
      await recordDecision(input.door_id, decision, { credential_id: holder.credential_id, credential_kind: holder.kind, direction: input.direction }, holder.user_id, waiting);
      return decision;
    },

    /**
     * A code on the keypad. After a card at a two-factor door it must be one of that user's codes, within the window;
     * on its own it must be an entry code, which identifies its user, at a door that accepts a code alone.
     */
    async enterCode(input: z.infer<typeof keypadSchema>): Promise<Decision> {
      const facts = await doorFacts(input.door_id);
      if (!facts) throw new AppError(404, 'door_not_found', 'no such door', 'door_id');
      const code = accessCodeSchema.safeParse(input.code);
      const pending = await access.pendingWithCode(input.door_id, code.success ? lookup(code.data) : null);
      const deny = async (reason: string, userId: string | null, extra: Record<string, unknown> = {}, change: PendingChange = null) => {
        const decision: Decision = { result: 'deny', mode: pending ? 'card_and_code' : null, reason };
        await recordDecision(input.door_id, decision, { entry: 'keypad', ...extra }, userId, change);
        return decision;
      };
      if (pending) {
        const card = { credential_id: pending.credential_id };
        if (pending.expires_at <= facts.now) return deny('code_too_late', pending.user_id, card, { clear: input.door_id });
        if (!pending.code_kind) {
          await deps.throttle.recordFailure({ key: credentialThrottleKey(pending.credential_id), limit: WRONG_CODES_PER_CREDENTIAL, windowSeconds: CREDENTIAL_LOCK_SECONDS, baseLockSeconds: CREDENTIAL_LOCK_SECONDS });
          const lastTry = pending.attempts + 1 >= MAX_KEYPAD_TRIES;
          return deny('wrong_code', pending.user_id, card, lastTry ? { clear: input.door_id } : { bump: input.door_id });
        }
        const decision: Decision = { result: 'grant', mode: 'card_and_code', reason: 'card_and_code_accepted' };
        await recordDecision(input.door_id, decision, { entry: 'keypad', ...card, code_kind: pending.code_kind }, pending.user_id, { clear: input.door_id });
        return decision;
      }
      const mode = decideCredential({ door: facts.door, at: facts.at, credentialKind: 'card', userActive: true, levelSchedules: [null], direction: 'in' }).mode;
      if (mode === 'card_and_code') return deny('card_first', null);
      const entry = code.success ? await access.findEntryCode(lookup(code.data)) : undefined;
      if (!entry) return deny('unknown_code', null);
      const user = await queries.users.findById(entry.user_id);
      const decision = decideCredential({
        door: facts.door,
        at: facts.at,
        credentialKind: 'card',
        userActive: user?.status === 'active',
        levelSchedules: (await access.levelsOf(entry.user_id, input.door_id)).map((w) => (w as Window[] | null) ?? null),
        direction: 'in',
      });
      await recordDecision(input.door_id, decision, { entry: 'keypad', code_kind: 'entry' }, entry.user_id);
      return decision;
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

    hasWebPin: (userId: string, minLength: number) => access.hasWebPin(userId, minLength),
    /** The user's MFA code of at least `minLength` digits equal to `code`, if any. */
    findWebPin: (userId: string, code: string, minLength: number) => access.findUserCode(userId, lookup(code), minLength, 'mfa'),
    sealCode,
    lookup,
  };
}

export type AccessService = ReturnType<typeof createAccessService>;
