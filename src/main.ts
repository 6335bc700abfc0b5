import { once } from 'node:events';
import { ensureSuperAdmin } from './admin/users.js';
import { createLatchkey } from './app.js';
import { boot } from './boot.js';
import { welcome } from './welcome.js';

const started = performance.now();
const { config, logger, db, masterKey, share } = await boot({ role: 'server' });
const latchkey = await createLatchkey({ config, db, masterKey, logger });

const maintainAuditLog = () =>
  latchkey
    .maintainAuditLog()
    .then((result) => (result.created.length || result.dropped.length) && logger.info(result, 'audit log partitions maintained'))
    .catch((err) => logger.warn({ err }, 'audit log maintenance failed'));
await maintainAuditLog();

const admin = await ensureSuperAdmin(latchkey, config.bootstrapAdmin);
if (admin && !admin.generatedPassword) logger.info({ email: admin.email }, 'created the first super admin from LATCHKEY_ADMIN_EMAIL');

const server = latchkey.app.listen(config.port, config.host);
await once(server, 'listening');
const address = server.address();
logger.info(
  { issuer: config.issuer, port: typeof address === 'object' && address ? address.port : config.port, ms: Math.round(performance.now() - started), database: config.database.url ? 'postgres' : 'pglite' },
  'latchkey ready',
);
// Where to go, for whoever just started it: on first start, or at a terminal (never into a production log pipe).
if (admin || process.stdout.isTTY) process.stdout.write(welcome(config.issuer, admin));

const timers = [
  setInterval(() => latchkey.refreshKeys().then((changed) => changed && logger.info('signing keys reloaded')).catch((err) => logger.warn({ err }, 'key reload failed')), config.keyReloadSeconds * 1000),
  setInterval(() => latchkey.purgeExpired().catch((err) => logger.warn({ err }, 'purge failed')), 10 * 60 * 1000),
  setInterval(maintainAuditLog, 60 * 60 * 1000),
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
  await share?.close();
  await db.destroy();
  logger.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
