import fs from 'node:fs';
import path from 'node:path';
import Koa from 'koa';
import type { Config } from './config/index.js';
import { connectWithoutFlushWait, type Database } from './db/connect.js';
import { maintainAuditPartitions } from './db/audit-partitions.js';
import { createChangeFeed } from './db/change-feed.js';
import { createQueries } from './db/index.js';
import { createSettingsStore, settingDefaults } from './config/settings.js';
import { createEmailConfirmation } from './interactions/email-confirmation.js';
import { createInteractionRouter } from './interactions/routes.js';
import { errorHandler } from './koa-errors.js';
import { requestLog } from './koa-request-log.js';
import { createMetrics } from './metrics.js';
import type { Logger } from './logger.js';
import { accountById } from './oidc/account.js';
import { createClientStore } from './oidc/clients.js';
import { ensureKeys, loadKeyMaterial } from './oidc/keys.js';
import { createProvider, MACHINE_ENDPOINTS } from './oidc/provider.js';
import { createProviderHolder } from './oidc/provider-holder.js';
import { PROJECT_ROOT, VIEWS_DIR } from './paths.js';
import { createPageRenderer } from './render.js';
import { type Clock, systemClock } from './security/clock.js';
import { securityHeaders } from './security/koa-security-headers.js';
import { createPasswordHasher } from './security/passwords.js';
import { accessCodeLookupKey, createSecretBox, deriveKey, recoveryCodeHashKey, sentCodeHashKey } from './security/secret-box.js';
import { createThrottle } from './security/throttle.js';
import { createTotpFactor } from './mfa/factors/totp/index.js';
import { createSmsFactor } from './mfa/factors/sms/index.js';
import { createEmailFactor } from './mfa/factors/email/index.js';
import { createLogSmsSender, createTwilioSender, type SmsSender } from './notify/sms.js';
import type { Factor } from './mfa/factor.js';
import { createFactorRegistry } from './mfa/registry.js';
import { createBypassCodes } from './mfa/bypass-codes.js';
import { satisfies } from './mfa/policy.js';
import { createMfaService } from './mfa/service.js';
import { createRememberedDevices } from './mfa/remembered-device/index.js';
import { createEmailNotifier, createLogEmailSender, createSmtpSender, type EmailSender } from './notify/email.js';
import type { Notifier } from './notify/notifier.js';
import { ensureConsoleClient, CONSOLE_CALLBACK_PATH } from './oidc/console-client.js';
import { createConsoleSession } from './console/koa-console-session.js';
import { createSessionsRouters } from './account/sessions-routes.js';
import { createAccountRouter } from './account/routes.js';
import { createPasswordResets } from './account/password-reset.js';
import { createPasswordResetRouter } from './account/password-reset-routes.js';
import { createInvitationRouter } from './account/invitation.js';
import { createAdminRouter } from './admin/routes.js';
import { replaceTemporaryPassword } from './admin/users.js';
import { createAccessService } from './access/service.js';
import { createDoorDecisions } from './access/decisions.js';
import { createControllerRouter } from './access/routes.js';
import { createAdminApi } from './admin/api/index.js';
import { createPinFactor } from './mfa/factors/pin/index.js';
import { createPasskeyFactor } from './mfa/factors/passkey/index.js';
import { relyingPartyFor } from './mfa/factors/passkey/webauthn.js';
import { createResourceStore } from './resources/resources.js';

export interface LatchkeyOptions {
  config: Config;
  db: Database;
  masterKey: Buffer;
  logger: Logger;
  clock?: Clock;
  /** Tests hand in their own notifier or mail transport; otherwise SMTP from config, or the log. */
  notifier?: Notifier;
  emailSender?: EmailSender;
  smsSender?: SmsSender;
}

// Connections of the keypad's counters (src/access/decisions.ts): each is held well under a millisecond.
const DOOR_COUNTER_CONNECTIONS = 4;

