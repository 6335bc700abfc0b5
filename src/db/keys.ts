import type { Database } from './connect.js';

export interface KeyRow {
  kid: string;
  kind: 'signing' | 'cookie';
  alg: string | null;
  public_jwk: Record<string, unknown> | null;
  secret_sealed: string;
  created_at: Date;
  activates_at: Date;
  retired_at: Date | null;
  expires_at: Date | null;
}

export type NewKey = Pick<KeyRow, 'kid' | 'kind' | 'alg' | 'public_jwk' | 'secret_sealed' | 'activates_at'>;

export function createKeyQueries(db: Database) {
  const keys = () => db<KeyRow>('keys');
  return {
    /** Keys still published: not expired, newest first. */
    listLive: (now: Date) =>
      keys()
        .where((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now))
        .orderBy('activates_at', 'desc')
        .orderBy('kid'),
    /** Retires the current keys and adds their successors in one transaction, so no instance sees a gap. */
    replace: (retire: { kind: KeyRow['kind']; alg: string | null; expiresAt: Date }[], add: NewKey[], now: Date) =>
      db.transaction(async (trx) => {
        for (const r of retire) {
          await trx<KeyRow>('keys')
            .where({ kind: r.kind })
            .andWhere((w) => (r.alg === null ? w.whereNull('alg') : w.where({ alg: r.alg })))
            .whereNull('retired_at')
            .update({ retired_at: now, expires_at: r.expiresAt });
        }
        if (add.length) {
          await trx<KeyRow>('keys').insert(
            add.map((k) => ({ ...k, public_jwk: k.public_jwk && (JSON.stringify(k.public_jwk) as unknown as KeyRow['public_jwk']) })),
          );
        }
      }),
    purgeExpired: (now: Date) => keys().where('expires_at', '<=', now).delete(),
  };
}
