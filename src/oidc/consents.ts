import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Queries } from '../db/index.js';
import { orUnavailable } from '../koa-errors.js';

type Grant = InstanceType<Provider['Grant']>;

const words = (scope: string) => scope.split(' ').filter(Boolean);

/**
 * Consent is the user's for an app, not one browser's: a sign-in with no grant of its own gets one holding what the
 * user allowed this app before, so the consent prompt asks only for what is new (or everything on
 * `prompt=consent`). Undefined when the user never consented to this app (or revoked it).
 */
export async function grantFromConsent(ctx: KoaContextWithOIDC, queries: Queries): Promise<Grant | undefined> {
  const accountId = ctx.oidc.session!.accountId!;
  const clientId = ctx.oidc.client!.clientId;
  const consent = await orUnavailable(queries.consents.find(accountId, clientId));
  if (!consent) return undefined;
  const grant = new ctx.oidc.provider.Grant({ accountId, clientId });
  if (consent.scopes.length) grant.addOIDCScope(consent.scopes);
  if (consent.claims.length) grant.addOIDCClaims(consent.claims);
  for (const [indicator, scopes] of Object.entries(consent.resource_scopes)) grant.addResourceScope(indicator, scopes);
  await grant.save();
  return grant;
}

/** Records what a grant holds as the user's consent to its app, added to what they allowed before. */
export async function rememberConsent(queries: Queries, grant: Grant): Promise<void> {
  await queries.consents.remember(grant.accountId!, grant.clientId!, {
    scopes: words(grant.getOIDCScope()),
    claims: grant.getOIDCClaims(),
    resource_scopes: Object.fromEntries(Object.keys(grant.resources ?? {}).map((indicator) => [indicator, words(grant.getResourceScope(indicator))])),
  });
}
