import { canonicalEmail } from '../security/email.js';
import { webPinSinceSql } from './access.js';
import type { Database } from './connect.js';
import { confirmedFactorsJson, factorRowsOf, type UserFactors } from './factors.js';
import type { ReservationBeside } from './throttle.js';

export interface UserRow {
  id: string;
  email: string;
  name: string;
  password_hash: string | null;
  status: 'active' | 'disabled';
  roles: string[];
  locale: string | null;
  time_zone: string | null;
  email_verified: boolean;
  preferred_factor_id: string | null;
  /** The password was chosen by someone else (generated, or reset by an operator): the user must choose their own. */
  must_change_password: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface NewUser {
  email: string;
  name: string;
  passwordHash: string | null;
  roles?: string[];
  locale?: string | null;
  emailVerified?: boolean;
  mustChangePassword?: boolean;
}

const FACTORS = 'factors__';
const WEB_PIN_SINCE = 'web_pin_since__';

/**
 * The user a password is typed for, read in the statement that reserves the attempt (`ThrottleQueries.reserveBeside`),
 * with what the sign-in's policy needs of them next: their confirmed factors, and (given the door side's minimum
 * length) their usable web PIN. One row always; the user's columns are null where no account has that email.
 */
export const signInReadBeside = (email: string, webPinMinLength?: number): ReservationBeside => ({
  columns: `u.*, ${confirmedFactorsJson('u.id')} as ${FACTORS}${webPinMinLength === undefined ? '' : `, ${webPinSinceSql('u.id', ':webPinMinLength')} as ${WEB_PIN_SINCE}`}`,
  from: 'from (select 1) as one left join users u on u.email = :email',
  bindings: { email: canonicalEmail(email), ...(webPinMinLength === undefined ? {} : { webPinMinLength }) },
});

/** What `signInReadBeside` read, from the reservation's row (whose counters' columns are not the user's). */
export function signInReadOf(row: Record<string, unknown>): { user: UserRow; factors: UserFactors } | undefined {
  if (row.id === null || row.id === undefined) return undefined;
  const user = Object.fromEntries(Object.entries(row).filter(([key]) => !/^c\d+$/.test(key) && key !== FACTORS && key !== WEB_PIN_SINCE)) as unknown as UserRow;
  return { user, factors: { confirmed: factorRowsOf(row[FACTORS]), webPinSince: row[WEB_PIN_SINCE] as Date | null | undefined } };
}

export function createUserQueries(db: Database) {
  const users = () => db<UserRow>('users');
  return {
    findById: (id: string) => users().where({ id }).first(),
    /** Ids and emails of many users at once (a page of audit events names its people). */
    emailsOf: (ids: readonly string[]) => users().whereIn('id', ids).select('id', 'email') as Promise<Array<{ id: string; email: string }>>,
    findByEmail: (email: string) => users().where({ email: canonicalEmail(email) }).first(),
    count: async () => Number((await users().count({ n: '*' }).first())?.n ?? 0),
    insert: async (user: NewUser): Promise<UserRow> => {
      const [row] = await users()
        .insert({
          email: canonicalEmail(user.email),
          name: user.name,
          password_hash: user.passwordHash,
          roles: JSON.stringify(user.roles ?? []) as unknown as string[],
          locale: user.locale ?? null,
          email_verified: user.emailVerified ?? false,
          must_change_password: user.mustChangePassword ?? false,
        })
        .returning('*');
      return row as UserRow;
    },
    /**
     * One page of users in (email, id) order after the cursor: stable however many are added meanwhile.
     * `search` matches a part of the email or the name.
     */
    page: (filter: { search?: string; after?: { email: string; id: string }; limit: number }) => {
      const q = users().orderBy([{ column: 'email' }, { column: 'id' }]).limit(filter.limit);
      if (filter.search) {
        const like = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        q.where((w) => w.where('email', 'like', like(canonicalEmail(filter.search!))).orWhereRaw('lower(name) like ?', [like(filter.search!.toLowerCase())]));
      }
      if (filter.after) q.whereRaw('(email, id) > (?, ?)', [filter.after.email, filter.after.id]);
      return q;
    },
    update: async (id: string, change: Partial<Pick<UserRow, 'name' | 'status' | 'locale' | 'time_zone' | 'roles'>>) => {
      const { roles, ...rest } = change;
      const [row] = await users()
        .where({ id })
        .update({ ...rest, ...(roles ? { roles: JSON.stringify(roles) as unknown as string[] } : {}), updated_at: db.fn.now() as unknown as Date })
        .returning('*');
      return row as UserRow | undefined;
    },
    countActiveWithRole: async (role: string) =>
      Number((await users().where({ status: 'active' }).whereRaw('roles @> ?::jsonb', [JSON.stringify([role])]).count({ n: '*' }).first())?.n ?? 0),
    setPreferredFactor: (id: string, factorId: string | null) => users().where({ id }).update({ preferred_factor_id: factorId }),
    markEmailVerified: (id: string) => users().where({ id }).update({ email_verified: true }),
    /** An address someone else typed (an admin): not verified until its owner proves it. */
    setEmail: (id: string, email: string) =>
      users().where({ id }).update({ email: canonicalEmail(email), email_verified: false, updated_at: db.fn.now() as unknown as Date }),
    /**
     * `mustChange` given: whether the new password is one the user chose (false) or was handed (true). Left out, the
     * flag stays as it was (a rehash of the same password at sign-in).
     */
    setPasswordHash: (id: string, passwordHash: string, options: { mustChange?: boolean } = {}) =>
      users()
        .where({ id })
        .update({
          password_hash: passwordHash,
          ...(options.mustChange === undefined ? {} : { must_change_password: options.mustChange }),
          updated_at: db.fn.now() as unknown as Date,
        }),
  };
}
