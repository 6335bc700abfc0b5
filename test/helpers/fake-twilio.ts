import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { PROJECT_ROOT } from '../../src/paths.js';

const spec = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'test', 'fixtures', 'twilio-messages-openapi.json'), 'utf8'));
const MESSAGES_PATH = '/2010-04-01/Accounts/{AccountSid}/Messages.json';
const operation = spec.paths[MESSAGES_PATH].post;

// ajv-formats is CommonJS with `exports.default`: its default import is the function or the module, by loader.
type AddFormats = typeof addFormatsModule.default;
const addFormats: AddFormats = (addFormatsModule as unknown as { default: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

/** OpenAPI 3.0's `nullable` in JSON Schema terms, so Ajv checks responses as Twilio's clients read them. */
function nullableToJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(nullableToJsonSchema);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) if (key !== 'nullable') out[key] = nullableToJsonSchema(value);
  const record = node as Record<string, unknown>;
  if (record.nullable === true && typeof record.type === 'string') out.type = [record.type, 'null'];
  if (record.nullable === true && record.$ref) return { anyOf: [{ $ref: record.$ref }, { type: 'null' }] };
  return out;
}

function compileValidators() {
  const ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: false });
  addFormats(ajv);
  // Twilio's own formats, so that they are checked rather than ignored.
  ajv.addFormat('phone-number', /^\+[1-9]\d{1,14}$/);
  ajv.addFormat('date-time-rfc-2822', /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/);
  ajv.addFormat('currency', /^[A-Z]{3}$/);
  // JSON Schema formats check strings only; `uri-map` annotates an object, whose shape its schema checks.
  ajv.addFormat('uri-map', true);
  ajv.addSchema({ $id: 'twilio', components: nullableToJsonSchema(spec.components) });
  const withRoot = (schema: unknown) =>
    JSON.parse(JSON.stringify(nullableToJsonSchema(schema)).replaceAll('"#/components/', '"twilio#/components/'));
  return {
    request: ajv.compile(withRoot(operation.requestBody.content['application/x-www-form-urlencoded'].schema)),
    accountSid: ajv.compile(withRoot(operation.parameters.find((p: { name: string }) => p.name === 'AccountSid').schema)),
    message: ajv.compile({ $ref: 'twilio#/components/schemas/api.v2010.account.message' }),
  };
}

/** Form fields arrive as strings; type them as the schema declares before validating. */
function typedForm(form: URLSearchParams, schema: { properties: Record<string, { type?: string }> }) {
  const out: Record<string, unknown> = {};
  for (const key of new Set(form.keys())) {
    const type = schema.properties[key]?.type;
    const values = form.getAll(key);
    if (type === 'array') out[key] = values;
    else if (type === 'boolean') out[key] = values[0] === 'true' ? true : values[0] === 'false' ? false : values[0];
    else if (type === 'integer' || type === 'number') out[key] = Number.isNaN(Number(values[0])) ? values[0] : Number(values[0]);
    else out[key] = values[0];
  }
  return out;
}

export interface ReceivedSms {
  accountSid: string;
  authorization: string;
  fields: Record<string, unknown>;
}

/**
 * A local HTTP server that speaks Twilio's Messages API: it accepts exactly what Twilio's OpenAPI description allows
 * (anything else is a test failure, recorded in `violations`), answers with a message resource that validates against
 * the same description, and can answer with Twilio's errors (21211 for numbers registered in `invalidNumbers`).
 */
export async function startFakeTwilio(credentials: { accountSid: string; authToken: string }) {
  const validators = compileValidators();
  const received: ReceivedSms[] = [];
  const violations: string[] = [];
  const invalidNumbers = new Set<string>();
  /** Makes every request fail as Twilio does when our credentials are wrong (20003) or it is down (20503). */
  const failure: { mode?: 'auth' | 'outage' } = {};
  const describe = (v: ValidateFunction) => (v.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`).join('; ');

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const send = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      const match = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !match) {
        violations.push(`unexpected ${req.method} ${req.url}`);
        return send(404, { code: 20404, message: 'The requested resource was not found', status: 404 });
      }
      const accountSid = decodeURIComponent(match[1]!);
      if (!validators.accountSid(accountSid)) violations.push(`AccountSid: ${describe(validators.accountSid)}`);
      if (failure.mode === 'auth') return send(401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
      if (failure.mode === 'outage') return send(503, { code: 20503, message: 'Service unavailable', more_info: 'https://www.twilio.com/docs/errors/20503', status: 503 });
      const expectedAuth = `Basic ${Buffer.from(`${credentials.accountSid}:${credentials.authToken}`).toString('base64')}`;
      if (req.headers.authorization !== expectedAuth) {
        return send(401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
      }
      if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) violations.push(`content-type ${req.headers['content-type']}`);
      const schema = operation.requestBody.content['application/x-www-form-urlencoded'].schema;
      const fields = typedForm(new URLSearchParams(body), schema);
      if (!validators.request(fields)) violations.push(`request body: ${describe(validators.request)}`);
      if (!fields.From && !fields.MessagingServiceSid) violations.push('request body: From or MessagingServiceSid is required');
      received.push({ accountSid, authorization: req.headers.authorization!, fields });

      if (invalidNumbers.has(String(fields.To))) {
        return send(400, { code: 21211, message: `The 'To' number ${fields.To} is not a valid phone number.`, more_info: 'https://www.twilio.com/docs/errors/21211', status: 400 });
      }
      const sid = `SM${crypto.randomBytes(16).toString('hex')}`;
      const now = new Date().toUTCString().replace('GMT', '+0000');
      const message = {
        account_sid: accountSid, api_version: '2010-04-01', body: fields.Body ?? null, date_created: now, date_sent: null, date_updated: now,
        direction: 'outbound-api', error_code: null, error_message: null, from: fields.From ?? null, messaging_service_sid: fields.MessagingServiceSid ?? null,
        num_media: '0', num_segments: '1', price: null, price_unit: 'USD', sid, status: 'queued', to: fields.To,
        subresource_uris: { media: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}/Media.json` },
        uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
      };
      if (!validators.message(message)) violations.push(`our own response: ${describe(validators.message)}`);
      send(201, message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    violations,
    invalidNumbers,
    failure,
    /** The code in the last SMS sent to `to`. */
    lastCodeTo(to: string): string {
      const sms = [...received].reverse().find((r) => r.fields.To === to);
      const code = /\b(\d{6})\b/.exec(String(sms?.fields.Body ?? ''))?.[1];
      if (!code) throw new Error(`no code was texted to ${to}`);
      return code;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const TWILIO_TEST_CREDENTIALS = { accountSid: `AC${'0123456789abcdef'.repeat(2)}`, authToken: 'twilio-test-auth-token-0001' };

/** The server's environment for sending texts through the fake Twilio at `origin`. */
export const twilioServerEnv = (origin: string) => ({
  LATCHKEY_TWILIO_ACCOUNT_SID: TWILIO_TEST_CREDENTIALS.accountSid,
  LATCHKEY_TWILIO_AUTH_TOKEN: TWILIO_TEST_CREDENTIALS.authToken,
  LATCHKEY_TWILIO_FROM: '+15005550006',
  LATCHKEY_TWILIO_API_ORIGIN: origin,
});
