// Jest loads global setup outside its module system, so this uses the compiled code (`npm test` builds first).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { connectDatabase } from '../../dist/src/db/connect.js';
import { migrateToLatest } from '../../dist/src/db/migrate.js';

/**
 * PGlite takes ~5 s to initialise a cluster and ~1 s to load one from a dump, so the migrated schema is built
 * once per run and every test file starts from that snapshot. On real PostgreSQL each file gets its own schema.
 */
export default async function globalSetup() {
  if (process.env.TEST_DATABASE_URL) return;
  const pglite = new PGlite();
  const db = connectDatabase({ pglite });
  await migrateToLatest(db);
  const dump = await pglite.dumpDataDir('none');
  const file = path.join(os.tmpdir(), `latchkey-test-${process.pid}.tar`);
  fs.writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
  process.env.LATCHKEY_TEST_SNAPSHOT = file;
  await db.destroy();
  if (!pglite.closed) await pglite.close();
}
