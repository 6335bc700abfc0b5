import type { Queries } from '../db/index.js';
import { CONSOLE_CLIENT_ID } from '../oidc/console-client.js';
import type { Clock } from '../security/clock.js';

/** A user's sign-in sessions and connected apps: what the account page lists, and how each is ended. */
export interface SessionsDeps {
  queries: Queries;
  clock: Clock;
}

export interface Acting {
  actorId: string | null;
  ip?: string;
  userAgent?: string;
}

const audit = (deps: SessionsDeps, action: string, subjectId: string, by: Acting, details: Record<string, unknown>, clientId?: string) =>
  deps.queries.audit.insert({ action, outcome: 'success', subjectId, actorId: by.actorId, ip: by.ip, userAgent: by.userAgent, clientId, details });

/** A short, human name for a browser from its user agent: enough to recognise one's own devices. */
export function describeDevice(userAgent: string | null): string {
  if (!userAgent) return '—';
  const browser = /Edg\//.test(userAgent) ? 'Edge' : /Firefox\//.test(userAgent) ? 'Firefox' : /Chrom(e|ium)\//.test(userAgent) ? 'Chrome' : /Safari\//.test(userAgent) ? 'Safari' : undefined;
  const system = /Windows/.test(userAgent) ? 'Windows' : /Android/.test(userAgent) ? 'Android' : /iPhone|iPad/.test(userAgent) ? 'iOS' : /Mac OS X/.test(userAgent) ? 'macOS' : /Linux/.test(userAgent) ? 'Linux' : undefined;
  return browser && system ? `${browser}, ${system}` : (browser ?? system ?? userAgent.slice(0, 60));
}

/**
 * The user's live sessions, newest sign-in first: device, address and time it was last used from, and the apps it
 * signed into (Latchkey's own console aside). `current` marks the session of the browser asking.
 */
export async function listSessions(deps: SessionsDeps, userId: string, currentSessionId: string | undefined) {
  const sessions = await deps.queries.oidcModels.sessionsOf(userId, deps.clock.now());
  return sessions.map((s) => ({
    uid: s.uid,
    current: s.id === currentSessionId,
    device: describeDevice(s.userAgent),
    ip: s.ip,
    signedInAt: new Date(Number(s.payload.loginTs ?? 0) * 1000),
    lastActiveAt: s.seenAt ?? new Date(Number(s.payload.loginTs ?? 0) * 1000),
    clientIds: Object.keys((s.payload.authorizations ?? {}) as Record<string, unknown>).filter((id) => id !== CONSOLE_CLIENT_ID),
  }));
}

/**
 * Ends one of the user's sessions, named by its uid, with the tokens its apps got through it; false when the user
 * has no such session (another user's uid included). The apps keep the user's consent.
 */
export async function signOutSession(deps: SessionsDeps, userId: string, uid: string, by: Acting, current = false): Promise<boolean> {
  if (!(await deps.queries.oidcModels.signOutSession(userId, uid))) return false;
  await audit(deps, current ? 'user.sign_out' : 'user.sign_out_session', userId, by, {});
  return true;
}

/**
 * Ends every session of a user, with every grant and token issued under them (refresh tokens included). The one
 * place a user is signed out everywhere: a disabled account, a password reset, an admin's button. Sign-ins that
 * finished but were not resumed yet are ended too.
 */
export async function signOutEverywhere(deps: Pick<SessionsDeps, 'queries'>, userId: string): Promise<number> {
  const sessions = await deps.queries.oidcModels.revokeAccount(userId);
  // Sign-ins someone has taken past the password (at their second step) end too.
  await deps.queries.signIns.endAllOf(userId);
  return sessions;
}

const SCOPE_ORDER = ['openid', 'profile', 'email', 'offline_access'];
const byScopeOrder = (a: string, b: string) => (SCOPE_ORDER.indexOf(a) + 1 || 99) - (SCOPE_ORDER.indexOf(b) + 1 || 99);

/** The apps the user allowed, with what and when, most recent first. */
export async function listConnectedApps(deps: SessionsDeps, userId: string) {
  return (await deps.queries.consents.listFor(userId)).map((c) => ({
    clientId: c.client_id,
    name: c.client_name ?? c.client_id,
    scopes: [...c.scopes].sort(byScopeOrder),
    resourceScopes: Object.entries(c.resource_scopes).flatMap(([resource, scopes]) => scopes.map((scope) => ({ resource, scope }))),
    grantedAt: c.granted_at,
    updatedAt: c.updated_at,
  }));
}

/**
 * Takes back what the user gave an app: the consent (its next sign-in asks again), and every grant with its
 * tokens, so a refresh token it holds stops working now. False when the user never connected this app.
 */
export async function revokeConnectedApp(deps: SessionsDeps, userId: string, clientId: string, by: Acting): Promise<boolean> {
  const forgotten = await deps.queries.consents.forget(userId, clientId);
  const grants = await deps.queries.oidcModels.revokeClient(userId, clientId);
  if (!forgotten && grants === 0) return false;
  await audit(deps, 'user.app_revoked', userId, by, { grants }, clientId);
  return true;
}
