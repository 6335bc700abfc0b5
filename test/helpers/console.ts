import { BrowserAgent, type Page } from './browser-agent.js';
import { APP_ORIGIN } from './factories.js';

/** Signs into Latchkey's own console (password only) and lands on `path`. */
export async function consoleSignIn(baseUrl: string, email: string, password: string, path = '/account/security') {
  const agent = new BrowserAgent(APP_ORIGIN);
  const loginPage = await agent.visit(`${baseUrl}${path}`);
  if (!loginPage.html.includes('name="password"')) throw new Error(`expected the login page, got ${loginPage.url}`);
  const landed = await agent.submit(loginPage, '/login', { email, password });
  return { agent, page: landed };
}

export const csrfOf = (page: Page) => /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
