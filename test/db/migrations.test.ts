import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { migrateToLatest, rollbackMigrations } from '../../src/db/migrate.js';
import { openTestDatabase, type TestDatabase } from '../helpers/database.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(() => database.close());

const tables = async () =>
  (await database.db('information_schema.tables').where('table_schema', database.db.raw('current_schema()')).pluck('table_name')).sort();

test('every migration reverses cleanly and applies again', async () => {
  const before = await tables();
  expect(before).toEqual(expect.arrayContaining(['users', 'clients', 'oidc_model_instances', 'keys', 'audit_events']));
  const reverted = await rollbackMigrations(database.db, true);
  expect(reverted.length).toBeGreaterThan(0);
  expect((await tables()).filter((t) => !t.startsWith('knex_'))).toEqual([]);
  await migrateToLatest(database.db);
  expect(await tables()).toEqual(before);
});
