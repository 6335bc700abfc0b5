import type { StoredStep } from '../interactions/sign-in-flow.js';
import type { Database } from './connect.js';
import { confirmedFactorsJson, factorRowsOf, type UserFactors } from './factors.js';
import type { StoredModel } from './oidc-models.js';
import { prepared } from './prepared.js';
import type { JoiningWrite, ReservationBeside } from './throttle.js';
import type { UserRow } from './users.js';

/** One sign-in past its password, bound to oidc-provider's interaction and to one user for its whole life. */
export interface SignInRow {
  interaction_uid: string;
  user_id: string;
  step: StoredStep;
  /** Null when an existing session steps up (its password was verified in an earlier sign-in). */
  password_verified_at: Date | null;
  mfa_failures: number;
  pending_factor_id: string | null;
  verified_amr: string[] | null;
  email_code_hash: string | null;
  email_code_expires_at: Date | null;
  pin_accepted: boolean;
  /** Decided with the first factor: only a phishing-resistant factor (a passkey) answers the second step. */
  phishing_resistant: boolean;
  expires_at: Date;
}

export type NewSignIn = Pick<SignInRow, 'interaction_uid' | 'user_id' | 'step' | 'password_verified_at' | 'pin_accepted' | 'phishing_resistant' | 'expires_at'>;

export type SignInPatch = Partial<Pick<SignInRow, 'pending_factor_id' | 'verified_amr' | 'email_code_hash' | 'email_code_expires_at'>>;

/** Every column of a sign-in, so that it can be read beside its user's row under names of its own. */
const SIGN_IN_COLUMNS = Object.keys({
  interaction_uid: true,
  user_id: true,
  step: true,
  password_verified_at: true,
  mfa_failures: true,
  pending_factor_id: true,
  verified_amr: true,
  email_code_hash: true,
  email_code_expires_at: true,
  pin_accepted: true,
  phishing_resistant: true,
  expires_at: true,
} satisfies Record<keyof SignInRow, true>) as Array<keyof SignInRow>;
const PREFIX = 'sign_in__';

/** A sign-in read beside its user's columns: the two rows apart (undefined user: the account is gone). */
function splitSignIn(found: Record<string, unknown>): { row: SignInRow; user: UserRow | undefined } {
  const row: Record<string, unknown> = {};
  const user: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(found)) {
    if (key.startsWith(PREFIX)) row[key.slice(PREFIX.length)] = value;
    else user[key] = value;
  }
  return { row: row as unknown as SignInRow, user: user.id === null ? undefined : (user as unknown as UserRow) };
}

const FIND_WITH_INTERACTION = `
  select u.*, m.payload as interaction__payload, m.consumed_at as interaction__consumed_at,
    ${SIGN_IN_COLUMNS.map((column) => `lp.${column} as ${PREFIX}${column}`).join(', ')}
  from oidc_model_instances m
  left join login_progress lp on lp.interaction_uid = m.id and lp.expires_at > :now
  left join users u on u.id = lp.user_id
  where m.model = 'Interaction' and m.id = :uid and (m.expires_at is null or m.expires_at > :now)
  limit 1`;

const jsonb = (patch: SignInPatch) =>
  patch.verified_amr ? { ...patch, verified_amr: JSON.stringify(patch.verified_amr) as unknown as string[] } : patch;

/**
 * Every write is conditional on the row's user and step, so a transition taken from a stale read (a replayed form,
 * a request racing another) changes nothing and reports false.
 */
