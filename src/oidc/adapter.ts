import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Queries } from '../db/index.js';
import type { FoundWithRelated, ModelWrite, StoredModel } from '../db/oidc-models.js';
import { onDeadlockRetry } from '../db/throttle.js';
import type { UserRow } from '../db/users.js';
import { orUnavailable } from '../koa-errors.js';
import type { Clock } from '../security/clock.js';
import type { ClientStore } from './clients.js';

/**
 * Where the request being served comes from. oidc-provider hands its adapter no request, yet a session saved is a
 * session used: it is stored with this browser's address and user agent, which its owner sees on the account page.
 */
export const requestOrigin = new AsyncLocalStorage<{ ip: string; userAgent: string | null }>();

const keyOf = (model: string, id: string) => `${model}\u0000${id}`;

/**
 * oidc-provider's rows as one request sees them. oidc-provider reads and writes them one at a time, each when its
 * flow reaches it; within one request that costs a round trip each. So a request reads a row once (with the session,
 * grant and account it names, which the flow reads next), and its writes go in one statement when the request is
 * done, before its response leaves: the next request, on any instance, finds them stored. A read that is not yet
 * known sends the waiting writes first, and so does anything that must happen at once (consuming a code).
 */
class RequestRows {
  readonly rows = new Map<string, StoredModel | undefined>();
  /** Sessions by uid (undefined: known not to exist), as codes and refresh tokens name them. */
  readonly sessionKeysByUid = new Map<string, string | undefined>();
  readonly accounts = new Map<string, UserRow | undefined>();
  readonly pending = new Map<string, ModelWrite>();

  constructor(private readonly queries: Queries) {}

  private flushing: Promise<void> = Promise.resolve();

