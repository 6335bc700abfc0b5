import type { Database } from './connect.js';
import type { FactorRow } from './factors.js';

/** What WebAuthn keeps of one passkey beside its user_factors row (which holds the sealed public key). */
export interface WebAuthnCredentialRow {
  factor_id: string;
  user_id: string;
  credential_id: string;
  sign_count: number;
  transports: string[];
  backup_eligible: boolean;
  backed_up: boolean;
  aaguid: string | null;
}

export type PasskeyRow = FactorRow & Omit<WebAuthnCredentialRow, 'factor_id'>;

class DuplicateCredential extends Error {}

const counted = (row: PasskeyRow | undefined) => row && { ...row, sign_count: Number(row.sign_count) };

export function createPasskeyQueries(db: Database) {
  const joined = () =>
    db('user_factors as f')
      .join('webauthn_credentials as c', 'c.factor_id', 'f.id')
      .whereNotNull('f.confirmed_at')
      .select('f.*', 'c.credential_id', 'c.sign_count', 'c.transports', 'c.backup_eligible', 'c.backed_up', 'c.aaguid');
  return {
    /** The passkey a passwordless sign-in names: found by its credential id alone. */
    findByCredentialId: async (credentialId: string) => counted((await joined().where('c.credential_id', credentialId).first()) as PasskeyRow | undefined),
    listForUser: async (userId: string) => ((await joined().where('f.user_id', userId).orderBy('f.created_at')) as PasskeyRow[]).map((r) => counted(r)!),
    /**
     * Turns a pending enrolment into a passkey, once: the row is confirmed and its credential recorded in one
     * transaction. False when the enrolment was already confirmed or has expired.
     */
    confirm: async (
      pending: { id: string; userId: string; sealedKey: string; destination: 'synced' | 'device_bound' },
      credential: Omit<WebAuthnCredentialRow, 'factor_id' | 'user_id'>,
      now: Date,
    ) => {
      try {
        return await db.transaction(async (trx) => {
          const confirmed = await trx('user_factors')
            .where({ id: pending.id, user_id: pending.userId, factor: 'passkey' })
            .whereNull('confirmed_at')
            .where('pending_expires_at', '>', now)
            .update({ confirmed_at: now, pending_expires_at: null, secret_sealed: pending.sealedKey, destination: pending.destination, last_used_at: now });
          if (confirmed !== 1) return false;
          const inserted = await trx('webauthn_credentials')
            .insert({ ...credential, transports: JSON.stringify(credential.transports), factor_id: pending.id, user_id: pending.userId })
            .onConflict('credential_id')
            .ignore()
            .returning('factor_id');
          // The same credential registered twice (two tabs racing): the second enrolment is undone.
          if (inserted.length !== 1) throw new DuplicateCredential();
          return true;
        });
      } catch (error) {
        if (error instanceof DuplicateCredential) return false;
        throw error;
      }
    },
    /**
     * Records a use. The signature counter only moves forward: of two requests racing with responses of the same
     * count, one wins. Authenticators that keep no counter (synced passkeys) report 0 every time; for them the
     * single-use challenge is what stops a replay.
     */
    recordUse: async (factorId: string, from: number, to: number, backedUp: boolean, now: Date) =>
      db.transaction(async (trx) => {
        const moved = await trx('webauthn_credentials')
          .where({ factor_id: factorId, sign_count: from })
          .update({ sign_count: to, backed_up: backedUp });
        if (moved !== 1) return false;
        await trx('user_factors').where({ id: factorId }).update({ last_used_at: now });
        return true;
      }),
    challenges: {
      /** A fresh challenge replaces the binding's earlier one: only the latest can be answered. */
      put: (binding: string, challenge: string, expiresAt: Date) =>
        db('webauthn_challenges').insert({ binding, challenge, expires_at: expiresAt }).onConflict('binding').merge(),
      /** Takes the challenge if it is the binding's current one and still fresh: true for one request only. */
      take: async (binding: string, challenge: string, now: Date) =>
        (await db('webauthn_challenges').where({ binding, challenge }).where('expires_at', '>', now).delete()) === 1,
      /**
       * Records a challenge that was never stored (the login page's sealed one) as answered: true for the first answer
       * only. The record lives as long as the challenge could still be answered, under a binding no issued challenge
       * uses, and goes with the expired ones.
       */
      spend: async (binding: string, challenge: string, expiresAt: Date) =>
        (await db('webauthn_challenges').insert({ binding: `spent:${binding}:${challenge}`, challenge, expires_at: expiresAt }).onConflict('binding').ignore().returning('binding')).length === 1,
      purgeExpired: (now: Date) => db('webauthn_challenges').where('expires_at', '<=', now).delete(),
    },
  };
}
