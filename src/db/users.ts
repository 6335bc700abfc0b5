import { canonicalEmail } from '../security/email.js';
import type { Database } from './connect.js';

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
