import crypto from 'node:crypto';
import { z } from 'zod';
import type { Queries } from '../db/index.js';
import type { ClientRow } from '../db/clients.js';
import { AppError } from '../errors.js';
import { type ChangeFeed, invalidatedCache } from '../db/change-feed.js';
import type { SecretBox } from '../security/secret-box.js';
import { CONSOLE_CLIENT_ID } from './console-client.js';
import { SIGNING_ALGORITHMS } from './keys.js';

const redirectUri = z.url({ message: 'expected an absolute URL' }).refine(
  (value) => {
    // zod runs this check even when the value already failed as a URL: that failure is the one to report.
    if (!URL.canParse(value)) return true;
    const url = new URL(value);
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
    return !url.hash && (url.protocol === 'https:' || (url.protocol === 'http:' && loopback) || !/^https?:$/.test(url.protocol));
  },
  { message: 'expected https (http only on localhost, custom schemes for native apps) and no #fragment' },
);

const clientFields = {
    client_name: z.string().trim().min(1).max(200),
    client_id: z.string().regex(/^[A-Za-z0-9._~-]{3,128}$/, { message: 'expected 3–128 URL-safe characters' }).optional(),
    redirect_uris: z.array(redirectUri).max(50).default([]),
    post_logout_redirect_uris: z.array(redirectUri).max(50).default([]),
    grant_types: z
      .array(z.enum(['authorization_code', 'refresh_token', 'client_credentials']))
      .min(1)
      .default(['authorization_code', 'refresh_token']),
    token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'none']).default('client_secret_basic'),
    /** How this client's ID tokens are signed: RS256 unless the app is known to cope with ES256 or EdDSA. */
    id_token_signed_response_alg: z.enum(SIGNING_ALGORITHMS).default('RS256'),
    require_mfa: z.boolean().default(false),
    /** Its users sign in with a phishing-resistant factor (a passkey): acr urn:latchkey:acr:phr. Implies require_mfa. */
    require_phishing_resistant: z.boolean().default(false),
    /** Its users are never offered "remember this browser", and no remembered browser answers its sign-ins. */
    never_remember_devices: z.boolean().default(false),
    /** An app of the same organisation: its users are not asked to consent to the scopes it requests. */
    first_party: z.boolean().default(false),
    /** Tokens this client obtains for an admin may call /api/admin (with that admin's roles). */
    latchkey_admin_api: z.boolean().default(false),
};

/** What an administrator supplies to register a client (CLI or admin API). */
export const clientRegistrationSchema = z.object(clientFields).strict().superRefine(checkRegistration);

/** An edit: only what is sent changes; the result must still be a valid registration. */
export const clientEditSchema = z
  .object({
    client_name: clientFields.client_name.optional(),
    redirect_uris: z.array(redirectUri).max(50).optional(),
    post_logout_redirect_uris: z.array(redirectUri).max(50).optional(),
    id_token_signed_response_alg: z.enum(SIGNING_ALGORITHMS).optional(),
    require_mfa: z.boolean().optional(),
    require_phishing_resistant: z.boolean().optional(),
    never_remember_devices: z.boolean().optional(),
    first_party: z.boolean().optional(),
    latchkey_admin_api: z.boolean().optional(),
  })
  .strict();

function checkRegistration(value: z.output<z.ZodObject<typeof clientFields>>, ctx: z.RefinementCtx) {
    if (value.grant_types.includes('authorization_code') && value.redirect_uris.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['redirect_uris'], message: 'authorization_code needs at least one redirect URI' });
    }
    if (value.token_endpoint_auth_method === 'none' && value.grant_types.includes('client_credentials')) {
      ctx.addIssue({ code: 'custom', path: ['grant_types'], message: 'a public client cannot use client_credentials' });
    }
}

export type ClientRegistration = z.input<typeof clientRegistrationSchema>;
export type ClientEdit = z.output<typeof clientEditSchema>;

/** What an admin may see of a client: never its secret. */
export const clientView = (row: ClientRow) => ({
  client_id: row.client_id,
  client_name: String(row.metadata.client_name ?? ''),
  redirect_uris: (row.metadata.redirect_uris as string[] | undefined) ?? [],
  post_logout_redirect_uris: (row.metadata.post_logout_redirect_uris as string[] | undefined) ?? [],
  grant_types: (row.metadata.grant_types as string[] | undefined) ?? [],
  token_endpoint_auth_method: String(row.metadata.token_endpoint_auth_method ?? 'none'),
  id_token_signed_response_alg: String(row.metadata.id_token_signed_response_alg ?? 'RS256'),
  require_mfa: row.metadata.require_mfa === true,
  require_phishing_resistant: row.metadata.require_phishing_resistant === true,
  never_remember_devices: row.metadata.never_remember_devices === true,
  first_party: row.metadata.first_party === true,
  latchkey_admin_api: row.metadata.latchkey_admin_api === true,
  built_in: row.metadata.client_id === CONSOLE_CLIENT_ID,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString(),
});

