import type { Knex } from 'knex';
import type { AuditEvent, createAuditQueries } from './audit.js';
import type { Database } from './connect.js';
import { prepared } from './prepared.js';

export interface ThrottleRow {
  key: string;
  failures: number;
  window_started_at: Date;
  locked_until: Date | null;
}

export interface Reservation {
  key: string;
  limit: number;
  windowSeconds: number;
  baseLockSeconds: number;
}

// 2^40 seconds is far past any window: the exponent is capped so PostgreSQL's power() never overflows.
const MAX_DOUBLINGS = 40;

const compareKeys = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Runs a single-statement write again if PostgreSQL aborted it as a deadlock victim. The statement was rolled back
 * whole, so running it again is safe; key order makes this rare, the retry makes it invisible.
 */
export async function onDeadlockRetry<T>(statement: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (error) {
      if ((error as { code?: string }).code !== '40P01' || attempt >= attempts) throw error;
    }
  }
}

/** What a reservation's statement also does (see `reserveBeside`): SQL with named bindings. */
export interface ReservationBeside {
  gate?: { name: string; sql: string };
  columns?: string;
  from?: string;
  bindings?: Record<string, unknown>;
}

/** One part of a statement another query sends (positional bindings). */
export interface StatementPart {
  sql: string;
  bindings: readonly Knex.Value[];
}

/** A write that joins a settling statement; `guard`, when given, is an SQL condition it must also meet. */
export type JoiningWrite = (guard?: string) => StatementPart;

/** What a settling statement also does: a `guard` write it all waits on, and writes `after` it. */
export interface SettleBeside {
  /** Where this write changes no row (a TOTP time step already used), nothing else in the statement happens. */
  guard?: StatementPart;
  after?: JoiningWrite[];
}

/** A counter's limits, as a reservation takes them; the key comes from the caller's SQL. */
export type CounterLimits = Omit<Reservation, 'key'>;

/**
 * The CTE `name` that takes one attempt on a counter: an INSERT … ON CONFLICT DO UPDATE whose row comes from
 * `source` (a VALUES or a SELECT of key, 1, :now and the lock expression it is handed), returning the count as it
 * now stands and any lock it started, or no row where the counter is locked and refuses. Its bindings go into
 * `bindings`, suffixed with `tag`; `:now` (the same `now`) is the caller's to bind. ON CONFLICT DO UPDATE
 * re-evaluates its WHERE on the row's latest version, which is what makes each counter atomic across requests and
 * instances.
 */
export function reservationCte(name: string, r: CounterLimits, tag: string, now: Date, bindings: Record<string, unknown>, source: (firstLock: string) => string) {
  Object.assign(bindings, {
    [`limit${tag}`]: r.limit,
    [`base${tag}`]: r.baseLockSeconds,
    [`window${tag}`]: r.windowSeconds,
    [`windowStart${tag}`]: new Date(now.getTime() - r.windowSeconds * 1000),
  });
  const expired = `throttle_counters.window_started_at <= :windowStart${tag}`;
  const next = `case when ${expired} then 1 else throttle_counters.failures + 1 end`;
  const lockAfter = (count: string) =>
    `case when ${count} >= :limit${tag} then cast(:now as timestamptz) + make_interval(secs => least(:base${tag} * power(2, least(${count} - :limit${tag}, ${MAX_DOUBLINGS})), :window${tag})) else null end`;
  return `${name} as (insert into throttle_counters (key, failures, window_started_at, locked_until)
          ${source(lockAfter('1'))}
          on conflict (key) do update set
            failures = ${next},
            window_started_at = case when ${expired} then excluded.window_started_at else throttle_counters.window_started_at end,
            locked_until = ${lockAfter(next)}
          where throttle_counters.locked_until is null or throttle_counters.locked_until <= :now
          returning failures, locked_until)`;
}

