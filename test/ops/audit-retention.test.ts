import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { settingSchemas } from '../../src/config/settings.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// The server's clock, moved by hand: months pass between the rows written and the maintenance that follows.
let offsetMs = 0;
const clock = { now: () => new Date(Date.now() + offsetMs) };
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ clock });
});
afterAll(() => server.close());

test('the retention is days, at least 30, or null to keep everything', () => {
  const schema = settingSchemas['audit-retention'];
  expect(schema.safeParse({ days: 400 }).success).toBe(true);
  expect(schema.safeParse({ days: null }).success).toBe(true);
  expect(schema.safeParse({ days: 7 }).success).toBe(false);
  expect(schema.safeParse({ days: 1.5 }).success).toBe(false);
  expect(schema.safeParse({}).success).toBe(false);
});

test("the server's maintenance drops months past the admin's retention, keeps the rest, and audits what it dropped", async () => {
  const { latchkey } = server;
  const audit = () => latchkey.queries.db('audit_events');
  await latchkey.queries.audit.insert({ action: 'test.old', outcome: 'success' });
  expect((await latchkey.maintainAuditLog()).dropped).toEqual([]); // 400 days by default

  await latchkey.settings.write('audit-retention', { days: 30 });
  offsetMs = 200 * 86_400_000;
  await latchkey.queries.audit.insert({ action: 'test.recent', outcome: 'success', occurredAt: clock.now() });
  const result = await latchkey.maintainAuditLog();
  expect(result.ran).toBe(true);
  expect(result.dropped.length).toBeGreaterThan(0);
  expect(await audit().where({ action: 'test.old' })).toEqual([]);
  expect(await audit().where({ action: 'test.recent' })).toHaveLength(1);
  const [noted] = await audit().where({ action: 'audit.retention' });
  expect(noted.details).toEqual({ dropped: result.dropped, retention_days: 30 });

  await latchkey.settings.write('audit-retention', { days: null });
  offsetMs = 2000 * 86_400_000;
  expect((await latchkey.maintainAuditLog()).dropped).toEqual([]);
  expect(await audit().where({ action: 'test.recent' })).toHaveLength(1);
});
