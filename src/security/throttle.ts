import type { Queries } from '../db/index.js';
import type { Clock } from './clock.js';

export interface ThrottleRule {
  key: string;
  /** Failures within the window that trigger a lock. */
  limit: number;
  windowSeconds: number;
  /** Locks grow by doubling from this many seconds for each failure past the limit, capped at the window. */
  baseLockSeconds: number;
}

export interface ThrottleVerdict {
  allowed: boolean;
  retryAfterSeconds: number;
  /** Some of the keys have failures on record (so a success has something to clear). */
  hadFailures: boolean;
}

/**
 * Failure counters live in PostgreSQL so that every instance sees the same count: an attacker gains nothing by
 * spreading guesses across instances.
 */
export function createThrottle(queries: Queries, clock: Clock) {
  return {
    async check(keys: string[]): Promise<ThrottleVerdict> {
      const now = clock.now().getTime();
      const rows = await queries.throttle.findMany(keys);
      const until = Math.max(0, ...rows.map((r) => r.locked_until?.getTime() ?? 0));
      const hadFailures = rows.length > 0;
      return until > now
        ? { allowed: false, retryAfterSeconds: Math.ceil((until - now) / 1000), hadFailures }
        : { allowed: true, retryAfterSeconds: 0, hadFailures };
    },
    async recordFailure(rule: ThrottleRule): Promise<number> {
      const now = clock.now();
      const row = await queries.throttle.recordFailure(
        rule.key,
        now,
        new Date(now.getTime() - rule.windowSeconds * 1000),
      );
      if (row.failures >= rule.limit) {
        const lockSeconds = Math.min(rule.baseLockSeconds * 2 ** (row.failures - rule.limit), rule.windowSeconds);
        await queries.throttle.lock(rule.key, new Date(now.getTime() + lockSeconds * 1000));
      }
      return row.failures;
    },
    clear: (key: string) => queries.throttle.clear(key),
  };
}

export type Throttle = ReturnType<typeof createThrottle>;
