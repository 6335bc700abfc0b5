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
    insert: (row: Pick<ClientRow, 'client_id' | 'client_secret_sealed' | 'metadata'>) =>
      clients().insert({ ...row, metadata: JSON.stringify(row.metadata) as unknown as Record<string, unknown> }),
    remove: (clientId: string) => clients().where({ client_id: clientId }).delete(),
  };
}
