import { isIP } from 'node:net';
import { z } from 'zod';

const booleanFromEnv = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const integer = (min: number, max: number) =>
  z.coerce
    .number({ message: 'expected a whole number' })
    .int({ message: 'expected a whole number' })
    .min(min, { message: `expected at least ${min}` })
    .max(max, { message: `expected at most ${max}` });

/** Tokens and cookies cross the network only over TLS; a loopback host never leaves the machine. */
function isSecureOrigin(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'https:') return true;
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * Every setting Latchkey reads from its environment, with the defaults a newcomer gets.
 * Names are the environment variables themselves so that an error names exactly what to fix.
 */
export const configSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: integer(0, 65535).default(3000),
    LATCHKEY_ISSUER: z.url({ protocol: /^https?$/, message: 'expected an http(s) URL' }).optional(),
    // Shorthand for one trusted hop; kept so that existing deployments behind one reverse proxy go on working.
    LATCHKEY_TRUST_PROXY: booleanFromEnv.optional(),
    LATCHKEY_TRUSTED_PROXY_HOPS: integer(0, 10).optional(),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, { message: 'expected a postgres:// URL' })
      .optional(),
    DATABASE_POOL_MAX: integer(1, 200).default(10),
    LATCHKEY_DATA_DIR: z.string().min(1).default('./data'),
    LATCHKEY_MASTER_KEY: z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}=?$|^[0-9a-fA-F]{64}$/, {
        message: 'expected 32 bytes as base64url (43 characters) or hex (64 characters)',
      })
      .optional(),
    LATCHKEY_MIGRATE_ON_START: booleanFromEnv.default(true),
    LATCHKEY_METRICS_TOKEN: z.string().min(16, { message: 'expected at least 16 characters' }).max(256).optional(),
    LATCHKEY_ADMIN_EMAIL: z.email({ message: 'expected an email address' }).optional(),
    // Checked by the password policy when the first admin is created (the only time it is used), like any password.
    LATCHKEY_ADMIN_PASSWORD: z.string().min(1).optional(),
    LATCHKEY_DEFAULT_LOCALE: z.enum(['en', 'ko']).default('en'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LATCHKEY_ARGON2_MEMORY_KIB: integer(19456, 1048576).default(19456),
    LATCHKEY_ARGON2_ITERATIONS: integer(2, 20).default(2),
    LATCHKEY_ARGON2_PARALLELISM: integer(1, 16).default(1),
    LATCHKEY_LOGIN_ACCOUNT_FAILURES: integer(3, 100).default(5),
    LATCHKEY_LOGIN_IP_FAILURES: integer(5, 10000).default(50),
    LATCHKEY_LOGIN_WINDOW_SECONDS: integer(60, 86400).default(900),
    LATCHKEY_SMTP_URL: z
      .string()
      .regex(/^smtps?:\/\//, { message: 'expected an smtp:// or smtps:// URL' })
      .optional(),
    LATCHKEY_MAIL_FROM: z.string().min(3).default('Latchkey <no-reply@latchkey.local>'),
    LATCHKEY_TWILIO_ACCOUNT_SID: z.string().regex(/^AC[0-9a-fA-F]{32}$/, { message: 'expected AC followed by 32 hex digits' }).optional(),
    LATCHKEY_TWILIO_AUTH_TOKEN: z.string().min(16, { message: 'expected a Twilio auth token' }).optional(),
    LATCHKEY_TWILIO_MESSAGING_SERVICE_SID: z.string().regex(/^MG[0-9a-fA-F]{32}$/, { message: 'expected MG followed by 32 hex digits' }).optional(),
    LATCHKEY_TWILIO_FROM: z.string().regex(/^\+[1-9]\d{6,14}$/, { message: 'expected an E.164 number such as +15551234567' }).optional(),
    LATCHKEY_TWILIO_API_ORIGIN: z.url({ protocol: /^https?$/, message: 'expected an http(s) origin' }).default('https://api.twilio.com'),
    LATCHKEY_DEV_LOG_MESSAGES: booleanFromEnv.default(false),
    LATCHKEY_SENT_CODE_TTL_SECONDS: integer(60, 3600).default(300),
    LATCHKEY_SENT_CODE_COOLDOWN_SECONDS: integer(5, 600).default(30),
    LATCHKEY_SENT_CODES_PER_HOUR_PER_USER: integer(1, 100).default(10),
    LATCHKEY_SENT_CODES_PER_HOUR_PER_DESTINATION: integer(1, 100).default(5),
    LATCHKEY_ISSUER_NAME: z.string().min(1).max(60).default('Latchkey'),
    LATCHKEY_TOTP_ALGORITHM: z.enum(['sha1', 'sha256', 'sha512']).default('sha1'),
    LATCHKEY_TOTP_DIGITS: z.enum(['6', '8'], { message: 'expected 6 or 8' }).default('6').transform(Number),
    LATCHKEY_TOTP_PERIOD: integer(15, 120).default(30),
    LATCHKEY_MFA_FACTORS: z
      .string()
      .default('totp,sms,email,pin,passkey')
      .transform((value) => value.split(',').map((v) => v.trim()).filter(Boolean))
      .pipe(z.array(z.enum(['totp', 'sms', 'email', 'pin', 'passkey'], { message: 'expected a comma-separated list of totp, sms, email, pin, passkey' })).min(1)),
    LATCHKEY_PIN_WEB_MIN_LENGTH: integer(4, 16).default(6),
    LATCHKEY_MFA_ACCOUNT_FAILURES: integer(3, 100).default(5),
    LATCHKEY_KEY_RELOAD_SECONDS: integer(1, 3600).default(30),
    LATCHKEY_SHUTDOWN_GRACE_SECONDS: integer(1, 300).default(10),
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ENV === 'production' && env.LATCHKEY_ISSUER && !isSecureOrigin(env.LATCHKEY_ISSUER)) {
      ctx.addIssue({ code: 'custom', path: ['LATCHKEY_ISSUER'], message: 'expected https in production (http only on a loopback host)' });
    }
    if (env.LATCHKEY_TRUST_PROXY !== undefined && env.LATCHKEY_TRUSTED_PROXY_HOPS !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['LATCHKEY_TRUST_PROXY'], message: 'set LATCHKEY_TRUSTED_PROXY_HOPS alone (LATCHKEY_TRUST_PROXY=true means one hop)' });
    }
    if (env.NODE_ENV === 'production' && !env.LATCHKEY_MASTER_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['LATCHKEY_MASTER_KEY'],
        message: 'required in production (32 random bytes, e.g. `openssl rand -hex 32`)',
      });
    }
    if (env.NODE_ENV === 'production' && env.LATCHKEY_DEV_LOG_MESSAGES) {
      ctx.addIssue({ code: 'custom', path: ['LATCHKEY_DEV_LOG_MESSAGES'], message: 'codes written to the log are for development only' });
    }
    const twilio = [env.LATCHKEY_TWILIO_ACCOUNT_SID, env.LATCHKEY_TWILIO_AUTH_TOKEN];
    if (twilio.some(Boolean) && !twilio.every(Boolean)) {
      ctx.addIssue({ code: 'custom', path: [env.LATCHKEY_TWILIO_ACCOUNT_SID ? 'LATCHKEY_TWILIO_AUTH_TOKEN' : 'LATCHKEY_TWILIO_ACCOUNT_SID'], message: 'the Twilio account SID and auth token go together' });
    }
    if (env.LATCHKEY_TWILIO_ACCOUNT_SID && !env.LATCHKEY_TWILIO_MESSAGING_SERVICE_SID && !env.LATCHKEY_TWILIO_FROM) {
      ctx.addIssue({ code: 'custom', path: ['LATCHKEY_TWILIO_FROM'], message: 'set a from-number or LATCHKEY_TWILIO_MESSAGING_SERVICE_SID' });
    }
    if ((env.LATCHKEY_ADMIN_EMAIL === undefined) !== (env.LATCHKEY_ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.LATCHKEY_ADMIN_EMAIL ? 'LATCHKEY_ADMIN_PASSWORD' : 'LATCHKEY_ADMIN_EMAIL'],
        message: 'LATCHKEY_ADMIN_EMAIL and LATCHKEY_ADMIN_PASSWORD go together',
      });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type RawConfig = z.output<typeof configSchema>;
