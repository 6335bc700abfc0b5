import * as oidc from 'openid-client';
import type { OutgoingEmail } from '../../src/notify/email.js';
import { BrowserAgent, type Page } from '../helpers/browser-agent.js';
import { APP_ORIGIN, CALLBACK } from '../helpers/factories.js';
import { completeLogin, startLogin, type StartedLogin } from '../helpers/relying-party.js';

/**
 * What the sign-in attack tests share: a sign-in addressed by its interaction URL (an attacker posts to any step,
 * whatever page the browser shows), a clock the tests move, and an outbox that can be made to fail.
 */

/** Real time plus an offset: `nextStep` gives a fresh TOTP step, `advance` ages codes, locks and windows. */
export function offsetClock() {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    nextStep() {
      offset += 30_000;
    },
    advance(seconds: number) {
      offset += seconds * 1000;
    },
  };
}

/** An email sender that keeps what it sends, and refuses to send while `failing`. */
export function outbox() {
  const sent: OutgoingEmail[] = [];
  const box = {
    sent,
    failing: false,
    sender: {
      async send(message: OutgoingEmail) {
        if (box.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:25 (SMTP down)');
        sent.push(message);
      },
    },
    /** The enrolment confirmation codes mailed to `to`, oldest first. */
    codesTo: (to: string) => sent.filter((m) => m.to === to).map((m) => /^(\d{6}) is your/.exec(m.subject)?.[1]).filter((c): c is string => !!c),
  };
  return box;
}

export const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
export const baseOf = (url: string) => /^(.*\/interaction\/[^/?]+)/.exec(url)![1]!;
export const secretOf = (page: Page) => /id="totp-secret">([A-Z2-7 ]+)</.exec(page.html)![1]!.replace(/ /g, '');
export const methodOf = (page: Page) => /name="method" value="([^"]+)"/.exec(page.html)![1]!;
export const recoveryCodesOf = (html: string) => [...html.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]!);

export interface SignIn {
  login: StartedLogin;
  /** `/interaction/<uid>` on the server. */
  base: string;
  uid: string;
  csrf: string;
}

export async function begin(config: oidc.Configuration, params: Record<string, string> = {}, agent?: BrowserAgent): Promise<SignIn> {
  const login = await startLogin(config, params, agent);
  const base = baseOf(login.page.url);
  return { login, base, uid: base.split('/').pop()!, csrf: csrfOf(login.page) };
}

/** One POST to a step of the sign-in, redirects not followed. */
export const send = (s: SignIn, suffix: string, form: Record<string, string> = {}) =>
  s.login.agent.request(`${s.base}${suffix}`, { form: { _csrf: s.csrf, ...form } });

/** One POST to a step of the sign-in, redirects followed to the next page (or the app's callback). */
export const go = (s: SignIn, suffix: string, form: Record<string, string> = {}) =>
  s.login.agent.visit(`${s.base}${suffix}`, { form: { _csrf: s.csrf, ...form } });

export const password = (s: SignIn, user: { email: string; password: string }) => go(s, '/login', { email: user.email, password: user.password });

/** Consent if asked, then the ID token's claims (the page must be, or lead to, the callback). */
export async function claimsAfter(config: oidc.Configuration, s: SignIn, page: Page) {
  let next = page;
  if (next.html.includes('/confirm"')) next = await s.login.agent.submit(next, '/confirm');
  if (!next.url.startsWith(CALLBACK)) throw new Error(`not at the callback: ${next.url} (${next.status})`);
  return (await completeLogin(config, s.login, next.url)).claims()!;
}

/** A POST with a raw form or JSON body: repeated keys, brackets, NUL bytes, whatever a browser would never send. */
export async function rawPost(agent: BrowserAgent, url: string, body: string, contentType = 'application/x-www-form-urlencoded') {
  const cookie = (agent as unknown as { cookieHeader(u: URL): string }).cookieHeader(new URL(url));
  return fetch(url, { method: 'POST', headers: { cookie, 'content-type': contentType, accept: 'text/html' }, body, redirect: 'manual' });
}

/** The authorization URL, requested but not followed: the interaction's URL, before any GET of it. */
export async function authorizeOnly(config: oidc.Configuration, agent: BrowserAgent, params: Record<string, string> = {}) {
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    ...params,
  });
  const answer = await agent.request(url.toString());
  return new URL(answer.headers.get('location')!, url).toString();
}

export const newAgent = () => new BrowserAgent(APP_ORIGIN);
