import crypto from 'node:crypto';
import net from 'node:net';
import { createQueries } from '../../src/db/index.js';
import { createClientStore, type ClientRegistration } from '../../src/oidc/clients.js';
import { createPasswordHasher } from '../../src/security/passwords.js';
import { createSecretBox } from '../../src/security/secret-box.js';
import { openTestDatabase, type TestDatabase } from './database.js';
import { CALLBACK } from './factories.js';
import { freePort, startServerProcess, type ServerProcess } from './process.js';

/**
 * A TCP load balancer on loopback: each new connection goes to the next instance, or past it to the one after when
 * it refuses (a crashed instance), as a health-checking balancer would.
 */
export async function startBalancer(backends: () => ServerProcess[]) {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const candidates = backends().filter((b) => b.child.exitCode === null && b.child.signalCode === null);
    const tryConnect = (left: number) => {
      if (left === 0) return client.destroy();
      const target = new URL(candidates[next++ % candidates.length]!.url);
      const upstream = net.connect(Number(target.port), target.hostname);
      upstream.once('error', () => tryConnect(left - 1));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      });
    };
    tryConnect(candidates.length);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Server processes on one PostgreSQL schema behind a load balancer (their one issuer), with users and clients made
 * directly in the database from the test.
 */
export async function startCluster(instances: number, env: Record<string, string> = {}) {
  const database: TestDatabase = await openTestDatabase();
  const masterKey = crypto.randomBytes(32);
  const servers: ServerProcess[] = [];
  const balancer = await startBalancer(() => servers);
  const common = { DATABASE_URL: database.url!, LATCHKEY_MASTER_KEY: masterKey.toString('hex'), LATCHKEY_ISSUER: balancer.url, LOG_LEVEL: 'warn', ...env };
  for (let i = 0; i < instances; i++) servers.push(await startServerProcess(common));
  const queries = createQueries(database.db);
  const hasher = createPasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
  return {
    database,
    servers,
    masterKey,
    queries,
    /** The balancer: what apps and browsers talk to. */
    url: balancer.url,
    issuer: common.LATCHKEY_ISSUER,
    registerClient: (overrides: Partial<ClientRegistration> = {}) =>
      createClientStore(queries, createSecretBox(masterKey)).register({ client_name: 'Resilience app', redirect_uris: [CALLBACK], first_party: true, ...overrides }),
    async addUser(password = `pw-${crypto.randomBytes(6).toString('hex')}`) {
      const user = await queries.users.insert({ email: `r-${crypto.randomBytes(5).toString('hex')}@example.test`, name: '', passwordHash: await hasher.hash(password) });
      return { ...user, password };
    },
    async stop() {
      await balancer.close();
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
