import { afterAll, beforeAll } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { launchChromium } from './chromium.js';
import { startTestServer, type TestServer } from './server.js';

type ServerOptions = Parameters<typeof startTestServer>[0];

/**
 * A browser test file's server and Chromium: started before its tests (after any `beforeAll` declared earlier, so
 * `options` may be a function of what those started) and closed after them.
 */
export function browserTestbed(options?: ServerOptions | (() => ServerOptions)) {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    server = await startTestServer(typeof options === 'function' ? options() : options);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  const started = <T>(value: T | undefined) => {
    if (value === undefined) throw new Error('the testbed starts in beforeAll: use it inside tests and hooks');
    return value;
  };
  return {
    get server() {
      return started(server);
    },
    get browser() {
      return started(browser);
    },
  };
}
