import type { Account, FindAccount } from 'oidc-provider';
import type { Queries } from '../db/index.js';
import type { UserRow } from '../db/users.js';
import { orUnavailable } from '../koa-errors.js';
import { accountReadInRequest } from './adapter.js';

/**
 * Claims a relying party may read, by scope; `sub` is the user's stable id, never the email. `acr` and `amr`
 * describe the sign-in itself, so they come with `openid` and reach every ID token.
 */
export const claimsByScope = {
  openid: ['sub', 'acr', 'amr'],
  email: ['email', 'email_verified'],
  profile: ['name', 'locale', 'updated_at'],
};

/**
 * A user by their `sub`, as this request already read them with oidc-provider's rows, else from the database. A
 * `sub` that is not a UUID names no one; any other failure (the database down) is the request's to report.
 */
export async function accountById(queries: Queries, sub: string): Promise<UserRow | undefined> {
  const known = accountReadInRequest(sub);
  if (known.known) return known.user;
  return orUnavailable(queries.users.findById(sub)).catch((error: { code?: string }) => {
    if (error.code === '22P02') return undefined;
    throw error;
  });
}

export function createFindAccount(queries: Queries): FindAccount {
  return async (_ctx, sub) => {
    const user = await accountById(queries, sub);
    // A disabled account's tokens stop working at the next userinfo or introspection call.
    if (!user || user.status !== 'active') return undefined;
    const account: Account = {
      accountId: user.id,
      claims: async () => ({
        sub: user.id,
        email: user.email,
        email_verified: user.email_verified,
        name: user.name,
        locale: user.locale ?? undefined,
        updated_at: Math.floor(user.updated_at.getTime() / 1000),
      }),
    };
    return account;
  };
}
