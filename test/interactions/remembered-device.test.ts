import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { Page } from '../helpers/browser-agent.js';
import { aClient, aUser } from '../helpers/factories.js';
import { enrolTotp, steppingClock } from '../helpers/mfa.js';
import { referenceTotp } from '../helpers/reference-totp.js';
import { completeLogin, relyingParty, signInWithPassword, startLogin, type StartedLogin } from '../helpers/relying-party.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The sign-in's edges for remembered browsers, over plain HTTP: this test signs as the page's script would. */
const clock = steppingClock();
let server: TestServer;
let config: oidc.Configuration;
let neverConfig: oidc.Configuration;
beforeAll(async () => {
  server = await startTestServer({ clock });
  await server.latchkey.settings.write('remember-device', { days: 30 });
  const [client, never] = await Promise.all([aClient(server.latchkey, { first_party: true }), aClient(server.latchkey, { first_party: true, never_remember_devices: true })]);
  config = await relyingParty(server.url, client.clientId, client.clientSecret);
  neverConfig = await relyingParty(server.url, never.clientId, never.clientSecret);
});
afterAll(() => server.close());

const decode = (text: string) => text.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
const interactionUrl = (page: Page) => /^(.*\/interaction\/[^/?]+)/.exec(page.url)![1]!;
const offerOn = (page: Page) => {
  const form = /<form[^>]*data-remembered-device data-key-id="([^"]+)" data-payload="([^"]+)">[\s\S]*?name="device" value="([^"]+)"/.exec(page.html);
  return form ? { keyId: form[1]!, payload: decode(form[2]!), device: form[3]! } : undefined;
};

async function totpUser() {
  const user = await aUser(server.latchkey);
  const { secret } = await enrolTotp(server.latchkey, user, clock);
  return { user, code: () => (clock.nextStep(), referenceTotp(secret, clock.now())) };
}
function aBrowserKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { jwk: JSON.stringify(publicKey.export({ format: 'jwk' })), sign: (payload: string) => crypto.sign('sha256', Buffer.from(payload), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url') };
}
/** The ID token's claims once the sign-in reached the app (through the consent page that startLogin asks for). */
async function claimsOf(cfg: oidc.Configuration, login: StartedLogin, page: Page) {
  const callback = page.html.includes('/confirm"') ? await login.agent.submit(page, '/confirm') : page;
  return (await completeLogin(cfg, login, callback.url)).claims()!;
}

describe('remembering a browser at the second step', () => {
  test('a key that is no P-256 public key is refused at the edge, naming the field, before the code is spent', async () => {
    const { user, code } = await totpUser();
    const login = await startLogin(config);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    expect(mfaPage.html).toContain('data-remember-key');
    const typed = code();
    const refused = await login.agent.request(`${interactionUrl(mfaPage)}/mfa`, { form: { _csrf: csrfOf(mfaPage), method: /name="method" value="([^"]+)"/.exec(mfaPage.html)![1]!, code: typed, remember_key: '{"kty":"EC","crv":"P-256"}' }, headers: { accept: 'application/json' } });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: 'malformed_body', field: 'remember_key' });
    // The same code still works: nothing was checked or used.
    const key = aBrowserKey();
    const done = await login.agent.submit(mfaPage, '/mfa', { code: typed, remember_key: key.jwk });
    expect((await claimsOf(config, login, done)).amr).toEqual(['pwd', 'otp', 'mfa']);

    // The next sign-in in this browser (same cookies) is offered a challenge, and the key's signature answers it.
    const again = await startLogin(config, { prompt: 'login' }, login.agent);
    const second = await signInWithPassword(again, user.email, user.password);
    const offer = offerOn(second)!;
    expect(offer).toBeDefined();
    const answered = await again.agent.submit(second, '/remembered-device', { signature: key.sign(offer.payload) });
    expect((await claimsOf(config, again, answered)).amr).toEqual(['pwd', 'pop', 'mfa']);
  });

  test('a client that never remembers devices: no box, a key sent anyway is not kept, no challenge offered', async () => {
    const { user, code } = await totpUser();
    const login = await startLogin(neverConfig);
    const mfaPage = await signInWithPassword(login, user.email, user.password);
    expect(mfaPage.html).not.toContain('data-remember-key');
    const done = await login.agent.submit(mfaPage, '/mfa', { code: code(), remember_key: aBrowserKey().jwk });
    expect((await claimsOf(neverConfig, login, done)).amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(await server.database.db('remembered_devices').where({ user_id: user.id })).toEqual([]);

    // Remembered through another app, the browser is still not offered a shortcut into this one.
    const other = await startLogin(config, { prompt: 'login' }, login.agent);
    const key = aBrowserKey();
    await other.agent.submit(await signInWithPassword(other, user.email, user.password), '/mfa', { code: code(), remember_key: key.jwk });
    expect(await server.database.db('remembered_devices').where({ user_id: user.id })).toHaveLength(1);
    const back = await startLogin(neverConfig, { prompt: 'login' }, login.agent);
    const page = await signInWithPassword(back, user.email, user.password);
    expect(offerOn(page)).toBeUndefined();
  });

  test('an answer posted before the password, or with no challenge, is refused', async () => {
    const { user, code } = await totpUser();
    const login = await startLogin(config);
    const device = crypto.randomUUID();
    const early = await login.agent.request(`${interactionUrl(login.page)}/remembered-device`, { form: { _csrf: csrfOf(login.page), device, signature: 'A'.repeat(86) } });
    expect(early.status).toBe(400);

    const mfaPage = await signInWithPassword(login, user.email, user.password);
    const refused = await login.agent.request(`${interactionUrl(mfaPage)}/remembered-device`, { form: { _csrf: csrfOf(mfaPage), device, signature: 'A'.repeat(86) } });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toContain('This browser could not be recognised');
    const failures = await server.database.db('audit_events').where({ subject_id: user.id, action: 'mfa.remembered_device' });
    expect(failures.map((e) => e.details.reason)).toEqual(['no_challenge']);
    // The code still finishes the sign-in (the refused answer took one of its five tries).
    const done = await login.agent.submit(mfaPage, '/mfa', { code: code() });
    expect((await claimsOf(config, login, done)).amr).toEqual(['pwd', 'otp', 'mfa']);
  });
});
