import type { Latchkey } from '../src/app.js';
import { maintainAuditPartitions } from '../src/db/audit-partitions.js';
import type { Database } from '../src/db/connect.js';
import { percentile } from './harness.js';

/** Grown users are named by a hash of their number, so audit rows can name them without a join. */
const GROWN_ID = (n: string) => `md5('grown-' || (${n}))::uuid`;
const BATCH = 1_000_000;

/**
 * A database that has lived `months`: `users` users and `auditRows` audit rows spread evenly over those months, in
 * the monthly partitions a server running that long would have made (one maintenance run per month), ids growing
 * with time as they do. Each user is the subject of auditRows / users rows; one in a hundred rows is about a single
 * busy account (an admin's, say), the worst case for "audit by user".
 */
export async function growAuditLog(
  db: Database,
  options: { users: number; auditRows: number; months: number; log: (message: string) => void },
) {
  await db.raw(
    `insert into users (id, email, name, password_hash, email_verified)
       select ${GROWN_ID('g')}, 'grown-' || g || '@bench.test', 'Grown', 'unused', true from generate_series(1, ?) g`,
    [options.users],
  );
  const now = new Date();
  for (let back = options.months; back >= 0; back--) {
    await maintainAuditPartitions(db, { now: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 15)), retentionDays: null });
  }
  const spanSeconds = (now.getTime() - Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - options.months, 15)) / 1000;
  const started = performance.now();
  for (let done = 0; done < options.auditRows; done += BATCH) {
    const last = Math.min(done + BATCH, options.auditRows);
    await db.raw(
      `insert into audit_events (occurred_at, action, outcome, subject_id, ip, details)
       select now() - ((? - g) * ?::float8 / ?) * interval '1 second', (array['login.password', 'mfa.verify', 'door.decision'])[1 + g % 3],
              case when g % 7 = 0 then 'failure' else 'success' end,
              case when g % 100 = 0 then ${GROWN_ID('1')} else ${GROWN_ID('1 + g % ?')} end,
              '10.0.' || (g % 250) || '.1', '{"reason":"grown"}'
         from generate_series(?::bigint, ?::bigint) g`,
      [options.auditRows, spanSeconds, options.auditRows, options.users, done + 1, last],
    );
    options.log(`  audit rows: ${last}`);
  }
  const rowsPerSecond = options.auditRows / ((performance.now() - started) / 1000);
  await db.raw('analyze');
  const partitions = Number((await db.raw(`select count(*) as n from pg_inherits where inhparent = 'audit_events'::regclass`)).rows[0].n);
  // 200 users at random, and the busy account ten times among them.
  const sample = (await db.raw(`select ${GROWN_ID('1 + floor(random() * ?)::int')} as id from generate_series(1, 200)`, [options.users])).rows as Array<{ id: string }>;
  const busy = (await db.raw(`select ${GROWN_ID('1')} as id`)).rows[0].id as string;
  return { rowsPerSecond, partitions, sampleUsers: [...sample.map((r) => r.id), ...Array.from({ length: 10 }, () => busy)] };
}

/** The admin's "audit by user" (newest 50 rows the user acted in or was acted on), timed one at a time. */
export async function auditByUser(latchkey: Latchkey, users: string[]) {
  await latchkey.queries.audit.search({ userId: users[0]!, limit: 50 }); // a warm connection, as a server has
  const times: number[] = [];
  for (const userId of users) {
    const t0 = performance.now();
    await latchkey.queries.audit.search({ userId, limit: 50 });
    times.push(performance.now() - t0);
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times), queries: times.length };
}
