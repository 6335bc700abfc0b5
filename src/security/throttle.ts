import type { AuditEvent } from '../db/audit.js';
import type { ReservationBeside, SettleBeside } from '../db/throttle.js';
import type { Queries } from '../db/index.js';
import type { Clock } from './clock.js';

export interface ThrottleRule {
  key: string;
  /** Attempts within the window; the one that reaches it locks the key. */
  limit: number;
  windowSeconds: number;
  /** The first lock's length; each attempt past the limit doubles it, capped at the window. */
  baseLockSeconds: number;
  /**
   * What a successful attempt does to this key: `reset` for counters of consecutive failures (an account's wrong
   * passwords), `release` for counters of attempts from a source (an IP), where a success just does not count.
   */
  onSuccess: 'reset' | 'release';
}

export type ThrottleReservation =
  /**
   * `record`: the audit entry telling of the success, written with it in one statement, with `beside` (a guard it all
   * waits on, writes after it): `applied` says whether the guard held, `after` how many rows each write changed.
   */
  | { allowed: true; succeeded(record?: AuditEvent, beside?: SettleBeside): Promise<{ applied: boolean; after: number[] }> }
  | { allowed: false; retryAfterSeconds: number };

/**
 * Limits on guesses, shared by every instance through PostgreSQL. An attempt is reserved before its secret is
 * verified, never counted after: check-then-count lets a burst of concurrent guesses all be evaluated, reserving
 * first lets at most the limit through. An attempt that fails needs no second write: its reservation is the failure.
 */
export function createThrottle(queries: Queries, clock: Clock) {
  const retryAfter = async (key: string, now: Date) => {
    const row = await queries.throttle.find(key);
    const until = row?.locked_until?.getTime() ?? now.getTime() + 1000;
    return Math.max(1, Math.ceil((until - now.getTime()) / 1000));
  };
  const settle = (rules: ThrottleRule[], record?: AuditEvent, beside?: SettleBeside) =>
    queries.throttle.settle(
      rules.filter((r) => r.onSuccess === 'reset').map((r) => r.key),
      rules.filter((r) => r.onSuccess === 'release').map(({ key, limit }) => ({ key, limit })),
      record,
      beside,
    );

  const outcomeOf = async (rules: ThrottleRule[], counts: Array<number | undefined>, now: Date): Promise<ThrottleReservation> => {
    const refused = counts.findIndex((count) => count === undefined);
    if (refused >= 0) {
      const taken = rules.filter((_, i) => counts[i] !== undefined);
      if (taken.length) await queries.throttle.settle([], taken.map(({ key, limit }) => ({ key, limit })));
      return { allowed: false, retryAfterSeconds: await retryAfter(rules[refused]!.key, now) };
    }
    return { allowed: true, succeeded: (record?: AuditEvent, beside?: SettleBeside) => settle(rules, record, beside) };
  };

  return {
    /** Takes one attempt on every rule, or on none (attempts taken on the others are given back on refusal). */
    async reserve(rules: ThrottleRule[]): Promise<ThrottleReservation> {
      const now = clock.now();
      return outcomeOf(rules, await queries.throttle.reserve(rules, now), now);
    },
    /**
     * `reserve`, with more in its statement (see ReservationBeside): `row` has the columns read beside it, and
     * `reservation` is undefined where the gate gave no row (then no counter was touched).
     */
    async reserveBeside(rules: ThrottleRule[], beside: ReservationBeside): Promise<{ reservation?: ThrottleReservation; row: Record<string, unknown> }> {
      const now = clock.now();
      const { counts, row } = await queries.throttle.reserveBeside(rules, now, beside);
      return { reservation: counts && (await outcomeOf(rules, counts, now)), row };
    },
    /** When the last of these keys' locks ends, or undefined when none is locked now (reserves nothing). */
    async lockedUntil(keys: string[]): Promise<Date | undefined> {
      const now = clock.now().getTime();
      const ends = (await Promise.all(keys.map((key) => queries.throttle.find(key)))).map((row) => row?.locked_until?.getTime() ?? 0);
      const last = Math.max(0, ...ends);
      return last > now ? new Date(last) : undefined;
    },
    /** Lifts every limit on a key (an admin's reset). */
    clear: (key: string) => queries.throttle.clear(key),
  };
}

export type Throttle = ReturnType<typeof createThrottle>;
