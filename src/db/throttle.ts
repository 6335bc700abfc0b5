import type { Database } from './connect.js';

export interface ThrottleRow {
  key: string;
  failures: number;
  window_started_at: Date;
  locked_until: Date | null;
}

export function createThrottleQueries(db: Database) {
  const counters = () => db<ThrottleRow>('throttle_counters');
  return {
    findMany: (keys: string[]) => counters().whereIn('key', keys),
    /**
     * Counts one failure atomically (concurrent failures on several instances all count) and starts a new
     * window when the old one has passed; returns the counter as it now stands.
     */
    recordFailure: async (key: string, now: Date, windowStartedAfter: Date): Promise<ThrottleRow> => {
      const result = await db.raw(
        `insert into throttle_counters (key, failures, window_started_at) values (?, 1, ?)
         on conflict (key) do update set
           failures = case when throttle_counters.window_started_at <= ? then 1 else throttle_counters.failures + 1 end,
           window_started_at = case when throttle_counters.window_started_at <= ? then excluded.window_started_at
                                    else throttle_counters.window_started_at end
         returning key, failures, window_started_at, locked_until`,
        [key, now, windowStartedAfter, windowStartedAfter],
      );
      return (result.rows as ThrottleRow[])[0]!;
    },
    lock: (key: string, until: Date) => counters().where({ key }).update({ locked_until: until }),
    clear: (key: string) => counters().where({ key }).delete(),
  };
}
