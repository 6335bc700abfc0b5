import type { Knex } from 'knex';
import type { Database } from './connect.js';

export interface AuditEvent {
  action: string;
  outcome: 'success' | 'failure' | 'denied';
  actorId?: string | null;
  subjectId?: string | null;
  clientId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  details?: Record<string, unknown>;
  occurredAt?: Date;
}

export interface AuditRow {
  id: number;
  occurred_at: Date;
  action: string;
  outcome: string;
  actor_id: string | null;
  subject_id: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

export interface AuditFilter {
  userId?: string;
  action?: string;
  outcome?: 'success' | 'failure' | 'denied';
  from?: Date;
  to?: Date;
}

/** An audit insert for another query to send inside its own statement, and what to run once that statement did. */
export interface AuditStatement {
  sql: string;
  bindings: readonly Knex.Value[];
  recorded(): void;
}

export function createAuditQueries(db: Database, onEvent?: (event: AuditEvent) => void) {
  const events = () => db<AuditRow>('audit_events');
  const columnsOf = (event: AuditEvent) => ({
    action: event.action,
    outcome: event.outcome,
    actor_id: event.actorId ?? null,
    subject_id: event.subjectId ?? null,
    client_id: event.clientId ?? null,
    ip: event.ip ?? null,
    user_agent: event.userAgent?.slice(0, 512) ?? null,
    details: JSON.stringify(event.details ?? {}) as unknown as Record<string, unknown>,
  });
  // Each column's type, for an insert whose values come from a SELECT (they are not inferred there).
  const TYPES: Record<keyof ReturnType<typeof columnsOf>, string> = {
    action: 'text', outcome: 'text', actor_id: 'uuid', subject_id: 'uuid', client_id: 'text', ip: 'text', user_agent: 'text', details: 'jsonb',
  };
  const insertOf = (event: AuditEvent) => events().insert({ ...columnsOf(event), ...(event.occurredAt ? { occurred_at: event.occurredAt } : {}) });
  return {
    insert: async (event: AuditEvent) => {
      await insertOf(event);
      onEvent?.(event);
    },
    /** `guard`, when given: an SQL condition the entry is written under (it tells of something that may not happen). */
    statement: (event: AuditEvent, guard?: string): AuditStatement => {
      const recorded = () => onEvent?.(event);
      if (!guard) return { ...insertOf(event).toSQL(), recorded };
      // INSERT … SELECT, not VALUES, to carry the condition.
      const columns = columnsOf(event);
      const names = Object.keys(columns) as Array<keyof typeof columns>;
      return {
        sql: `insert into audit_events (${names.join(', ')}, occurred_at) select ${names.map((name) => `cast(? as ${TYPES[name]})`).join(', ')}, coalesce(cast(? as timestamptz), now()) where ${guard}`,
        bindings: [...names.map((name) => columns[name] as string | null), event.occurredAt ?? null],
        recorded,
      };
    },
    /**
     * Newest first, in id order (ids only grow), so `before` is a stable cursor. `userId` matches the user acted on
     * or the user acting; `action` matches exactly or, ending in `.`, as a prefix (`mfa.`).
     */
    search: (filter: AuditFilter & { before?: number; limit: number }) => {
      const filtered = (q: ReturnType<typeof events>) => {
        q.orderBy('id', 'desc').limit(filter.limit);
        if (filter.before) q.where('id', '<', filter.before);
        if (filter.action?.endsWith('.')) q.whereLike('action', `${filter.action.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
        else if (filter.action) q.where({ action: filter.action });
        if (filter.outcome) q.where({ outcome: filter.outcome });
        if (filter.from) q.where('occurred_at', '>=', filter.from);
        if (filter.to) q.where('occurred_at', '<', filter.to);
        return q;
      };
      if (!filter.userId) return filtered(events());
      // Each side newest first from its own index (subject_id, id) and (actor_id, id), then the newest of both: an
      // OR of the two would read every row of the user's before sorting them.
      const { userId } = filter;
      const sides = db.queryBuilder().union([filtered(events().where({ subject_id: userId })), filtered(events().where({ actor_id: userId }))], true);
      return db<AuditRow>(sides.as('either')).orderBy('id', 'desc').limit(filter.limit);
    },
    list: (filter: { subjectId?: string; action?: string; limit?: number }) => {
      const q = events().orderBy('id', 'desc').limit(filter.limit ?? 100);
      if (filter.subjectId) q.where({ subject_id: filter.subjectId });
      if (filter.action) q.where({ action: filter.action });
      return q;
    },
  };
}
