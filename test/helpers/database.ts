import crypto from 'node:crypto';
import fs from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import knexFactory from 'knex';
import { connectDatabase, type Database } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrate.js';

export interface TestDatabase {
  db: Database;
  /** postgres:// URL other processes can use to reach this same database (real PostgreSQL only). */
  url?: string;
  schema?: string;
  close(): Promise<void>;
}

export const onRealPostgres = Boolean(process.env.TEST_DATABASE_URL);

/** A migrated, empty database of its own: PGlite from the run's snapshot, or a fresh schema on PostgreSQL. */
export async function openTestDatabase(): Promise<TestDatabase> {
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    const schema = `t_${crypto.randomBytes(6).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
    await admin.raw('create schema ??', [schema]);
    await admin.destroy();
    const db = connectDatabase({ url, searchPath: schema, poolMax: 10 });
    await migrateToLatest(db);
    const withSchema = new URL(url);
    withSchema.searchParams.set('options', `-c search_path=${schema}`);
    return {
      db,
      url: withSchema.toString(),
      schema,
      close: async () => {
        await db.raw('drop schema ?? cascade', [schema]);
        await db.destroy();
      },
    };
  }
  const snapshot = process.env.LATCHKEY_TEST_SNAPSHOT;
  const pglite = snapshot
    ? new PGlite({ loadDataDir: new Blob([fs.readFileSync(snapshot)]) })
    : new PGlite();
  const db = connectDatabase({ pglite });
  if (!snapshot) await migrateToLatest(db);
  return {
    db,
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}
