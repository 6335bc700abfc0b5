import type { Database } from './connect.js';

export interface UserRow {
  id: string;
  email: string;
  name: string;
  password_hash: string | null;
  status: 'active' | 'disabled';
  roles: string[];
  locale: string | null;
  email_verified: boolean;
  preferred_factor_id: string | null;
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
}

export function createUserQueries(db: Database) {
  const users = () => db<UserRow>('users');
  return {
    findById: (id: string) => users().where({ id }).first(),
    findByEmail: (email: string) => users().whereRaw('lower(email) = lower(?)', [email]).first(),
    count: async () => Number((await users().count({ n: '*' }).first())?.n ?? 0),
    insert: async (user: NewUser): Promise<UserRow> => {
      const [row] = await users()
        .insert({
          email: user.email,
          name: user.name,
          password_hash: user.passwordHash,
          roles: JSON.stringify(user.roles ?? []) as unknown as string[],
          locale: user.locale ?? null,
          email_verified: user.emailVerified ?? false,
        })
        .returning('*');
      return row as UserRow;
    },
    setPreferredFactor: (id: string, factorId: string | null) => users().where({ id }).update({ preferred_factor_id: factorId }),
    setPasswordHash: (id: string, passwordHash: string) =>
      users().where({ id }).update({ password_hash: passwordHash, updated_at: db.fn.now() as unknown as Date }),
  };
}
