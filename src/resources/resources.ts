import { z } from 'zod';
import { type ChangeFeed, invalidatedCache } from '../db/change-feed.js';
import type { Queries } from '../db/index.js';
import type { ResourceRow } from '../db/resources.js';
import { AppError } from '../errors.js';
import { SIGNING_ALGORITHMS } from '../oidc/keys.js';

/** The longest an API's tokens may live: a JWT access token cannot be revoked, and signing keys stay published this long. */
export const MAX_RESOURCE_TOKEN_TTL = 24 * 3600;

/** Scopes of OpenID Connect itself: an API naming one would make its tokens ambiguous with the user's sign-in. */
const RESERVED_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'address', 'phone'];

// RFC 8707 §2: an absolute URI without a fragment; a query is discouraged, and refused here so an identifier has one spelling.
const identifier = z
  .string()
  .max(2000)
  .refine((value) => URL.canParse(value) && !value.includes('#') && !value.includes('?') && !/\s/.test(value), {
    message: 'expected an absolute URI without query or #fragment, e.g. https://api.example.com',
  });
// RFC 6749 §3.3 scope-token.
const scope = z
  .string()
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/, { message: 'expected 1–128 printable characters without spaces, quotes or backslashes' })
  .refine((value) => !RESERVED_SCOPES.includes(value), { message: 'this scope belongs to OpenID Connect' });
const scopes = z
  .array(scope)
  .max(100)
  .refine((list) => new Set(list).size === list.length, { message: 'a scope is listed twice' });
const clientIds = z
  .array(z.string().min(1).max(128))
  .max(100)
  .refine((list) => new Set(list).size === list.length, { message: 'a client is listed twice' });

const resourceFields = {
  name: z.string().trim().min(1).max(200),
  scopes,
  access_token_ttl: z.number().int().min(60).max(MAX_RESOURCE_TOKEN_TTL),
  signing_alg: z.enum(SIGNING_ALGORITHMS),
  /** jwt: verified by the API on its own, cannot be revoked; opaque: stored, revocable, checked by introspection. */
  token_format: z.enum(['jwt', 'opaque']),
  /** Machine clients (client credentials, no user) that may get tokens for this API. */
  machine_clients: clientIds,
};

/** What an administrator supplies to register an API (admin API, console or CLI). */
export const resourceRegistrationSchema = z
  .object({
    identifier,
    name: resourceFields.name,
    scopes: scopes.default([]),
    access_token_ttl: resourceFields.access_token_ttl.default(3600),
    signing_alg: resourceFields.signing_alg.default('RS256'),
    token_format: resourceFields.token_format.default('jwt'),
    machine_clients: clientIds.default([]),
  })
  .strict();

/** An edit: only what is sent changes. The identifier is what tokens carry as `aud`: it does not change. */
export const resourceEditSchema = z.object(resourceFields).partial().strict();

export type ResourceRegistration = z.input<typeof resourceRegistrationSchema>;
export type ResourceEdit = z.input<typeof resourceEditSchema>;

export const resourceView = (row: ResourceRow) => ({
  identifier: row.identifier,
  name: row.name,
  scopes: row.scopes,
  access_token_ttl: row.access_token_ttl,
  signing_alg: row.signing_alg as (typeof SIGNING_ALGORITHMS)[number],
  token_format: row.token_format as 'jwt' | 'opaque',
  machine_clients: row.machine_clients,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString(),
});
export type ResourceView = ReturnType<typeof resourceView>;

/** How long a cached API may go unchecked if a change notice were lost: the change feed is the real invalidation. */
const RESOURCE_CACHE_MS = 5 * 60 * 1000;

/**
 * Registered APIs. Every token request naming one reads it, so with a change feed it is cached and each change is
 * announced to every instance: a client-credentials JWT then costs no database round trip at all.
 */
export function createResourceStore(queries: Queries, feed?: ChangeFeed) {
  // async: a knex builder runs its query again at every `then`; the cache must hold one settled promise.
  const load = async (id: string) => queries.resources.find(id);
  const cache = feed && invalidatedCache(feed, 'resource', load, RESOURCE_CACHE_MS);
  const changed = async <T>(id: string, result: T) => {
    await feed?.publish('resource', id);
    return result;
  };
  const checkClients = async (ids: readonly string[] | undefined) => {
    for (const id of ids ?? []) {
      if (!(await queries.clients.find(id))) throw new AppError(400, 'invalid_request', `no client ${id}`, 'machine_clients');
    }
  };

  return {
    async register(input: ResourceRegistration) {
      const resource = resourceRegistrationSchema.parse(input);
      await checkClients(resource.machine_clients);
      const row = await queries.resources.insert(resource);
      if (!row) throw new AppError(409, 'resource_exists', 'an API with this identifier exists', 'identifier');
      return changed(row.identifier, row);
    },
    async edit(id: string, input: ResourceEdit) {
      const edit = resourceEditSchema.parse(input);
      await checkClients(edit.machine_clients);
      return changed(id, await queries.resources.update(id, edit));
    },
    remove: async (id: string) => changed(id, await queries.resources.remove(id)),
    /** The API a token request names; undefined for an unknown identifier. */
    find: (id: string) => (cache ? cache.get(id) : load(id)),
  };
}

export type ResourceStore = ReturnType<typeof createResourceStore>;
