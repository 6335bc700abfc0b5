import type { Context, Middleware } from 'koa';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from './db/connect.js';
import type { AuditEvent } from './db/audit.js';
import { AppError } from './errors.js';
import { constantTimeEqual } from './security/secret-box.js';

/** Few, fixed route labels: a label per URL would let anyone grow the series without bound. */
const ROUTE_GROUPS: ReadonlyArray<readonly [prefix: string, label: string]> = [
  ['/.well-known', 'discovery'],
  ['/jwks', 'jwks'],
  ['/auth', 'authorize'],
  ['/token', 'token'],
  ['/me', 'userinfo'],
  ['/session', 'logout'],
  ['/interaction', 'interaction'],
  ['/api/access', 'door_controller'],
  ['/api/admin', 'admin_api'],
  ['/account', 'account'],
  ['/admin', 'admin_console'],
  ['/invitation', 'invitation'],
];
const routeOf = (path: string) => ROUTE_GROUPS.find(([prefix]) => path === prefix || path.startsWith(`${prefix}/`))?.[1] ?? 'other';

/** Prometheus metrics of one instance: sign-ins, second factors, tokens, HTTP latency, database pool, process. */
export function createMetrics(db: Database) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'latchkey_' });
  const logins = new Counter({ name: 'latchkey_logins_total', help: 'Sign-ins by outcome and the second factor used (none: password only; password: failed at the password)', labelNames: ['outcome', 'factor'], registers: [registry] });
  const verifications = new Counter({ name: 'latchkey_mfa_verifications_total', help: 'Second-factor verifications by factor and outcome', labelNames: ['factor', 'outcome'], registers: [registry] });
  const tokens = new Counter({ name: 'latchkey_tokens_issued_total', help: 'Token endpoint successes by grant type', labelNames: ['grant_type'], registers: [registry] });
  const tokenErrors = new Counter({ name: 'latchkey_token_errors_total', help: 'Token endpoint failures by grant type and OAuth error', labelNames: ['grant_type', 'error'], registers: [registry] });
  const latency = new Histogram({
    name: 'latchkey_http_request_duration_seconds',
    help: 'HTTP request duration by route group, method and status class',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const pool = db.client.pool as { numUsed?: () => number; numFree?: () => number; numPendingAcquires?: () => number; max?: number } | undefined;
  new Gauge({
    name: 'latchkey_db_pool_connections',
    help: 'Database pool connections by state (used, free, pending acquisitions, max)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      if (!pool?.numUsed) return;
      this.set({ state: 'used' }, pool.numUsed());
      this.set({ state: 'free' }, pool.numFree?.() ?? 0);
      this.set({ state: 'pending' }, pool.numPendingAcquires?.() ?? 0);
      this.set({ state: 'max' }, pool.max ?? 0);
    },
  });

  return {
    registry,
    /** Every security event passes through the audit log: the counters are fed from there, in one place. */
    onAudit(event: AuditEvent) {
      if (event.action === 'login.password' && event.outcome !== 'success') {
        logins.inc({ outcome: event.details?.reason === 'throttled' ? 'throttled' : 'failure', factor: 'password' });
      } else if (event.action === 'mfa.verify') {
        verifications.inc({ factor: String(event.details?.factor ?? 'unknown'), outcome: event.details?.reason === 'throttled' ? 'throttled' : event.outcome });
      }
    },
    signedIn(amr: readonly string[]) {
      const factor = amr.find((value) => !['pwd', 'mfa'].includes(value)) ?? (amr.includes('mfa') ? 'recovery' : 'none');
      logins.inc({ outcome: 'success', factor });
    },
    tokenIssued: (grantType: string) => tokens.inc({ grant_type: grantType }),
    tokenFailed: (grantType: string, error: string) => tokenErrors.inc({ grant_type: grantType, error }),
    httpLatency(): Middleware {
      return async (ctx, next) => {
        const stop = latency.startTimer();
        try {
          await next();
        } finally {
          stop({ route: routeOf(ctx.path), method: ctx.method, status: `${Math.floor(ctx.status / 100)}xx` });
        }
      };
    },
    /** GET /metrics; behind a bearer token when one is configured. */
    endpoint(token: string | undefined) {
      return async (ctx: Context) => {
        if (token) {
          const sent = /^Bearer (.+)$/.exec(ctx.get('authorization'))?.[1] ?? '';
          if (!constantTimeEqual(sent, token)) {
            ctx.set('www-authenticate', 'Bearer');
            throw new AppError(401, 'invalid_token', 'the metrics token is required');
          }
        }
        ctx.set('cache-control', 'no-store');
        ctx.type = registry.contentType;
        ctx.body = await registry.metrics();
      };
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
