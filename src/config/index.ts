import { z } from 'zod';
import { configSchema, type RawConfig } from '../../config/schema.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface Config {
  env: RawConfig['NODE_ENV'];
  host: string;
  port: number;
  issuer: string;
  /** Whether X-Forwarded-* headers come from a proxy of ours at all. */
  trustProxy: boolean;
  /**
   * How many proxies of ours each request passes: the client address is the X-Forwarded-For entry this many from
   * the right. Entries further left were written by the client and prove nothing.
   */
  proxyHops: number;
  database: { url?: string; poolMax: number; dataDir: string };
  masterKey?: Buffer;
  migrateOnStart: boolean;
  bootstrapAdmin?: { email: string; password: string };
  defaultLocale: 'en' | 'ko';
  logLevel: RawConfig['LOG_LEVEL'];
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  loginThrottle: { accountFailures: number; ipFailures: number; windowSeconds: number };
  keyReloadSeconds: number;
  mail: { smtpUrl?: string; from: string };
  twilio?: { accountSid: string; authToken: string; messagingServiceSid?: string; from?: string; apiOrigin: string };
  /** Development only: codes and notices go to the log when no real transport is configured. */
  devLogMessages: boolean;
  sentCodes: { ttlSeconds: number; cooldownSeconds: number; perHourPerUser: number; perHourPerDestination: number };
  issuerName: string;
  totp: { algorithm: 'sha1' | 'sha256' | 'sha512'; digits: 6 | 8; period: number };
  mfa: { factors: Array<'totp' | 'sms' | 'email' | 'pin' | 'passkey'>; accountFailures: number; pinWebMinLength: number };
  shutdownGraceSeconds: number;
  /** When set, /metrics asks for it as a bearer token. */
  metricsToken?: string;
}

function describeIssue(issue: z.core.$ZodIssue, env: Record<string, string | undefined>): string {
  const name = issue.path.join('.') || '(environment)';
  const given = typeof issue.path[0] === 'string' ? env[issue.path[0]] : undefined;
  const shown = given === undefined || /KEY|PASSWORD|TOKEN/.test(name) ? '' : ` (got ${JSON.stringify(given)})`;
  return `${name}: ${issue.message}${shown}`;
}

export function decodeMasterKey(text: string): Buffer {
  return /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64url');
}

/** Turns the environment into a typed config, or throws a ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => describeIssue(issue, env)));
  const raw = parsed.data;
  const proxyHops = raw.LATCHKEY_TRUSTED_PROXY_HOPS ?? (raw.LATCHKEY_TRUST_PROXY ? 1 : 0);
  return {
    env: raw.NODE_ENV,
    host: raw.HOST,
    port: raw.PORT,
    issuer: (raw.LATCHKEY_ISSUER ?? `http://localhost:${raw.PORT}`).replace(/\/$/, ''),
    trustProxy: proxyHops > 0,
    proxyHops,
    database: { url: raw.DATABASE_URL, poolMax: raw.DATABASE_POOL_MAX, dataDir: raw.LATCHKEY_DATA_DIR },
    masterKey: raw.LATCHKEY_MASTER_KEY ? decodeMasterKey(raw.LATCHKEY_MASTER_KEY) : undefined,
    migrateOnStart: raw.LATCHKEY_MIGRATE_ON_START,
    bootstrapAdmin:
      raw.LATCHKEY_ADMIN_EMAIL && raw.LATCHKEY_ADMIN_PASSWORD
        ? { email: raw.LATCHKEY_ADMIN_EMAIL, password: raw.LATCHKEY_ADMIN_PASSWORD }
        : undefined,
    defaultLocale: raw.LATCHKEY_DEFAULT_LOCALE,
    logLevel: raw.LOG_LEVEL,
    argon2: {
      memoryCost: raw.LATCHKEY_ARGON2_MEMORY_KIB,
      timeCost: raw.LATCHKEY_ARGON2_ITERATIONS,
      parallelism: raw.LATCHKEY_ARGON2_PARALLELISM,
    },
    loginThrottle: {
      accountFailures: raw.LATCHKEY_LOGIN_ACCOUNT_FAILURES,
      ipFailures: raw.LATCHKEY_LOGIN_IP_FAILURES,
      windowSeconds: raw.LATCHKEY_LOGIN_WINDOW_SECONDS,
    },
    keyReloadSeconds: raw.LATCHKEY_KEY_RELOAD_SECONDS,
    mail: { smtpUrl: raw.LATCHKEY_SMTP_URL, from: raw.LATCHKEY_MAIL_FROM },
    twilio:
      raw.LATCHKEY_TWILIO_ACCOUNT_SID && raw.LATCHKEY_TWILIO_AUTH_TOKEN
        ? {
            accountSid: raw.LATCHKEY_TWILIO_ACCOUNT_SID,
            authToken: raw.LATCHKEY_TWILIO_AUTH_TOKEN,
            messagingServiceSid: raw.LATCHKEY_TWILIO_MESSAGING_SERVICE_SID,
            from: raw.LATCHKEY_TWILIO_FROM,
            apiOrigin: raw.LATCHKEY_TWILIO_API_ORIGIN.replace(/\/$/, ''),
          }
        : undefined,
    devLogMessages: raw.LATCHKEY_DEV_LOG_MESSAGES,
    sentCodes: {
      ttlSeconds: raw.LATCHKEY_SENT_CODE_TTL_SECONDS,
      cooldownSeconds: raw.LATCHKEY_SENT_CODE_COOLDOWN_SECONDS,
      perHourPerUser: raw.LATCHKEY_SENT_CODES_PER_HOUR_PER_USER,
      perHourPerDestination: raw.LATCHKEY_SENT_CODES_PER_HOUR_PER_DESTINATION,
    },
    issuerName: raw.LATCHKEY_ISSUER_NAME,
    totp: { algorithm: raw.LATCHKEY_TOTP_ALGORITHM, digits: raw.LATCHKEY_TOTP_DIGITS as 6 | 8, period: raw.LATCHKEY_TOTP_PERIOD },
    mfa: { factors: raw.LATCHKEY_MFA_FACTORS, accountFailures: raw.LATCHKEY_MFA_ACCOUNT_FAILURES, pinWebMinLength: raw.LATCHKEY_PIN_WEB_MIN_LENGTH },
    shutdownGraceSeconds: raw.LATCHKEY_SHUTDOWN_GRACE_SECONDS,
    metricsToken: raw.LATCHKEY_METRICS_TOKEN,
  };
}
