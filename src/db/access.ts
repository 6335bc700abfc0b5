import type { Knex } from 'knex';
import type { Database } from './connect.js';
import { type CounterLimits, onDeadlockRetry, reservationCte } from './throttle.js';

export interface DoorRow {
  id: string;
  site_id: string;
  name: string;
  has_badge_reader: boolean;
  has_keypad: boolean;
  in_out: boolean;
  schedule_id: string | null;
}

export interface AccessCodeRow {
  id: string;
  user_id: string;
  kind: 'mfa' | 'entry';
  code_sealed: string;
  code_lookup: string;
  length: number;
  created_at: Date;
  /** Set when the owner opted in to use this MFA code as their web second factor. */
  web_enabled_at: Date | null;
}

export const CREDENTIAL_KINDS = ['card', 'nfc', 'ble', 'nearby'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

export interface CredentialRow {
  id: string;
  user_id: string;
  kind: CredentialKind;
  identifier: string;
  /** Set while the credential is suspended (a lost card that may turn up): kept, but it opens nothing. */
  suspended_at: Date | null;
}

export interface DecisionAudit {
  subject_id: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

/**
 * What a decision does to its door's waiting card: a card puts one (replacing any), a keypad entry clears the one it
 * was about, named by its expiry, so that it never clears a card scanned after it.
 */
export type PendingChange =
  | { put: { door_id: string; user_id: string; credential_id: string; expires_at: Date } }
  | { clear: { door_id: string; expires_at: Date } }
  | null;

/** The card waiting at this door, and whether this keypad entry got one of its tries. */
export interface CodeTry {
  door_id: string;
  user_id: string;
  credential_id: string;
  expires_at: Date;
  /** This entry's try number (1 to the limit), or null when it got none: tries used up, too late, or cleared. */
  try_no: number | null;
  /** The card's count of wrong codes with this guess, or null when it was not taken (no try, or the card locked). */
  guess_count: number | null;
  /** When the card's lock ends, if it is locked (by this guess or before it). */
  locked_until: Date | null;
}

interface QueuedDecision {
  audit: DecisionAudit;
  pending: PendingChange;
  /** Throttle counters of consecutive failures that this decision's success starts again (a card's wrong codes). */
  resets: readonly string[];
  done: (error?: unknown) => void;
}

type PendingPut = Extract<PendingChange, { put: unknown }>['put'];

/**
 * Query options naming a statement that runs many times a second on the door path: each connection parses and
 * plans it once, not on every decision. The name must stand for one SQL text only.
 */
const preparedAs = (name: string) => ({ name });

/**
 * A batch's changes to waiting cards, applied in arrival order: a put replaces the door's row whatever it was; a
 * clear removes the row it names, so it cancels a put of the same batch that it follows (then the row goes, whatever
 * was there before), and is moot after a put of another card. `null` clears whatever the door holds.
 */
function foldPending(batch: QueuedDecision[]) {
  const puts = new Map<string, PendingPut>();
  const clears = new Map<string, Array<Date | null>>();
  for (const { pending } of batch) {
    if (!pending) continue;
    if ('put' in pending) {
      puts.set(pending.put.door_id, pending.put);
      clears.delete(pending.put.door_id);
      continue;
    }
    const { door_id: door, expires_at: expires } = pending.clear;
    const queued = puts.get(door);
    if (!queued) clears.set(door, [...(clears.get(door) ?? []), expires]);
    else if (queued.expires_at.getTime() === expires.getTime()) {
      puts.delete(door);
      clears.set(door, [null]);
    }
  }
  return { puts: [...puts.values()], clears: [...clears].flatMap(([door, times]) => times.map((at) => [door, at] as const)) };
}

/**
 * One statement for a whole batch, whatever its size: the audit rows as one multi-row insert, the waiting cards'
 * changes and the counters it resets as CTEs of the same statement. One round trip and one commit (one WAL flush)
 * for every decision in it.
 */
function writeBatch(db: Database, batch: QueuedDecision[]) {
  const { puts, clears } = foldPending(batch);
  const ctes: string[] = [];
  const bindings: string[] = [];
  if (puts.length) {
    ctes.push(`put as (insert into door_pending_codes (door_id, user_id, credential_id, attempts, expires_at)
        select door_id, user_id, credential_id, 0, expires_at
          from jsonb_to_recordset(?::jsonb) as p(door_id uuid, user_id uuid, credential_id uuid, expires_at timestamptz)
        on conflict (door_id) do update set user_id = excluded.user_id, credential_id = excluded.credential_id, attempts = 0, expires_at = excluded.expires_at
        returning 1)`);
    bindings.push(JSON.stringify(puts));
  }
  if (clears.length) {
    ctes.push(`cleared as (delete from door_pending_codes w using jsonb_to_recordset(?::jsonb) as c(door_id uuid, expires_at timestamptz)
        where w.door_id = c.door_id and (c.expires_at is null or w.expires_at = c.expires_at)
        returning 1)`);
    bindings.push(JSON.stringify(clears.map(([door_id, expires_at]) => ({ door_id, expires_at }))));
  }
  const resets = [...new Set(batch.flatMap((b) => b.resets))];
  if (resets.length) {
    // Waiting cards first, counters second, as a keypad entry locks them (takeCodeTry): the reset reads the
    // waiting cards' changes, so they are made before it starts. Two orders would deadlock.
    const after = [puts.length && '(select count(*) from put)', clears.length && '(select count(*) from cleared)'].filter(Boolean);
    ctes.push(`reset as (delete from throttle_counters where key in (select jsonb_array_elements_text(?::jsonb))${after.length ? ` and ${after.join(' + ')} >= 0` : ''})`);
    bindings.push(JSON.stringify(resets));
  }
  bindings.push(JSON.stringify(batch.map((b) => b.audit)));
  return db
    .raw(
      `${ctes.length ? `with ${ctes.join(', ')} ` : ''}insert into audit_events (action, outcome, subject_id, details)
         select 'door.decision', outcome, subject_id, details from jsonb_to_recordset(?::jsonb) as a(outcome text, subject_id uuid, details jsonb)`,
      bindings,
    )
    .options(preparedAs(`door-decisions-${puts.length ? 'p' : ''}${clears.length ? 'c' : ''}${resets.length ? 'r' : ''}`));
}

/**
 * Group commit for door decisions. A decision's writes (its audit row, and the change to its door's waiting card)
 * join a queue; a writer takes everything queued so far and writes it in one statement, which commits once. Each
 * caller resolves only after the commit that holds its writes, so nothing is acknowledged before it is durable,
 * while a busy site pays one disk flush for many decisions instead of one each. A decision arriving while a writer
 * is free is written at once: batches form only while writers are busy, so an idle door waits for no window.
 */
export function createDecisionWriter(db: Database, writers: number) {
  let queue: QueuedDecision[] = [];
  let busy = 0;

  async function drain() {
    busy++;
    while (queue.length) {
      const batch = queue;
      queue = [];
      try {
        // Two batches resetting the same cards' counters may lock them in different orders: the loser, rolled back
        // whole, is written again.
        await onDeadlockRetry(() => writeBatch(db, batch));
        batch.forEach((item) => item.done());
      } catch (error) {
        batch.forEach((item) => item.done(error));
      }
    }
    busy--;
  }

  return (audit: DecisionAudit, pending: PendingChange, resets: readonly string[] = []) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ audit, pending, resets, done: (error) => (error ? reject(error) : resolve()) });
      if (busy < writers) void drain();
    });
}

