import type { Database } from './connect.js';
import type { StatementPart } from './throttle.js';

export interface FactorRow {
  id: string;
  user_id: string;
  factor: string;
  label: string;
  secret_sealed: string | null;
  destination: string | null;
  last_used_step: number | null;
  created_at: Date;
  confirmed_at: Date | null;
  last_used_at: Date | null;
  pending_expires_at: Date | null;
}

/**
 * What a sign-in read of the user's factors in the statement it already sent, passed along so that the same request
 * does not read them again: the confirmed factors, and when their web door PIN was opted in (null: none usable;
 * undefined: not read).
 */
export interface UserFactors {
  confirmed: FactorRow[];
  webPinSince?: Date | null;
}

/** The confirmed factors of `userId` (an SQL expression) as one JSON array, in `listConfirmed`'s order. */
export const confirmedFactorsJson = (userId: string) =>
  `(select coalesce(json_agg(f order by f.created_at), cast('[]' as json)) from user_factors f where f.user_id = ${userId} and f.confirmed_at is not null)`;

const asDate = (value: unknown) => (value === null || value === undefined ? null : new Date(value as string));
/** Rows as `confirmedFactorsJson` gave them: its timestamps came as text. */
export const factorRowsOf = (json: unknown): FactorRow[] =>
  ((typeof json === 'string' ? JSON.parse(json) : json) as FactorRow[]).map((row) => ({
    ...row,
    last_used_step: row.last_used_step === null ? null : Number(row.last_used_step),
    created_at: asDate(row.created_at)!,
    confirmed_at: asDate(row.confirmed_at),
    last_used_at: asDate(row.last_used_at),
    pending_expires_at: asDate(row.pending_expires_at),
  }));

export type NewFactor = Pick<FactorRow, 'id' | 'user_id' | 'factor' | 'label' | 'secret_sealed' | 'destination' | 'pending_expires_at'>;

export function createFactorQueries(db: Database) {
  const factors = () => db<FactorRow>('user_factors');
  const advanceStepOf = (id: string, step: number, now: Date) =>
    factors()
      .where({ id })
      .andWhere((w) => w.whereNull('last_used_step').orWhere('last_used_step', '<', step))
      .update({ last_used_step: step, last_used_at: now });
  return {
    listConfirmed: (userId: string) => factors().where({ user_id: userId }).whereNotNull('confirmed_at').orderBy('created_at'),
    countConfirmed: async (userId: string) =>
      Number((await factors().where({ user_id: userId }).whereNotNull('confirmed_at').count({ n: '*' }).first())?.n ?? 0),
    findConfirmed: (userId: string, id: string) => factors().where({ user_id: userId, id }).whereNotNull('confirmed_at').first(),
    findPending: (userId: string, id: string, now: Date) =>
      factors().where({ user_id: userId, id }).whereNull('confirmed_at').where('pending_expires_at', '>', now).first(),
    insertPending: async (row: NewFactor) => (await factors().insert(row).returning('*'))[0] as FactorRow,
    /** Confirms a pending enrolment once: a second confirm of the same row changes nothing. */
    confirm: async (id: string, now: Date, lastUsedStep: number | null) =>
      (await factors()
        .where({ id })
        .whereNull('confirmed_at')
        .update({ confirmed_at: now, pending_expires_at: null, last_used_step: lastUsedStep, last_used_at: now })) === 1,
    /**
     * Records a TOTP time step as used, only if it is later than the last one: of two requests racing with the same
     * code, exactly one moves the step forward.
     */
    advanceStep: async (id: string, step: number, now: Date) => (await advanceStepOf(id, step, now)) === 1,
    /** `advanceStep` as part of another statement: it returns a row only where it moved the step. */
    advanceStepPart: (id: string, step: number, now: Date): StatementPart => advanceStepOf(id, step, now).returning('id').toSQL(),
    rename: async (userId: string, id: string, label: string) =>
      (await factors().where({ user_id: userId, id }).whereNotNull('confirmed_at').update({ label })) === 1,
    remove: (userId: string, id: string) => factors().where({ user_id: userId, id }).delete(),
    removeAll: (userId: string) => factors().where({ user_id: userId }).delete(),
    purgePending: (now: Date) => factors().whereNull('confirmed_at').where('pending_expires_at', '<=', now).delete(),
  };
}

export interface RecoveryCodeRow {
  id: number;
  user_id: string;
  code_hash: string;
  created_at: Date;
  used_at: Date | null;
}

export function createRecoveryCodeQueries(db: Database) {
  const codes = () => db<RecoveryCodeRow>('recovery_codes');
  return {
    /** Replaces the whole set in one transaction: the old codes stop working as the new ones start. */
    replace: (userId: string, hashes: string[]) =>
      db.transaction(async (trx) => {
        await trx('recovery_codes').where({ user_id: userId }).delete();
        await trx('recovery_codes').insert(hashes.map((code_hash) => ({ user_id: userId, code_hash })));
      }),
    countUnused: async (userId: string) =>
      Number((await codes().where({ user_id: userId }).whereNull('used_at').count({ n: '*' }).first())?.n ?? 0),
    /** Spends a code once: true only for the request that marked it used. */
    use: async (userId: string, hash: string, now: Date) =>
      (await codes().where({ user_id: userId, code_hash: hash }).whereNull('used_at').update({ used_at: now })) === 1,
    removeAll: (userId: string) => codes().where({ user_id: userId }).delete(),
  };
}
