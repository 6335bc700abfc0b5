import type { Database } from './connect.js';

export interface PasswordResetRow {
  id: string;
  user_id: string;
  code_hash: string;
  attempts: number;
  requested_by: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

/**
 * Password-reset codes. Every code mailed to a user stays good until its own expiry (concurrent requests reach the
 * inbox in any order); a guess takes one try from every live code at once, so more codes never mean more guesses.
 */
export function createPasswordResetQueries(db: Database) {
  const rows = () => db<PasswordResetRow>('password_resets');
  const live = (userId: string, now: Date) => rows().where({ user_id: userId }).whereNull('used_at').where('expires_at', '>', now);
  return {
    insert: (row: Omit<PasswordResetRow, 'attempts' | 'used_at'>) => rows().insert(row),
    /**
     * Takes one try from each of the user's live codes with tries left, in one statement, before any is compared:
     * of 40 concurrent guesses at most `limit` are ever checked. Returns the codes this guess may be checked against.
     */
    reserveTry: async (userId: string, now: Date, limit: number) =>
      (await live(userId, now).where('attempts', '<', limit).increment('attempts', 1).returning(['id', 'code_hash'])) as Array<Pick<PasswordResetRow, 'id' | 'code_hash'>>,
    /** Spends the matching code and voids every other live one of the user: true only for the request that did it. */
    use: (userId: string, id: string, now: Date) =>
      db.transaction(async (trx) => {
        const used = await trx<PasswordResetRow>('password_resets').where({ id, user_id: userId }).whereNull('used_at').where('expires_at', '>', now).update({ used_at: now });
        if (used !== 1) return false;
        await trx<PasswordResetRow>('password_resets').where({ user_id: userId }).whereNull('used_at').update({ used_at: now });
        return true;
      }),
    /** Voids the user's live codes (their password was set another way). */
    voidAll: (userId: string, now: Date) => rows().where({ user_id: userId }).whereNull('used_at').update({ used_at: now }),
    purgeExpired: (now: Date) => rows().where('expires_at', '<=', now).delete(),
  };
}
