import type { Database } from './connect.js';

export interface ResourceRow {
  identifier: string;
  name: string;
  scopes: string[];
  access_token_ttl: number;
  signing_alg: string;
  token_format: string;
  machine_clients: string[];
  created_at: Date;
  updated_at: Date;
}

export type ResourceFields = Omit<ResourceRow, 'created_at' | 'updated_at'>;

export function createResourceQueries(db: Database) {
  const resources = () => db<ResourceRow>('api_resources');
  return {
    find: (identifier: string) => resources().where({ identifier }).first(),
    /** One page in identifier order, after the cursor. */
    page: (after: string | undefined, limit: number) => {
      const q = resources().orderBy('identifier').limit(limit);
      if (after) q.where('identifier', '>', after);
      return q;
    },
    /** Undefined when the identifier is taken (one statement: two concurrent registrations cannot both succeed). */
    insert: async (row: ResourceFields) => {
      const [inserted] = await resources().insert(row).onConflict('identifier').ignore().returning('*');
      return inserted as ResourceRow | undefined;
    },
    update: async (identifier: string, fields: Partial<Omit<ResourceFields, 'identifier'>>) => {
      const [row] = await resources()
        .where({ identifier })
        .update({ ...fields, updated_at: db.fn.now() as unknown as Date })
        .returning('*');
      return row as ResourceRow | undefined;
    },
    remove: (identifier: string) => resources().where({ identifier }).delete(),
    /** A deleted client leaves every API's list, so that a later client given the same id inherits nothing. */
    forgetClient: async (clientId: string) =>
      (await resources()
        .whereRaw('? = any(machine_clients)', [clientId])
        .update({ machine_clients: db.raw('array_remove(machine_clients, ?)', [clientId]) as unknown as string[], updated_at: db.fn.now() as unknown as Date })
        .returning('identifier')) as unknown as Array<{ identifier: string }>,
  };
}
