import * as oidc from 'openid-client';
import { BrowserAgent, type Page } from './browser-agent.js';
import { APP_ORIGIN, CALLBACK } from './factories.js';

/** An app signing users in with openid-client, the certified relying-party library, over plain http on loopback. */
export async function relyingParty(issuer: string, clientId: string, clientSecret?: string) {
  const config = await oidc.discovery(
    new URL(issuer),
    clientId,
    clientSecret,
    clientSecret ? undefined : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
  return config;
}

export interface StartedLogin {
  agent: BrowserAgent;
  page: Page;
  verifier: string;
  nonce: string;
  state: string;
}

/** Sends a browser to the authorization endpoint with PKCE, nonce and state; returns the first page it lands on. */
export async function startLogin(
  config: oidc.Configuration,
  params: Record<string, string> = {},
  agent = new BrowserAgent(APP_ORIGIN),
): Promise<StartedLogin> {
  const verifier = oidc.randomPKCECodeVerifier();
  const nonce = oidc.randomNonce();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: 'openid email profile offline_access',
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...params,
  });
  return { agent, page: await agent.visit(url.toString()), verifier, nonce, state };
}

/** Password, then consent if asked: returns the page that follows (the callback URL when the login completed). */
export async function signInWithPassword(login: StartedLogin, email: string, password: string): Promise<Page> {
  let page = await login.agent.submit(login.page, '/login', { email, password });
  if (page.html.includes('/confirm"')) page = await login.agent.submit(page, '/confirm');
  return page;
}

export function completeLogin(config: oidc.Configuration, login: StartedLogin, callbackUrl: string) {
  return oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: login.verifier,
    expectedNonce: login.nonce,
    expectedState: login.state,
    idTokenExpected: true,
  });
}
