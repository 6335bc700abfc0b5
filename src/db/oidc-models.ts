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
    purgeExpired: (now: Date) => rows().where('expires_at', '<=', now).delete(),
  };
}
