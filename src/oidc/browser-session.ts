import type { Context } from 'koa';
import type { ProviderHolder } from './provider-holder.js';

/** The provider session this browser's cookie names: its id, its stable uid, and its user once signed in. */
export async function browserSession(providers: ProviderHolder, ctx: Context) {
  const session = await providers.provider.Session.get(ctx);
  return { id: session.jti, uid: session.uid, accountId: session.accountId };
}

/** Drops this browser's session cookie; the session itself is ended in the database by whoever calls this. */
export function forgetBrowserSession(providers: ProviderHolder, ctx: Context) {
  ctx.cookies.set(providers.provider.cookieName('session'), null, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure });
}
