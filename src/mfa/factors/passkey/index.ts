import crypto from 'node:crypto';
import type { FactorRow } from '../../../db/factors.js';
import type { PasskeyRow } from '../../../db/passkeys.js';
import type { FactorDeps } from '../../deps.js';
import type { Factor, Method, SignInContext } from '../../factor.js';
import { assertionOptions, CHALLENGE_SECONDS, parseAssertion, registrationOptions, type RelyingParty, verifyAssertion, verifyRegistration } from './webauthn.js';

const PENDING_SECONDS = 15 * 60;

/**
 * Passkeys (WebAuthn Level 3): a key pair made by the user's authenticator for our RP ID alone, so a look-alike
 * site can neither use nor relay it. As a second factor after the password; and, when the authenticator verified its
 * user (PIN or biometric on the device), as the whole sign-in: possession and that verification make two factors.
 */

/** How long a spent login-page challenge is remembered past its expiry: more than instances' clocks disagree. */
const SPENT_MARGIN_MS = 5 * 60 * 1000;
export function createPasskeyFactor(deps: FactorDeps, rp: RelyingParty): Factor {
  const { queries, box, clock } = deps;
  // The public key is sealed to its row and credential like a TOTP seed: a row planted by database write alone,
  // without the master key, does not verify.
  const sealContext = (row: Pick<FactorRow, 'id' | 'user_id'>, credentialId: string) => `passkey:${row.user_id}:${row.id}:${credentialId}`;
  const signInBinding = (context: SignInContext) => `sign-in:${context.interactionUid}`;
  const enrolBinding = (pendingId: string) => `enrol:${pendingId}`;
  const issue = async <O extends { challenge: string }>(binding: string, options: O) => {
    await queries.passkeys.challenges.put(binding, options.challenge, new Date(clock.now().getTime() + CHALLENGE_SECONDS * 1000));
    return options;
  };
  const take = (binding: string) => (challenge: string) => queries.passkeys.challenges.take(binding, challenge, clock.now());
  /**
   * The login page's challenge is written nowhere: it is sealed (AES-GCM under the master key, the sign-in's binding
   * as associated data) around its expiry and a random nonce, so rendering the page costs no write. Only this sign-in
   * can answer it (another binding does not open it), only until it expires, and only once: the first answer records
   * it as spent, and a replay finds that record (an insert that fails on conflict).
   */
  const sealedContext = (context: SignInContext) => `passkey-challenge:${signInBinding(context)}`;
  const issueSealed = async (context: SignInContext) => {
    const expiresAt = clock.now().getTime() + CHALLENGE_SECONDS * 1000;
    const payload = Buffer.alloc(8 + 16);
    payload.writeBigUInt64BE(BigInt(expiresAt));
    crypto.randomFillSync(payload, 8);
    const [, raw] = box.seal(payload, sealedContext(context)).split('.');
    return assertionOptions(rp, undefined, Buffer.from(raw!, 'base64url'));
  };
  const takeSealed = (context: SignInContext) => async (challenge: string) => {
    // The spent record is keyed by the challenge's text: only the one spelling we issued answers. base64url decoding
    // is lenient (the last character's unused bits, padding, spaces; the sealed form's split at a dot), so other
    // spellings of the same sealed bytes would each find no record and answer again.
    if (typeof challenge !== 'string' || Buffer.from(challenge, 'base64url').toString('base64url') !== challenge) return false;
    let payload: Buffer;
    try {
      payload = box.open(`v1.${challenge}`, sealedContext(context));
    } catch {
      return false;
    }
    if (payload.length !== 24) return false;
    const expiresAt = new Date(Number(payload.readBigUInt64BE(0)));
    // The spent record outlives the challenge by a margin: an instance whose clock runs behind the purging one's must
    // still find it for as long as it would take the challenge.
    return expiresAt > clock.now() && (await queries.passkeys.challenges.spend(signInBinding(context), challenge, new Date(expiresAt.getTime() + SPENT_MARGIN_MS)));
  };
  const publicKeyOf = (passkey: PasskeyRow) => {
    try {
      return passkey.secret_sealed ? box.open(passkey.secret_sealed, sealContext(passkey, passkey.credential_id)) : undefined;
    } catch {
      return undefined;
    }
  };
  const allowed = (passkeys: PasskeyRow[]) => passkeys.map((p) => ({ credentialId: p.credential_id, transports: p.transports }));

  const describe = (record: FactorRow): Method => ({
    id: record.id,
    factor: 'passkey',
    label: record.label || 'Passkey',
    detail: record.destination === 'synced' ? 'synced' : 'device_bound',
    record,
  });

  return {
    id: 'passkey',
    amr: 'hwk',
    category: 'possession',
    phishingResistant: true,
    describe,
    ceremony: {
      async options(methods, context) {
        const userId = methods[0]?.record.user_id;
        const passkeys = userId ? await queries.passkeys.listForUser(userId) : [];
        return issue(signInBinding(context), await assertionOptions(rp, allowed(passkeys)));
      },
      passwordless: {
        options: issueSealed,
        async identify(response) {
          const parsed = parseAssertion(response);
          const passkey = parsed && (await queries.passkeys.findByCredentialId(parsed.id));
          return passkey && describe(passkey);
        },
      },
    },
    enrol: {
      async start(user, input) {
        const label = typeof input.label === 'string' && input.label.trim() ? input.label.trim().slice(0, 60) : 'Passkey';
        const row = await queries.factors.insertPending({
          id: crypto.randomUUID(),
          user_id: user.id,
          factor: 'passkey',
          label,
          secret_sealed: null,
          destination: null,
          pending_expires_at: new Date(clock.now().getTime() + PENDING_SECONDS * 1000),
        });
        return { pendingId: row.id };
      },
      async display(user, pending) {
        // The user's other passkeys are excluded: one authenticator is not registered twice.
        const options = await registrationOptions(rp, user, allowed(await queries.passkeys.listForUser(user.id)));
        return { ceremony: await issue(enrolBinding(pending.id), options) };
      },
      async confirm(user, pendingId, code) {
        const now = clock.now();
        const pending = await queries.factors.findPending(user.id, pendingId, now);
        if (!pending || pending.factor !== 'passkey') return { ok: false, reason: 'not_found' };
        const made = await verifyRegistration(code, { rp, take: take(enrolBinding(pendingId)) });
        if (!made.ok) return made;
        const confirmed = await queries.passkeys.confirm(
          {
            id: pendingId,
            userId: user.id,
            sealedKey: box.seal(Buffer.from(made.publicKey), sealContext(pending, made.credentialId)),
            destination: made.backupEligible ? 'synced' : 'device_bound',
          },
          { credential_id: made.credentialId, sign_count: made.signCount, transports: made.transports, backup_eligible: made.backupEligible, backed_up: made.backedUp, aaguid: made.aaguid },
          now,
        );
        if (!confirmed) return { ok: false, reason: 'replayed' };
        return { ok: true, method: describe((await queries.factors.findConfirmed(user.id, pendingId))!) };
      },
    },
    async verify(method, code, context) {
      const response = parseAssertion(code);
      if (!response) return { ok: false, reason: 'malformed' };
      // Any of the user's passkeys answers (the browser lets the user pick); never another user's.
      const passkey = await queries.passkeys.findByCredentialId(response.id);
      const publicKey = passkey && passkey.user_id === method.record.user_id ? publicKeyOf(passkey) : undefined;
      if (!passkey || !publicKey) return { ok: false, reason: 'unknown_credential' };
      // The user handle, where the authenticator returns one, must name the credential's owner.
      const handle = response.response.userHandle;
      if (handle && handle !== Buffer.from(passkey.user_id).toString('base64url')) return { ok: false, reason: 'unknown_credential' };
      const outcome = await verifyAssertion(
        response,
        { credentialId: passkey.credential_id, publicKey, signCount: passkey.sign_count, backupEligible: passkey.backup_eligible },
        { rp, take: context.passwordless ? takeSealed(context) : take(signInBinding(context)), requireUserVerification: context.passwordless === true },
      );
      if (!outcome.ok) return outcome;
      if (!(await queries.passkeys.recordUse(passkey.id, passkey.sign_count, outcome.signCount, outcome.backedUp, clock.now()))) return { ok: false, reason: 'replayed' };
      // RFC 8176: a synced key (backup eligible) is a software-secured key, a device-bound one a hardware key;
      // `user` only where the authenticator verified its user.
      return { ok: true, amr: [passkey.backup_eligible ? 'swk' : 'hwk', ...(outcome.userVerified ? ['user'] : [])] };
    },
  };
}
