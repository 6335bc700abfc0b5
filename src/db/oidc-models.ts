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
}

export interface StoredModel {
  payload: Record<string, unknown>;
  consumedAt: Date | null;
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
    upsert: (model: string, id: string, payload: Record<string, unknown>, expiresAt: Date | null) =>
      rows()
        .insert({
          model,
          id,
          payload: JSON.stringify(payload) as unknown as Record<string, unknown>,
          grant_id: typeof payload.grantId === 'string' ? payload.grantId : null,
          user_code: typeof payload.userCode === 'string' ? payload.userCode : null,
          uid: typeof payload.uid === 'string' ? payload.uid : null,
          expires_at: expiresAt,
        })
        .onConflict(['model', 'id'])
        .merge(['payload', 'grant_id', 'user_code', 'uid', 'expires_at']),
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
          .where({ model: 'Session' })
          .whereRaw("payload->>'accountId' = ?", [accountId])
          .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now))
      )
        .map((row) => ({ id: row.id, payload: row.payload }))
        .sort((a, b) => Number(b.payload.loginTs ?? 0) - Number(a.payload.loginTs ?? 0)),
    /**
     * Signs a user out: their sessions, and every grant (with its tokens) those sessions or the user hold, except
     * what belongs to the session kept.
     */
    revokeAccount: (accountId: string, keepSessionId?: string) =>
      db.transaction(async (trx) => {
        const table = () => trx<ModelRow>('oidc_model_instances');
        const kept = keepSessionId ? await table().where({ model: 'Session', id: keepSessionId }).first() : undefined;
        const keptGrants = new Set(
          Object.values((kept?.payload.authorizations ?? {}) as Record<string, { grantId?: string }>).map((a) => a.grantId),
        );
        const grants = (await table().where({ model: 'Grant' }).whereRaw("payload->>'accountId' = ?", [accountId]).select('id'))
          .map((row) => row.id)
          .filter((id) => !keptGrants.has(id));
        if (grants.length) {
          await table().whereIn('grant_id', grants).delete();
          await table().where({ model: 'Grant' }).whereIn('id', grants).delete();
        }
        const sessions = table().where({ model: 'Session' }).whereRaw("payload->>'accountId' = ?", [accountId]);
        if (keepSessionId) sessions.whereNot({ id: keepSessionId });
        return sessions.delete();
      }),
    purgeExpired: (now: Date) => rows().where('expires_at', '<=', now).delete(),
  };
}
