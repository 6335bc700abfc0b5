import type { Database } from './connect.js';

export interface BypassCodeRow {
  user_id: string;
  /** Keyed hash of the code and its user: the stored value neither reveals the code nor works for anyone else. */
  code_hash: string;
  issued_by: string | null;
  reason: string;
  expires_at: Date;
  created_at: Date;
}

export function createBypassCodeQueries(db: Database) {
  const rows = () => db<BypassCodeRow>('bypass_codes');
  return {
    /** A new code replaces the user's previous one, used or not. */
    replace: (row: Pick<BypassCodeRow, 'user_id' | 'code_hash' | 'issued_by' | 'reason' | 'expires_at'>) =>
      rows().insert(row).onConflict('user_id').merge(['code_hash', 'issued_by', 'reason', 'expires_at', 'created_at']),
    findLive: (userId: string, now: Date) => rows().where({ user_id: userId }).where('expires_at', '>', now).first(),
    /** Takes the code if it is still this one and still live: of concurrent uses exactly one gets it. */
    consume: async (userId: string, codeHash: string, now: Date) =>
      (await rows().where({ user_id: userId, code_hash: codeHash }).where('expires_at', '>', now).delete()) === 1,
    purgeExpired: (now: Date) => rows().where('expires_at', '<=', now).delete(),
  };
}
