import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as partitioning from '../../migrations/018-audit-partitions.js';
import { maintainAuditPartitions } from '../../src/db/audit-partitions.js';
import { createQueries, type Queries } from '../../src/db/index.js';
import { openTestDatabase, type TestDatabase } from '../helpers/database.js';

// `.ci/run` runs this file on PGlite and on PostgreSQL: both must partition, attach and drop the same way.
let database: TestDatabase;
let queries: Queries;
beforeAll(async () => {
  database = await openTestDatabase();
  queries = createQueries(database.db);
});
afterAll(() => database.close());

const partitions = async () =>
  (await database.db.raw(`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'audit_events'::regclass`)).rows
    .map((r: { name: string }) => r.name)
    .sort();
const partitionOf = async (id: number) =>
  ((await database.db.raw('select tableoid::regclass::text as name from audit_events where id = ?', [id])).rows[0] as { name: string } | undefined)?.name;
const auditAt = async (at: string, action = 'test.event') => {
  const [row] = await database.db('audit_events').insert({ action, outcome: 'success', occurred_at: new Date(at) }).returning('id');
  return (row as { id: number }).id;
};

describe('the audit log in monthly partitions', () => {
  test('a new database has this month, the next two and a default partition', async () => {
    const now = new Date();
    const month = (plus: number) => {
      const m = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + plus, 1));
      return `audit_events_p${m.getUTCFullYear()}${String(m.getUTCMonth() + 1).padStart(2, '0')}`;
    };
    expect(await partitions()).toEqual(expect.arrayContaining(['audit_events_default', month(0), month(1), month(2)]));
    const id = await auditAt(now.toISOString());
    expect(await partitionOf(id)).toBe(month(0));
  });

  test('retention drops whole months past it and keeps the rows within it; a late month takes its rows from the default partition', async () => {
    const db = database.db;
    expect((await maintainAuditPartitions(db, { now: new Date('2020-01-15T00:00:00Z'), retentionDays: null })).created).toEqual([
      'audit_events_p202001',
      'audit_events_p202002',
      'audit_events_p202003',
    ]);
    const january = await auditAt('2020-01-20T10:00:00Z');
    const february = await auditAt('2020-02-29T23:59:59Z');
    const march = await auditAt('2020-03-10T10:00:00Z');
    const april = await auditAt('2020-04-10T10:00:00Z'); // no April yet: the default partition holds it
    const stray = await auditAt('2019-06-01T00:00:00Z');
    expect(await partitionOf(april)).toBe('audit_events_default');
    expect(await partitionOf(march)).toBe('audit_events_p202003');

    // Cut-off 2020-03-16: January and February end before it, March does not.
    const result = await maintainAuditPartitions(db, { now: new Date('2020-05-15T00:00:00Z'), retentionDays: 60 });
    expect(result.ran).toBe(true);
    expect(result.dropped.sort()).toEqual(['audit_events_p202001', 'audit_events_p202002']);
    expect(result.created).toEqual(['audit_events_p202005', 'audit_events_p202006', 'audit_events_p202007']);
    const left = await db('audit_events').whereIn('id', [january, february, march, april, stray]).pluck('id');
    expect(left.map(Number).sort()).toEqual([march, april].sort());

    await maintainAuditPartitions(db, { now: new Date('2020-04-01T00:00:00Z'), retentionDays: null });
    expect(await partitionOf(april)).toBe('audit_events_p202004');
    expect(await partitions()).not.toEqual(expect.arrayContaining(['audit_events_p202001']));
  });

  test('without a retention nothing is dropped', async () => {
    const before = await partitions();
    const result = await maintainAuditPartitions(database.db, { now: new Date('2030-01-01T00:00:00Z'), retentionDays: null });
    expect(result.dropped).toEqual([]);
    expect(await partitions()).toEqual(expect.arrayContaining(before));
  });

  test('one instance at a time: while another holds the maintenance lock, a run skips', async () => {
    if (!database.url) return; // PGlite has one connection: nothing runs beside it
    const other = database.db;
    await other.transaction(async (trx) => {
      await trx.raw(`select pg_advisory_xact_lock(hashtext(current_schema() || '.latchkey.audit-partitions'))`);
      expect(await maintainAuditPartitions(database.db, { now: new Date(), retentionDays: null })).toEqual({ ran: false, created: [], dropped: [] });
    });
  });

  test('the audit by user reads the per-user indexes, not whole partitions', async () => {
    const db = database.db;
    const users = Array.from({ length: 200 }, () => crypto.randomUUID());
    await db.raw(
      `insert into audit_events (occurred_at, action, outcome, subject_id, actor_id)
         select now() - (g % 20) * interval '1 day', 'login.password', 'success', (?::uuid[])[1 + g % 200], case when g % 7 = 0 then (?::uuid[])[1 + g % 13] end
           from generate_series(1, 20000) g`,
      [users, users],
    );
    await db.raw('analyze audit_events');
    const { sql, bindings } = queries.audit.search({ userId: users[5]!, limit: 50 }).toSQL();
    const plan = (await db.raw(`explain ${sql}`, bindings)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index (Only )?Scan|Bitmap Index Scan/);
    expect(plan).toMatch(/subject_id/);
    expect(plan).not.toMatch(/Seq Scan/);
    const rows = await queries.audit.search({ userId: users[5]!, limit: 50 });
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.subject_id === users[5] || r.actor_id === users[5])).toBe(true);
    expect(rows.map((r) => Number(r.id))).toEqual([...rows.map((r) => Number(r.id))].sort((a, b) => b - a));
  });
});

describe('migration 018', () => {
  test('turns an existing log into partitions keeping every row and the id sequence, and back', async () => {
    const db = database.db;
    const before = await db('audit_events').orderBy('id').select('id', 'occurred_at', 'action');
    await db.transaction((trx) => partitioning.down(trx));
    expect((await db.raw(`select relkind from pg_class where oid = 'audit_events'::regclass`)).rows[0].relkind).toBe('r');
    const old = await auditAt('2019-03-01T00:00:00Z', 'before.partitioning');
    await db.transaction((trx) => partitioning.up(trx));
    expect((await db.raw(`select relkind from pg_class where oid = 'audit_events'::regclass`)).rows[0].relkind).toBe('p');
    expect(await partitionOf(old)).toBe('audit_events_before_partitions');
    const after = await db('audit_events').orderBy('id').select('id', 'occurred_at', 'action');
    expect(after.slice(0, -1)).toEqual(before);
    const next = await auditAt(new Date().toISOString());
    expect(next).toBeGreaterThan(old);
    // The table that was the whole log is dropped whole once all of it is past the retention.
    const result = await maintainAuditPartitions(db, { now: new Date(Date.now() + 800 * 86_400_000), retentionDays: 400 });
    expect(result.dropped).toContain('audit_events_before_partitions');
  });
});
