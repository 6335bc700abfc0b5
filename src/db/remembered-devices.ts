import type { Database } from './connect.js';

/** A browser remembered for one user: the public half of the key it holds, sealed to this row. */
export interface RememberedDeviceRow {
  id: string;
  user_id: string;
  public_key_sealed: string;
  key_thumbprint: string;
  label: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date;
}

export interface RememberedDeviceChallengeRow {
  interaction_uid: string;
  user_id: string;
  device_id: string;
  challenge: string;
  expires_at: Date;
}

export function createRememberedDeviceQueries(db: Database) {
  const devices = () => db<RememberedDeviceRow>('remembered_devices');
  const challenges = () => db<RememberedDeviceChallengeRow>('remembered_device_challenges');
  return {
    insert: (row: RememberedDeviceRow) => devices().insert(row),
    /**
     * The user's devices that still count, most recently used first: unexpired, and remembered after
     * `rememberedAfter` (now less the days the setting allows today, which may be fewer than when they were remembered).
     */
    listLive: (userId: string, now: Date, rememberedAfter: Date) =>
      devices().where({ user_id: userId }).where('expires_at', '>', now).where('created_at', '>', rememberedAfter).orderByRaw('coalesce(last_used_at, created_at) desc'),
    /** One of `ids` (what the browser's cookie names) that is this user's and still counts, as listLive. */
    findLive: (userId: string, ids: readonly string[], now: Date, rememberedAfter: Date) =>
      devices().where({ user_id: userId }).whereIn('id', ids).where('expires_at', '>', now).where('created_at', '>', rememberedAfter).orderByRaw('coalesce(last_used_at, created_at) desc').first(),
    touch: (id: string, now: Date) => devices().where({ id }).update({ last_used_at: now }),
    remove: async (userId: string, id: string) => (await devices().where({ user_id: userId, id }).delete()) > 0,
    /** Every device of the user but those in `keep` (the browser asking, when it signs out the others). */
    removeAll: (userId: string, keep: readonly string[] = []) => devices().where({ user_id: userId }).whereNotIn('id', keep).delete(),
    purgeExpired: async (now: Date) => {
      await challenges().where('expires_at', '<=', now).delete();
      await devices().where('expires_at', '<=', now).delete();
    },
    /** A fresh challenge replaces the sign-in's earlier one: only the latest page can answer. */
    putChallenge: (row: RememberedDeviceChallengeRow) => challenges().insert(row).onConflict('interaction_uid').merge(),
    /**
     * Takes the sign-in's challenge for this user if it is still fresh, in one statement: of any number of concurrent
     * answers, one gets it, whatever it turns out to be worth.
     */
    takeChallenge: async (interactionUid: string, userId: string, now: Date) =>
      (await challenges()
        .where({ interaction_uid: interactionUid, user_id: userId })
        .where('expires_at', '>', now)
        .delete()
        .returning('*'))[0] as RememberedDeviceChallengeRow | undefined,
  };
}
