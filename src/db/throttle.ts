import type { Database } from './connect.js';

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

export function createThrottleQueries(db: Database) {
  const counters = () => db<ThrottleRow>('throttle_counters');
  return {
    find: (key: string) => counters().where({ key }).first(),
    /**
     * Takes one attempt on each counter, all in one statement: every attempt is counted before its secret is
     * checked, so of N concurrent attempts at most the limit are let through. The attempt that reaches the limit
     * locks the counter at once (and each later one doubles the lock); a locked counter refuses until the lock ends.
     * ON CONFLICT DO UPDATE re-evaluates its WHERE on the row's latest version, which is what makes each counter
     * atomic across requests and instances. Returns, per key in order, the count as it now stands, or undefined
     * where that counter refused.
     */
    reserve: async (rules: Reservation[], now: Date): Promise<Array<number | undefined>> => {
      const bindings: Record<string, unknown> = { now };
      const upsert = (r: Reservation, i: number) => {
        Object.assign(bindings, {
          [`key${i}`]: r.key,
          [`limit${i}`]: r.limit,
          [`base${i}`]: r.baseLockSeconds,
          [`window${i}`]: r.windowSeconds,
          [`windowStart${i}`]: new Date(now.getTime() - r.windowSeconds * 1000),
        });
        const expired = `throttle_counters.window_started_at <= :windowStart${i}`;
        const next = `case when ${expired} then 1 else throttle_counters.failures + 1 end`;
        const lockAfter = (count: string) =>
          `case when ${count} >= :limit${i} then cast(:now as timestamptz) + make_interval(secs => least(:base${i} * power(2, least(${count} - :limit${i}, ${MAX_DOUBLINGS})), :window${i})) else null end`;
        return `r${i} as (insert into throttle_counters (key, failures, window_started_at, locked_until)
                values (:key${i}, 1, :now, ${lockAfter('1')})
                on conflict (key) do update set
                  failures = ${next},
                  window_started_at = case when ${expired} then excluded.window_started_at else throttle_counters.window_started_at end,
                  locked_until = ${lockAfter(next)}
                where throttle_counters.locked_until is null or throttle_counters.locked_until <= :now
                returning failures)`;
      };
      const ctes = rules.map(upsert);
      const result = await db.raw(`with ${ctes.join(', ')} select ${rules.map((_, i) => `(select failures from r${i}) as c${i}`).join(', ')}`, bindings);
      const row = (result.rows as Array<Record<string, number | null>>)[0]!;
      return rules.map((_, i) => (row[`c${i}`] === null ? undefined : Number(row[`c${i}`])));
    },
    /**
     * After a successful attempt, in one statement: counters of consecutive failures start again (`resets`), and
     * counters of attempts give the attempt back with any lock it started (`releases`).
     */
    settle: (resets: string[], releases: Array<{ key: string; limit: number }>) =>
      db.raw(
        `with reset as (delete from throttle_counters where key = any(?::text[]))
         update throttle_counters t set failures = greatest(t.failures - 1, 0),
           locked_until = case when t.failures - 1 < r.lim then null else t.locked_until end
         from unnest(?::text[], ?::int[]) as r(key, lim) where t.key = r.key`,
        [resets, releases.map((r) => r.key), releases.map((r) => r.limit)],
      ),
    clear: (key: string) => counters().where({ key }).delete(),
  };
}
