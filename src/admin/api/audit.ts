import { Readable } from 'node:stream';
import { z } from 'zod';
import type { AuditRow } from '../../db/audit.js';
import type { Queries } from '../../db/index.js';
import { csvRows } from '../../security/csv-cell.js';
import { cursor, limitSchema } from './common.js';
import { operation, Reply } from './operation.js';

export const auditFilterSchema = z.object({
  user_id: z.uuid({ message: 'expected a user id' }).optional().describe('the user acted on, or the user acting'),
  action: z.string().trim().max(100).optional().describe('exact, or a prefix ending in a dot: `mfa.`'),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  from: z.iso.datetime({ offset: true, message: 'expected an ISO 8601 date-time' }).optional().describe('inclusive'),
  to: z.iso.datetime({ offset: true, message: 'expected an ISO 8601 date-time' }).optional().describe('exclusive'),
});
export type AuditFilterInput = z.output<typeof auditFilterSchema>;

const eventSchema = z.object({
  id: z.string(),
  occurred_at: z.iso.datetime(),
  action: z.string(),
  outcome: z.string(),
  actor_id: z.string().nullable(),
  subject_id: z.string().nullable(),
  client_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});

export const auditView = (row: AuditRow) => ({ ...row, id: String(row.id), occurred_at: new Date(row.occurred_at).toISOString() });

export const toAuditFilter = (query: AuditFilterInput) => ({
  userId: query.user_id,
  action: query.action,
  outcome: query.outcome,
  from: query.from ? new Date(query.from) : undefined,
  to: query.to ? new Date(query.to) : undefined,
});

const CSV_COLUMNS = ['id', 'occurred_at', 'action', 'outcome', 'actor_id', 'subject_id', 'client_id', 'ip', 'user_agent', 'details'] as const;
const EXPORT_BATCH = 5000;

/** Every matching event as CSV, newest first, read in batches so that a large export does not hold the table. */
export async function* auditCsv(queries: Queries, filter: ReturnType<typeof toAuditFilter>) {
  yield csvRows([CSV_COLUMNS]);
  let before: number | undefined;
  for (;;) {
    const rows = await queries.audit.search({ ...filter, before, limit: EXPORT_BATCH });
    if (rows.length === 0) return;
    yield csvRows(rows.map((row) => CSV_COLUMNS.map((column) => row[column])));
    before = Number(rows.at(-1)!.id);
    if (rows.length < EXPORT_BATCH) return;
  }
}

export function auditOperations(deps: { queries: Queries }) {
  const tag = 'audit';
  return [
    operation({
      id: 'listAuditEvents',
      method: 'get',
      path: '/audit',
      tag,
      summary: 'Audit events, newest first, filtered',
      roles: ['super_admin', 'auditor'],
      query: auditFilterSchema.extend({ cursor: cursor.schema(z.number().int()).optional(), limit: limitSchema }),
      responses: { 200: { description: 'one page', schema: z.object({ events: z.array(eventSchema), next_cursor: z.string().nullable() }) } },
      handle: async (_ctx, { query }) => {
        const rows = await deps.queries.audit.search({ ...toAuditFilter(query), before: query.cursor, limit: query.limit + 1 });
        const page = rows.slice(0, query.limit);
        return { events: page.map(auditView), next_cursor: rows.length > query.limit ? cursor.encode(Number(page.at(-1)!.id)) : null };
      },
    }),
    operation({
      id: 'exportAuditEvents',
      method: 'get',
      path: '/audit/export.csv',
      tag,
      summary: 'The same events as CSV',
      roles: ['super_admin', 'auditor'],
      query: auditFilterSchema,
      responses: { 200: { description: 'CSV with a header row', mediaType: 'text/csv' } },
      handle: async (ctx, { query }) => {
        await deps.queries.audit.insert({ action: 'audit.export', outcome: 'success', actorId: ctx.state.user!.id, ip: ctx.ip, details: { filter: query } });
        ctx.type = 'text/csv';
        ctx.attachment('latchkey-audit.csv');
        return new Reply(200, Readable.from(auditCsv(deps.queries, toAuditFilter(query))));
      },
    }),
  ];
}