export function createSignInQueries(db: Database) {
  const rows = () => db<SignInRow>('login_progress');
  const claimOf = (row: NewSignIn) => rows().insert({ ...row, mfa_failures: 0 }).onConflict('interaction_uid').ignore().returning('interaction_uid');
  const advanceOf = (uid: string, userId: string, from: StoredStep, to: StoredStep, patch: SignInPatch) =>
    rows().where({ interaction_uid: uid, user_id: userId, step: from }).update({ ...jsonb(patch), step: to });
  return {
    find: (uid: string, now: Date) => rows().where({ interaction_uid: uid }).where('expires_at', '>', now).first(),
    /** The sign-in with its user's row, read in one statement (undefined user: the account is gone). */
    findWithUser: async (uid: string, now: Date): Promise<{ row: SignInRow; user: UserRow | undefined } | undefined> => {
      const found = (await db('login_progress as lp')
        .leftJoin('users as u', 'u.id', 'lp.user_id')
        .where('lp.interaction_uid', uid)
        .where('lp.expires_at', '>', now)
        .first(['u.*', ...SIGN_IN_COLUMNS.map((column) => `lp.${column} as ${PREFIX}${column}`)])) as Record<string, unknown> | undefined;
      return found && splitSignIn(found);
    },
    /**
     * oidc-provider's interaction with this sign-in and its user, in one statement: the sign-in pages read all three
     * on every request. `interaction` is undefined when it is gone or expired, `signIn` before a password bound it.
     */
    findWithInteraction: async (uid: string, now: Date): Promise<{ interaction?: StoredModel; signIn?: { row: SignInRow; user: UserRow | undefined } }> => {
      const found = ((await db.raw(FIND_WITH_INTERACTION, { uid, now }).options(prepared(FIND_WITH_INTERACTION))) as { rows: Array<Record<string, unknown>> }).rows[0];
      if (!found) return {};
      const { interaction__payload: payload, interaction__consumed_at: consumedAt, ...rest } = found;
      return {
        interaction: { payload: payload as Record<string, unknown>, consumedAt: (consumedAt as Date | null) ?? null },
        signIn: rest[`${PREFIX}interaction_uid`] ? splitSignIn(rest) : undefined,
      };
    },
    /** Binds the interaction to its user, once: false when it is already bound (to anyone). */
    claim: async (row: NewSignIn) => (await claimOf(row)).length === 1,
    /** `claim`, as a write joining another statement (it writes its row, or none where the sign-in is bound). */
    claimWrite: (row: NewSignIn): JoiningWrite => (guard) => {
      if (guard) throw new Error('a claim is not written under a condition');
      return claimOf(row).toSQL();
    },
    advance: async (uid: string, userId: string, from: StoredStep, to: StoredStep, patch: SignInPatch = {}) =>
      (await advanceOf(uid, userId, from, to, patch)) === 1,
    /** `advance`, as a write joining another statement: one row where the sign-in moved. */
    advanceWrite: (uid: string, userId: string, from: StoredStep, to: StoredStep): JoiningWrite => (guard) => {
      const query = rows().where({ interaction_uid: uid, user_id: userId, step: from });
      if (guard) query.whereRaw(guard);
      return query.update({ step: to }).returning('interaction_uid').toSQL();
    },
    /** Stores data for the current step without leaving it (the pending authenticator, a fresh emailed code). */
    update: async (uid: string, userId: string, step: StoredStep, patch: SignInPatch) =>
      (await rows().where({ interaction_uid: uid, user_id: userId, step }).update(jsonb(patch))) === 1,
    /**
     * Adds a freshly mailed inbox code (its keyed hash) in one statement. Every code mailed for this sign-in stays
     * good until the latest one's expiry: concurrent resends reach the inbox in any order, so "only the newest code
     * works" would leave the user holding a code the server no longer accepts. The quota keeps them to a handful.
     */
    addEmailCode: async (uid: string, userId: string, hash: string, expiresAt: Date) =>
      (await rows()
        .where({ interaction_uid: uid, user_id: userId, step: 'confirm_email' })
        .update({ email_code_hash: db.raw("concat_ws(' ', email_code_hash, ?::text)", [hash]) as unknown as string, email_code_expires_at: expiresAt })) === 1,
    /** Takes one of the sign-in's tries before a code is checked: undefined once they are used up. */
    reserveFailure: async (uid: string, userId: string, step: StoredStep, limit: number) => {
      const [row] = await rows()
        .where({ interaction_uid: uid, user_id: userId, step })
        .where('mfa_failures', '<', limit)
        .increment('mfa_failures', 1)
        .returning('mfa_failures');
      return row ? Number((row as { mfa_failures: number }).mfa_failures) : undefined;
    },
    /**
     * `reserveFailure` as the gate of a reservation on the account's counters (`ThrottleQueries.reserveBeside`): they
     * are counted only where the sign-in had a try left, all in one statement; the user's confirmed factors are read
     * beside them. `tryOf` reads the result.
     */
    tryBeside: (uid: string, userId: string, step: StoredStep, limit: number): ReservationBeside => ({
      gate: {
        name: 'try',
        sql: `update login_progress set mfa_failures = mfa_failures + 1
              where interaction_uid = :tryUid and user_id = :tryUser and step = :tryStep and mfa_failures < :tryLimit returning mfa_failures`,
      },
      columns: `(select mfa_failures from try) as failures__, ${confirmedFactorsJson('cast(:tryUser as uuid)')} as factors__`,
      bindings: { tryUid: uid, tryUser: userId, tryStep: step, tryLimit: limit },
    }),
    tryOf: (row: Record<string, unknown>): { failures: number; factors: UserFactors } | undefined =>
      row.failures__ === null || row.failures__ === undefined ? undefined : { failures: Number(row.failures__), factors: { confirmed: factorRowsOf(row.factors__) } },
    purgeExpired: (now: Date) => rows().where('expires_at', '<=', now).delete(),
    /** Ends every unfinished sign-in of the user (their password was just replaced): how many there were. */
    endAllOf: (userId: string) => rows().where({ user_id: userId }).whereNot({ step: 'finished' }).update({ step: 'finished' }),
  };
}