export function createThrottleQueries(db: Database, audit: ReturnType<typeof createAuditQueries>) {
  const counters = () => db<ThrottleRow>('throttle_counters');
  const reserveBeside = async (rules: Reservation[], now: Date, beside: ReservationBeside = {}): Promise<{ counts: Array<number | undefined> | undefined; row: Record<string, unknown> }> => {
    // Rows are locked in key order, here and in `settle`: two statements that lock the same rows in different
    // orders deadlock under concurrency (PostgreSQL then aborts one of them).
    const order = rules.map((_, i) => i).sort((a, b) => compareKeys(rules[a]!.key, rules[b]!.key));
    const bindings: Record<string, unknown> = { ...beside.bindings, now };
    const { gate } = beside;
    const upsert = (r: Reservation, i: number) => {
      bindings[`key${i}`] = r.key;
      return reservationCte(`r${i}`, r, `${i}`, now, bindings, (first) => (gate ? `select :key${i}, 1, cast(:now as timestamptz), ${first} from ${gate.name}` : `values (:key${i}, 1, :now, ${first})`));
    };
    const ctes = [...(gate ? [`${gate.name} as (${gate.sql})`] : []), ...order.map((ruleIndex, i) => upsert(rules[ruleIndex]!, i))];
    const columns = [
      ...order.map((_, i) => `(select failures from r${i}) as c${i}`),
      ...(gate ? [`(select count(*) from ${gate.name}) as gate__`] : []),
      ...(beside.columns ? [beside.columns] : []),
    ];
    const sql = `with ${ctes.join(', ')} select ${columns.join(', ')} ${beside.from ?? ''}`;
    const row = (await onDeadlockRetry(() => db.raw(sql, bindings).options(prepared(sql)))).rows[0] as Record<string, unknown>;
    if (gate && Number(row.gate__) === 0) return { counts: undefined, row };
    const counts: Array<number | undefined> = new Array(rules.length);
    order.forEach((ruleIndex, i) => (counts[ruleIndex] = row[`c${i}`] === null ? undefined : Number(row[`c${i}`])));
    return { counts, row };
  };
  return {
    find: (key: string) => counters().where({ key }).first(),
    /**
     * Takes one attempt on each counter, all in one statement: every attempt is counted before its secret is
     * checked, so of N concurrent attempts at most the limit are let through. The attempt that reaches the limit
     * locks the counter at once (and each later one doubles the lock); a locked counter refuses until the lock ends.
     * Returns, per key in order, the count as it now stands, or undefined where that counter refused.
     */
    reserve: async (rules: Reservation[], now: Date): Promise<Array<number | undefined>> => (await reserveBeside(rules, now)).counts!,
    /**
     * `reserve`, with more in the same statement (`beside`): a `gate` the attempt waits on (a CTE, say a sign-in's own
     * try; where it yields no row no counter is touched and `counts` is undefined), and `columns` (from `from`) read
     * beside the counters, e.g. the user the attempt is for. Bindings are named; `:now` is bound here.
     */
    reserveBeside,
    /**
     * After a successful attempt, in one statement: counters of consecutive failures start again (`resets`), and
     * counters of attempts give the attempt back with any lock it started (`releases`). One sub-statement per key,
     * run in key order as `reserve` locks them. `record`, the audit entry telling of that success, is written by the
     * same statement: one round trip, and the entry exists exactly when the attempt was settled. `beside` joins more
     * to that statement (see SettleBeside); `applied` says whether its guard held, `after` how many rows each write
     * after it changed.
     */
    settle: async (resets: string[], releases: Array<{ key: string; limit: number }>, record?: AuditEvent, beside: SettleBeside = {}) => {
      // With a guard, every other part waits on its row: the writes after it, the counters and the audit entry. The
      // parts run in this order (each is pulled by the select list in turn): the guard's row, then the joining writes'
      // (a sign-in's, which a reservation's gate locks before its counters), then the counters, as everywhere.
      const when = beside.guard ? ' and exists (select 1 from g)' : '';
      const changes = [
        ...resets.map((key) => ({ key, sql: `delete from throttle_counters where key = ?${when} returning 1`, bindings: [key] as readonly Knex.Value[] })),
        ...releases.map(({ key, limit }) => ({
          key,
          sql: `update throttle_counters set failures = greatest(failures - 1, 0),
                  locked_until = case when failures - 1 < ? then null else locked_until end
                where key = ?${when} returning 1`,
          bindings: [limit, key] as readonly Knex.Value[],
        })),
      ].sort((a, b) => compareKeys(a.key, b.key));
      const after = (beside.after ?? []).map((write) => write(beside.guard ? 'exists (select 1 from g)' : undefined));
      if (!changes.length && !beside.guard && !after.length) {
        if (record) await audit.insert(record);
        return { applied: true, after: [] as number[] };
      }
      const entry = record && audit.statement(record, beside.guard ? 'exists (select 1 from g)' : undefined);
      const parts: Array<{ name: string; sql: string; bindings: readonly Knex.Value[] }> = [
        ...(beside.guard ? [{ name: 'g', ...beside.guard }] : []),
        ...after.map((a, i) => ({ name: `a${i}`, ...a })),
        ...changes.map((c, i) => ({ name: `s${i}`, ...c })),
        ...(entry ? [{ name: 'e', sql: `${entry.sql} returning 1`, bindings: entry.bindings }] : []),
      ];
      const sql = `with ${parts.map((p) => `${p.name} as (${p.sql})`).join(', ')} select ${parts.map((p) => `(select count(*) from ${p.name}) as ${p.name}`).join(', ')}`;
      const row = (await onDeadlockRetry(() => db.raw(sql, parts.flatMap((p) => p.bindings)).options(prepared(sql)))).rows[0] as Record<string, unknown>;
      const applied = !beside.guard || Number(row.g) > 0;
      if (applied) entry?.recorded();
      return { applied, after: after.map((_, i) => Number(row[`a${i}`])) };
    },
    clear: (key: string) => counters().where({ key }).delete(),
  };
}
