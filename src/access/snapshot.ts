import type { ChangeFeed } from '../db/change-feed.js';
import type { AccessCodeRow, CredentialRow, DecisionSnapshotRows } from '../db/access.js';
import type { Queries } from '../db/index.js';
import type { DoorFacts, Window } from './decide.js';
import { type LocalMoment, localMoment } from './time.js';

type Awaitable<T> = T | Promise<T>;

/** A door as a decision sees it at one moment: its site, the local time there, and the day's exception if any. */
export interface DoorAtMoment {
  siteId: string;
  at: LocalMoment;
  door: DoorFacts;
}

/** Who holds a credential, whether they may be let in at all, and the schedules of their levels at one door. */
export interface Holder {
  credentialId: string;
  kind: CredentialRow['kind'];
  userId: string;
  active: boolean;
  /** A suspended credential (a lost card that may turn up) is kept but opens nothing. */
  suspended: boolean;
  lockedUntil: Date | null;
  levelSchedules: Array<Window[] | null>;
}

/**
 * What door decisions read. Two implementations answer the same questions: the database (one round trip each), and
 * a snapshot in memory (no I/O at all). test/access/decision-facts.test.ts runs the same cases against both.
 */
export interface DecisionFacts {
  door(doorId: string, now: Date): Awaitable<DoorAtMoment | undefined>;
  holder(identifier: string, doorId: string): Awaitable<Holder | undefined>;
  /** The same, for the credential with this id (a card waiting at a keypad for its code). */
  holderById(credentialId: string, doorId: string): Awaitable<Holder | undefined>;
  /** The kind of the user's code with this lookup hash (an MFA code if they have both), if they have one. */
  userCode(userId: string, lookup: string): Awaitable<AccessCodeRow['kind'] | undefined>;
  /** The holder of the entry code with this lookup hash, as at this door. */
  entryHolder(lookup: string, doorId: string): Awaitable<Omit<Holder, 'credentialId' | 'kind' | 'lockedUntil' | 'suspended'> | undefined>;
}

const windowsOrNull = (value: unknown) => (value as Window[] | null) ?? null;

export function databaseFacts(queries: Queries): DecisionFacts {
  const access = queries.access;
  const holder = async (credential: { identifier: string } | { id: string }, doorId: string): Promise<Holder | undefined> => {
    const row = await access.credentialContext(credential, doorId);
    if (!row) return undefined;
    return {
      credentialId: row.credential_id,
      kind: row.kind,
      userId: row.user_id,
      active: row.status === 'active',
      suspended: row.suspended_at !== null,
      lockedUntil: row.locked_until,
      levelSchedules: row.levels.map((l) => windowsOrNull(l.windows)),
    };
  };
  return {
    async door(doorId, now) {
      const row = await access.doorContext(doorId, now);
      if (!row) return undefined;
      return {
        siteId: row.site_id,
        at: localMoment(now, row.time_zone),
        door: {
          id: row.id,
          hasBadgeReader: row.has_badge_reader,
          hasKeypad: row.has_keypad,
          inOut: row.in_out,
          schedule: windowsOrNull(row.schedule_windows) ?? undefined,
          exception: windowsOrNull(row.exception_windows) ?? undefined,
        },
      };
    },
    holder: (identifier, doorId) => holder({ identifier }, doorId),
    holderById: (credentialId, doorId) => holder({ id: credentialId }, doorId),
    async userCode(userId, lookup) {
      const codes = await access.userCodeKinds(userId, lookup);
      return codes.includes('mfa') ? 'mfa' : codes[0];
    },
    async entryHolder(lookup, doorId) {
      const entry = await access.findEntryCode(lookup);
      if (!entry) return undefined;
      const [user, levels] = await Promise.all([queries.users.findById(entry.user_id), access.levelsOf(entry.user_id, doorId)]);
      return { userId: entry.user_id, active: user?.status === 'active', levelSchedules: levels.map(windowsOrNull) };
    },
  };
}

interface SnapshotDoor {
  siteId: string;
  timeZone: string;
  facts: Omit<DoorFacts, 'exception'>;
  exceptions: Map<string, Window[]>;
}

