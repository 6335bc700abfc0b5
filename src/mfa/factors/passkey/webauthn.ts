import crypto from 'node:crypto';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { z } from 'zod';
import type { FailureReason } from '../../factor.js';

/** Who we are to an authenticator: derived from the issuer, so a passkey made for any other site never verifies. */
// SimpleWebAuthn loads with the first passkey request, not at start: an idle instance does not carry it.
let library: Promise<typeof import('@simplewebauthn/server')> | undefined;
const webauthn = () => (library ??= import('@simplewebauthn/server'));

export interface RelyingParty {
  id: string;
  origin: string;
  name: string;
}

export function relyingPartyFor(issuer: string, name: string): RelyingParty {
  const url = new URL(issuer);
  return { id: url.hostname, origin: url.origin, name };
}

/** Challenges live five minutes: long enough to find one's security key, short enough not to linger. */
export const CHALLENGE_SECONDS = 5 * 60;
// ES256 and RS256: what every platform authenticator and security key offers (Ed25519 is rare and optional).
const ALGORITHMS = [-7, -257];

const b64url = z.string().regex(/^[A-Za-z0-9_-]*$/, { message: 'expected base64url' });
/** What every WebAuthn response names: the credential it comes from. */
const credentialFields = {
  id: b64url.min(1).max(1400),
  rawId: b64url.min(1).max(1400),
  type: z.literal('public-key'),
};
const assertionSchema = z.object({
  ...credentialFields,
  response: z.object({
    clientDataJSON: b64url.min(1).max(4096),
    authenticatorData: b64url.min(50).max(4096),
    signature: b64url.min(1).max(1024),
    userHandle: b64url.max(100).optional(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
});
const registrationSchema = z.object({
  ...credentialFields,
  response: z.object({
    clientDataJSON: b64url.min(1).max(4096),
    attestationObject: b64url.min(1).max(16384),
    authenticatorData: b64url.max(16384).optional(),
    transports: z.array(z.string().max(32)).max(10).optional(),
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: b64url.max(4096).optional(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
});
const clientDataSchema = z.object({ type: z.string(), challenge: z.string(), origin: z.string() });

/** A response as the browser posted it (JSON text): parsed with bounds on every field, or undefined. */
export function parseAssertion(text: string): AuthenticationResponseJSON | undefined {
  try {
    const parsed = assertionSchema.safeParse(JSON.parse(text));
    return parsed.success ? (parsed.data as AuthenticationResponseJSON) : undefined;
  } catch {
    return undefined;
  }
}

function parseRegistration(text: string): RegistrationResponseJSON | undefined {
  try {
    const parsed = registrationSchema.safeParse(JSON.parse(text));
    return parsed.success ? (parsed.data as RegistrationResponseJSON) : undefined;
  } catch {
    return undefined;
  }
}

function clientDataOf(encoded: string) {
  try {
    const parsed = clientDataSchema.safeParse(JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The authenticator data fields we decide on (WebAuthn §6.1): RP ID hash, flags, signature counter. */
function authenticatorDataOf(encoded: string) {
  const data = Buffer.from(encoded, 'base64url');
  if (data.length < 37) return undefined;
  const flags = data[32]!;
  return {
    rpIdHash: data.subarray(0, 32),
    userPresent: (flags & 0x01) !== 0,
    userVerified: (flags & 0x04) !== 0,
    backupEligible: (flags & 0x08) !== 0,
    backedUp: (flags & 0x10) !== 0,
    signCount: data.readUInt32BE(33),
  };
}

const rpIdHash = (rp: RelyingParty) => crypto.createHash('sha256').update(rp.id).digest();

/**
 * Takes the stored challenge the response claims to answer. The comparison is exact (the database compares the
 * strings), and taking it is what makes the response single use: a replay finds nothing left to answer.
 */
export type TakeChallenge = (challenge: string) => Promise<boolean>;

/** The checks both ceremonies share, in the order an attacker's response would fail them. */
async function checkClientData(encoded: string, type: string, rp: RelyingParty, take: TakeChallenge): Promise<FailureReason | undefined> {
  const clientData = clientDataOf(encoded);
  if (!clientData || clientData.type !== type) return 'malformed';
  // Taken before anything else is looked at: even a response from a look-alike origin burns the challenge it relays.
  if (!(await take(clientData.challenge))) return 'wrong_challenge';
  if (clientData.origin !== rp.origin) return 'wrong_origin';
  return undefined;
}

export interface StoredCredential {
  credentialId: string;
  publicKey: Uint8Array;
  signCount: number;
  backupEligible: boolean;
}

export type AssertionOutcome =
  | { ok: true; signCount: number; userVerified: boolean; backupEligible: boolean; backedUp: boolean }
  | { ok: false; reason: FailureReason };

/**
 * Verifies an assertion (navigator.credentials.get) for one stored credential. Every refusal says why, for the
 * audit log; the user hears one message whatever it is.
 */
export async function verifyAssertion(
  response: AuthenticationResponseJSON,
  credential: StoredCredential,
  expected: { rp: RelyingParty; take: TakeChallenge; requireUserVerification: boolean },
): Promise<AssertionOutcome> {
  const { rp } = expected;
  if (response.id !== credential.credentialId || response.rawId !== response.id) return { ok: false, reason: 'unknown_credential' };
  const clientDataFailure = await checkClientData(response.response.clientDataJSON, 'webauthn.get', rp, expected.take);
  if (clientDataFailure) return { ok: false, reason: clientDataFailure };
  const data = authenticatorDataOf(response.response.authenticatorData);
  if (!data || !data.userPresent) return { ok: false, reason: 'malformed' };
  if (!crypto.timingSafeEqual(data.rpIdHash, rpIdHash(rp))) return { ok: false, reason: 'wrong_rp_id' };
  if (expected.requireUserVerification && !data.userVerified) return { ok: false, reason: 'no_user_verification' };
  // Backup eligibility is fixed when the credential is made (WebAuthn §6.1.3): a change means another authenticator.
  if (data.backupEligible !== credential.backupEligible) return { ok: false, reason: 'wrong_code' };

  let verified = false;
  try {
    // The challenge was taken above; the counter is judged below, only once the signature holds.
    const result = await (await webauthn()).verifyAuthenticationResponse({
      response,
      expectedChallenge: () => true,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      credential: { id: credential.credentialId, publicKey: new Uint8Array(credential.publicKey), counter: 0 },
      requireUserVerification: expected.requireUserVerification,
    });
    verified = result.verified;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (!verified) return { ok: false, reason: 'wrong_code' };
  // A counter that does not move forward is a sign of a cloned authenticator (WebAuthn §6.1.1). Authenticators
  // that keep none report 0 every time.
  if ((data.signCount > 0 || credential.signCount > 0) && data.signCount <= credential.signCount) return { ok: false, reason: 'counter_regressed' };
  return { ok: true, signCount: data.signCount, userVerified: data.userVerified, backupEligible: data.backupEligible, backedUp: data.backedUp };
}

export type RegistrationOutcome =
  | {
      ok: true;
      credentialId: string;
      publicKey: Uint8Array;
      signCount: number;
      transports: string[];
      backupEligible: boolean;
      backedUp: boolean;
      aaguid: string;
    }
  | { ok: false; reason: FailureReason };

/** Verifies a new credential (navigator.credentials.create). Attestation is `none`: we trust no vendor list. */
export async function verifyRegistration(text: string, expected: { rp: RelyingParty; take: TakeChallenge }): Promise<RegistrationOutcome> {
  const response = parseRegistration(text);
  if (!response) return { ok: false, reason: 'malformed' };
  const clientDataFailure = await checkClientData(response.response.clientDataJSON, 'webauthn.create', expected.rp, expected.take);
  if (clientDataFailure) return { ok: false, reason: clientDataFailure };
  try {
    const result = await (await webauthn()).verifyRegistrationResponse({
      response,
      expectedChallenge: () => true,
      expectedOrigin: expected.rp.origin,
      expectedRPID: expected.rp.id,
      requireUserVerification: false,
      supportedAlgorithmIDs: ALGORITHMS,
    });
    if (!result.verified) return { ok: false, reason: 'wrong_code' };
    const info = result.registrationInfo;
    return {
      ok: true,
      credentialId: info.credential.id,
      publicKey: info.credential.publicKey,
      signCount: info.credential.counter,
      transports: response.response.transports ?? [],
      backupEligible: info.credentialDeviceType === 'multiDevice',
      backedUp: info.credentialBackedUp,
      aaguid: info.aaguid,
    };
  } catch (error) {
    return { ok: false, reason: /RP ID/i.test((error as Error).message) ? 'wrong_rp_id' : 'malformed' };
  }
}

// 32 random bytes; the options carry them base64url-encoded, which is the string the client data echoes back.
const newChallenge = () => new Uint8Array(crypto.randomBytes(32));

export async function registrationOptions(
  rp: RelyingParty,
  user: { id: string; email: string },
  exclude: Array<{ credentialId: string; transports: string[] }>,
) {
  return (await webauthn()).generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user.email,
    userDisplayName: user.email,
    // The user handle is our user's random id: nothing personal, and the same for every passkey of theirs.
    userID: new TextEncoder().encode(user.id),
    challenge: newChallenge(),
    timeout: CHALLENGE_SECONDS * 1000,
    attestationType: 'none',
    excludeCredentials: exclude.map((c) => ({ id: c.credentialId, transports: c.transports })),
    // Discoverable where the authenticator can (passwordless needs it); user verification where it can (a key
    // without it still serves as a second factor).
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    supportedAlgorithmIDs: ALGORITHMS,
  });
}

/** `challenge`: one the caller made (the login page's sealed one); a fresh random one otherwise. */
export async function assertionOptions(rp: RelyingParty, allow: Array<{ credentialId: string; transports: string[] }> | undefined, challenge: Uint8Array = newChallenge()) {
  return (await webauthn()).generateAuthenticationOptions({
    rpID: rp.id,
    challenge: new Uint8Array(challenge),
    timeout: CHALLENGE_SECONDS * 1000,
    // Passwordless (no list): the authenticator must verify the user, or the sign-in would rest on possession alone.
    userVerification: allow ? 'preferred' : 'required',
    allowCredentials: allow?.map((c) => ({ id: c.credentialId, transports: c.transports })),
  });
}
