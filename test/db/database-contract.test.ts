import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { openTestDatabase, type TestDatabase } from '../helpers/database.js';

// The same code runs on PGlite and on PostgreSQL (`.ci/run` runs this file on both): results must have one shape.
let database: TestDatabase;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(() => database.close());

test('insert, update and delete report what they did the same way on either database', async () => {
  const db = database.db;
  await db('settings').insert([{ key: 'a', value: '1' }, { key: 'b', value: '2' }, { key: 'c', value: '3' }]);
  expect(await db('settings').whereIn('key', ['a', 'b']).update({ version: 5 })).toBe(2);
  expect(await db('settings').where({ key: 'nope' }).update({ version: 5 })).toBe(0);
  expect(await db('settings').whereIn('key', ['a', 'b']).delete()).toBe(2);
  expect(await db('settings').where({ key: 'a' }).delete()).toBe(0);
  expect(await db('settings').where({ key: 'c' }).delete().returning('key')).toEqual([{ key: 'c' }]);
});

test('counts and big integers are numbers on either database', async () => {
  const db = database.db;
  const row = await db('settings').count({ n: '*' }).first();
  expect(typeof row?.n).toBe('number');
  const [event] = await db('audit_events').insert({ action: 'x', outcome: 'success' }).returning('id');
  expect(typeof event.id).toBe('number');
});
