import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import type { PGlite } from '@electric-sql/pglite';

export type Database = Knex;

// count(*) and bigserial come back as strings from `pg` and as numbers from PGlite: make both numbers, here only.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

interface PGliteQuery {
  method?: string;
  returning?: unknown;
  response: { affectedRows?: number };
}

/**
 * knex-pglite reports a delete as command "DEL", which knex's PostgreSQL code does not count as a DELETE: a delete
 * would answer with a result object instead of the number of rows removed. Answer as `pg` does.
 */
class PGliteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => { processResponse(obj: PGliteQuery, runner: unknown): unknown }) {
  override processResponse(obj: PGliteQuery, runner: unknown) {
    const result = super.processResponse(obj, runner);
    return obj.method === 'del' && !obj.returning ? (obj.response.affectedRows ?? 0) : result;
  }
}

export interface DatabaseOptions {
  /** postgres:// URL; without it the embedded PGlite is used. */
  url?: string;
  poolMax?: number;
  /** Where PGlite keeps its files; omitted means in memory. */
  dataDir?: string;
  /** An already running PGlite instance (tests start one from a migrated snapshot). */
  pglite?: PGlite;
  searchPath?: string;
}

export function connectDatabase(options: DatabaseOptions): Database {
  if (options.url) {
    return knexFactory({
      client: 'pg',
      connection: options.url,
      searchPath: options.searchPath ? [options.searchPath] : undefined,
      pool: {
        min: 0,
        max: options.poolMax ?? 10,
        // A dead database must fail requests fast rather than queue them until the client gives up.
        acquireTimeoutMillis: 3000,
      },
      acquireConnectionTimeout: 3000,
    });
  }
  if (options.pglite) {
    const instance = options.pglite;
    return knexFactory({ client: PGliteClient as never, dialect: 'postgres', connection: () => ({ pglite: instance }) as object });
  }
  if (options.dataDir) fs.mkdirSync(path.resolve(options.dataDir), { recursive: true });
  return knexFactory({
    client: PGliteClient as never,
    dialect: 'postgres',
    connection: options.dataDir ? { filename: path.resolve(options.dataDir, 'pgdata') } : {},
  });
}
