import type { Knex } from 'knex';

/**
 * The audit log (door decisions included) is partitioned by month of `occurred_at`. Old months leave by DROP TABLE,
 * which frees their space at once and writes no WAL per row, and new months are made ahead of time so that an insert
 * never waits for DDL. A default partition catches a row no month holds yet (a clock far off, maintenance stopped for
 * months); the month made later takes those rows with it.
 */
export const AUDIT_TABLE = 'audit_events';
export const AUDIT_DEFAULT_PARTITION = 'audit_events_default';
/** Months made ahead of the current one. */
export const MONTHS_AHEAD = 2;

interface Partition {
  name: string;
  /** null: MINVALUE (the table that held the log before it was partitioned) or the default partition. */
  from: Date | null;
  /** null only for the default partition. */
  to: Date | null;
  isDefault: boolean;
}

export interface MaintenanceResult {
  /** False when another instance held the maintenance lock: it does the work. */
  ran: boolean;
  created: string[];
  dropped: string[];
}

const monthStart = (at: Date, plus = 0) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + plus, 1));
const partitionName = (month: Date) => `${AUDIT_TABLE}_p${month.getUTCFullYear()}${String(month.getUTCMonth() + 1).padStart(2, '0')}`;

async function listPartitions(db: Knex | Knex.Transaction): Promise<Partition[]> {
  // The bounds come back as text in the session's time zone; PostgreSQL reads them back as timestamptz itself.
  const result = await db.raw(
    `select c.relname as name, c.relpartbound is not null and pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' as is_default,
            nullif((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1], '')::timestamptz as "from",
            nullif((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1], '')::timestamptz as "to"
       from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = ?::regclass`,
    [AUDIT_TABLE],
  );
  return (result.rows as Array<{ name: string; is_default: boolean; from: Date | null; to: Date | null }>).map((r) => ({
    name: r.name,
    from: r.from && new Date(r.from),
    to: r.to && new Date(r.to),
    isDefault: r.is_default,
  }));
}

/**
 * A month's partition, taking any rows of that month the default partition caught (attaching a range the default
 * still holds rows of would fail).
 */
async function createMonth(trx: Knex.Transaction, month: Date) {
  const name = partitionName(month);
  const from = month.toISOString();
  const to = monthStart(month, 1).toISOString();
  await trx.raw(`create table ?? (like ?? including defaults including constraints)`, [name, AUDIT_TABLE]);
  await trx.raw(`with moved as (delete from ?? where occurred_at >= ? and occurred_at < ? returning *) insert into ?? select * from moved`, [
    AUDIT_DEFAULT_PARTITION,
    from,
    to,
    name,
  ]);
  await trx.raw(`alter table ?? attach partition ?? for values from ('${from}') to ('${to}')`, [AUDIT_TABLE, name]);
  return name;
}

/** Makes the months from `now`'s to MONTHS_AHEAD after it that no partition covers yet. */
export async function createMonthsAhead(trx: Knex.Transaction, now: Date, existing?: Partition[]) {
  const partitions = existing ?? (await listPartitions(trx));
  const created: string[] = [];
  for (let plus = 0; plus <= MONTHS_AHEAD; plus++) {
    const month = monthStart(now, plus);
    const covered = partitions.some((p) => !p.isDefault && (p.from === null || p.from <= month) && p.to !== null && month < p.to);
    if (!covered) created.push(await createMonth(trx, month));
  }
  return created;
}

/**
 * One instance at a time (a transaction-scoped advisory lock, named by the schema so that schemas sharing a database
 * do not wait on each other; the others skip, since the holder does the same work): makes the months ahead, and with
 * a retention drops every partition whose newest possible row is older than it. Rows are kept at least
 * `retentionDays` and dropped within a month after. A short lock timeout: DROP and ATTACH lock the parent, and a
 * maintenance run queued behind a long query would hold up every insert queued behind it; it gives up instead and
 * runs again next time.
 */
export async function maintainAuditPartitions(db: Knex, options: { now: Date; retentionDays: number | null }): Promise<MaintenanceResult> {
  return db.transaction(async (trx) => {
    const lock = await trx.raw(`select pg_try_advisory_xact_lock(hashtext(current_schema() || '.latchkey.audit-partitions')) as locked`);
    if (!(lock.rows[0] as { locked: boolean }).locked) return { ran: false, created: [], dropped: [] };
    await trx.raw(`set local lock_timeout = '3s'`);
    const partitions = await listPartitions(trx);
    const created = await createMonthsAhead(trx, options.now, partitions);
    const dropped: string[] = [];
    if (options.retentionDays !== null) {
      const cutoff = new Date(options.now.getTime() - options.retentionDays * 86_400_000);
      for (const p of partitions) {
        if (p.isDefault || p.to === null || p.to > cutoff) continue;
        await trx.raw('drop table ??', [p.name]);
        dropped.push(p.name);
      }
      // Only rows no month held when they were written are here; there are none in a healthy log.
      await trx(AUDIT_DEFAULT_PARTITION).where('occurred_at', '<', cutoff).delete();
    }
    return { ran: true, created, dropped };
  });
}
