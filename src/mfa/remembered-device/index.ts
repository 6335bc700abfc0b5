import crypto from 'node:crypto';
import type { SettingsStore } from '../../config/settings.js';
import type { Queries } from '../../db/index.js';
import type { RememberedDeviceRow } from '../../db/remembered-devices.js';
import type { UserRow } from '../../db/users.js';
import type { Clock } from '../../security/clock.js';
import type { SecretBox } from '../../security/secret-box.js';
import type { ThrottleReservation } from '../../security/throttle.js';
import type { Actor } from '../service.js';
import { type DevicePublicKey, publicKeySchema, signedPayload, thumbprintOf, verifySignature } from './signature.js';

export { publicKeySchema, signatureSchema } from './signature.js';

/**
 * What a remembered browser proves: the password, and possession of a key that browser holds (RFC 8176 `pop`). Not
 * `hwk`/`swk`: here those mean a passkey, which the browser binds to our origin, and only they earn
 * `urn:latchkey:acr:phr`. This key is used by our page's script, so anything that runs script in our origin could
 * use it: it is a second factor (`mfa`), never a phishing-resistant one.
 */
export const REMEMBERED_DEVICE_AMR = ['pwd', 'pop', 'mfa'] as const;

/** A page has this long to answer its challenge (it does so as soon as it loads). */
export const CHALLENGE_TTL_SECONDS = 120;

export interface RememberedDeviceDeps {
  queries: Pick<Queries, 'rememberedDevices' | 'audit'>;
  box: SecretBox;
  clock: Clock;
  settings: SettingsStore;
  issuer: string;
  /** One second-factor guess against the account's limits, taken before the signature is checked. */
  reserveAttempt(userId: string): Promise<ThrottleReservation>;
}

/** What a sign-in's second step is, as far as a remembered browser is concerned. */
export interface SignInView {
  interactionUid: string;
  /** Only a door PIN answers it: a remembered browser (multi-factor) must not raise it to `mfa`. */
  pinAccepted: boolean;
  /** A client, `acr_values` or admin role asked for a passkey: a remembered browser never answers. */
  phishingResistant: boolean;
  /** The client said "never remember devices". */
  clientForbids: boolean;
}

export type VerifyFailure = 'not_offered' | 'no_challenge' | 'unknown_device' | 'wrong_signature' | 'throttled';

const sealContext = (deviceId: string) => `remembered-device:${deviceId}`;

/**
 * Forgets every browser a user had remembered: a password change, an MFA reset, an admin's "sign out everywhere";
 * but those in `keep` when the user signs out their other sessions from a browser it remembers.
 */
export async function forgetAllDevices(deps: { queries: Pick<Queries, 'rememberedDevices' | 'audit'> }, userId: string, actor: Partial<Actor>, reason: string, keep: readonly string[] = []) {
  const count = await deps.queries.rememberedDevices.removeAll(userId, keep);
  if (count > 0) {
    await deps.queries.audit.insert({ action: 'mfa.remembered_devices_forgotten', outcome: 'success', subjectId: userId, actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, details: { count, reason } });
  }
  return count;
}

