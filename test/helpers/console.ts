import { BrowserAgent, type Page } from './browser-agent.js';
import { APP_ORIGIN } from './factories.js';

/** Signs into Latchkey's own console (password, then `code` if given, for a user with a second factor) and lands on `path`. */
export async function consoleSignIn(baseUrl: string, email: string, password: string, path = '/account/security', code?: string) {
  const agent = new BrowserAgent(APP_ORIGIN);
  const loginPage = await agent.visit(`${baseUrl}${path}`);
  if (!loginPage.html.includes('name="password"')) throw new Error(`expected the login page, got ${loginPage.url}`);
  const landed = await agent.submit(loginPage, '/login', { email, password });
  return { agent, page: code === undefined ? landed : await agent.submit(landed, '/mfa', { code }) };
}

export const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
