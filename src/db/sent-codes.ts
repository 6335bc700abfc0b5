import type { Database } from './connect.js';

export interface SentCodeRow {
  id: string;
  user_id: string;
  factor_id: string;
  interaction_uid: string | null;
  code_hash: string;
  attempts: number;
  created_at: Date;
  expires_at: Date;
  consumed_at: Date | null;
}

export function createSentCodeQueries(db: Database) {
  const codes = () => db<SentCodeRow>('sent_codes');
  const scope = (factorId: string, interactionUid: string | null) => (q: ReturnType<typeof codes>) =>
    interactionUid === null ? q.where({ factor_id: factorId }).whereNull('interaction_uid') : q.where({ factor_id: factorId, interaction_uid: interactionUid });
  return {
    lastSentAt: async (factorId: string, interactionUid: string | null) =>
      (await scope(factorId, interactionUid)(codes()).max({ at: 'created_at' }).first())?.at as Date | null | undefined,
    /** A new code replaces any earlier one of the same sign-in (or enrolment): only the latest works. */
    issue: (row: Omit<SentCodeRow, 'attempts' | 'consumed_at'>) =>
      db.transaction(async (trx) => {
        await scope(row.factor_id, row.interaction_uid)(trx<SentCodeRow>('sent_codes')).whereNull('consumed_at').update({ consumed_at: row.created_at });
        await trx<SentCodeRow>('sent_codes').insert(row);
      }),
    latest: (factorId: string, interactionUid: string | null) =>
      scope(factorId, interactionUid)(codes()).whereNull('consumed_at').orderBy('created_at', 'desc').first(),
    /** Takes one of the code's tries in one statement: false once they are used up (or the code is spent). */
    reserveAttempt: async (id: string, maxAttempts: number) =>
      (await codes().where({ id }).whereNull('consumed_at').where('attempts', '<', maxAttempts).increment('attempts', 1)) === 1,
    /** Spends the code once: true only for the request that marked it. */
    consume: async (id: string, now: Date) => (await codes().where({ id }).whereNull('consumed_at').update({ consumed_at: now })) === 1,
    remove: (id: string) => codes().where({ id }).delete(),
    purgeExpired: (now: Date) => codes().where('expires_at', '<=', now).delete(),
  };
}
