import type { Database } from './connect.js';

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
}

export interface CredentialRow {
  id: string;
  user_id: string;
  kind: 'card' | 'nfc' | 'ble';
  identifier: string;
}

export interface DecisionAudit {
  subject_id: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

export type PendingChange =
  | { put: { door_id: string; user_id: string; credential_id: string; expires_at: Date } }
  | { bump: string }
  | { clear: string }
  | null;

interface QueuedDecision {
  audit: DecisionAudit;
  pending: PendingChange;
  done: (error?: unknown) => void;
}

const doorOf = (change: Exclude<PendingChange, null>) => ('put' in change ? change.put.door_id : 'bump' in change ? change.bump : change.clear);

/**
 * Group commit for door decisions. A decision's writes (its audit row, and the change to its door's waiting card)
 * join a queue; one transaction at a time writes everything queued so far and commits once. Each caller resolves
 * only after the commit that holds its writes, so nothing is acknowledged before it is durable, while a busy site
 * pays one disk flush for many decisions instead of one each.
 */
const WRITERS = 3;

/** One decision alone: audit row and door change in one statement (one round trip, one commit). */
function writeOne(db: Database, { audit, pending }: QueuedDecision) {
  const auditSql = `insert into audit_events (action, outcome, subject_id, details) values ('door.decision', ?, ?, ?::jsonb)`;
  const auditArgs = [audit.outcome, audit.subject_id, JSON.stringify(audit.details)];
  if (!pending) return db.raw(auditSql, auditArgs);
  if ('put' in pending) {
    const p = pending.put;
    return db.raw(
      `with waiting as (insert into door_pending_codes (door_id, user_id, credential_id, attempts, expires_at) values (?, ?, ?, 0, ?)
         on conflict (door_id) do update set user_id = excluded.user_id, credential_id = excluded.credential_id, attempts = 0, expires_at = excluded.expires_at)
       ${auditSql}`,
      [p.door_id, p.user_id, p.credential_id, p.expires_at, ...auditArgs],
    );
  }
  const [sql, doorId] = 'bump' in pending
    ? ['update door_pending_codes set attempts = attempts + 1 where door_id = ?', pending.bump]
    : ['delete from door_pending_codes where door_id = ?', pending.clear];
  return db.raw(`with waiting as (${sql}) ${auditSql}`, [doorId, ...auditArgs]);
}

function createDecisionWriter(db: Database) {
  let queue: QueuedDecision[] = [];
  let writers = 0;

  async function drain() {
    writers++;
    while (queue.length) {
      const batch = queue;
      queue = [];
      try {
        if (batch.length === 1) await writeOne(db, batch[0]!);
        else await db.transaction(async (trx) => {
          // Per door, the last change in the batch wins: that is the order in which they happened.
          const byDoor = new Map<string, Exclude<PendingChange, null>>();
          for (const item of batch) if (item.pending) byDoor.set(doorOf(item.pending), item.pending);
          const changes = [...byDoor.values()];
          const puts = changes.flatMap((c) => ('put' in c ? [{ ...c.put, attempts: 0 }] : []));
          const clears = changes.flatMap((c) => ('clear' in c ? [c.clear] : []));
          const bumps = changes.flatMap((c) => ('bump' in c ? [c.bump] : []));
          if (puts.length) await trx('door_pending_codes').insert(puts).onConflict('door_id').merge();
          if (clears.length) await trx('door_pending_codes').whereIn('door_id', clears).delete();
          if (bumps.length) await trx('door_pending_codes').whereIn('door_id', bumps).increment('attempts', 1);
          await trx('audit_events').insert(
            batch.map((item) => ({ action: 'door.decision', outcome: item.audit.outcome, subject_id: item.audit.subject_id, details: JSON.stringify(item.audit.details) })),
          );
        });
        batch.forEach((item) => item.done());
      } catch (error) {
        batch.forEach((item) => item.done(error));
      }
    }
    writers--;
  }

  // Up to WRITERS batches in flight: when all are busy, new decisions wait together for the next one.
  return (audit: DecisionAudit, pending: PendingChange) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ audit, pending, done: (error) => (error ? reject(error) : resolve()) });
      if (writers < WRITERS) void drain();
    });
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
        db('access_controllers').where({ site_id: siteId }).orderBy('name').select('id', 'name') as Promise<Array<{ id: string; name: string }>>,
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
      db('door_exceptions').insert({ ...row, windows: JSON.stringify(row.windows) }).onConflict(['door_id', 'day']).merge(['name', 'windows']),
    insertLevel: async (row: { site_id: string; name: string; schedule_id: string | null }, doorIds: string[], userIds: string[]) =>
      db.transaction(async (trx) => {
        const [level] = await trx('access_levels').insert(row).returning('*');
        if (doorIds.length) await trx('access_level_doors').insert(doorIds.map((door_id) => ({ level_id: level.id, door_id })));
        if (userIds.length) await trx('access_level_users').insert(userIds.map((user_id) => ({ level_id: level.id, user_id })));
        return level as { id: string };
      }),
    insertController: async (row: { site_id: string; name: string; secret_hash: string }) =>
      (await db('access_controllers').insert(row).returning(['id', 'site_id', 'name']))[0] as { id: string; site_id: string; name: string },
    findController: (id: string) => db('access_controllers').where({ id }).first() as Promise<{ id: string; site_id: string; secret_hash: string } | undefined>,

    /** Everything a decision at a door needs, in one round trip. */
    doorContext: async (doorId: string, day: string) => {
      const result = await db.raw(
        `select d.*, s.time_zone, sch.windows as schedule_windows, ex.windows as exception_windows
           from doors d join sites s on s.id = d.site_id
           left join door_schedules sch on sch.id = d.schedule_id
           left join door_exceptions ex on ex.door_id = d.id and ex.day = ?::date
          where d.id = ?`,
        [day, doorId],
      );
      return result.rows[0] as (DoorRow & { time_zone: string; schedule_windows: unknown; exception_windows: unknown }) | undefined;
    },
    /** The credential, its user, and the schedules of the user's levels that include this door. */
    credentialContext: async (identifier: string, doorId: string) => {
      const result = await db.raw(
        `select c.id as credential_id, c.kind, c.user_id, u.status, t.locked_until,
                coalesce(json_agg(json_build_object('windows', ls.windows)) filter (where l.id is not null), '[]') as levels
           from access_credentials c join users u on u.id = c.user_id
           left join throttle_counters t on t.key = 'door:credential:' || c.id::text
           left join access_level_users lu on lu.user_id = c.user_id
           left join access_levels l on l.id = lu.level_id and exists (select 1 from access_level_doors ld where ld.level_id = l.id and ld.door_id = ?)
           left join door_schedules ls on ls.id = l.schedule_id
          where c.identifier = ?
          group by c.id, u.status, t.locked_until`,
        [doorId, identifier],
      );
      return result.rows[0] as
        | { credential_id: string; kind: 'card' | 'nfc' | 'ble'; user_id: string; status: string; locked_until: Date | null; levels: Array<{ windows: unknown }> }
        | undefined;
    },
    levelsOf: async (userId: string, doorId: string) => {
      const result = await db.raw(
        `select ls.windows from access_level_users lu join access_levels l on l.id = lu.level_id
           join access_level_doors ld on ld.level_id = l.id and ld.door_id = ?
           left join door_schedules ls on ls.id = l.schedule_id where lu.user_id = ?`,
        [doorId, userId],
      );
      return (result.rows as Array<{ windows: unknown }>).map((r) => r.windows);
    },

    insertCredential: async (row: Omit<CredentialRow, 'id'>) => (await db<CredentialRow>('access_credentials').insert(row).returning('*'))[0] as CredentialRow,
    listCredentials: (userId: string) => db<CredentialRow>('access_credentials').where({ user_id: userId }).orderBy('created_at'),
    removeCredential: (userId: string, id: string) => db('access_credentials').where({ user_id: userId, id }).delete(),

    insertCode: async (row: Omit<AccessCodeRow, 'created_at'>) => (await db<AccessCodeRow>('access_codes').insert(row).returning('*'))[0] as AccessCodeRow,
    updateCode: (userId: string, id: string, patch: Pick<AccessCodeRow, 'code_sealed' | 'code_lookup' | 'length'>) =>
      db('access_codes').where({ user_id: userId, id }).update(patch),
    listCodes: (userId: string, kind?: 'mfa' | 'entry') => {
      const q = db<AccessCodeRow>('access_codes').where({ user_id: userId }).orderBy('created_at');
      return kind ? q.where({ kind }) : q;
    },
    removeCode: (userId: string, id: string) => db('access_codes').where({ user_id: userId, id }).delete(),
    /** The user's code with this lookup hash (an MFA code after a card, or their entry code). */
    findUserCode: (userId: string, lookup: string, minLength = 0, kind?: 'mfa' | 'entry') =>
      db<AccessCodeRow>('access_codes')
        .where({ user_id: userId, code_lookup: lookup, ...(kind ? { kind } : {}) })
        .where('length', '>=', minLength)
        .first(),
    findEntryCode: (lookup: string) => db<AccessCodeRow>('access_codes').where({ kind: 'entry', code_lookup: lookup }).first(),
    hasWebPin: async (userId: string, minLength: number) =>
      !!(await db('access_codes').where({ user_id: userId, kind: 'mfa' }).where('length', '>=', minLength).first()),

    recordDecision: createDecisionWriter(db),
    /** The card waiting at this door, and whether `lookup` is one of its holder's codes (one round trip). */
    pendingWithCode: async (doorId: string, lookup: string | null) => {
      const result = await db.raw(
        `select p.*, (select a.kind from access_codes a where a.user_id = p.user_id and a.code_lookup = ? limit 1) as code_kind
           from door_pending_codes p where p.door_id = ?`,
        [lookup ?? '', doorId],
      );
      return result.rows[0] as { door_id: string; user_id: string; credential_id: string; attempts: number; expires_at: Date; code_kind: 'mfa' | 'entry' | null } | undefined;
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
      credentials: Array<Omit<CredentialRow, 'id'>>;
      codes: Array<Omit<AccessCodeRow, 'created_at'>>;
    }) =>
      db.transaction(async (trx) => {
        if (batch.users.length) await trx('users').insert(batch.users);
        if (batch.credentials.length) await trx('access_credentials').insert(batch.credentials);
        const entryUsers = batch.codes.filter((c) => c.kind === 'entry').map((c) => c.user_id);
        if (entryUsers.length) await trx('access_codes').where({ kind: 'entry' }).whereIn('user_id', entryUsers).delete();
        if (batch.codes.length) await trx('access_codes').insert(batch.codes);
      }),
    exportRows: () =>
      db('users as u')
        .join('access_credentials as c', 'c.user_id', 'u.id')
        .select('u.id as user_id', 'u.email', 'u.name', 'c.kind', 'c.identifier as value', db.raw('null as code_sealed'), db.raw('null as code_id'))
        .unionAll((q) =>
          q.from('users as u').join('access_codes as a', 'a.user_id', 'u.id')
            .select('u.id as user_id', 'u.email', 'u.name', db.raw("a.kind || '_code' as kind"), db.raw('null as value'), 'a.code_sealed', 'a.id as code_id'),
        )
        .orderBy('email') as Promise<Array<{ user_id: string; email: string; name: string; kind: string; value: string | null; code_sealed: string | null; code_id: string | null }>>,
  };
}
