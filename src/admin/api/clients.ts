import { z } from 'zod';
import type { Queries } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { CONSOLE_CLIENT_ID } from '../../oidc/console-client.js';
import { clientEditSchema, clientRegistrationSchema, type ClientStore, clientView } from '../../oidc/clients.js';
import { actorOf, cursor, limitSchema } from './common.js';
import { operation } from './operation.js';

const clientSchema = z.object({
  client_id: z.string(),
  client_name: z.string(),
  redirect_uris: z.array(z.string()),
  post_logout_redirect_uris: z.array(z.string()),
  grant_types: z.array(z.string()),
  token_endpoint_auth_method: z.string(),
  id_token_signed_response_alg: z.string().describe('how its ID tokens are signed: RS256 (default), ES256 or EdDSA'),
  require_mfa: z.boolean(),
  require_phishing_resistant: z.boolean(),
  never_remember_devices: z.boolean().describe('its users are never offered to have a browser remembered after a second factor'),
  first_party: z.boolean(),
  latchkey_admin_api: z.boolean(),
  built_in: z.boolean().describe("Latchkey's own console client, which cannot be changed"),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});
const clientParams = z.object({ clientId: z.string().min(1).max(128) });

export function clientOperations(deps: { queries: Queries; clients: ClientStore }) {
  const { queries, clients } = deps;
  const find = async (clientId: string) => {
    const row = await queries.clients.find(clientId);
    if (!row) throw new AppError(404, 'client_not_found', 'no such client', 'clientId');
    return row;
  };
  const audit = (ctx: Parameters<typeof actorOf>[0], action: string, clientId: string, details: Record<string, unknown> = {}) =>
    queries.audit.insert({ action, outcome: 'success', clientId, ...actorOf(ctx), details });
  const tag = 'clients';
  return [
    operation({
      id: 'listClients',
      method: 'get',
      path: '/clients',
      tag,
      summary: 'List registered apps',
      roles: ['super_admin', 'auditor'],
      query: z.object({ cursor: cursor.schema(z.string()).optional(), limit: limitSchema }),
      responses: { 200: { description: 'one page', schema: z.object({ clients: z.array(clientSchema), next_cursor: z.string().nullable() }) } },
      handle: async (_ctx, { query }) => {
        const rows = await queries.clients.page(query.cursor, query.limit + 1);
        const page = rows.slice(0, query.limit);
        return { clients: page.map(clientView), next_cursor: rows.length > query.limit ? cursor.encode(page.at(-1)!.client_id) : null };
      },
    }),
    operation({
      id: 'registerClient',
      method: 'post',
      path: '/clients',
      tag,
      summary: 'Register an app; its secret is in this answer only',
      roles: ['super_admin'],
      body: clientRegistrationSchema,
      responses: {
        201: { description: 'registered', schema: z.object({ client: clientSchema, client_secret: z.string().nullable().describe('null for a public client') }) },
        409: { description: 'the client_id is taken' },
      },
      handle: async (ctx, { body }) => {
        const registered = await clients.register(body);
        await audit(ctx, 'client.register', registered.clientId, { grant_types: body.grant_types, require_mfa: body.require_mfa, admin_api: body.latchkey_admin_api });
        return { client: clientView((await queries.clients.find(registered.clientId))!), client_secret: registered.clientSecret ?? null };
      },
    }),
    operation({
      id: 'getClient',
      method: 'get',
      path: '/clients/:clientId',
      tag,
      summary: 'A registered app (never its secret)',
      roles: ['super_admin', 'auditor'],
      params: clientParams,
      responses: { 200: { description: 'the client', schema: clientSchema } },
      handle: async (_ctx, { params }) => clientView(await find(params.clientId)),
    }),
    operation({
      id: 'editClient',
      method: 'patch',
      path: '/clients/:clientId',
      tag,
      summary: 'Change name, redirect URIs, ID token algorithm, require_mfa or admin API access',
      roles: ['super_admin'],
      params: clientParams,
      body: clientEditSchema,
      responses: { 200: { description: 'the client', schema: clientSchema }, 409: { description: "Latchkey's own client" } },
      handle: async (ctx, { params, body }) => {
        await find(params.clientId);
        const row = await clients.edit(params.clientId, body);
        await audit(ctx, 'client.edit', params.clientId, { changed: Object.keys(body) });
        return clientView(row!);
      },
    }),
    operation({
      id: 'rotateClientSecret',
      method: 'post',
      path: '/clients/:clientId/secret',
      tag,
      summary: 'Replace the secret at once; the new one is in this answer only',
      roles: ['super_admin'],
      params: clientParams,
      responses: { 200: { description: 'the new secret', schema: z.object({ client_secret: z.string() }) }, 409: { description: 'a public or built-in client' } },
      handle: async (ctx, { params }) => {
        await find(params.clientId);
        const secret = await clients.rotateSecret(params.clientId);
        await audit(ctx, 'client.rotate_secret', params.clientId);
        return { client_secret: secret };
      },
    }),
    operation({
      id: 'deleteClient',
      method: 'delete',
      path: '/clients/:clientId',
      tag,
      summary: 'Delete an app: its tokens stop working',
      roles: ['super_admin'],
      params: clientParams,
      responses: { 204: { description: 'deleted (also when it was already gone)' }, 409: { description: "Latchkey's own client" } },
      handle: async (ctx, { params }) => {
        if (params.clientId === CONSOLE_CLIENT_ID) {
          throw new AppError(409, 'built_in_client', "Latchkey's own console client cannot be deleted", 'clientId');
        }
        if ((await clients.remove(params.clientId)) > 0) await audit(ctx, 'client.delete', params.clientId);
      },
    }),
  ];
}
