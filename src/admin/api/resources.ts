import { z } from 'zod';
import type { Queries } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { SIGNING_ALGORITHMS } from '../../oidc/keys.js';
import { resourceEditSchema, resourceRegistrationSchema, type ResourceStore, resourceView } from '../../resources/resources.js';
import { actorOf, cursor, limitSchema } from './common.js';
import { operation } from './operation.js';

const resourceSchema = z.object({
  identifier: z.string().describe('the resource indicator (RFC 8707) clients send, and the `aud` of its tokens'),
  name: z.string(),
  scopes: z.array(z.string()),
  access_token_ttl: z.number().int().describe('seconds'),
  signing_alg: z.enum(SIGNING_ALGORITHMS),
  token_format: z.enum(['jwt', 'opaque']).describe('jwt: RFC 9068, verified against the JWKS; opaque: revocable, checked by introspection'),
  machine_clients: z.array(z.string()).describe('clients that may get tokens for this API by client credentials'),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});
// The identifier is a URI: in a path it travels percent-encoded, and koa's router decodes it.
const resourceParams = z.object({ identifier: z.string().min(1).max(2000) });

export function resourceOperations(deps: { queries: Queries; resources: ResourceStore }) {
  const { queries, resources } = deps;
  const find = async (identifier: string) => {
    const row = await queries.resources.find(identifier);
    if (!row) throw new AppError(404, 'resource_not_found', 'no such API', 'identifier');
    return row;
  };
  const audit = (ctx: Parameters<typeof actorOf>[0], action: string, details: Record<string, unknown>) =>
    queries.audit.insert({ action, outcome: 'success', ...actorOf(ctx), details });
  const tag = 'resources';
  return [
    operation({
      id: 'listResources',
      method: 'get',
      path: '/resources',
      tag,
      summary: 'List the APIs that accept our access tokens',
      roles: ['super_admin', 'auditor'],
      query: z.object({ cursor: cursor.schema(z.string()).optional(), limit: limitSchema }),
      responses: { 200: { description: 'one page', schema: z.object({ resources: z.array(resourceSchema), next_cursor: z.string().nullable() }) } },
      handle: async (_ctx, { query }) => {
        const rows = await queries.resources.page(query.cursor, query.limit + 1);
        const page = rows.slice(0, query.limit);
        return { resources: page.map(resourceView), next_cursor: rows.length > query.limit ? cursor.encode(page.at(-1)!.identifier) : null };
      },
    }),
    operation({
      id: 'registerResource',
      method: 'post',
      path: '/resources',
      tag,
      summary: 'Register an API: clients naming it as `resource` get access tokens for it',
      roles: ['super_admin'],
      body: resourceRegistrationSchema,
      responses: { 201: { description: 'registered', schema: resourceSchema }, 409: { description: 'the identifier is taken' } },
      handle: async (ctx, { body }) => {
        const row = await resources.register(body);
        await audit(ctx, 'resource.register', { identifier: row.identifier, scopes: row.scopes, token_format: row.token_format, machine_clients: row.machine_clients });
        return resourceView(row);
      },
    }),
    operation({
      id: 'getResource',
      method: 'get',
      path: '/resources/:identifier',
      tag,
      summary: 'A registered API',
      roles: ['super_admin', 'auditor'],
      params: resourceParams,
      responses: { 200: { description: 'the API', schema: resourceSchema } },
      handle: async (_ctx, { params }) => resourceView(await find(params.identifier)),
    }),
    operation({
      id: 'editResource',
      method: 'patch',
      path: '/resources/:identifier',
      tag,
      summary: "Change an API's name, scopes, token lifetime, algorithm, format or machine clients",
      description: 'Tokens already issued keep what they were issued with until they expire.',
      roles: ['super_admin'],
      params: resourceParams,
      body: resourceEditSchema,
      responses: { 200: { description: 'the API', schema: resourceSchema } },
      handle: async (ctx, { params, body }) => {
        await find(params.identifier);
        const row = await resources.edit(params.identifier, body);
        if (!row) throw new AppError(404, 'resource_not_found', 'no such API', 'identifier');
        await audit(ctx, 'resource.edit', { identifier: row.identifier, changed: Object.keys(body) });
        return resourceView(row);
      },
    }),
    operation({
      id: 'deleteResource',
      method: 'delete',
      path: '/resources/:identifier',
      tag,
      summary: 'Delete an API: no new tokens for it (JWTs already issued stay valid until they expire)',
      roles: ['super_admin'],
      params: resourceParams,
      responses: { 204: { description: 'deleted (also when it was already gone)' } },
      handle: async (ctx, { params }) => {
        if ((await resources.remove(params.identifier)) > 0) await audit(ctx, 'resource.delete', { identifier: params.identifier });
      },
    }),
  ];
}
