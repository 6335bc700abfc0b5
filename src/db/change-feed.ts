import pg from 'pg';
import { type Database, joinedServer } from './connect.js';
import { onSharedTurn } from './embedded-share.js';

/** 'access': doors, schedules, levels, controllers, credentials and codes (keys: see AccessDeps.feed). */
export const CHANGE_TOPICS = ['client', 'setting', 'resource', 'access'] as const;
export type ChangeTopic = (typeof CHANGE_TOPICS)[number];
/** `key` undefined means "anything of this topic may have changed": drop the whole cache. */
export type ChangeHandler = (key: string | undefined) => void;

const CHANNEL = 'latchkey_changes';
const RECONNECT_MS = 1000;

export interface ChangeFeed {
  /** Tells this instance at once and every other instance through PostgreSQL's NOTIFY. */
  publish(topic: ChangeTopic, key: string): Promise<void>;
  subscribe(topic: ChangeTopic, handler: ChangeHandler): void;
  /**
   * Whether every change made elsewhere reaches this instance now: on PostgreSQL while the listening connection is
   * up, always on PGlite (one process). A cache that must never serve a stale answer reads the database meanwhile.
   */
  live(): boolean;
  close(): Promise<void>;
}

interface Logger {
  warn(obj: object, msg: string): void;
}

/**
 * Cache invalidation across instances. Each instance caches what the hot paths read (clients, settings) and drops an
 * entry when told it changed. On PostgreSQL the news travels by LISTEN/NOTIFY on a connection of its own, outside
 * the pool; while that connection is down, notices can be missed, so every cache is dropped whole when it comes
 * back. The embedded PGlite serves one process, so there it is a local event, and a turn taken by a CLI through the
 * server's share drops every cache.
 */
export function createChangeFeed(db: Database, logger?: Logger): ChangeFeed {
  const handlers = new Map<ChangeTopic, ChangeHandler[]>();
  const deliver = (topic: ChangeTopic, key: string | undefined) => {
    for (const handler of handlers.get(topic) ?? []) handler(key);
  };
  const deliverAll = () => CHANGE_TOPICS.forEach((topic) => deliver(topic, undefined));
  const knexClient = db.client as { config: { client?: unknown }; connectionSettings?: pg.ClientConfig };
  const settings = knexClient.connectionSettings;
  // A CLI joined to the server's embedded database speaks `pg` to it, but the server learns of its writes by itself.
  const onPostgres = knexClient.config.client === 'pg' && settings !== undefined && !joinedServer(db);
  onSharedTurn(db, deliverAll);

  let listener: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const listen = async () => {
    if (closed || !onPostgres) return;
    const client = new pg.Client(settings);
    const lost = (err?: Error) => {
      if (listener !== client) return;
      listener = undefined;
      listening = false;
      client.end().catch(() => undefined);
      if (err) logger?.warn({ err }, 'change feed connection lost: caches dropped until it is back');
      deliverAll();
      if (!closed) retry = setTimeout(() => void listen(), RECONNECT_MS);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (message) => {
      const [topic, ...rest] = (message.payload ?? '').split(':');
      if ((CHANGE_TOPICS as readonly string[]).includes(topic!)) deliver(topic as ChangeTopic, rest.join(':') || undefined);
    });
    listener = client;
    try {
      await client.connect();
      await client.query(`listen ${CHANNEL}`);
      listening = listener === client;
      // Whatever changed while this instance was not listening is unknown: start from empty caches.
      deliverAll();
    } catch (err) {
      lost(err as Error);
    }
  };
  void listen();

  return {
    async publish(topic, key) {
      deliver(topic, key);
      if (onPostgres) await db.raw('select pg_notify(?, ?)', [CHANNEL, `${topic}:${key}`]);
    },
    subscribe(topic, handler) {
      handlers.set(topic, [...(handlers.get(topic) ?? []), handler]);
    },
    live: () => !onPostgres || listening,
    async close() {
      closed = true;
      clearTimeout(retry);
      const client = listener;
      listener = undefined;
      listening = false;
      await client?.end().catch(() => undefined);
    },
  };
}

/** News for this process alone, for a service run without a database feed (a benchmark, a tool). */
export function createLocalChangeFeed(): ChangeFeed {
  const handlers = new Map<ChangeTopic, ChangeHandler[]>();
  return {
    publish: async (topic, key) => (handlers.get(topic) ?? []).forEach((handler) => handler(key)),
    subscribe: (topic, handler) => void handlers.set(topic, [...(handlers.get(topic) ?? []), handler]),
    live: () => true,
    close: async () => undefined,
  };
}

/**
 * Values loaded by key and kept until the feed says the key changed (or `maxAgeMs`, a backstop). Misses are not
 * kept, so unknown keys cannot fill memory, and concurrent reads of one key share one load. While the feed is down
 * nothing is served from memory: a client deleted or a secret rotated on another instance would otherwise still
 * work here until the backstop.
 */
export function invalidatedCache<V>(feed: ChangeFeed, topic: ChangeTopic, load: (key: string) => Promise<V | undefined>, maxAgeMs: number, now: () => number = Date.now) {
  const entries = new Map<string, { value: Promise<V | undefined>; loadedAt: number }>();
  feed.subscribe(topic, (key) => (key === undefined ? entries.clear() : entries.delete(key)));
  return {
    get(key: string): Promise<V | undefined> {
      if (!feed.live()) return load(key);
      const cached = entries.get(key);
      if (cached && now() - cached.loadedAt <= maxAgeMs) return cached.value;
      const entry = { value: load(key), loadedAt: now() };
      entries.set(key, entry);
      const forget = () => entries.get(key) === entry && entries.delete(key);
      entry.value.then((value) => value === undefined && forget(), forget);
      return entry.value;
    },
  };
}