/** The decision tables as maps: every question a decision asks is a few lookups. */
export function buildSnapshot(rows: DecisionSnapshotRows) {
  const schedules = new Map(rows.schedules.map((s) => [s.id, s.windows as Window[]]));
  const doors = new Map<string, SnapshotDoor>();
  for (const d of rows.doors) {
    const schedule = d.schedule_id ? schedules.get(d.schedule_id) : undefined;
    doors.set(d.id, {
      siteId: d.site_id,
      timeZone: d.time_zone,
      facts: { id: d.id, hasBadgeReader: d.has_badge_reader, hasKeypad: d.has_keypad, inOut: d.in_out, schedule },
      exceptions: new Map(),
    });
  }
  for (const e of rows.exceptions) doors.get(e.door_id)?.exceptions.set(e.day, e.windows as Window[]);
  const levels = new Map(rows.levels.map((l) => [l.id, { windows: l.schedule_id ? (schedules.get(l.schedule_id) ?? null) : null, doors: new Set<string>() }]));
  for (const ld of rows.levelDoors) levels.get(ld.level_id)?.doors.add(ld.door_id);
  const levelsOfUser = new Map<string, Array<{ windows: Window[] | null; doors: Set<string> }>>();
  for (const lu of rows.levelUsers) {
    const level = levels.get(lu.level_id);
    if (!level) continue;
    const list = levelsOfUser.get(lu.user_id);
    if (list) list.push(level);
    else levelsOfUser.set(lu.user_id, [level]);
  }
  const credentials = new Map(rows.credentials.map((c) => [c.identifier, c]));
  const credentialsById = new Map(rows.credentials.map((c) => [c.id, c]));
  const codesOfUser = new Map<string, Map<string, AccessCodeRow['kind']>>();
  const entryCodes = new Map<string, string>();
  for (const c of rows.codes) {
    const own = codesOfUser.get(c.user_id) ?? new Map<string, AccessCodeRow['kind']>();
    codesOfUser.set(c.user_id, own);
    if (own.get(c.code_lookup) !== 'mfa') own.set(c.code_lookup, c.kind);
    if (c.kind === 'entry') entryCodes.set(c.code_lookup, c.user_id);
  }
  const inactive = new Set(rows.inactiveUsers);
  const locks = new Map(rows.locks.map((l) => [l.credential_id, l.locked_until]));
  const levelSchedules = (userId: string, doorId: string) =>
    (levelsOfUser.get(userId) ?? []).filter((l) => l.doors.has(doorId)).map((l) => l.windows);

  const holderOf = (c: DecisionSnapshotRows['credentials'][number] | undefined, doorId: string): Holder | undefined =>
    c && { credentialId: c.id, kind: c.kind, userId: c.user_id, active: !inactive.has(c.user_id), suspended: c.suspended_at !== null, lockedUntil: locks.get(c.id) ?? null, levelSchedules: levelSchedules(c.user_id, doorId) };

  const facts: DecisionFacts = {
    door(doorId, now) {
      const door = doors.get(doorId);
      if (!door) return undefined;
      const at = localMoment(now, door.timeZone);
      const exception = door.exceptions.get(at.day);
      return { siteId: door.siteId, at, door: exception ? { ...door.facts, exception } : door.facts };
    },
    holder: (identifier, doorId) => holderOf(credentials.get(identifier), doorId),
    holderById: (credentialId, doorId) => holderOf(credentialsById.get(credentialId), doorId),
    userCode: (userId, lookup) => codesOfUser.get(userId)?.get(lookup),
    entryHolder(lookup, doorId) {
      const userId = entryCodes.get(lookup);
      return userId === undefined ? undefined : { userId, active: !inactive.has(userId), levelSchedules: levelSchedules(userId, doorId) };
    },
  };
  return {
    facts,
    /** A card locked on another request (or instance) since this snapshot was read. */
    lock: (credentialId: string, until: Date) => void locks.set(credentialId, until),
  };
}

export type DecisionSnapshot = ReturnType<typeof buildSnapshot>;

/** The feed's key for a card's lock: `lock:<credential id>:<until, epoch ms>`. */
export const lockNotice = (credentialId: string, until: Date) => `lock:${credentialId}:${until.getTime()}`;

// A backstop only (as for cached clients): every change is announced, and a notice drops the snapshot at once.
const SNAPSHOT_MAX_AGE_MS = 5 * 60 * 1000;
const RETRY_AFTER_FAILURE_MS = 1000;
// Exceptions of days before this many days ago can apply nowhere (no time zone is a day behind another by more).
const EXCEPTION_DAYS_KEPT = 2;

interface Logger {
  warn(obj: object, msg: string): void;
}

/**
 * This instance's copy of the decision tables, kept current through the change feed. A notice of any change drops
 * it at once and a fresh one is read; until that one is in, and whenever the feed is down (notices could be
 * missed), there is no snapshot and decisions read the database. So no decision is taken on a copy older than the
 * last change this instance has heard of. Loaded on the first decision, not at start.
 */
export function createSnapshotHolder(deps: { queries: Queries; feed: ChangeFeed; now: () => Date; logger?: Logger; monotonic?: () => number }) {
  const monotonic = deps.monotonic ?? (() => performance.now());
  let current: { snapshot: DecisionSnapshot; loadedAt: number } | undefined;
  let generation = 0;
  let loading = false;
  let failedAt = -Infinity;

  async function load() {
    const now = deps.now();
    const since = new Date(now.getTime() - EXCEPTION_DAYS_KEPT * 86_400_000).toISOString().slice(0, 10);
    return buildSnapshot(await deps.queries.access.loadDecisionSnapshot(since, now));
  }

  async function reload() {
    if (loading) return;
    loading = true;
    try {
      // A change heard while reading may or may not be in what was read: read again.
      for (let seen = generation - 1; seen !== generation; ) {
        seen = generation;
        const snapshot = await load();
        if (seen === generation && deps.feed.live()) current = { snapshot, loadedAt: monotonic() };
      }
    } catch (err) {
      failedAt = monotonic();
      deps.logger?.warn({ err }, 'could not read the door decision snapshot: deciding from the database');
    } finally {
      loading = false;
    }
  }

  function changed(key: string | undefined) {
    const lock = /^lock:([0-9a-f-]{36}):(\d+)$/.exec(key ?? '');
    if (lock && current && !loading) return current.snapshot.lock(lock[1]!, new Date(Number(lock[2])));
    generation++;
    current = undefined;
  }
  deps.feed.subscribe('access', changed);

  return {
    /** The facts to decide from now: the snapshot, or undefined to read the database. */
    facts(): DecisionFacts | undefined {
      if (!deps.feed.live()) return undefined;
      const age = current ? monotonic() - current.loadedAt : Infinity;
      if (age > SNAPSHOT_MAX_AGE_MS && !loading && monotonic() - failedAt > RETRY_AFTER_FAILURE_MS) void reload();
      return current?.snapshot.facts;
    },
    /** Reads a snapshot now (and waits for it): for a start that should not begin on the database. */
    warm: reload,
  };
}
