import type { Database } from './connect.js';
import { prepared } from './prepared.js';
import type { UserRow } from './users.js';

interface ModelRow {
  model: string;
  id: string;
  payload: Record<string, unknown>;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  expires_at: Date | null;
  consumed_at: Date | null;
  /** Computed by PostgreSQL from the payload (migration 017). */
  account_id: string | null;
  user_agent: string | null;
  ip: string | null;
  seen_at: Date | null;
}

/** Where a session was used from, kept with it so its owner can tell their devices apart. */
export interface SessionDevice {
  ip: string | null;
  userAgent: string | null;
  at: Date;
}

export interface StoredModel {
  payload: Record<string, unknown>;
  consumedAt: Date | null;
}

/** A write of oidc-provider's, as the adapter hands it over: a row to store (with the browser, for a session) or to delete. */
export type ModelWrite =
  | { kind: 'upsert'; model: string; id: string; payload: Record<string, unknown>; expiresAt: Date | null; device?: SessionDevice }
  | { kind: 'destroy'; model: string; id: string };

/**
 * A row found with what the request that asked for it reads next: the session and grant it names (a code's or a
 * refresh token's) and the account it belongs to (an interaction's signed-in user), each undefined where there is none.
 */
export interface FoundWithRelated {
  found: StoredModel & { id: string };
  session?: StoredModel & { id: string; uid: string };
  grant?: StoredModel & { id: string };
  grantId: string | null;
  sessionUid: string | null;
  accountId: string | null;
  account?: UserRow;
}

const UUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const liveSql = (alias: string) => `(${alias}.expires_at is null or ${alias}.expires_at > :now)`;
// The account a row belongs to: a session's, grant's or token's own, or the user an interaction signed in.
const ACCOUNT_OF_M = "coalesce(m.account_id, m.payload #>> '{result,login,accountId}')";
const findWithRelatedSql = (column: 'id' | 'uid') => `
  select u.*, m.id as m__id, m.payload as m__payload, m.consumed_at as m__consumed_at, ${ACCOUNT_OF_M} as m__account_id,
    s.id as s__id, s.uid as s__uid, s.payload as s__payload, s.consumed_at as s__consumed_at,
    g.id as g__id, g.payload as g__payload, g.consumed_at as g__consumed_at
  from oidc_model_instances m
  left join oidc_model_instances s on s.model = 'Session' and s.uid = m.payload->>'sessionUid' and ${liveSql('s')}
  left join oidc_model_instances g on g.model = 'Grant' and g.id = m.grant_id and ${liveSql('g')}
  left join users u on u.id = (case when ${ACCOUNT_OF_M} ~ '${UUID}' then cast(${ACCOUNT_OF_M} as uuid) end)
  where m.model = :model and m.${column} = :value and ${liveSql('m')}
  limit 1`;
const FIND_WITH_RELATED = { id: findWithRelatedSql('id'), uid: findWithRelatedSql('uid') };

const CONSUME = `
  with spent as (
    update oidc_model_instances set consumed_at = ? where model = ? and id = ? and consumed_at is null returning account_id
  )
  select u.*, spent.account_id as spent__account_id from spent
  left join users u on u.id = (case when spent.account_id ~ '${UUID}' then cast(spent.account_id as uuid) end)`;

const BATCH_ROWS = `select * from jsonb_to_recordset(cast(? as jsonb)) as r(model text, id text, payload jsonb, grant_id text,
      user_code text, uid text, expires_at timestamptz, ip text, user_agent text, seen_at timestamptz)`;
const UPSERT_BATCH = `insert into oidc_model_instances (model, id, payload, grant_id, user_code, uid, expires_at, ip, user_agent, seen_at)
    select batch.* from batch`;
const ON_CONFLICT = `on conflict (model, id) do update set payload = excluded.payload, grant_id = excluded.grant_id,
      user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at,
      ip = coalesce(excluded.ip, oidc_model_instances.ip), user_agent = coalesce(excluded.user_agent, oidc_model_instances.user_agent),
      seen_at = coalesce(excluded.seen_at, oidc_model_instances.seen_at)`;
/** Rows only (a token, a session saved again): the plain upsert. */
const UPSERT_WRITES = `with batch as (${BATCH_ROWS}) ${UPSERT_BATCH} ${ON_CONFLICT}`;
/** Deletes as well: the upsert waits on every interaction deleted being found (see `apply`). */
const APPLY_WRITES = `
  with gone as (
    delete from oidc_model_instances where (model, id) in (select * from unnest(cast(? as text[]), cast(? as text[])))
    returning model
  ), batch as (${BATCH_ROWS}), used as (
    select count(*) as interactions_gone from gone where model = 'Interaction'
  ), stored as (
    ${UPSERT_BATCH}, used where used.interactions_gone = ?
    ${ON_CONFLICT}
    returning 1
  )
  select used.interactions_gone, (select count(*) from stored) as stored from used`;

