import type { Middleware } from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { KeyMaterial } from './keys.js';

/**
 * oidc-provider reads its keys once, at construction. To rotate keys without a restart, each instance checks the
 * key table now and then and swaps in a provider built on the new set; requests already inside the old one finish
 * there. All state lives in the database, so the swap loses nothing.
 */
export function createProviderHolder(build: (keys: KeyMaterial) => Provider, initial: KeyMaterial) {
  let fingerprint = initial.fingerprint;
  let provider = build(initial);
  let mounted: Middleware = mount(provider);
  return {
    get provider(): Provider {
      return provider;
    },
    middleware: ((ctx, next) => mounted(ctx, next)) as Middleware,
    /** Rebuilds when the keys (or which of them signs) changed; returns whether it did. */
    refresh(keys: KeyMaterial): boolean {
      if (keys.fingerprint === fingerprint) return false;
      provider = build(keys);
      mounted = mount(provider);
      fingerprint = keys.fingerprint;
      return true;
    },
  };
}

export type ProviderHolder = ReturnType<typeof createProviderHolder>;