/**
 * Another code with the same digits: another user's of any kind (codes may be shared), or the user's own entry
 * code, typed alone at keypads in view of anyone.
 */
const SHARED = `exists (select 1 from access_codes o where o.code_lookup = a.code_lookup and o.id <> a.id and (o.user_id <> a.user_id or o.kind = 'entry'))`;
/** An MFA code its owner opted in to use on the web, long enough (`minLength`, SQL), and theirs alone. */
const webPin = (minLength: string) => `a.kind = 'mfa' and a.web_enabled_at is not null and a.length >= ${minLength} and not ${SHARED}`;
const WEB_PIN = webPin('?');
/** When `userId`'s (an SQL expression) usable web PIN was opted in, or null: for a statement that reads it beside others. */
export const webPinSinceSql = (userId: string, minLength: string) => `(select a.web_enabled_at from access_codes a where a.user_id = ${userId} and ${webPin(minLength)} limit 1)`;

// Writers in flight at once: a new batch can start while the last one's flush is under way, and the rest of the pool
// stays free for the keypad's reservations.
const DECISION_WRITERS = 4;

/** A decision a controller took while offline, as stored in the decision log. */
export interface OfflineDecisionRow {
  occurred_at: Date;
  outcome: string;
  subject_id: string | null;
  /** Holds controller_id and event_id, which together name the event once. */
  details: Record<string, unknown> & { controller_id: string; event_id: string };
}

/** Everything the door decisions read, as of one moment (see loadDecisionSnapshot). */
export interface DecisionSnapshotRows {
  doors: Array<DoorRow & { time_zone: string }>;
  schedules: Array<{ id: string; windows: unknown }>;
  exceptions: Array<{ door_id: string; day: string; windows: unknown }>;
  levels: Array<{ id: string; schedule_id: string | null }>;
  levelDoors: Array<{ level_id: string; door_id: string }>;
  levelUsers: Array<{ level_id: string; user_id: string }>;
  credentials: Array<{ id: string; user_id: string; kind: CredentialRow['kind']; identifier: string; suspended_at: Date | null }>;
  codes: Array<{ user_id: string; kind: AccessCodeRow['kind']; code_lookup: string }>;
  inactiveUsers: string[];
  locks: Array<{ credential_id: string; locked_until: Date }>;
}

