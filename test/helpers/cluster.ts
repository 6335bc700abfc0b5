import crypto from 'node:crypto';
import { createUser } from '../../src/admin/users.js';
import { createQueries } from '../../src/db/index.js';
import { createClientStore, type ClientRegistration } from '../../src/oidc/clients.js';
import { createPasswordHasher } from '../../src/security/passwords.js';
import { createSecretBox } from '../../src/security/secret-box.js';
import { openTestDatabase, type TestDatabase } from './database.js';
import { CALLBACK } from './factories.js';
import { freePort, startServerProcess, type ServerProcess } from './process.js';

/**
 * Server processes on one PostgreSQL schema behind one issuer, as behind a load balancer, with users and clients
 * made directly in the database from the test.
 */
export async function startCluster(instances: number, env: Record<string, string> = {}) {
  const database: TestDatabase = await openTestDatabase();
  const masterKey = crypto.randomBytes(32);
  const firstPort = await freePort();
  const common = { DATABASE_URL: database.url!, LATCHKEY_MASTER_KEY: masterKey.toString('hex'), LATCHKEY_ISSUER: `http://127.0.0.1:${firstPort}`, LOG_LEVEL: 'warn', ...env };
  const servers: ServerProcess[] = [];
  for (let i = 0; i < instances; i++) servers.push(await startServerProcess(common, i === 0 ? firstPort : undefined));
  const queries = createQueries(database.db);
  const hasher = createPasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
  return {
    database,
    servers,
    masterKey,
    queries,
    issuer: common.LATCHKEY_ISSUER,
    registerClient: (overrides: Partial<ClientRegistration> = {}) =>
      createClientStore(queries, createSecretBox(masterKey)).register({ client_name: 'Resilience app', redirect_uris: [CALLBACK], first_party: true, ...overrides }),
    async addUser(password = `pw-${crypto.randomBytes(6).toString('hex')}`) {
      const user = await createUser({ queries, hasher }, { email: `r-${crypto.randomBytes(5).toString('hex')}@example.test`, password });
      return { ...user, password };
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop('SIGKILL')));
      await database.close();
    },
  };
}

/** Every HTTP status this process's fetch sees (openid-client and the test browser both use it), by URL path. */
export function recordStatuses() {
  const seen: Array<{ status: number; path: string }> = [];
  const original = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const response = await original(input, init);
    seen.push({ status: response.status, path: new URL(input instanceof Request ? input.url : String(input)).pathname });
    return response;
  };
  return { seen, restore: () => void (globalThis.fetch = original) };
}
