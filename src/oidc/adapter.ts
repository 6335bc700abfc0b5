import { AsyncLocalStorage } from 'node:async_hooks';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Queries } from '../db/index.js';
import { orUnavailable } from '../koa-errors.js';
import type { Clock } from '../security/clock.js';
import type { ClientStore } from './clients.js';

/**
 * Where the request being served comes from. oidc-provider hands its adapter no request, yet a session saved is a
 * session used: it is stored with this browser's address and user agent, which its owner sees on the account page.
 */
export const requestOrigin = new AsyncLocalStorage<{ ip: string; userAgent: string | null }>();

/**
 * oidc-provider's storage on PostgreSQL. Clients come from the `clients` table (with their secret unsealed);
 * every other model lives in `oidc_model_instances`.
 */
export function createAdapterClass(queries: Queries, clients: ClientStore, clock: Clock) {
  return class KnexAdapter implements Adapter {
    constructor(readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? new Date(clock.now().getTime() + expiresIn * 1000) : null;
      const origin = this.name === 'Session' ? requestOrigin.getStore() : undefined;
      const device = origin && { ip: origin.ip, userAgent: origin.userAgent?.slice(0, 512) ?? null, at: clock.now() };
      await orUnavailable(queries.oidcModels.upsert(this.name, id, payload as Record<string, unknown>, expiresAt, device));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.name === 'Client') return orUnavailable(clients.findMetadata(id));
      return withConsumed(await orUnavailable(queries.oidcModels.find(this.name, id, clock.now())));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return withConsumed(await orUnavailable(queries.oidcModels.findBy(this.name, 'uid', uid, clock.now())));
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return withConsumed(await orUnavailable(queries.oidcModels.findBy(this.name, 'user_code', userCode, clock.now())));
    }

    async consume(id: string): Promise<void> {
      // Two requests racing with the same code or refresh token both read it unconsumed; only the one whose
      // update lands may go on, the other fails as an ordinary invalid_grant.
      const won = await orUnavailable(queries.oidcModels.consume(this.name, id, clock.now()));
      if (!won) throw new errors.InvalidGrant('grant request is invalid');
    }

    async destroy(id: string): Promise<void> {
      await orUnavailable(queries.oidcModels.destroy(this.name, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await orUnavailable(queries.oidcModels.revokeByGrantId(grantId));
    }
  };
}

function withConsumed(stored: { payload: Record<string, unknown>; consumedAt: Date | null } | undefined) {
  if (!stored) return undefined;
  const payload = stored.payload as AdapterPayload;
  return stored.consumedAt ? { ...payload, consumed: Math.floor(stored.consumedAt.getTime() / 1000) } : payload;
}
