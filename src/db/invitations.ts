import type { Database } from './connect.js';

export interface InvitationRow {
  token_hash: string;
  user_id: string;
  invited_by: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

export function createInvitationQueries(db: Database) {
  const invitations = () => db<InvitationRow>('invitations');
  return {
    insert: (row: Pick<InvitationRow, 'token_hash' | 'user_id' | 'invited_by' | 'expires_at'>) => invitations().insert(row),
    findLive: (tokenHash: string, now: Date) =>
      invitations().where({ token_hash: tokenHash }).whereNull('used_at').where('expires_at', '>', now).first(),
    /** Marks it used only if nobody used it first: an invitation link works once. */
    use: async (tokenHash: string, now: Date) =>
      (await invitations().where({ token_hash: tokenHash }).whereNull('used_at').where('expires_at', '>', now).update({ used_at: now })) === 1,
  };
}
