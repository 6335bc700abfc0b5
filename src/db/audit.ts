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

export function createAuditQueries(db: Database) {
  const events = () => db<AuditRow>('audit_events');
  return {
    insert: (event: AuditEvent) =>
      events().insert({
        action: event.action,
        outcome: event.outcome,
        actor_id: event.actorId ?? null,
        subject_id: event.subjectId ?? null,
        client_id: event.clientId ?? null,
        ip: event.ip ?? null,
        user_agent: event.userAgent?.slice(0, 512) ?? null,
        details: JSON.stringify(event.details ?? {}) as unknown as Record<string, unknown>,
        ...(event.occurredAt ? { occurred_at: event.occurredAt } : {}),
      }),
    list: (filter: { subjectId?: string; action?: string; limit?: number }) => {
      const q = events().orderBy('id', 'desc').limit(filter.limit ?? 100);
      if (filter.subjectId) q.where({ subject_id: filter.subjectId });
      if (filter.action) q.where({ action: filter.action });
      return q;
    },
  };
}
