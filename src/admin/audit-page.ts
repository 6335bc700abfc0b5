import { z } from 'zod';
import type { Queries } from '../db/index.js';
import { FormRefusal } from '../console/form-state.js';

/**
 * The audit page as people use it: a user named by email (or id), days picked from a calendar, and events that say
 * who did what to whom by email. The admin API underneath keeps its exact filter (user ids, ISO date-times).
 */
const DAY = /^\d{4}-\d{2}-\d{2}$/;
export const auditPageQuerySchema = z.object({
  user: z.string().trim().max(320).optional(),
  action: z.string().trim().max(100).optional(),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  from: z.string().regex(DAY, { message: 'expected a date' }).optional(),
  to: z.string().regex(DAY, { message: 'expected a date' }).optional(),
  cursor: z.string().max(200).optional(),
});
export type AuditPageQuery = z.output<typeof auditPageQuerySchema>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A calendar day as a UTC instant; `to` days are inclusive, so the filter ends at the start of the next day. */
function dayStart(day: string, field: 'from' | 'to'): Date {
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) throw new FormRefusal(400, field, 'admin.audit.error.date');
  return date;
}

/** The admin API's filter for what the page's form says; a user who cannot be found is an error on that field. */
export async function toAuditApiQuery(queries: Pick<Queries, 'users'>, form: AuditPageQuery): Promise<Record<string, string>> {
  const query: Record<string, string> = {};
  if (form.user) {
    const user = UUID.test(form.user) ? await queries.users.findById(form.user.toLowerCase()) : await queries.users.findByEmail(form.user);
    if (!user) throw new FormRefusal(400, 'user', 'admin.audit.error.user');
    query.user_id = user.id;
  }
  if (form.action) query.action = form.action;
  if (form.outcome) query.outcome = form.outcome;
  if (form.from) query.from = dayStart(form.from, 'from').toISOString();
  if (form.to) query.to = new Date(dayStart(form.to, 'to').getTime() + 86_400_000).toISOString();
  if (form.from && form.to && query.from! >= query.to!) throw new FormRefusal(400, 'to', 'admin.audit.error.range');
  if (form.cursor) query.cursor = form.cursor;
  return query;
}

interface AuditEventView {
  actor_id: string | null;
  subject_id: string | null;
  details: unknown;
}

/** The emails of the people an page of events names, in one query. */
export async function emailsOf(queries: Pick<Queries, 'users'>, events: AuditEventView[]): Promise<Record<string, string>> {
  const ids = [...new Set(events.flatMap((e) => [e.actor_id, e.subject_id]).filter((id): id is string => !!id && UUID.test(id)))];
  if (!ids.length) return {};
  return Object.fromEntries((await queries.users.emailsOf(ids)).map((u) => [u.id, u.email]));
}

/** An event's details as label and value pairs a person can read (values that are not text shown as JSON). */
export function readableDetails(details: unknown): Array<[string, string]> {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return details === null || details === undefined ? [] : [['', JSON.stringify(details)]];
  return Object.entries(details as Record<string, unknown>).map(([key, value]) => [key.replace(/_/g, ' '), typeof value === 'string' ? value : JSON.stringify(value)]);
}
