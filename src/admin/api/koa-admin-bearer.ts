import type { Middleware } from 'koa';
import { stepUpFor } from '../../console/step-up.js';
import type { Queries } from '../../db/index.js';
import { AppError } from '../../errors.js';
import type { MfaService } from '../../mfa/service.js';
import type { ProviderHolder } from '../../oidc/provider-holder.js';

const STEP_UP_DESCRIPTION = 'a sign-in with a second factor is required';

/**
 * The admin API accepts access tokens only from clients registered for it (`latchkey_admin_api`), and acts with
 * the roles of the user the token was issued to. A token an admin handed to any other app does not reach it.
 * A token is held to the MFA policy in force now, not the one at its sign-in: a token from a password-only sign-in
 * is refused once admin rights need a second factor (step-up.ts), with RFC 9470's challenge so the client knows to
 * send the user through a sign-in with `acr_values` mfa.
 */
export function adminBearer(providers: ProviderHolder, queries: Queries, mfa: Pick<MfaService, 'decide'>): Middleware {
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
    // Set at issuance from the sign-in (provider.ts extraTokenClaims); a token without it counts as password-only.
    const amr = Array.isArray(token.extra?.amr) ? (token.extra.amr as string[]) : undefined;
    const stepUp = await stepUpFor(mfa, user, amr, 'admin', { requireMfa: client.metadata().require_mfa === true, requirePhishingResistant: client.metadata().require_phishing_resistant === true });
    if (stepUp) {
      await queries.audit.insert({ action: 'mfa.step_up_required', outcome: 'denied', actorId: user.id, subjectId: user.id, ip: ctx.ip, userAgent: ctx.get('user-agent'), clientId: client.clientId, details: { area: 'admin_api', amr: amr ?? [] } });
      ctx.set('www-authenticate', `Bearer error="insufficient_user_authentication", error_description="${STEP_UP_DESCRIPTION}", acr_values="${stepUp}"`);
      throw new AppError(401, 'insufficient_user_authentication', STEP_UP_DESCRIPTION, undefined, `${STEP_UP_DESCRIPTION}: sign in again with acr_values=${stepUp}`);
    }
    ctx.state.user = user;
    await next();
  };
}