export function createRememberedDevices(deps: RememberedDeviceDeps) {
  const { queries, box, clock, settings } = deps;
  const devices = queries.rememberedDevices;
  const audit = (action: string, outcome: 'success' | 'failure' | 'denied', userId: string, actor: Partial<Actor>, details: Record<string, unknown>) =>
    queries.audit.insert({ action, outcome, subjectId: userId, actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent, clientId: actor.clientId, details });

  /** For how many days this sign-in may remember its browser: 0 when it may not (and no remembered one answers it). */
  async function rememberDays(user: UserRow, signIn: SignInView): Promise<number> {
    if (signIn.pinAccepted || signIn.phishingResistant || signIn.clientForbids) return 0;
    const [remember, adminSetting] = await Promise.all([settings.read('remember-device'), settings.read('admin-phishing-resistant')]);
    // An admin who must use a passkey for admin rights is not offered a lesser shortcut anywhere.
    if (adminSetting.value.required && user.roles.length > 0) return 0;
    return remember.value.days;
  }

  // Lowering the setting shortens what was remembered before: a device counts for the days allowed today at most.
  const rememberedAfter = (now: Date, days: number) => new Date(now.getTime() - days * 86_400_000);

  const openKey = (device: RememberedDeviceRow): DevicePublicKey | undefined => {
    try {
      const parsed = publicKeySchema.safeParse(JSON.parse(box.open(device.public_key_sealed, sealContext(device.id)).toString('utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  };

  return {
    rememberDays,

    /**
     * After a second factor passed: records the public key the page made, for the days the setting allows. Returns
     * what the browser's cookie should name, or undefined when this sign-in may not remember its browser.
     */
    async remember(user: UserRow, signIn: SignInView, publicKey: DevicePublicKey, label: string, actor: Actor) {
      const days = await rememberDays(user, signIn);
      if (days === 0) return undefined;
      const id = crypto.randomUUID();
      const now = clock.now();
      await devices.insert({
        id,
        user_id: user.id,
        public_key_sealed: box.seal(JSON.stringify(publicKey), sealContext(id)),
        key_thumbprint: await thumbprintOf(publicKey),
        label,
        created_at: now,
        last_used_at: null,
        expires_at: new Date(now.getTime() + days * 86_400_000),
      });
      await audit('mfa.device_remembered', 'success', user.id, actor, { device: id, days, label });
      return { id, days };
    },

    /**
     * A fresh challenge for the first of the browser's remembered devices (`cookieIds`) that is this user's and still
     * counts, bound to this sign-in and that device. The page signs `payload` with the key it finds under `keyId`.
     */
    async offer(user: UserRow, signIn: SignInView, cookieIds: readonly string[]) {
      const days = cookieIds.length === 0 ? 0 : await rememberDays(user, signIn);
      if (days === 0) return undefined;
      const now = clock.now();
      const device = await devices.findLive(user.id, cookieIds, now, rememberedAfter(now, days));
      if (!device) return undefined;
      const challenge = crypto.randomBytes(32).toString('base64url');
      await devices.putChallenge({ interaction_uid: signIn.interactionUid, user_id: user.id, device_id: device.id, challenge, expires_at: new Date(now.getTime() + CHALLENGE_TTL_SECONDS * 1000) });
      return { device: device.id, keyId: device.key_thumbprint, payload: signedPayload(deps.issuer, signIn.interactionUid, device.id, challenge) };
    },

    /**
     * The page's answer. The sign-in's challenge is taken first, in one statement, so that of any number of
     * concurrent or replayed answers only one is ever checked (and any answer, right or wrong, uses it up); then it
     * must name this device, the device must be this user's, unexpired and not forgotten, and the signature must be
     * over this sign-in's payload. Every failure reads the same to the
     * user; the audit log has the reason.
     */
    async verify(user: UserRow, signIn: SignInView, answer: { device: string; signature: string }, actor: Actor): Promise<{ ok: true; amr: string[] } | { ok: false; reason: VerifyFailure; retryAfterSeconds?: number }> {
      const fail = async (reason: VerifyFailure, retryAfterSeconds?: number) => {
        await audit('mfa.remembered_device', reason === 'throttled' ? 'denied' : 'failure', user.id, actor, { device: answer.device, reason });
        return { ok: false as const, reason, retryAfterSeconds };
      };
      const days = await rememberDays(user, signIn);
      if (days === 0) return fail('not_offered');
      const reservation = await deps.reserveAttempt(user.id);
      if (!reservation.allowed) return fail('throttled', reservation.retryAfterSeconds);
      const now = clock.now();
      const challenge = await devices.takeChallenge(signIn.interactionUid, user.id, now);
      if (!challenge || challenge.device_id !== answer.device) return fail('no_challenge');
      const device = await devices.findLive(user.id, [answer.device], now, rememberedAfter(now, days));
      const key = device && openKey(device);
      if (!device || !key) return fail('unknown_device');
      if (!verifySignature(key, signedPayload(deps.issuer, signIn.interactionUid, device.id, challenge.challenge), answer.signature)) return fail('wrong_signature');
      await reservation.succeeded();
      await devices.touch(device.id, now);
      await audit('mfa.remembered_device', 'success', user.id, actor, { device: device.id });
      return { ok: true, amr: [...REMEMBERED_DEVICE_AMR] };
    },

    /** The user's remembered browsers that still count, for their account page. */
    async list(userId: string) {
      const now = clock.now();
      const days = (await settings.read('remember-device')).value.days;
      const rows = await devices.listLive(userId, now, rememberedAfter(now, days));
      // Shown with the end the setting gives them now, when that comes first.
      return rows.map((row) => ({ ...row, expires_at: new Date(Math.min(row.expires_at.getTime(), row.created_at.getTime() + days * 86_400_000)) }));
    },

    async forget(user: UserRow, deviceId: string, actor: Actor) {
      if (!(await devices.remove(user.id, deviceId))) return false;
      await audit('mfa.remembered_device_forgotten', 'success', user.id, actor, { device: deviceId });
      return true;
    },
    forgetAll: (user: UserRow, actor: Actor) => forgetAllDevices(deps, user.id, actor, 'user'),
  };
}

export type RememberedDevices = ReturnType<typeof createRememberedDevices>;
