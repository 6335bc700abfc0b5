import type { Database } from './connect.js';

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
    findBy: (model: string, column: 'uid' | 'user_code', value: string, now: Date) =>
      findLive({ model, [column]: value }, now),
    /** Marks the row consumed only if nothing consumed it first; returns whether this call did. */
    consume: async (model: string, id: string, now: Date) =>
      (await rows().where({ model, id }).whereNull('consumed_at').update({ consumed_at: now })) === 1,
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
