import { once } from 'node:events';
import { ensureSuperAdmin } from './admin/users.js';
import { createLatchkey } from './app.js';
import { boot } from './boot.js';

const started = performance.now();
const { config, logger, db, masterKey } = await boot();
const latchkey = await createLatchkey({ config, db, masterKey, logger });

const admin = await ensureSuperAdmin(latchkey, config.bootstrapAdmin);
if (admin?.generatedPassword) {
  // Printed once, to the console only: it is never logged or stored in clear.
  process.stdout.write(
    `\nCreated the first super admin.\n  email:    ${admin.email}\n  password: ${admin.generatedPassword}\nSign in and change it.\n\n`,
  );
} else if (admin) {
  logger.info({ email: admin.email }, 'created the first super admin from LATCHKEY_ADMIN_EMAIL');
}

const server = latchkey.app.listen(config.port, config.host);
await once(server, 'listening');
const address = server.address();
logger.info(
  { issuer: config.issuer, port: typeof address === 'object' && address ? address.port : config.port, ms: Math.round(performance.now() - started), database: config.database.url ? 'postgres' : 'pglite' },
  'latchkey ready',
);

const timers = [
  setInterval(() => latchkey.refreshKeys().then((changed) => changed && logger.info('signing keys reloaded')).catch((err) => logger.warn({ err }, 'key reload failed')), config.keyReloadSeconds * 1000),
  setInterval(() => latchkey.purgeExpired().catch((err) => logger.warn({ err }, 'purge failed')), 10 * 60 * 1000),
];

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: finishing requests in flight');
  timers.forEach(clearInterval);
  const force = setTimeout(() => {
    logger.warn('grace period over: closing remaining connections');
    server.closeAllConnections();
  }, config.shutdownGraceSeconds * 1000);
  force.unref();
  server.closeIdleConnections();
  await new Promise((resolve) => server.close(resolve));
  await latchkey.close();
  await db.destroy();
  logger.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
