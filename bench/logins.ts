import { Algorithm, hash, verify } from '@node-rs/argon2';
import { createLatchkey, type Latchkey } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import type { UserRow } from '../src/db/users.js';
import { createLogger } from '../src/logger.js';
import { totpCode } from '../src/mfa/factors/totp/totp.js';
import type { ServerProcess } from '../test/helpers/process.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin } from '../test/helpers/relying-party.js';
import { CALLBACK } from '../test/helpers/factories.js';
import { type BenchDatabase, closedLoop, masterKey, SECONDS } from './harness.js';

/** The server's defaults (OWASP's argon2id minimum): the baseline hashes with exactly these. */
export const ARGON2 = { memoryCost: 19456, timeCost: 2, parallelism: 1 };
export const LOGIN_CONCURRENCY = Number(process.env.BENCH_LOGIN_CONCURRENCY ?? 4);
const PASSWORD = 'benchmark password, long enough';

/** Latchkey in this process over the bench database, to set up users and enrolments as the app itself would. */
export async function setupLatchkey(database: BenchDatabase, issuer: string): Promise<Latchkey> {
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'error', LATCHKEY_ISSUER: issuer });
  return createLatchkey({ config, db: database.db, masterKey, logger: createLogger(config) });
}

/** `count` password users sharing one argon2id hash (hashing each would take minutes and measure nothing). */
export async function addPasswordUsers(latchkey: Latchkey, prefix: string, count: number) {
  const passwordHash = await hash(PASSWORD, { algorithm: Algorithm.Argon2id, ...ARGON2 });
  const emails: string[] = [];
  for (let start = 0; start < count; start += 500) {
    const batch = Array.from({ length: Math.min(500, count - start) }, (_, i) => `${prefix}-${start + i}@bench.test`);
    await latchkey.queries.db('users').insert(batch.map((email) => ({ email, name: 'Bench', password_hash: passwordHash, email_verified: true })));
    emails.push(...batch);
  }
  return emails;
}

function base32Bytes(text: string): Uint8Array {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of text.replace(/[\s=]/g, '').toUpperCase()) bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  return Uint8Array.from(bits.match(/.{8}/g) ?? [], (byte) => parseInt(byte, 2));
}

/** Password users each with a confirmed TOTP authenticator; returns their secrets. */
export async function addTotpUsers(latchkey: Latchkey, count: number) {
  const emails = await addPasswordUsers(latchkey, 'totp', count);
  const users: Array<{ email: string; secret: Uint8Array }> = [];
  for (let start = 0; start < emails.length; start += 10) {
    await Promise.all(
      emails.slice(start, start + 10).map(async (email) => {
        const row = (await latchkey.queries.users.findByEmail(email)) as UserRow;
        const started = await latchkey.mfa.startEnrolment(row, 'totp');
        const pending = await latchkey.mfa.pendingEnrolment(row, started!.pendingId);
        const secret = base32Bytes(pending!.display.secret!);
        const confirmed = await latchkey.mfa.confirmEnrolment(row, started!.pendingId, await totpCode(secret, new Date()), { actorId: row.id });
        if (!confirmed.ok) throw new Error(`TOTP enrolment failed: ${confirmed.reason}`);
        users.push({ email, secret });
      }),
    );
  }
  return users;
}

/** argon2id verify calls per second in this process, at the server's parameters and the login's concurrency. */
export async function argon2Baseline(seconds = Math.max(3, SECONDS / 2)) {
  const stored = await hash(PASSWORD, { algorithm: Algorithm.Argon2id, ...ARGON2 });
  return closedLoop(LOGIN_CONCURRENCY, seconds, async () => {
    if (!(await verify(stored, PASSWORD))) throw new Error('argon2 verify failed');
  });
}

/**
 * Full authorization-code logins through openid-client and a cookie-keeping HTTP agent: authorize → login page →
 * POST password (→ TOTP page → POST code) → callback → token request, ID token checked.
 */
export async function benchLogins(server: ServerProcess, latchkey: Latchkey, options: { emails?: string[]; totpUsers?: Array<{ email: string; secret: Uint8Array }>; seconds?: number }) {
  const client = await latchkey.clients.register({ client_name: 'Bench app', redirect_uris: [CALLBACK], first_party: true });
  const config = await relyingParty(server.url, client.clientId, client.clientSecret);
  const login = async (i: number) => {
    const started = await startLogin(config, { prompt: '', scope: 'openid email' });
    let page;
    if (options.totpUsers) {
      const user = options.totpUsers[i % options.totpUsers.length]!;
      const mfaPage = await started.agent.submit(started.page, '/login', { email: user.email, password: PASSWORD });
      // The next time step's code: the current one was spent on enrolment, and one step of drift is allowed.
      page = await started.agent.submit(mfaPage, '/mfa', { code: await totpCode(user.secret, new Date(Date.now() + 30_000)) });
    } else {
      const emails = options.emails!;
      page = await signInWithPassword(started, emails[i % emails.length]!, PASSWORD);
    }
    if (!page.url.startsWith(CALLBACK)) throw new Error(`login ended at ${page.url} (${page.status})`);
    await completeLogin(config, started, page.url);
  };
  // Warm-up, on users the measured run does not reach (a TOTP code is good once).
  const last = (options.totpUsers?.length ?? options.emails!.length) - 1;
  for (let i = 0; i < 8; i++) await login(last - i);
  return closedLoop(LOGIN_CONCURRENCY, options.seconds ?? SECONDS, (_worker, i) => login(i));
}