type Queryable = Database | Knex.Transaction;
export type VersionedTable = 'sites' | 'doors' | 'door_schedules' | 'door_exceptions' | 'access_levels' | 'access_controllers';
export interface NamedRef {
  id: string;
  name: string;
}

async function updateVersioned(db: Queryable, table: VersionedTable, id: string, patch: Record<string, unknown>, expected: number | undefined) {
  const [row] = await db(table)
    .where({ id })
    .modify((q) => expected !== undefined && q.where({ version: expected }))
    .update({ ...patch, version: db.raw('version + 1') })
    .returning('*');
  if (row) return row as Record<string, unknown> & { id: string; version: number };
  return (await db(table).where({ id }).first()) ? ('stale' as const) : ('missing' as const);
}

/** Sites, doors, schedules, credentials and codes: the physical-access side of Latchkey. */
export function createAccessQueries(db: Database) {
  return {
    insertSite: async (row: { name: string; time_zone: string }) => (await db('sites').insert(row).returning('*'))[0] as { id: string; name: string; time_zone: string },
    listSites: () => db('sites').orderBy('name') as Promise<Array<{ id: string; name: string; time_zone: string }>>,
    /** Everything configured on one site, for its admin screen. */
    siteDetail: async (siteId: string) => {
      const [doors, schedules, levels, controllers, exceptions] = await Promise.all([
        db<DoorRow>('doors').where({ site_id: siteId }).orderBy('name'),
        db('door_schedules').where({ site_id: siteId }).orderBy('name') as Promise<Array<{ id: string; name: string; windows: unknown }>>,
        db('access_levels').where({ site_id: siteId }).orderBy('name') as Promise<Array<{ id: string; name: string; schedule_id: string | null }>>,
        db('access_controllers').where({ site_id: siteId }).orderBy('name').select('id', 'name', 'version') as Promise<Array<{ id: string; name: string; version: number }>>,
        db('door_exceptions').join('doors', 'doors.id', 'door_exceptions.door_id').where('doors.site_id', siteId).orderBy('day').select('door_exceptions.*') as Promise<Array<{ door_id: string; day: string; name: string; windows: unknown }>>,
      ]);
      return { doors, schedules, levels, controllers, exceptions };
    },
    findSite: (id: string) => db('sites').where({ id }).first() as Promise<{ id: string; time_zone: string } | undefined>,
    addSiteAdmin: (siteId: string, userId: string) => db('site_admins').insert({ site_id: siteId, user_id: userId }).onConflict(['site_id', 'user_id']).ignore(),
    isSiteAdmin: async (siteId: string, userId: string) => !!(await db('site_admins').where({ site_id: siteId, user_id: userId }).first()),
    insertSchedule: async (row: { site_id: string; name: string; windows: unknown }) =>
      (await db('door_schedules').insert({ ...row, windows: JSON.stringify(row.windows) }).returning('*'))[0] as { id: string },
    findSchedule: (id: string) => db('door_schedules').where({ id }).first() as Promise<{ id: string; site_id: string; windows: unknown } | undefined>,
    insertDoor: async (row: Omit<DoorRow, 'id'>) => (await db<DoorRow>('doors').insert(row).returning('*'))[0] as DoorRow,
    findDoor: (id: string) => db<DoorRow>('doors').where({ id }).first(),
    upsertException: (row: { door_id: string; day: string; name: string; windows: unknown }) =>
      db('door_exceptions')
        .insert({ ...row, windows: JSON.stringify(row.windows) })
        .onConflict(['door_id', 'day'])
        .merge({ name: row.name, windows: JSON.stringify(row.windows), version: db.raw('door_exceptions.version + 1') }),
    /** The ids are distinct; as arrays, any number of them is one parameter each (PostgreSQL allows 65535). */
    insertLevel: async (row: { site_id: string; name: string; schedule_id: string | null }, doorIds: string[], userIds: string[]) =>
      db.transaction(async (trx) => {
        const [level] = await trx('access_levels').insert(row).returning('*');
        await trx.raw('insert into access_level_doors (level_id, door_id) select ?, unnest(?::uuid[])', [level.id, doorIds]);
        await trx.raw('insert into access_level_users (level_id, user_id) select ?, unnest(?::uuid[])', [level.id, userIds]);
        return level as { id: string };
      }),
    /** The site of each of these doors that exists. */
    doorSites: async (ids: string[]) =>
      (await db.raw('select id, site_id from doors where id = any(?::uuid[])', [ids])).rows as Array<{ id: string; site_id: string }>,
    /** Which of these users exist. */
    existingUserIds: async (ids: string[]) => ((await db.raw('select id from users where id = any(?::uuid[])', [ids])).rows as Array<{ id: string }>).map((r) => r.id),
    insertController: async (row: { site_id: string; name: string; secret_hash: string }) =>
      (await db('access_controllers').insert(row).returning(['id', 'site_id', 'name']))[0] as { id: string; site_id: string; name: string },
    findController: (id: string) => db('access_controllers').where({ id }).first() as Promise<{ id: string; site_id: string; secret_hash: string } | undefined>,

    /** Everything a decision at a door needs, in one round trip: the exception is the one of the site's local day. */
    doorContext: async (doorId: string, now: Date) => {
      const result = await db.raw(
        `select d.*, s.time_zone, sch.windows as schedule_windows, ex.windows as exception_windows
           from doors d join sites s on s.id = d.site_id
           left join door_schedules sch on sch.id = d.schedule_id
           left join door_exceptions ex on ex.door_id = d.id and ex.day = (?::timestamptz at time zone s.time_zone)::date
          where d.id = ?`,
        [now.toISOString(), doorId],
      );
      return result.rows[0] as (DoorRow & { time_zone: string; schedule_windows: unknown; exception_windows: unknown }) | undefined;
    },
    /**
     * What every door decision reads, in one read-only transaction (so one consistent moment): exceptions from
     * `since` on (earlier days can no longer apply anywhere), locks on cards still running at `now`.
     */
    loadDecisionSnapshot: (since: string, now: Date): Promise<DecisionSnapshotRows> =>
      db.transaction(
        async (trx) => {
          const rows = async <T>(sql: string, bindings: string[] = []) => (await trx.raw(sql, bindings)).rows as T[];
          return {
            doors: await rows('select d.*, s.time_zone from doors d join sites s on s.id = d.site_id'),
            schedules: await rows('select id, windows from door_schedules'),
            exceptions: await rows("select door_id, to_char(day, 'YYYY-MM-DD') as day, windows from door_exceptions where day >= ?::date", [since]),
            levels: await rows('select id, schedule_id from access_levels'),
            levelDoors: await rows('select level_id, door_id from access_level_doors'),
            levelUsers: await rows('select level_id, user_id from access_level_users'),
            credentials: await rows('select id, user_id, kind, identifier, suspended_at from access_credentials'),
            codes: await rows('select user_id, kind, code_lookup from access_codes'),
            // Few, and every credential's and code's holder exists (foreign keys): the rest are active.
            inactiveUsers: (await rows<{ id: string }>("select id from users where status <> 'active'")).map((r) => r.id),
            locks: await rows(
              `select substr(key, length('door:credential:') + 1) as credential_id, locked_until from throttle_counters
                where key like 'door:credential:%' and locked_until > ?`,
              [now.toISOString()],
            ),
          };
        },
        { isolationLevel: 'repeatable read', readOnly: true },
      ),
    /** The credential (by its identifier, or by its id), its user, and the schedules of the user's levels that include this door. */
    credentialContext: async (credential: { identifier: string } | { id: string }, doorId: string) => {
      const result = await db.raw(
        `select c.id as credential_id, c.kind, c.user_id, c.suspended_at, u.status, t.locked_until,
                coalesce(json_agg(json_build_object('windows', ls.windows)) filter (where l.id is not null), '[]') as levels
           from access_credentials c join users u on u.id = c.user_id
           left join throttle_counters t on t.key = 'door:credential:' || c.id::text
           left join access_level_users lu on lu.user_id = c.user_id
           left join access_levels l on l.id = lu.level_id and exists (select 1 from access_level_doors ld where ld.level_id = l.id and ld.door_id = ?)
           left join door_schedules ls on ls.id = l.schedule_id
          where ${'id' in credential ? 'c.id' : 'c.identifier'} = ?
          group by c.id, u.status, t.locked_until`,
        [doorId, 'id' in credential ? credential.id : credential.identifier],
      );
      return result.rows[0] as
        | { credential_id: string; kind: CredentialKind; user_id: string; suspended_at: Date | null; status: string; locked_until: Date | null; levels: Array<{ windows: unknown }> }
        | undefined;
    },
    /** The kinds of the user's codes with this lookup hash (a user may hold the same digits as MFA and entry code). */
    userCodeKinds: async (userId: string, lookup: string) =>
      (await db('access_codes').where({ user_id: userId, code_lookup: lookup }).distinct('kind')).map((r: { kind: AccessCodeRow['kind'] }) => r.kind),
    levelsOf: async (userId: string, doorId: string) => {
      const result = await db.raw(
        `select ls.windows from access_level_users lu join access_levels l on l.id = lu.level_id
           join access_level_doors ld on ld.level_id = l.id and ld.door_id = ?
           left join door_schedules ls on ls.id = l.schedule_id where lu.user_id = ?`,
        [doorId, userId],
      );
      return (result.rows as Array<{ windows: unknown }>).map((r) => r.windows);
    },

    insertCredential: async (row: Omit<CredentialRow, 'id' | 'suspended_at'>) => (await db<CredentialRow>('access_credentials').insert(row).returning('*'))[0] as CredentialRow,
    listCredentials: (userId: string) => db<CredentialRow>('access_credentials').where({ user_id: userId }).orderBy('created_at'),
    removeCredential: (userId: string, id: string) => db('access_credentials').where({ user_id: userId, id }).delete(),

    insertCode: async (row: Omit<AccessCodeRow, 'created_at' | 'web_enabled_at'>) => (await db<AccessCodeRow>('access_codes').insert(row).returning('*'))[0] as AccessCodeRow,
    /** A changed MFA code is not the one its owner opted in to use on the web: the opt-in goes with the old code. */
    updateMfaCode: (userId: string, id: string, patch: Pick<AccessCodeRow, 'code_sealed' | 'code_lookup' | 'length'>) =>
      db('access_codes').where({ user_id: userId, id, kind: 'mfa' }).update({ ...patch, web_enabled_at: null }),
    listCodes: (userId: string, kind?: 'mfa' | 'entry') => {
      const q = db<AccessCodeRow>('access_codes').where({ user_id: userId }).orderBy('created_at');
      return kind ? q.where({ kind }) : q;
    },
    removeCode: (userId: string, id: string, kind: AccessCodeRow['kind']) => db('access_codes').where({ user_id: userId, id, kind }).delete(),
    /**
     * The user's entry code replaced by this one, in one transaction holding the user's row: of two replacements at
     * once, the second waits for the first and replaces its code (one entry code per user, the last one set).
     */
    replaceEntryCode: (row: Omit<AccessCodeRow, 'created_at' | 'web_enabled_at' | 'kind'>) =>
      db.transaction(async (trx) => {
        await trx('users').where({ id: row.user_id }).forUpdate().first('id');
        await trx('access_codes').where({ user_id: row.user_id, kind: 'entry' }).delete();
        await trx('access_codes').insert({ ...row, kind: 'entry' });
      }),
    /** The user's code with this lookup hash (an MFA code after a card, or their entry code; or only of one kind). */
    findUserCode: (userId: string, lookup: string, kind?: AccessCodeRow['kind']) =>
      db<AccessCodeRow>('access_codes').where({ user_id: userId, code_lookup: lookup, ...(kind ? { kind } : {}) }).first(),
    findEntryCode: (lookup: string) => db<AccessCodeRow>('access_codes').where({ kind: 'entry', code_lookup: lookup }).first(),

    // The web PIN: on the sign-in's hot path, so each question is one statement.
    /** When the user's usable web PIN was opted in, or undefined without one. */
    webPinSince: async (userId: string, minLength: number) =>
      ((await db.raw(`select ${webPinSinceSql('?', '?')} as web_enabled_at`, [userId, minLength])).rows[0] as { web_enabled_at: Date | null }).web_enabled_at ?? undefined,
    findWebPin: async (userId: string, lookup: string, minLength: number) =>
      (await db.raw(`select a.id from access_codes a where a.user_id = ? and a.code_lookup = ? and ${WEB_PIN} limit 1`, [userId, lookup, minLength])).rows[0] as
        | { id: string }
        | undefined,
    /** The user's MFA codes long enough for the web: which one is opted in, and which another code shares. */
    webPinCandidates: async (userId: string, minLength: number) =>
      (await db.raw(`select a.id, a.length, a.web_enabled_at, ${SHARED} as shared from access_codes a where a.user_id = ? and a.kind = 'mfa' and a.length >= ? order by a.created_at`, [userId, minLength]))
        .rows as Array<{ id: string; length: number; web_enabled_at: Date | null; shared: boolean }>,
    /** Opts in one MFA code of the user's, and out every other: a user has one web PIN at most. */
    enableWebPin: (userId: string, codeId: string) =>
      db('access_codes').where({ user_id: userId, kind: 'mfa' }).update({ web_enabled_at: db.raw('case when id = ? then now() else null end', [codeId]) }),
    disableWebPin: (userId: string) => db('access_codes').where({ user_id: userId, kind: 'mfa' }).whereNotNull('web_enabled_at').update({ web_enabled_at: null }),

    recordDecision: createDecisionWriter(db, DECISION_WRITERS),
    /**
     * A keypad entry's try at the card waiting at its door and, in the same statement, one guess on that card's
     * counter of wrong codes (`guess`), reserved only when the entry got a try: both are taken before the code is
     * looked at, in one round trip. The conditional UPDATE re-checks `attempts < max` on the row's latest version, so
     * of any number of concurrent entries at most `max` get a try; and it takes the try only on the waiting card this
     * statement read: if another scan replaces it meanwhile, the entry gets no try, so a guess is never compared for
     * one card and charged to another. Rows are locked waiting card first, counter second, as the decision records'
     * batches do.
     */
    takeCodeTry: (doorId: string, maxTries: number, now: Date, guess: { keyPrefix: string; limits: CounterLimits }) => {
      const bindings: Record<string, unknown> = { doorId, maxTries, now, keyPrefix: guess.keyPrefix };
      const reserve = reservationCte('guess', guess.limits, '', now, bindings, (first) => `select :keyPrefix || credential_id::text, 1, :now, ${first} from tried`);
      return onDeadlockRetry(async () => {
        const result = await db
          .raw(
            `with waiting as (
               select door_id, user_id, credential_id, expires_at from door_pending_codes where door_id = :doorId),
             tried as (
               update door_pending_codes p set attempts = p.attempts + 1
                 from waiting w
                where p.door_id = w.door_id and p.credential_id = w.credential_id and p.expires_at = w.expires_at
                  and p.attempts < :maxTries and p.expires_at > :now
               returning p.attempts, p.credential_id),
             ${reserve}
             select w.door_id, w.user_id, w.credential_id, w.expires_at, (select attempts from tried) as try_no,
                    (select failures from guess) as guess_count,
                    case when exists (select 1 from guess) then (select locked_until from guess)
                         else (select locked_until from throttle_counters where key = :keyPrefix || w.credential_id::text) end as locked_until
               from waiting w`,
            bindings,
          )
          .options(preparedAs('door-code-try'));
        return result.rows[0] as CodeTry | undefined;
      });
    },
    /**
     * Decisions a controller took offline, each stored once per controller and event id, whatever time it is resent
     * with. The controller's batches are stored one at a time (a transaction lock on the controller, on whichever
     * instance they arrive), so each looks for earlier copies after the one before it committed. One lock, not one
     * per event: a 500-event batch would take 500 slots of PostgreSQL's shared lock table. An earlier copy is looked
     * for back to `since`. Returns the event ids stored now.
     */
    storeOfflineDecisions: async (controllerId: string, rows: OfflineDecisionRow[], since: Date) => {
      if (!rows.length) return [];
      return db.transaction(async (trx) => {
        await trx.raw(`select pg_advisory_xact_lock(hashtextextended('door-events:' || ?, 0))`, [controllerId]);
        const result = await trx.raw(
          `insert into audit_events (occurred_at, action, outcome, subject_id, details)
             select occurred_at, 'door.decision', outcome, subject_id, details
               from jsonb_to_recordset(?::jsonb) as e(occurred_at timestamptz, outcome text, subject_id uuid, details jsonb)
              where not exists (select 1 from audit_events a
                                 where a.action = 'door.decision' and a.occurred_at >= ?
                                   and (a.details->>'controller_id') = ? and (a.details->>'event_id') = e.details->>'event_id')
           on conflict ((details->>'controller_id'), (details->>'event_id'), occurred_at) where action = 'door.decision' and (details->>'event_id') is not null do nothing
           returning details->>'event_id' as event_id`,
          [JSON.stringify(rows), since.toISOString(), controllerId],
        );
        return (result.rows as Array<{ event_id: string }>).map((r) => r.event_id);
      });
    },
    listDecisions: (filter: { doorId?: string; userId?: string; limit?: number }) =>
      db('audit_events')
        .where({ action: 'door.decision' })
        .modify((q) => {
          if (filter.doorId) q.whereRaw("details->>'door_id' = ?", [filter.doorId]);
          if (filter.userId) q.where({ subject_id: filter.userId });
        })
        .orderBy('id', 'desc')
        .limit(filter.limit ?? 100),
    credentialsByIdentifier: (identifiers: string[]) => db<CredentialRow>('access_credentials').whereIn('identifier', identifiers),
    entryCodesByLookup: (lookups: string[]) => db<AccessCodeRow>('access_codes').where({ kind: 'entry' }).whereIn('code_lookup', lookups),
    /** An import, all or nothing: new users, then their credentials and codes (replacing entry codes). */
    importBatch: (batch: {
      users: Array<{ id: string; email: string; name: string }>;
      credentials: Array<Omit<CredentialRow, 'id' | 'suspended_at'>>;
      codes: Array<Omit<AccessCodeRow, 'created_at' | 'web_enabled_at'>>;
      /** `delete` rows: gone before anything is added, so one file can replace a lost card or a changed code. */
      removals?: { credentials: Array<{ user_id: string; identifier: string }>; codes: Array<{ user_id: string; kind: AccessCodeRow['kind']; code_lookup: string }> };
    }) =>
      db.transaction(async (trx) => {
        // The users whose entry code this replaces or removes are held first, in one order, as a single entry code's
        // replacement holds its user (replaceEntryCode): else the two, run at once, deadlock on the codes.
        const entryHolders = [...new Set([...batch.codes, ...(batch.removals?.codes ?? [])].filter((c) => c.kind === 'entry').map((c) => c.user_id))].sort();
        if (entryHolders.length) await trx('users').whereIn('id', entryHolders).orderBy('id').forUpdate().select('id');
        const removed: string[] = [];
        for (const c of batch.removals?.credentials ?? []) removed.push(...((await trx('access_credentials').where(c).delete().returning('id')) as Array<{ id: string }>).map((r) => r.id));
        for (const c of batch.removals?.codes ?? []) await trx('access_codes').where(c).delete();
        if (batch.users.length) await trx('users').insert(batch.users);
        if (batch.credentials.length) await trx('access_credentials').insert(batch.credentials);
        const entryUsers = batch.codes.filter((c) => c.kind === 'entry').map((c) => c.user_id);
        if (entryUsers.length) await trx('access_codes').where({ kind: 'entry' }).whereIn('user_id', entryUsers).delete();
        if (batch.codes.length) await trx('access_codes').insert(batch.codes);
        return removed;
      }),
    /** Every credential and code; of users who hold no admin role only, unless `withAdmins`. */
    exportRows: (withAdmins: boolean) => {
      const people = (q: ReturnType<typeof db>) => (withAdmins ? q : q.whereRaw("u.roles = '[]'::jsonb"));
      return db('users as u')
        .join('access_credentials as c', 'c.user_id', 'u.id')
        .select('u.id as user_id', 'u.email', 'u.name', 'c.kind', 'c.identifier as value', db.raw('null as code_sealed'), db.raw('null as code_id'))
        .modify(people)
        .unionAll((q) =>
          q.from('users as u').join('access_codes as a', 'a.user_id', 'u.id')
            .select('u.id as user_id', 'u.email', 'u.name', db.raw("a.kind || '_code' as kind"), db.raw('null as value'), 'a.code_sealed', 'a.id as code_id')
            .modify(people),
        )
        .orderBy('email') as Promise<Array<{ user_id: string; email: string; name: string; kind: string; value: string | null; code_sealed: string | null; code_id: string | null }>>;
    },

    // ---- Administration: change and remove what was created (doors admin). ----
    // Each update is one conditional statement on the version the admin read: of two concurrent edits from the same
    // version, one wins and the other is told (412) instead of overwriting it.
    updateVersioned: (table: VersionedTable, id: string, patch: Record<string, unknown>, expected: number | undefined) =>
      updateVersioned(db, table, id, patch, expected),
    /**
     * Deletes the row unless something still refers to it (then: what does). The row is locked first, so a door
     * being given this schedule meanwhile either commits before the references are read, or waits and then fails
     * on its foreign key: nothing ends up pointing at a deleted row, or silently loses what it pointed at.
     */
    deleteUnreferenced: (table: VersionedTable, id: string, expected: number | undefined, references: (q: Queryable) => Promise<Record<string, NamedRef[]>>) =>
      db.transaction(async (trx) => {
        const row = (await trx(table).where({ id }).forUpdate().first()) as { version: number } | undefined;
        if (!row) return 'missing' as const;
        if (expected !== undefined && row.version !== expected) return 'stale' as const;
        const refs = Object.fromEntries(Object.entries(await references(trx)).filter(([, list]) => list.length > 0));
        if (Object.keys(refs).length > 0) return { referenced_by: refs };
        await trx(table).where({ id }).delete();
        return 'deleted' as const;
      }),
    findVersioned: (table: VersionedTable, id: string) => db(table).where({ id }).first() as Promise<(Record<string, unknown> & { id: string; site_id: string; version: number }) | undefined>,
    /** What still refers to a site: its doors, schedules, levels and controllers (a site is deleted empty). */
    siteReferences: async (siteId: string, q: Queryable = db) => {
      const refs: Record<string, NamedRef[]> = {};
      for (const [name, table] of [['doors', 'doors'], ['schedules', 'door_schedules'], ['levels', 'access_levels'], ['controllers', 'access_controllers']] as const) {
        refs[name] = await q(table).where({ site_id: siteId }).orderBy('name').select('id', 'name');
      }
      return refs;
    },
    /** The doors and levels that use a schedule. */
    scheduleReferences: async (scheduleId: string, q: Queryable = db) => ({
      doors: (await q('doors').where({ schedule_id: scheduleId }).orderBy('name').select('id', 'name', 'has_badge_reader', 'has_keypad')) as Array<NamedRef & { has_badge_reader: boolean; has_keypad: boolean }>,
      levels: (await q('access_levels').where({ schedule_id: scheduleId }).orderBy('name').select('id', 'name')) as NamedRef[],
    }),
    /** The levels that name a door. */
    doorLevels: (doorId: string, q: Queryable = db) =>
      q('access_levels as l').join('access_level_doors as ld', 'ld.level_id', 'l.id').where('ld.door_id', doorId).orderBy('l.name').select('l.id', 'l.name') as Promise<NamedRef[]>,
    doorExceptions: (doorId: string) => db('door_exceptions').where({ door_id: doorId }).orderBy('day') as Promise<Array<{ id: string; day: string; name: string; windows: unknown; version: number }>>,
    deleteException: (doorId: string, day: string) => db('door_exceptions').where({ door_id: doorId, day }).delete(),
    /** A level with its doors and members. */
    findLevel: async (id: string) => {
      const level = (await db('access_levels').where({ id }).first()) as { id: string; site_id: string; name: string; schedule_id: string | null; version: number } | undefined;
      if (!level) return undefined;
      const [doors, users] = await Promise.all([
        db('access_level_doors as ld').join('doors as d', 'd.id', 'ld.door_id').where('ld.level_id', id).orderBy('d.name').select('d.id', 'd.name') as Promise<NamedRef[]>,
        db('access_level_users as lu').join('users as u', 'u.id', 'lu.user_id').where('lu.level_id', id).orderBy('u.email').select('u.id', 'u.email', 'u.name') as Promise<Array<{ id: string; email: string; name: string }>>,
      ]);
      return { ...level, door_ids: doors.map((d) => d.id), user_ids: users.map((u) => u.id), doors, users };
    },
    /** A level's new name, schedule and (when given) whole door and member lists, at the version read. */
    updateLevel: (id: string, patch: Record<string, unknown>, expected: number | undefined, doorIds?: string[], userIds?: string[]) =>
      db.transaction(async (trx) => {
        const row = await updateVersioned(trx, 'access_levels', id, patch, expected);
        if (typeof row === 'string') return row;
        if (doorIds) {
          await trx('access_level_doors').where({ level_id: id }).delete();
          await trx.raw('insert into access_level_doors (level_id, door_id) select ?, unnest(?::uuid[])', [id, doorIds]);
        }
        if (userIds) {
          await trx('access_level_users').where({ level_id: id }).delete();
          await trx.raw('insert into access_level_users (level_id, user_id) select ?, unnest(?::uuid[])', [id, userIds]);
        }
        return row;
      }),
    addLevelUser: (levelId: string, userId: string) =>
      db.transaction(async (trx) => {
        await trx('access_level_users').insert({ level_id: levelId, user_id: userId }).onConflict(['level_id', 'user_id']).ignore();
        await trx('access_levels').where({ id: levelId }).increment('version', 1);
      }),
    removeLevelUser: (levelId: string, userId: string) =>
      db.transaction(async (trx) => {
        const removed = await trx('access_level_users').where({ level_id: levelId, user_id: userId }).delete();
        if (removed) await trx('access_levels').where({ id: levelId }).increment('version', 1);
        return removed;
      }),
    /** A new secret for a controller: the old one stops matching with this statement. */
    rotateController: async (id: string, secretHash: string) =>
      (await db('access_controllers').where({ id }).update({ secret_hash: secretHash, version: db.raw('version + 1') }).returning(['id', 'site_id', 'name', 'version']))[0] as
        | { id: string; site_id: string; name: string; version: number }
        | undefined,
    setCredentialSuspended: async (userId: string, id: string, suspended: boolean) =>
      (await db('access_credentials').where({ user_id: userId, id }).update({ suspended_at: suspended ? db.fn.now() : null }).returning('*'))[0] as CredentialRow | undefined,
    findCredential: (userId: string, id: string) => db<CredentialRow>('access_credentials').where({ user_id: userId, id }).first(),
    /** The user's MFA codes with these digits (several MFA codes of one user may be equal: all go). */
    removeCodesByLookup: (userId: string, kind: AccessCodeRow['kind'], lookup: string) => db('access_codes').where({ user_id: userId, kind, code_lookup: lookup }).delete().returning('id') as Promise<Array<{ id: string }>>,
  };
}
