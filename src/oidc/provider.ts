import Provider, { type Configuration, type KoaContextWithOIDC, errors } from 'oidc-provider';
import type { Config } from '../config/index.js';
import type { Queries } from '../db/index.js';
import { pickLocale } from '../i18n.js';
import type { PageRenderer } from '../render.js';
import type { Clock } from '../security/clock.js';
import { claimsByScope, createFindAccount } from './account.js';
import { createAdapterClass, requestOrigin, requestRowsScope } from './adapter.js';
import { grantFromConsent } from './consents.js';
import type { ClientStore } from './clients.js';
import { ACR } from '../mfa/policy.js';
import { CONSOLE_CLIENT_ID } from './console-client.js';
import { createInteractionPolicy, type StepUpCheck } from './interaction-policy.js';
import { type KeyMaterial, SIGNING_ALGORITHMS, type SigningAlgorithm } from './keys.js';
import type { ResourceStore } from '../resources/resources.js';

export interface ProviderDeps {
  config: Config;
  queries: Queries;
  clients: ClientStore;
  clock: Clock;
  renderer: PageRenderer;
  keys: KeyMaterial;
  resources: ResourceStore;
  needsSecondFactor: StepUpCheck;
  onServerError?: (ctx: KoaContextWithOIDC, error: Error) => void;
}

/** Lifetimes in seconds; the ID token's bounds how long a rotated-out signing key stays published. */
export const TOKEN_TTL = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  ClientCredentials: 600,
  IdToken: 3600,
  Interaction: 3600,
  Session: 14 * 24 * 3600,
  Grant: 14 * 24 * 3600,
  RefreshToken: 14 * 24 * 3600,
} as const;

/**
 * The endpoints machines call (oidc-provider's default routes): no page, form or console session is involved, so
 * they skip every middleware meant for those (app.ts). test/app.test.ts checks discovery names no other.
 */
export const MACHINE_ENDPOINTS: ReadonlySet<string> = new Set([
  '/token',
  '/token/introspection',
  '/token/revocation',
  '/jwks',
  '/me',
  '/.well-known/openid-configuration',
]);

function localeOf(ctx: KoaContextWithOIDC, fallback: Config['defaultLocale']) {
  return pickLocale({
    uiLocales: ctx.oidc?.params?.ui_locales,
    acceptsLanguages: (...langs) => ctx.acceptsLanguages(...langs),
    fallback,
  });
}

export function createProvider(deps: ProviderDeps): Provider {
  const { config, renderer } = deps;
  const page = (ctx: KoaContextWithOIDC, template: string, data: Record<string, unknown>) => {
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.body = renderer.render(template, localeOf(ctx, config.defaultLocale), data);
  };

  const configuration: Configuration = {
    adapter: createAdapterClass(deps.queries, deps.clients, deps.clock),
    findAccount: createFindAccount(deps.queries),
    claims: claimsByScope,
    jwks: deps.keys.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.keys.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    responseTypes: ['code', 'none'],
    acrValues: [ACR.password, ACR.pin, ACR.mfa, ACR.phr],
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    rotateRefreshToken: true,
    // Each access token carries the methods of the sign-in it came from (the code's, or the refresh token's, which
    // keeps the original sign-in's): a resource server, our admin API first, can hold the token to the MFA policy in
    // force when it is used (RFC 9470) without looking the session up, and a session stepped up later does not
    // upgrade tokens issued before.
    // RFC 9068 §2.2.1: a JWT access token carries them too (acr, amr and auth_time of that sign-in).
    extraTokenClaims: (ctx) => {
      const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
      if (!source?.amr) return undefined;
      return { amr: source.amr, ...(source.acr ? { acr: source.acr } : {}), ...(source.authTime ? { auth_time: source.authTime } : {}) };
    },
    ttl: {
      ...TOKEN_TTL,
      // An API's tokens live as long as it was registered with; others as long as ours.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL.AccessToken,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL.ClientCredentials,
    },
    extraClientMetadata: { properties: ['require_mfa', 'require_phishing_resistant', 'never_remember_devices', 'latchkey_admin_api', 'first_party'] },
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    enabledJWA: { idTokenSigningAlgValues: [...SIGNING_ALGORITHMS] },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: createInteractionPolicy(deps.needsSecondFactor),
    },
    // The grant this session already holds for the app; else Latchkey's own console and the apps an admin marked
    // first party, whose users are not asked to consent; else what the user allowed the app before, in any browser.
    loadExistingGrant: async (ctx) => {
      const client = ctx.oidc.client!;
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session!.grantIdFor(client.clientId);
      const held = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      if (held) return held;
      const firstParty = client.clientId === CONSOLE_CLIENT_ID || client.metadata().first_party === true;
      if (!firstParty) return grantFromConsent(ctx, deps.queries);
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: ctx.oidc.session!.accountId! });
      grant.addOIDCScope(client.clientId === CONSOLE_CLIENT_ID ? 'openid' : [...ctx.oidc.requestParamScopes].join(' '));
      if (client.clientId !== CONSOLE_CLIENT_ID) {
        for (const [indicator, api] of Object.entries(ctx.oidc.resourceServers ?? {})) {
          grant.addResourceScope(indicator, [...ctx.oidc.requestParamScopes].filter((scope) => api.scopes.has(scope)).join(' '));
        }
      }
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // A client may introspect only the tokens issued to it: introspection must not let one app read another's users.
      introspection: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      userinfo: { enabled: true },
      // RFC 8707: a client names the API it wants a token for; the token is then a JWT for that API (RFC 9068)
      // unless the API asked for opaque ones. Without a resource, tokens stay opaque and serve userinfo.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, identifier, client) => {
          const api = await deps.resources.find(identifier);
          if (!api) throw new errors.InvalidTarget('unknown resource');
          // Without a user there is no one's consent: the API must list the machine client itself.
          if (ctx.oidc.params?.grant_type === 'client_credentials' && !api.machine_clients.includes(client.clientId)) {
            throw new errors.InvalidTarget('this client may not obtain tokens for this resource');
          }
          return {
            scope: api.scopes.join(' '),
            audience: api.identifier,
            accessTokenTTL: api.access_token_ttl,
            accessTokenFormat: api.token_format as 'jwt' | 'opaque',
            ...(api.token_format === 'jwt' ? { jwt: { sign: { alg: api.signing_alg as SigningAlgorithm } } } : {}),
          };
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => page(ctx, 'logout', { form, clientName: ctx.oidc.client?.clientName }),
        postLogoutSuccessSource: async (ctx) => page(ctx, 'logged-out', { clientName: ctx.oidc.client?.clientName }),
      },
    },
    renderError: async (ctx, out) => {
      if (ctx.status === 503) ctx.set('retry-after', '5');
      page(ctx, 'error', { error: out.error, description: out.error_description });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;
  provider.use((ctx, next) => requestOrigin.run({ ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, next));
  provider.use(requestRowsScope(deps.queries));
  if (deps.onServerError) provider.on('server_error', deps.onServerError);
  return provider;
}

export { errors as oidcErrors };