const newSecret = () => crypto.randomBytes(32).toString('base64url');
const protectedClient = () => new AppError(409, 'built_in_client', 'Latchkey\'s own console client cannot be changed', 'client_id');

/** How long a cached client may go unchecked if a change notice were lost: the change feed is the real invalidation. */
const CLIENT_CACHE_MS = 5 * 60 * 1000;

/**
 * Registered clients. With a change feed, their metadata is cached (every authorization and token request reads it)
 * and each change is announced so that every instance drops its copy.
 */
export function createClientStore(queries: Queries, box: SecretBox, feed?: ChangeFeed) {
  async function loadMetadata(clientId: string): Promise<(Record<string, unknown> & { client_id: string }) | undefined> {
    const row = await queries.clients.find(clientId);
    if (!row) return undefined;
    const secret = row.client_secret_sealed
      ? box.open(row.client_secret_sealed, `client-secret:${row.client_id}`).toString('utf8')
      : undefined;
    return { ...row.metadata, client_id: row.client_id, ...(secret ? { client_secret: secret } : {}) };
  }
  const cache = feed && invalidatedCache(feed, 'client', loadMetadata, CLIENT_CACHE_MS);
  const changed = async <T>(clientId: string, result: T) => {
    await feed?.publish('client', clientId);
    return result;
  };

  return {
    async register(input: ClientRegistration) {
      const client = clientRegistrationSchema.parse(input);
      const clientId = client.client_id ?? crypto.randomBytes(12).toString('base64url');
      if (client.client_id && (await queries.clients.find(client.client_id))) throw new AppError(409, 'client_id_taken', 'a client with this id exists', 'client_id');
      const secret = client.token_endpoint_auth_method === 'none' ? undefined : newSecret();
      const metadata = {
        ...client,
        client_id: clientId,
        response_types: client.grant_types.includes('authorization_code') ? ['code'] : [],
      };
      await queries.clients.insert({
        client_id: clientId,
        client_secret_sealed: secret ? box.seal(secret, `client-secret:${clientId}`) : null,
        metadata,
      });
      return { clientId, clientSecret: secret, metadata };
    },
    /** Latchkey's own clients, whose metadata is fixed in code rather than supplied by an admin. */
    async registerBuiltIn(metadata: Record<string, unknown> & { client_id: string }) {
      await queries.clients.insert({ client_id: metadata.client_id, client_secret_sealed: null, metadata });
      await changed(metadata.client_id, undefined);
    },
    async remove(clientId: string) {
      const removed = await queries.clients.remove(clientId);
      for (const { identifier } of await queries.resources.forgetClient(clientId)) await feed?.publish('resource', identifier);
      return changed(clientId, removed);
    },
    /** An admin's edit: refused for the built-in console client and for a result that is not a valid client. */
    async edit(clientId: string, edit: ClientEdit) {
      if (clientId === CONSOLE_CLIENT_ID) throw protectedClient();
      const row = await queries.clients.find(clientId);
      if (!row) return undefined;
      const { client_id: _id, response_types: _types, ...current } = row.metadata;
      const merged = clientRegistrationSchema.parse({ ...current, ...edit });
      const metadata = { ...row.metadata, ...merged, client_id: clientId };
      return changed(clientId, await queries.clients.updateMetadata(clientId, metadata));
    },
    /** A new secret replaces the old at once: the app must be given it before its next token request. */
    async rotateSecret(clientId: string) {
      if (clientId === CONSOLE_CLIENT_ID) throw protectedClient();
      const row = await queries.clients.find(clientId);
      if (!row) return undefined;
      if (row.metadata.token_endpoint_auth_method === 'none') throw new AppError(409, 'public_client', 'a public client has no secret', 'client_id');
      const secret = newSecret();
      await queries.clients.updateSecret(clientId, box.seal(secret, `client-secret:${clientId}`));
      return changed(clientId, secret);
    },
    /** Client metadata as oidc-provider expects it, secret included (it compares it in constant time). */
    async findMetadata(clientId: string) {
      if (!cache) return loadMetadata(clientId);
      // A copy: whoever reads it may change it without touching the cached one.
      const cached = await cache.get(clientId);
      return cached && structuredClone(cached);
    },
  };
}

export type ClientStore = ReturnType<typeof createClientStore>;
