import type { Database } from './connect.js';

export interface EnrolmentGraceRow {
  user_id: string;
  /** The first time the user chose "later": the days of grace count from here. */
  started_at: Date;
  /** Sign-ins the user finished by choosing "later". */
  sign_ins: number;
}

/** Grace limits: 0 leaves that limit out (both 0: no grace at all, which callers check first). */
export interface GraceLimits {
  days: number;
  sign_ins: number;
}

export function createEnrolmentGraceQueries(db: Database) {
  return {
    find: (userId: string) => db<EnrolmentGraceRow>('enrolment_grace').where({ user_id: userId }).first(),
    /**
     * Spends one postponed sign-in if the grace still lasts, in one statement: of concurrent "later"s in several
     * sign-ins, no more than the limit are granted. Undefined when it has run out.
     */
    use: async (userId: string, limits: GraceLimits, now: Date): Promise<EnrolmentGraceRow | undefined> => {
      const since = new Date(now.getTime() - limits.days * 86_400_000);
      const result = await db.raw<{ rows: EnrolmentGraceRow[] }>(
        `insert into enrolment_grace (user_id, started_at, sign_ins) values (?, ?, 1)
         on conflict (user_id) do update set sign_ins = enrolment_grace.sign_ins + 1
         where (?::int = 0 or enrolment_grace.sign_ins < ?::int) and (?::int = 0 or enrolment_grace.started_at > ?)
         returning user_id, started_at, sign_ins`,
        [userId, now, limits.sign_ins, limits.sign_ins, limits.days, since],
      );
      return result.rows[0];
    },
  };
}