/** Builds the whole service on an open database: what `main` listens with and what tests drive. */
export async function createLatchkey(options: LatchkeyOptions) {
  const { config, db, logger } = options;
  const clock = options.clock ?? systemClock;
  const metrics = createMetrics(db);
  const queries = createQueries(db, { onAudit: metrics.onAudit });
  const box = createSecretBox(options.masterKey);
  const renderer = createPageRenderer();
  const changes = createChangeFeed(db, logger);
  const clients = createClientStore(queries, box, changes);
  const resources = createResourceStore(queries, changes);
  const hasher = createPasswordHasher(config.argon2);
  const throttle = createThrottle(queries, clock);
  const devLog = config.devLogMessages && config.env !== 'production';
  const emailSender = options.emailSender ?? createSmtpSender(config.mail) ?? (devLog ? createLogEmailSender(logger) : undefined);
  const smsSender = options.smsSender ?? (config.twilio ? createTwilioSender(config.twilio) : devLog ? createLogSmsSender(logger) : undefined);
  const notifier = options.notifier ?? createEmailNotifier(emailSender, renderer, logger);

  const factorDeps = { queries, box, clock, issuerName: config.issuerName };
  const sentCodeDeps = {
    ...factorDeps, throttle, limits: config.sentCodes, hashKey: sentCodeHashKey(options.masterKey),
    onProviderFailure: (err: Error, factor: string) => logger.error({ err, factor }, 'a code could not be sent: the provider failed (check its credentials and status)'),
  };
  const access = createAccessService({ queries, box, clock, lookupKey: accessCodeLookupKey(options.masterKey), throttle, notifier, webPinMinLength: config.mfa.pinWebMinLength, feed: changes });
  const counterDb = connectWithoutFlushWait(db, DOOR_COUNTER_CONNECTIONS);
  const doors = createDoorDecisions({ queries, counters: counterDb === db ? undefined : createQueries(counterDb), clock, lookupKey: accessCodeLookupKey(options.masterKey), throttle, feed: changes, logger });
  // A factor whose messages cannot be delivered is not offered at all.
  const available: Record<string, (() => Factor) | undefined> = {
    totp: () => createTotpFactor(factorDeps, config.totp),
    sms: smsSender && (() => createSmsFactor(sentCodeDeps, smsSender, renderer)),
    email: emailSender && (() => createEmailFactor(sentCodeDeps, emailSender, renderer)),
    pin: () => createPinFactor(access),
    passkey: () => createPasskeyFactor(factorDeps, relyingPartyFor(config.issuer, config.issuerName)),
  };
  const registry = createFactorRegistry(
    queries,
    config.mfa.factors.filter((id) => available[id]).map((id) => available[id]!()),
  );
  const settings = createSettingsStore(queries, settingDefaults(config, registry.factors.map((f) => f.id)), changes);
  const mfa = createMfaService({
    queries,
    registry,
    clock,
    throttle,
    notifier,
    recovery: { queries, clock, hashKey: recoveryCodeHashKey(options.masterKey) },
    settings,
  });
  const bypassCodes = createBypassCodes({ queries, clock, notifier, settings, hashKey: deriveKey(options.masterKey, 'latchkey bypass codes v1'), reserveAttempt: mfa.reserveAttempt });
  await ensureConsoleClient(clients, config.issuer);

  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: config.proxyHops });
  app.silent = true;

  await ensureKeys(queries, box, clock);
  const providers = createProviderHolder((keys) => {
    // Mounted, oidc-provider signs cookies through this app's context: both must hold the same keys.
    app.keys = keys.cookieKeys;
    const provider = createProvider({
        config,
        queries,
        clients,
        clock,
        renderer,
        keys,
        resources,
      needsSecondFactor: async ({ accountId, clientRequiresMfa, clientRequiresPhishingResistant, acrValues, amr }) => {
        const user = await accountById(queries, accountId);
        return !!user && !satisfies(await mfa.decide(user, { requireMfa: clientRequiresMfa, requirePhishingResistant: clientRequiresPhishingResistant }, acrValues), amr);
      },
      onServerError: (ctx, err) => (ctx.state.log ?? logger).error({ err }, 'oidc-provider server error'),
    });
    provider.on('grant.success', (ctx) => metrics.tokenIssued(String(ctx.oidc.params?.grant_type ?? 'unknown')));
    provider.on('grant.error', (ctx, error) => metrics.tokenFailed(String(ctx.oidc.params?.grant_type ?? 'unknown'), String((error as { error?: string }).error ?? 'server_error')));
    return provider;
  }, await loadKeyMaterial(queries, box, clock));

  const statics: Record<string, { type: string; body: Buffer }> = {
    '/static/latchkey.css': { type: 'css', body: fs.readFileSync(path.join(VIEWS_DIR, 'static', 'latchkey.css')) },
    '/static/latchkey.js': { type: 'js', body: fs.readFileSync(path.join(VIEWS_DIR, 'static', 'latchkey.js')) },
    '/static/passkeys.js': { type: 'js', body: fs.readFileSync(path.join(VIEWS_DIR, 'static', 'passkeys.js')) },
    '/static/remembered-device.js': { type: 'js', body: fs.readFileSync(path.join(VIEWS_DIR, 'static', 'remembered-device.js')) },
    // @simplewebauthn/browser, served from our own origin (script-src 'self'): no third party sees our sign-ins.
    '/static/webauthn.js': { type: 'js', body: fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', '@simplewebauthn', 'browser', 'dist', 'bundle', 'index.umd.min.js')) },
    '/static/doors.js': { type: 'js', body: fs.readFileSync(path.join(VIEWS_DIR, 'static', 'doors.js')) },
    '/static/favicon.svg': { type: 'svg', body: fs.readFileSync(path.join(VIEWS_DIR, 'static', 'favicon.svg')) },
  };
  app.use(requestLog(logger));
  app.use(metrics.httpLatency());
  const metricsEndpoint = metrics.endpoint(config.metricsToken);
  app.use(errorHandler(renderer, config.defaultLocale));
  // Headers every response should carry (ASVS V14.4: nosniff and friends on JSON too), then the lean path: token,
  // JWKS, discovery, userinfo, introspection and revocation go straight to the provider, past the page routers,
  // their body parsers, CSRF checks and console sessions.
  app.use(securityHeaders());
  app.use((ctx, next) => (MACHINE_ENDPOINTS.has(ctx.path) ? providers.middleware(ctx, next) : next()));
  // Door controllers wait at a door for the answer: their API takes the same lean path, past every page router.
  app.use(createControllerRouter({ access, doors }).routes());
  app.use(async (ctx, next) => {
    if (ctx.path === '/healthz') {
      ctx.body = { status: 'ok' };
    } else if (ctx.path === '/readyz') {
      const ready = await Promise.race([
        queries.ping().then(() => true, () => false),
        new Promise<boolean>((resolve) => setTimeout(resolve, 1000, false).unref()),
      ]);
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : 'database unavailable' };
    } else if (ctx.path === '/' && ctx.method === 'GET') {
      ctx.redirect('/account');
    } else if (ctx.path === '/metrics' && ctx.method === 'GET') {
      await metricsEndpoint(ctx);
    } else if (statics[ctx.path]) {
      ctx.type = statics[ctx.path]!.type;
      ctx.set('cache-control', 'public, max-age=3600');
      ctx.body = statics[ctx.path]!.body;
    } else {
      await next();
    }
  });
  const passwordLogin = { queries, hasher, throttle, settings, webPinMinLength: config.mfa.pinWebMinLength };
  const consoleSession = createConsoleSession({ providers, queries, mfa, issuer: config.issuer });
  app.use(async (ctx, next) => (ctx.path === CONSOLE_CALLBACK_PATH ? consoleSession.callback(ctx, next) : next()));
  const rememberedDevices = createRememberedDevices({ queries, box, clock, settings, issuer: config.issuer, reserveAttempt: mfa.reserveAttempt });
  const interactions = createInteractionRouter({
    replaceTemporaryPassword: (user, next, by) => replaceTemporaryPassword(people, user, next, by),
    providers,
    renderer,
    defaultLocale: config.defaultLocale,
    passwordLogin,
    mfa,
    bypassCodes,
    queries,
    clock,
    throttle,
    emailConfirmation: emailSender && createEmailConfirmation({ sender: emailSender, renderer, clock, hashKey: sentCodeHashKey(options.masterKey), issuerName: config.issuerName, ttlSeconds: config.sentCodes.ttlSeconds }),
    rememberedDevices,
    onSignedIn: metrics.signedIn,
    onDeliveryFailure: (err, userId) => logger.error({ err, userId }, 'could not send the enrolment confirmation code'),
    // A password typed at sign-in is as recent as one typed again on the account page (same browser, same user).
    onPasswordVerified: (ctx, userId) => consoleSession.markReauthenticated(ctx, userId, clock.now()),
  });
  app.use(interactions.routes());
  const people = { queries, hasher, settings, notifier, clock, issuer: config.issuer, issuerName: config.issuerName, changes };
  const passwordResets = createPasswordResets({
    ...people,
    throttle,
    renderer,
    sender: emailSender,
    hashKey: deriveKey(options.masterKey, 'latchkey password resets v1'),
    onDeliveryFailure: (err, userId) => logger.error({ err, userId }, 'could not send the password reset code'),
  });
  app.use(createPasswordResetRouter({ resets: passwordResets, providers, renderer, queries, clock, defaultLocale: config.defaultLocale }).routes());
  const adminApi = createAdminApi({ ...people, passwordResets, mfa, bypassCodes, providers, clients, resources, access, box, builtFactors: registry.factors.map((f) => f.id), mailConfigured: emailSender !== undefined });
  for (const router of createSessionsRouters({ console: consoleSession, renderer, defaultLocale: config.defaultLocale, people, providers, clients })) app.use(router.routes());
  app.use(createAccountRouter({ console: consoleSession, mfa, access, renderer, passwordLogin, clock, defaultLocale: config.defaultLocale, people, providers, rememberedDevices }).routes());
  app.use(createInvitationRouter({ people, renderer, defaultLocale: config.defaultLocale }).routes());
  app.use(createAdminRouter({ console: consoleSession, api: adminApi, queries, renderer, defaultLocale: config.defaultLocale }).routes());
  app.use(adminApi.router.routes());
  app.use(providers.middleware);

  return {
    app,
    queries,
    clients,
    resources,
    providers,
    mfa,
    bypassCodes,
    notifier,
    access,
    doors,
    settings,
    adminApi,
    metrics,
    hasher,
    box,
    clock,
    /** For the password policy's context words wherever a password is set outside a request (CLI, first start). */
    issuerName: config.issuerName,
    /** Picks up rotated keys; called on a timer by every instance. */
    refreshKeys: async () => providers.refresh(await loadKeyMaterial(queries, box, clock)),
    purgeExpired: async () => {
      const now = clock.now();
      await queries.oidcModels.purgeExpired(now);
      await queries.keys.purgeExpired(now);
      await queries.factors.purgePending(now);
      await queries.signIns.purgeExpired(now);
      await queries.sentCodes.purgeExpired(now);
      await queries.passkeys.challenges.purgeExpired(now);
      await queries.passwordResets.purgeExpired(now);
      await queries.bypassCodes.purgeExpired(now);
      await queries.rememberedDevices.purgeExpired(now);
    },
    /** Makes the audit log's coming months and drops those past the retention; at start and on a timer, any instance. */
    maintainAuditLog: async () => {
      const retentionDays = (await settings.read('audit-retention')).value.days;
      const result = await maintainAuditPartitions(queries.db, { now: clock.now(), retentionDays });
      if (result.dropped.length) await queries.audit.insert({ action: 'audit.retention', outcome: 'success', details: { dropped: result.dropped, retention_days: retentionDays } });
      return result;
    },
    /** Stops listening for other instances' changes; the database itself is the caller's to close. */
    close: async () => {
      await changes.close();
      if (counterDb !== db) await counterDb.destroy();
    },
  };
}

export type Latchkey = Awaited<ReturnType<typeof createLatchkey>>;
