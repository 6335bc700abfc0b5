import type { Middleware } from 'koa';
import type { Queries } from '../../db/index.js';
import { AppError } from '../../errors.js';
import type { ProviderHolder } from '../../oidc/provider-holder.js';

/**
 * The admin API accepts access tokens only from clients registered for it (`latchkey_admin_api`), and acts with
 * the roles of the user the token was issued to. A token an admin handed to any other app does not reach it.
 */
export function adminBearer(providers: ProviderHolder, queries: Queries): Middleware {
  return async (ctx, next) => {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]{10,1024})$/.exec(ctx.get('authorization'));
    if (!match) {
      ctx.set('www-authenticate', 'Bearer');
      throw new AppError(401, 'invalid_token', 'a bearer access token is required');
    }
    const provider = providers.provider;
    const token = await provider.AccessToken.find(match[1]!);
    const client = token && !token.isExpired ? await provider.Client.find(token.clientId!) : undefined;
    if (!token || !client) {
      ctx.set('www-authenticate', 'Bearer error="invalid_token"');
      throw new AppError(401, 'invalid_token', 'the access token is invalid or expired');
    }
    const user = token.accountId ? await queries.users.findById(token.accountId) : undefined;
    if (client.metadata().latchkey_admin_api !== true || !user || user.status !== 'active') {
      throw new AppError(403, 'forbidden', 'this token may not use the admin API');
    }
    ctx.state.user = user;
    await next();
  };
}