  /** Stores the waiting writes; one flush at a time, so a flush returns only once every write before it is stored. */
  flush(): Promise<void> {
    const run = this.flushing.then(() => this.write());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  private async write() {
    if (!this.pending.size) return;
    const writes = [...this.pending.values()];
    this.pending.clear();
    // One statement locks several rows; one that deadlocks with a sign-out's deletes was rolled back whole and is
    // sent again.
    const applied = await orUnavailable(onDeadlockRetry(() => this.queries.oidcModels.apply(writes)));
    // Two resumes of one interaction (a double click, a replayed redirect) both read it; only the one whose
    // delete lands stores a session and code, the other fails as if it had come second.
    if (!applied) throw new errors.SessionNotFound('interaction session not found');
  }

  remember(model: string, id: string, stored: StoredModel | undefined) {
    this.rows.set(keyOf(model, id), stored);
    if (model === 'Session' && typeof stored?.payload.uid === 'string') this.sessionKeysByUid.set(stored.payload.uid, keyOf(model, id));
  }

  rememberFound(model: string, read: FoundWithRelated) {
    this.remember(model, read.found.id, read.found);
    if (read.sessionUid) {
      if (read.session) this.remember('Session', read.session.id, read.session);
      else if (!this.sessionKeysByUid.has(read.sessionUid)) this.sessionKeysByUid.set(read.sessionUid, undefined);
    }
    if (read.grantId && !this.rows.has(keyOf('Grant', read.grantId))) this.rows.set(keyOf('Grant', read.grantId), read.grant);
    if (read.accountId && !this.accounts.has(read.accountId)) this.accounts.set(read.accountId, read.account);
  }
}

const requestRows = new AsyncLocalStorage<RequestRows>();

/**
 * Runs a request with oidc-provider's rows read once and written together at its end (RequestRows). The writes are
 * stored whatever the request's outcome, as they would have been one by one; a write that fails fails the request.
 */
export function requestRowsScope(queries: Queries): Middleware {
  return (ctx, next) => {
    const unit = new RequestRows(queries);
    return requestRows.run(unit, async () => {
      try {
        await next();
      } finally {
        await unit.flush().catch((error: unknown) => {
          // What the response was to carry (a session's cookie, a redirect onward) names rows that were not stored.
          ctx.remove('set-cookie');
          ctx.remove('location');
          throw error;
        });
      }
    });
  };
}

/** An account this request already read with oidc-provider's rows: `known` false when it did not. */
export function accountReadInRequest(accountId: string): { known: false } | { known: true; user: UserRow | undefined } {
  const unit = requestRows.getStore();
  return unit?.accounts.has(accountId) ? { known: true, user: unit.accounts.get(accountId) } : { known: false };
}

/** A row this request read with its own query (an interaction beside its sign-in): oidc-provider's read is then spared. */
export function rememberReadInRequest(model: string, id: string, stored: StoredModel | undefined) {
  const unit = requestRows.getStore();
  // A row this request has changed is newer than anything read beside the adapter.
  if (unit && !unit.pending.has(keyOf(model, id))) unit.remember(model, id, stored);
}

/**
 * oidc-provider's storage on PostgreSQL. Clients come from the `clients` table (with their secret unsealed);
 * every other model lives in `oidc_model_instances`.
 */
export function createAdapterClass(queries: Queries, clients: ClientStore, clock: Clock) {
  const read = async (model: string, column: 'id' | 'uid', value: string) => {
    const unit = requestRows.getStore();
    if (!unit) {
      const stored = await orUnavailable(column === 'id' ? queries.oidcModels.find(model, value, clock.now()) : queries.oidcModels.findBy(model, column, value, clock.now()));
      return withConsumed(stored);
    }
    const known = column === 'id' ? keyOf(model, value) : model === 'Session' ? unit.sessionKeysByUid.get(value) : undefined;
    if (column === 'id' && unit.rows.has(known!)) return withConsumed(unit.rows.get(known!));
    if (column === 'uid' && model === 'Session' && unit.sessionKeysByUid.has(value)) return withConsumed(known === undefined ? undefined : unit.rows.get(known));
    await unit.flush();
    const found = await orUnavailable(queries.oidcModels.findWithRelated(model, column, value, clock.now()));
    if (found) unit.rememberFound(model, found);
    else if (column === 'id') unit.remember(model, value, undefined);
    else if (model === 'Session') unit.sessionKeysByUid.set(value, undefined);
    return withConsumed(found?.found);
  };

  return class KnexAdapter implements Adapter {
    constructor(readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? new Date(clock.now().getTime() + expiresIn * 1000) : null;
      const origin = this.name === 'Session' ? requestOrigin.getStore() : undefined;
      const device = origin && { ip: origin.ip, userAgent: origin.userAgent?.slice(0, 512) ?? null, at: clock.now() };
      const unit = requestRows.getStore();
      if (!unit) {
        await orUnavailable(queries.oidcModels.upsert(this.name, id, payload as Record<string, unknown>, expiresAt, device));
        return;
      }
      const key = keyOf(this.name, id);
      // oidc-provider never saves a consumed row again (a code, a refresh token, a pushed request).
      unit.remember(this.name, id, { payload: structuredClone(payload), consumedAt: unit.rows.get(key)?.consumedAt ?? null });
      // A copy as it is now: a change to the model after its save is not stored, as it would not have been before.
      unit.pending.set(key, { kind: 'upsert', model: this.name, id, payload: structuredClone(payload) as Record<string, unknown>, expiresAt, device });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.name === 'Client') return orUnavailable(clients.findMetadata(id));
      return read(this.name, 'id', id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return read(this.name, 'uid', uid);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      await requestRows.getStore()?.flush();
      return withConsumed(await orUnavailable(queries.oidcModels.findBy(this.name, 'user_code', userCode, clock.now())));
    }

    async consume(id: string): Promise<void> {
      const unit = requestRows.getStore();
      await unit?.flush();
      // Two requests racing with the same code or refresh token both read it unconsumed; only the one whose
      // update lands may go on, the other fails as an ordinary invalid_grant.
      const now = clock.now();
      const spent = await orUnavailable(queries.oidcModels.consume(this.name, id, now));
      if (!spent.won) throw new errors.InvalidGrant('grant request is invalid');
      const known = unit?.rows.get(keyOf(this.name, id));
      if (known) known.consumedAt = now;
      // The account as the spend found it, for oidc-provider's account check after it (a disable since counts).
      if (unit && spent.accountId) unit.accounts.set(spent.accountId, spent.account);
    }

    async destroy(id: string): Promise<void> {
      const unit = requestRows.getStore();
      if (!unit) {
        await orUnavailable(queries.oidcModels.destroy(this.name, id));
        return;
      }
      unit.remember(this.name, id, undefined);
      unit.pending.set(keyOf(this.name, id), { kind: 'destroy', model: this.name, id });
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const unit = requestRows.getStore();
      await unit?.flush();
      await orUnavailable(queries.oidcModels.revokeByGrantId(grantId));
      for (const [key, stored] of unit?.rows ?? []) if (stored?.payload.grantId === grantId) unit!.rows.set(key, undefined);
    }
  };
}

function withConsumed(stored: StoredModel | undefined) {
  if (!stored) return undefined;
  // A copy: oidc-provider changes the models it builds, and a row read once may be handed out again.
  const payload = structuredClone(stored.payload) as AdapterPayload;
  return stored.consumedAt ? { ...payload, consumed: Math.floor(stored.consumedAt.getTime() / 1000) } : payload;
}
