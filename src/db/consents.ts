import type { Database } from './connect.js';

export interface ConsentRow {
  user_id: string;
  client_id: string;
  scopes: string[];
  claims: string[];
  resource_scopes: Record<string, string[]>;
  granted_at: Date;
  updated_at: Date;
}

export type ConsentGrant = Pick<ConsentRow, 'scopes' | 'claims' | 'resource_scopes'>;

const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])].sort();

/** What each user allowed each app (connected apps); a grant's scopes, kept beyond its sessions. */
export function createConsentQueries(db: Database) {
  const consents = () => db<ConsentRow>('consents');
  return {
    find: (userId: string, clientId: string) => consents().where({ user_id: userId, client_id: clientId }).first(),
    /**
     * Adds what the user just allowed to what they allowed before. The row is made first and then locked, so two
     * consents racing for the same app both end up recorded.
     */
    remember: (userId: string, clientId: string, granted: ConsentGrant) =>
      db.transaction(async (trx) => {
        const mine = () => trx<ConsentRow>('consents').where({ user_id: userId, client_id: clientId });
        await trx<ConsentRow>('consents')
          .insert({ user_id: userId, client_id: clientId, scopes: [], claims: [], resource_scopes: '{}' as unknown as Record<string, string[]> })
          .onConflict(['user_id', 'client_id'])
          .ignore();
        const before = (await mine().forUpdate().first())!;
        const resources = { ...before.resource_scopes };
        for (const [indicator, scopes] of Object.entries(granted.resource_scopes)) resources[indicator] = union(resources[indicator] ?? [], scopes);
        await mine().update({
          scopes: union(before.scopes, granted.scopes),
          claims: union(before.claims, granted.claims),
          resource_scopes: JSON.stringify(resources) as unknown as Record<string, string[]>,
          updated_at: trx.fn.now() as unknown as Date,
        });
      }),
    /** The user's connected apps with their names, most recently allowed first. */
    listFor: (userId: string) =>
      consents()
        .join('clients', 'clients.client_id', 'consents.client_id')
        .where('consents.user_id', userId)
        .orderBy('consents.updated_at', 'desc')
        .select<Array<ConsentRow & { client_name: string | null }>>('consents.*', db.raw("clients.metadata->>'client_name' as client_name")),
    /** Forgets one app's consent; returns whether there was one. Scoped to its user, so an id from elsewhere finds nothing. */
    forget: async (userId: string, clientId: string) => (await consents().where({ user_id: userId, client_id: clientId }).delete()) > 0,
  };
}
