import { z } from 'zod';
import type { Operation } from './operation.js';

type JsonSchema = Record<string, unknown>;

const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.string().describe('stable machine code'),
  field: z.string().optional().describe('the request field at fault'),
  detail: z.string().optional(),
  request_id: z.string().optional(),
});

function toSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

function parametersOf(schema: z.ZodType | undefined, where: 'path' | 'query'): Parameter[] {
  if (!schema) return [];
  const object = toSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || (object.required ?? []).includes(name),
    ...(typeof property.description === 'string' ? { description: property.description } : {}),
    schema: property,
  }));
}

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });

/** The OpenAPI 3.1 description of the admin API, made from the operations the router is built from. */
export function openApiDocument(operations: readonly Operation[], options: { prefix: string; issuer: string; version: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const path = options.prefix + op.path.replace(/:(\w+)/g, '{$1}');
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(op.responses)) {
      responses[status] = {
        description: response.description,
        ...(response.headers ? { headers: Object.fromEntries(Object.entries(response.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }])) } : {}),
        ...(response.schema || response.mediaType
          ? { content: { [response.mediaType ?? 'application/json']: { schema: response.schema ? toSchema(response.schema, 'output') : { type: 'string' } } } }
          : {}),
      };
    }
    responses['400'] ??= problem('invalid input; `field` names what is wrong');
    responses['401'] = problem('no valid access token, or its sign-in lacks the second factor the MFA policy now asks of admins (`insufficient_user_authentication`, RFC 9470)');
    responses['403'] = problem(`the token's user lacks the role (needs one of: ${op.roles.join(', ')})`);
    if (op.params || op.site) responses['404'] ??= problem('no such resource');
    const parameters = [...parametersOf(op.params, 'path'), ...parametersOf(op.query, 'query')];
    if (op.ifMatch) parameters.push({ name: 'If-Match', in: 'header', required: false, description: 'the ETag from GET: refuse the change (412) if the setting changed since', schema: { type: 'string' } });
    paths[path] ??= {};
    paths[path][op.method] = {
      operationId: op.id,
      tags: [op.tag],
      summary: op.summary,
      description: [op.description, `Roles: ${op.roles.join(', ')}.`].filter(Boolean).join('\n\n'),
      'x-roles': op.roles,
      ...(parameters.length ? { parameters } : {}),
      ...(op.body || op.bodyMediaType === 'text/csv'
        ? {
            requestBody: {
              required: true,
              content: { [op.bodyMediaType ?? 'application/json']: { schema: op.body ? toSchema(op.body, 'input') : { type: 'string' } } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Latchkey admin API',
      version: options.version,
      description: 'Users, clients, settings, the audit log and doors. Errors are RFC 9457 problem documents.',
    },
    servers: [{ url: options.issuer }],
    security: [{ bearer: [] }],
    tags: [...new Set(operations.map((op) => op.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An access token issued by this Latchkey to a client registered with `latchkey_admin_api`.' },
      },
      schemas: { Problem: toSchema(problemSchema, 'output') },
    },
  };
}
