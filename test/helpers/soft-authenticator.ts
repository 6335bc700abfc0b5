import crypto from 'node:crypto';

/**
 * A WebAuthn authenticator in a few lines of node:crypto: an EC P-256 key per credential, authenticator data and
 * client data built by hand, and signatures over authenticatorData ‖ SHA-256(clientDataJSON), as WebAuthn §6.3.3
 * says. Independent of the library the server uses, so the server's checks are tested against the standard, not
 * against itself; and every field can be made wrong on purpose.
 */

// The smallest CBOR encoder that can write an attestation object and a COSE key (RFC 8949 major types 0-5).
function cbor(value: unknown): Buffer {
  const head = (major: number, n: number) => {
    if (n < 24) return Buffer.from([(major << 5) | n]);
    if (n < 256) return Buffer.from([(major << 5) | 24, n]);
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  };
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  if (value instanceof Map) return Buffer.concat([head(5, value.size), ...[...value].flatMap(([k, v]) => [cbor(k), cbor(v)])]);
  throw new Error(`cannot encode ${typeof value}`);
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');
const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest();

export interface SoftCredential {
  id: Buffer;
  privateKey: crypto.KeyObject;
  userHandle: string;
  counter: number;
  backupEligible: boolean;
}

export interface Ceremony {
  rpId: string;
  origin: string;
  challenge: string;
}

interface Flags {
  userVerified?: boolean;
  userPresent?: boolean;
  backupEligible?: boolean;
}

function authenticatorData(rpId: string, flags: Flags, counter: number, attested?: Buffer) {
  let bits = 0;
  if (flags.userPresent !== false) bits |= 0x01;
  if (flags.userVerified !== false) bits |= 0x04;
  if (flags.backupEligible) bits |= 0x08 | 0x10;
  if (attested) bits |= 0x40;
  const count = Buffer.alloc(4);
  count.writeUInt32BE(counter);
  return Buffer.concat([sha256(rpId), Buffer.from([bits]), count, attested ?? Buffer.alloc(0)]);
}

const clientData = (type: string, ceremony: Ceremony) => Buffer.from(JSON.stringify({ type, challenge: ceremony.challenge, origin: ceremony.origin, crossOrigin: false }));

/** navigator.credentials.create: a new credential and the registration response the browser would post. */
export function createCredential(ceremony: Ceremony, user: { id: string }, flags: Flags = {}) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const coseKey = new Map<number, unknown>([
    [1, 2], // kty: EC2
    [3, -7], // alg: ES256
    [-1, 1], // crv: P-256
    [-2, Buffer.from(jwk.x!, 'base64url')],
    [-3, Buffer.from(jwk.y!, 'base64url')],
  ]);
  const id = crypto.randomBytes(16);
  const idLength = Buffer.alloc(2);
  idLength.writeUInt16BE(id.length);
  const attested = Buffer.concat([Buffer.alloc(16), idLength, id, cbor(coseKey)]);
  const authData = authenticatorData(ceremony.rpId, flags, 0, attested);
  const attestationObject = cbor(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]));
  const credential: SoftCredential = { id, privateKey, userHandle: b64url(user.id), counter: 0, backupEligible: !!flags.backupEligible };
  const response = {
    id: b64url(id),
    rawId: b64url(id),
    type: 'public-key',
    response: { clientDataJSON: b64url(clientData('webauthn.create', ceremony)), attestationObject: b64url(attestationObject), transports: ['internal'] },
    clientExtensionResults: {},
  };
  return { credential, response: JSON.stringify(response) };
}

/** navigator.credentials.get: an assertion, with the counter moved on unless the test says which to report. */
export function assert(credential: SoftCredential, ceremony: Ceremony, flags: Flags & { counter?: number } = {}) {
  credential.counter = flags.counter ?? credential.counter + 1;
  const authData = authenticatorData(ceremony.rpId, { backupEligible: credential.backupEligible, ...flags }, credential.counter);
  const data = clientData('webauthn.get', ceremony);
  const signature = crypto.sign('sha256', Buffer.concat([authData, sha256(data)]), credential.privateKey);
  return JSON.stringify({
    id: b64url(credential.id),
    rawId: b64url(credential.id),
    type: 'public-key',
    response: { clientDataJSON: b64url(data), authenticatorData: b64url(authData), signature: b64url(signature), userHandle: credential.userHandle },
    clientExtensionResults: {},
  });
}

/** The options a page hands its passkey ceremony (the form's data-passkey-options), as the page's script reads them. */
export function passkeyOptionsOf(html: string): { challenge: string; rpId: string; userVerification: string } {
  const attribute = /data-passkey-options="([^"]+)"/.exec(html)?.[1];
  if (!attribute) throw new Error('the page offers no passkey ceremony');
  return JSON.parse(attribute.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
}

/** Registers a passkey for a user through the MFA service, as the account page would; returns the credential. */
export async function enrolSoftPasskey(
  latchkey: { mfa: import('../../src/mfa/service.js').MfaService; queries: import('../../src/db/index.js').Queries },
  user: { id: string },
  origin: string,
  flags: Flags = {},
) {
  const row = (await latchkey.queries.users.findById(user.id))!;
  const started = await latchkey.mfa.startEnrolment(row, 'passkey', { label: 'Soft key' });
  const pending = await latchkey.mfa.pendingEnrolment(row, started!.pendingId);
  const { challenge } = pending!.display.ceremony as { challenge: string };
  const made = createCredential({ rpId: new URL(origin).hostname, origin, challenge }, user, flags);
  const result = await latchkey.mfa.confirmEnrolment(row, started!.pendingId, made.response, { actorId: user.id });
  if (!result.ok) throw new Error(`passkey enrolment failed: ${result.reason}`);
  return { credential: made.credential, methodId: result.method.id };
}
