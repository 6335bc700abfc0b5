import type { Database } from './connect.js';

export interface ClientRow {
  client_id: string;
  client_secret_sealed: string | null;
  metadata: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

export function createClientQueries(db: Database) {
  const clients = () => db<ClientRow>('clients');
  return {
    find: (clientId: string) => clients().where({ client_id: clientId }).first(),
    list: () => clients().orderBy('created_at'),
    /** One page in client_id order, after the cursor. */
    page: (after: string | undefined, limit: number) => {
      const q = clients().orderBy('client_id').limit(limit);
      if (after) q.where('client_id', '>', after);
      return q;
    },
    updateMetadata: async (clientId: string, metadata: Record<string, unknown>) => {
      const [row] = await clients()
        .where({ client_id: clientId })
        .update({ metadata: JSON.stringify(metadata) as unknown as Record<string, unknown>, updated_at: db.fn.now() as unknown as Date })
        .returning('*');
      return row as ClientRow | undefined;
    },
    updateSecret: (clientId: string, sealed: string) =>
      clients().where({ client_id: clientId }).update({ client_secret_sealed: sealed, updated_at: db.fn.now() as unknown as Date }),
    insert: (row: Pick<ClientRow, 'client_id' | 'client_secret_sealed' | 'metadata'>) =>
      clients().insert({ ...row, metadata: JSON.stringify(row.metadata) as unknown as Record<string, unknown> }),
    remove: (clientId: string) => clients().where({ client_id: clientId }).delete(),
  };
}
