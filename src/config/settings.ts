import { z } from 'zod';
import { type ChangeFeed, invalidatedCache } from '../db/change-feed.js';
import type { Queries } from '../db/index.js';
import { FACTOR_IDS } from '../mfa/factor.js';
import type { Config } from './index.js';

/**
 * Settings an admin changes at run time (the environment gives their first values). Each is one JSON object with a
 * version, so that two admins cannot overwrite each other silently (ETag / If-Match on the API, a hidden version
 * in the console's forms).
 */
export const settingSchemas = {
  'enforce-mfa': z.object({ enabled: z.boolean({ message: 'expected true or false' }) }).strict(),
  // A door PIN is a second thing the user knows: it answers enforcement only where a super admin says so.
  'door-pin': z.object({ answers_enforcement: z.boolean({ message: 'expected true or false' }) }).strict(),
  // Admin rights (console admin pages, admin API) only with a passkey sign-in: a phished password and code do not
  // reach them. Off by default.
  'admin-phishing-resistant': z.object({ required: z.boolean({ message: 'expected true or false' }) }).strict(),
  // "Remember this browser for N days" after a second factor (0: never offered, and remembered browsers stop
  // answering). Off by default: it turns the second factor into something the browser holds.
  'remember-device': z.object({ days: z.number({ message: 'expected a number of days' }).int().min(0).max(365) }).strict(),
  factors: z
    .object({ enabled: z.array(z.enum(FACTOR_IDS)).min(1, { message: 'at least one factor' }).max(FACTOR_IDS.length).refine((ids) => new Set(ids).size === ids.length, { message: 'each factor once' }) })
    .strict(),
  // SP 800-63B-4 3.1.1.2: at least 8 characters and no composition rules; an admin may ask for more length. This
  // minimum holds only while MFA is enforced: a password that may be the only factor needs 15 (password-policy.ts).
  'password-policy': z.object({ min_length: z.number().int().min(8).max(128) }).strict(),
  lockout: z
    .object({
      login_account_failures: z.number().int().min(3).max(100),
      login_ip_failures: z.number().int().min(5).max(10000),
      login_window_seconds: z.number().int().min(60).max(86400),
      mfa_account_failures: z.number().int().min(3).max(100),
    })
    .strict(),
  // A helpdesk's bypass code lives at most an hour: long enough to read it out on a call, short enough to be useless
  // on a note found later.
  'bypass-code': z.object({ ttl_minutes: z.number().int().min(5).max(60) }).strict(),
  // Under enforcement, how long a user without a factor may choose "later": days since their first "later" and sign-ins
  // postponed, each 0 for no such limit; both 0 (the default) means no grace at all.
  'enrolment-grace': z.object({ days: z.number().int().min(0).max(90), sign_ins: z.number().int().min(0).max(50) }).strict(),
  // How long the audit log (door decisions included) keeps a row: whole months are dropped once all of their rows are
  // older (src/db/audit-partitions.ts). null keeps everything. Offline door events may arrive 7 days late.
  'audit-retention': z.object({ days: z.number({ message: 'expected a number of days or null' }).int().min(30).max(36500).nullable() }).strict(),
};

export type SettingName = keyof typeof settingSchemas;
export type SettingValue<N extends SettingName> = z.output<(typeof settingSchemas)[N]>;
export const SETTING_NAMES = Object.keys(settingSchemas) as SettingName[];

const storageKey = (name: SettingName) => name.replace(/-/g, '_');
/** A backstop only: a change is announced on the change feed, and every instance drops its copy at once. */
export const SETTINGS_CACHE_MS = 60_000;

/** The environment's values; `builtFactors` are the configured factors that can actually run (SMS needs Twilio…). */
export function settingDefaults(config: Config, builtFactors: ReadonlyArray<SettingValue<'factors'>['enabled'][number]>): { [N in SettingName]: SettingValue<N> } {
  return {
    'enforce-mfa': { enabled: false },
    'door-pin': { answers_enforcement: false },
    'admin-phishing-resistant': { required: false },
    'remember-device': { days: 0 },
    factors: { enabled: [...builtFactors] },
    'password-policy': { min_length: 8 },
    lockout: {
      login_account_failures: config.loginThrottle.accountFailures,
      login_ip_failures: config.loginThrottle.ipFailures,
      login_window_seconds: config.loginThrottle.windowSeconds,
      mfa_account_failures: config.mfa.accountFailures,
    },
    'bypass-code': { ttl_minutes: 60 },
    'enrolment-grace': { days: 0, sign_ins: 0 },
    // Keep everything until an operator chooses: an upgrade must never delete audit history on its own.
    'audit-retention': { days: null },
  };
}

export interface Versioned<T> {
  value: T;
  /** 0 until an admin first writes the setting. */
  version: number;
}

export function createSettingsStore(queries: Queries, defaults: ReturnType<typeof settingDefaults>, feed: ChangeFeed, now: () => number = Date.now) {
  const cache = invalidatedCache(
    feed,
    'setting',
    async (name): Promise<Versioned<unknown>> => {
      const row = await queries.settings.get(storageKey(name as SettingName));
      // A stored value that no longer fits the schema (a factor removed from the code, say) falls back to the default.
      const parsed = row ? settingSchemas[name as SettingName].safeParse(row.value) : undefined;
      return { value: parsed?.success ? parsed.data : defaults[name as SettingName], version: row?.version ?? 0 };
    },
    SETTINGS_CACHE_MS,
    now,
  );
  const read = async <N extends SettingName>(name: N) => (await cache.get(name)) as Versioned<SettingValue<N>>;

  return {
    read,
    /** Writes a setting; with `expectedVersion`, only if it is still that version (undefined when it is not). */
    async write<N extends SettingName>(name: N, value: SettingValue<N>, expectedVersion?: number): Promise<Versioned<SettingValue<N>> | undefined> {
      const row = await queries.settings.put(storageKey(name), value, expectedVersion);
      if (!row) return undefined;
      await feed.publish('setting', name);
      return { value, version: row.version };
    },
    async readAll() {
      const entries = await Promise.all(SETTING_NAMES.map(async (name) => [name, await read(name)] as const));
      return Object.fromEntries(entries) as { [N in SettingName]: Versioned<SettingValue<N>> };
    },
  };
}

export type SettingsStore = ReturnType<typeof createSettingsStore>;
