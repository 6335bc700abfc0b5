import crypto from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import * as oidc from 'openid-client';
import { createLatchkey } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';
import { startCluster, recordStatuses } from '../helpers/cluster.js';
import { CALLBACK } from '../helpers/factories.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, startLogin } from '../helpers/relying-party.js';

const SECONDS = Number(process.env.RESILIENCE_LOAD_SECONDS ?? 60);

let setup: Awaited<ReturnType<typeof startCluster>>;
beforeAll(async () => {
  setup = await startCluster(2, { LATCHKEY_LOGIN_IP_FAILURES: '10000', LATCHKEY_LOGIN_ACCOUNT_FAILURES: '100' });
}, 60_000);
afterAll(() => setup?.stop());

/**
 * A minute of everything at once on two instances: password logins (right and wrong), TOTP logins, client-credentials
 * and refresh grants. No request may fail with a 5xx, and the audit log must hold one row per login attempt.
 */
test(`${SECONDS} s of mixed logins, MFA verifications and token grants`, async () => {
  const [one, two] = setup.servers;
  const password = 'mixed load password';
  const users = await Promise.all(Array.from({ length: 6 }, () => setup.addUser(password)));
  const totpUsers = await Promise.all(Array.from({ length: 4 }, async () => enrolTotpDirectly(await setup.addUser(password))));
  const app = await setup.registerClient();
  const machine = await setup.registerClient({ grant_types: ['client_credentials'], redirect_uris: [] });
  // Two apps of each kind, each with its own connections through the balancer, so both instances get work.
  const rps = [await relyingParty(setup.url, app.clientId, app.clientSecret), await relyingParty(setup.url, app.clientId, app.clientSecret)];
  const machines = [await relyingParty(setup.url, machine.clientId, machine.clientSecret), await relyingParty(setup.url, machine.clientId, machine.clientSecret)];

  let attempts = 0;
  const refreshTokens: Array<{ rp: oidc.Configuration; token: string }> = [];
  const passwordLogin = async (rp: oidc.Configuration, email: string, secret: string) => {
    const started = await startLogin(rp, { prompt: 'consent', scope: 'openid offline_access' });
    attempts++;
    let page = await started.agent.submit(started.page, '/login', { email, password: secret });
    if (page.html.includes('/confirm"')) page = await started.agent.submit(page, '/confirm');
    if (!page.url.startsWith(CALLBACK)) return page;
    const tokens = await completeLogin(rp, started, page.url);
    if (tokens.refresh_token && refreshTokens.length < 20) refreshTokens.push({ rp, token: tokens.refresh_token });
    return page;
  };
  const usedSteps = new Map<string, number>();
  // A right code refused is reported with what the page said.
  let totpSignedIn = 0;
  const totpRefused: string[] = [];
  const totpLogin = async (rp: oidc.Configuration, user: { email: string; secret: string }) => {
    // One code per user per 30 s step (codes are single use): wait for the next step when this one is spent.
    if (usedSteps.get(user.email) === Math.floor(Date.now() / 30_000)) return;
    const started = await startLogin(rp, { prompt: '' });
    attempts++;
    const mfaPage = await started.agent.submit(started.page, '/login', { email: user.email, password });
    // The step is the code's own, taken when the code is made: the password step may have crossed into the next one.
    const at = new Date();
    const step = Math.floor(at.getTime() / 30_000);
    if (usedSteps.get(user.email) === step) return;
    usedSteps.set(user.email, step);
    const done = await started.agent.submit(mfaPage, '/mfa', { code: referenceTotp(user.secret, at) });
    if (done.url.startsWith(CALLBACK)) return void totpSignedIn++;
    const said = /<p class="(?:error|notice)"[^>]*>([^<]*)</.exec(done.html)?.[1] ?? done.html.replace(/\s+/g, ' ').slice(0, 300);
    totpRefused.push(`TOTP sign-in ended at ${done.status} ${done.url}: ${said} (after the password: ${mfaPage.status} ${mfaPage.url})`);
  };

  const statuses = recordStatuses();
  const deadline = Date.now() + SECONDS * 1000;
  const failures: string[] = [];
  const worker = async (n: number) => {
    for (let i = 0; Date.now() < deadline; i++) {
      const rp = rps[(n + i) % 2]!;
      const kind = (n * 7 + i) % 10;
      try {
        if (kind < 4) await passwordLogin(rp, users[(n + i) % users.length]!.email, password);
        else if (kind < 5) await passwordLogin(rp, users[(n + i) % users.length]!.email, 'wrong password');
        else if (kind < 6) await passwordLogin(rp, `nobody-${crypto.randomBytes(3).toString('hex')}@example.test`, password);
        else if (kind < 7) await totpLogin(rp, totpUsers[n % totpUsers.length]!);
        else if (kind < 9) await oidc.clientCredentialsGrant(machines[(n + i) % 2]!, {});
        else {
          const chain = refreshTokens[n % Math.max(1, refreshTokens.length)];
          if (chain) {
            const next = await oidc.refreshTokenGrant(chain.rp, chain.token);
            chain.token = next.refresh_token!;
          }
        }
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  try {
    await Promise.all([0, 1, 2, 3].map(worker));
  } finally {
    statuses.restore();
  }

  expect(statuses.seen.filter((s) => s.status >= 500)).toEqual([]);
  expect(failures).toEqual([]);
  expect(totpRefused).toEqual([]);
  expect(totpSignedIn).toBeGreaterThan(2);
  expect(attempts).toBeGreaterThan(SECONDS);
  // Both instances served: each logged its own requests' metrics.
  for (const instance of [one!, two!]) expect(await (await fetch(`${instance.url}/metrics`)).text()).toMatch(/latchkey_tokens_issued_total\{[^}]*\} [1-9]/);
  const audited = await setup.database.db('audit_events').where({ action: 'login.password' }).count({ count: '*' }).first();
  expect(Number(audited?.count)).toBe(attempts);
  expect(`${one!.output()}${two!.output()}`).not.toMatch(/"level":(50|60)/);
}, (SECONDS + 60) * 1000);

/** A confirmed TOTP authenticator written as the TOTP factor writes it, through the app's own code in this process. */
async function enrolTotpDirectly(user: { id: string; email: string }) {
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', LATCHKEY_ISSUER: setup.issuer });
  const latchkey = await createLatchkey({ config, db: setup.database.db, masterKey: setup.masterKey, logger: createLogger(config) });
  try {
    const row = (await latchkey.queries.users.findById(user.id))!;
    const started = await latchkey.mfa.startEnrolment(row, 'totp');
    const secret = (await latchkey.mfa.pendingEnrolment(row, started!.pendingId))!.display.secret!;
    // Enrol with the previous step's code so that the current step is still free for the first sign-in.
    const confirmed = await latchkey.mfa.confirmEnrolment(row, started!.pendingId, referenceTotp(secret, new Date(Date.now() - 30_000)), { actorId: user.id });
    if (!confirmed.ok) throw new Error(confirmed.reason);
    return { email: user.email, secret };
  } finally {
    await latchkey.close();
  }
}
