import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLatchkey, type Latchkey } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import type { Clock } from '../../src/security/clock.js';
import type { Notifier } from '../../src/notify/notifier.js';
import type { EmailSender } from '../../src/notify/email.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { openTestDatabase, type TestDatabase } from './database.js';

export interface TestServer {
  url: string;
  latchkey: Latchkey;
  database: TestDatabase;
  masterKey: Buffer;
  close(): Promise<void>;
}

/** The real app on a real socket (loopback, random port) over its own empty database. */
export async function startTestServer(
  options: {
    env?: Record<string, string>;
    clock?: Clock;
    database?: TestDatabase;
    notifier?: Notifier;
    emailSender?: EmailSender;
    /** The issuer's host name: WebAuthn needs a domain (`localhost`), never an IP address, for its RP ID. */
    hostname?: string;
    logger?: Logger;
  } = {},
): Promise<TestServer> {
  const database = options.database ?? (await openTestDatabase());
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://${options.hostname ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`;
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', LATCHKEY_ISSUER: url, ...options.env });
  const masterKey = crypto.randomBytes(32);
  const latchkey = await createLatchkey({ config, db: database.db, masterKey, logger: options.logger ?? createLogger(config), clock: options.clock, notifier: options.notifier, emailSender: options.emailSender });
  server.on('request', latchkey.app.callback());
  return {
    url,
    latchkey,
    database,
    masterKey,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await latchkey.close();
      if (!options.database) await database.close();
    },
  };
}