/** Splits a row read with joined tables' columns (`m__payload`) into one object per prefix; bare columns go to ''. */
function splitJoined(row: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const parts: Record<string, Record<string, unknown>> = { '': {} };
  for (const [key, value] of Object.entries(row)) {
    const cut = key.indexOf('__');
    const prefix = cut > 0 ? key.slice(0, cut) : '';
    (parts[prefix] ??= {})[cut > 0 ? key.slice(cut + 2) : key] = value;
  }
  return parts;
}

/** The grants a session's apps were authorized under. */
const grantIdsOf = (session: ModelRow | undefined) =>
  Object.values((session?.payload.authorizations ?? {}) as Record<string, { grantId?: unknown }>)
    .map((a) => a.grantId)
    .filter((id): id is string => typeof id === 'string');

/** Deletes grants of this account with every token issued under them. */
async function deleteGrants(trx: Database, accountId: string, grantIds: readonly string[]) {
  if (!grantIds.length) return;
  await trx<ModelRow>('oidc_model_instances').where({ account_id: accountId }).whereIn('grant_id', grantIds).delete();
  await trx<ModelRow>('oidc_model_instances').where({ account_id: accountId, model: 'Grant' }).whereIn('id', grantIds).delete();
}

/** Storage for oidc-provider's models; expired rows are invisible before they are purged. */
export function createOidcModelQueries(db: Database) {
  const rows = () => db<ModelRow>('oidc_model_instances');
  const findLive = async (where: Partial<ModelRow>, now: Date): Promise<StoredModel | undefined> => {
    const row = await rows()
      .where(where)
      .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now))
      .first();
    return row ? { payload: row.payload, consumedAt: row.consumed_at } : undefined;
  };

  return {
    upsert: (model: string, id: string, payload: Record<string, unknown>, expiresAt: Date | null, device?: SessionDevice) =>
      rows()
        .insert({
          model,
          id,
          payload: JSON.stringify(payload) as unknown as Record<string, unknown>,
          grant_id: typeof payload.grantId === 'string' ? payload.grantId : null,
          user_code: typeof payload.userCode === 'string' ? payload.userCode : null,
          uid: typeof payload.uid === 'string' ? payload.uid : null,
          expires_at: expiresAt,
          ...(device ? { ip: device.ip, user_agent: device.userAgent, seen_at: device.at } : {}),
        })
        .onConflict(['model', 'id'])
        .merge(['payload', 'grant_id', 'user_code', 'uid', 'expires_at', ...(device ? (['ip', 'user_agent', 'seen_at'] as const) : [])]),
    find: (model: string, id: string, now: Date) => findLive({ model, id }, now),
    /** One row, by id or uid, read together with its session, grant and account (FoundWithRelated) in one statement. */
    findWithRelated: async (model: string, column: 'id' | 'uid', value: string, now: Date): Promise<FoundWithRelated | undefined> => {
      const sql = FIND_WITH_RELATED[column];
      const result = (await db.raw(sql, { model, value, now }).options(prepared(sql))) as { rows: Array<Record<string, unknown>> };
      const row = result.rows[0];
      if (!row) return undefined;
      const { '': user = {}, m = {}, s = {}, g = {} } = splitJoined(row);
      const stored = (part: Record<string, unknown>) => ({ id: part.id as string, payload: part.payload as Record<string, unknown>, consumedAt: (part.consumed_at as Date | null) ?? null });
      const payload = m.payload as Record<string, unknown>;
      return {
        found: stored(m),
        session: s.id ? { ...stored(s), uid: s.uid as string } : undefined,
        grant: g.id ? stored(g) : undefined,
        grantId: typeof payload.grantId === 'string' ? payload.grantId : null,
        sessionUid: typeof payload.sessionUid === 'string' ? payload.sessionUid : null,
        accountId: (m.account_id as string | null) ?? null,
        account: user.id ? (user as unknown as UserRow) : undefined,
      };
    },
    /**
     * Several writes in one statement: the deletes, then the rows in one multi-row upsert. An interaction is used
     * once: when this request deletes one that is already gone (another request resumed it first), nothing else is
     * stored and the answer is false. A row saved without its browser (not a session) keeps the browser stored before.
     */
    apply: async (writes: readonly ModelWrite[]): Promise<boolean> => {
      const deletes = writes.flatMap((w) => (w.kind === 'destroy' ? [w] : []));
      const rowsJson = JSON.stringify(
        writes.flatMap((w) =>
          w.kind === 'upsert'
            ? [{
                model: w.model,
                id: w.id,
                payload: w.payload,
                grant_id: typeof w.payload.grantId === 'string' ? w.payload.grantId : null,
                user_code: typeof w.payload.userCode === 'string' ? w.payload.userCode : null,
                uid: typeof w.payload.uid === 'string' ? w.payload.uid : null,
                expires_at: w.expiresAt,
                ip: w.device?.ip ?? null,
                user_agent: w.device?.userAgent ?? null,
                seen_at: w.device?.at ?? null,
              }]
            : [],
        ),
      );
      if (!deletes.length) {
        await db.raw(UPSERT_WRITES, [rowsJson]).options(prepared(UPSERT_WRITES));
        return true;
      }
      const interactions = deletes.filter((w) => w.model === 'Interaction').length;
      const result = (await db
        .raw(APPLY_WRITES, [deletes.map((w) => w.model), deletes.map((w) => w.id), rowsJson, interactions])
        .options(prepared(APPLY_WRITES))) as { rows: Array<{ interactions_gone: string | number }> };
      return Number(result.rows[0]!.interactions_gone) === interactions;
    },
    findBy: (model: string, column: 'uid' | 'user_code', value: string, now: Date) =>
      findLive({ model, [column]: value }, now),
    /**
     * Marks the row consumed only if nothing consumed it first (`won`: this call did), and reads its account as it is
     * at that moment: oidc-provider checks a code's account after spending the code, and an account disabled since
     * the code was read must fail that check.
     */
    consume: async (model: string, id: string, now: Date): Promise<{ won: boolean; accountId: string | null; account?: UserRow }> => {
      const result = (await db.raw(CONSUME, [now, model, id]).options(prepared(CONSUME))) as { rows: Array<Record<string, unknown>> };
      const row = result.rows[0];
      if (!row) return { won: false, accountId: null };
      const { '': user = {}, spent = {} } = splitJoined(row);
      return { won: true, accountId: (spent.account_id as string | null) ?? null, account: user.id ? (user as unknown as UserRow) : undefined };
    },
    destroy: (model: string, id: string) => rows().where({ model, id }).delete(),
    revokeByGrantId: (grantId: string) => rows().where({ grant_id: grantId }).delete(),
    /** A user's live sign-in sessions, newest first. */
    sessionsOf: async (accountId: string, now: Date) =>
      (
        await rows()
          .where({ account_id: accountId, model: 'Session' })
          .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now))
      )
        .map((row) => ({ id: row.id, uid: row.uid!, payload: row.payload, ip: row.ip, userAgent: row.user_agent, seenAt: row.seen_at }))
        .sort((a, b) => Number(b.payload.loginTs ?? 0) - Number(a.payload.loginTs ?? 0)),
    /**
     * Signs a user out: their sessions, and every grant (with its tokens) those sessions or the user hold, except
     * what belongs to the session kept.
     */
    revokeAccount: (accountId: string, keepSessionId?: string) =>
      db.transaction(async (trx) => {
        const table = () => trx<ModelRow>('oidc_model_instances');
        const kept = keepSessionId ? await table().where({ model: 'Session', id: keepSessionId, account_id: accountId }).first() : undefined;
        const keptGrants = new Set(grantIdsOf(kept));
        const grants = (await table().where({ account_id: accountId, model: 'Grant' }).select('id'))
          .map((row) => row.id)
          .filter((id) => !keptGrants.has(id));
        await deleteGrants(trx, accountId, grants);
        // A sign-in that finished but was not yet resumed would otherwise still make a new session after this.
        await table()
          .where({ model: 'Interaction' })
          .where((q) => q.whereRaw("payload->'result'->'login'->>'accountId' = ?", [accountId]).orWhereRaw("payload->'session'->>'accountId' = ?", [accountId]))
          .delete();
        const sessions = table().where({ account_id: accountId, model: 'Session' });
        if (keepSessionId) sessions.whereNot({ id: keepSessionId });
        return (await sessions.delete()) as number;
      }),
    /**
     * Signs one session out (named by its stable uid) with the grants and tokens issued through it; returns whether
     * the account had such a session. Scoped to the account, so another user's session id finds nothing.
     */
    signOutSession: (accountId: string, uid: string) =>
      db.transaction(async (trx) => {
        const session = await trx<ModelRow>('oidc_model_instances').where({ account_id: accountId, model: 'Session', uid }).first();
        if (!session) return false;
        await deleteGrants(trx, accountId, grantIdsOf(session));
        await trx<ModelRow>('oidc_model_instances').where({ model: 'Session', id: session.id }).delete();
        return true;
      }),
    /**
     * Takes back everything a user gave one app: its grants with their tokens (refresh tokens included), and the
     * sessions' record of having authorized it, so the next sign-in starts from no grant. Returns how many grants.
     */
    revokeClient: (accountId: string, clientId: string) =>
      db.transaction(async (trx) => {
        const grants = await trx<ModelRow>('oidc_model_instances')
          .where({ account_id: accountId, model: 'Grant' })
          .whereRaw("payload->>'clientId' = ?", [clientId])
          .pluck('id');
        await deleteGrants(trx, accountId, grants);
        await trx<ModelRow>('oidc_model_instances')
          .where({ account_id: accountId, model: 'Session' })
          .whereRaw("payload->'authorizations'->? is not null", [clientId])
          .update({ payload: trx.raw("payload #- array['authorizations', ?]::text[]", [clientId]) as unknown as Record<string, unknown> });
        return grants.length;
      }),
    purgeExpired: (now: Date) => rows().where('expires_at', '<=', now).delete(),
  };
}
