import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { z } from 'zod';
import type { Database } from './connect.js';

/**
 * The embedded PGlite lives in the server's memory, so a second process cannot open its directory. The server shares
 * it instead: a PostgreSQL-protocol listener on 127.0.0.1 (a random port) that admits whoever knows a random
 * password, written with the port to a file only the data directory's owner can read. The CLI, finding the directory
 * held by a live server, connects there with `pg` like to any PostgreSQL.
 *
 * PGlite is one session, so a client borrows the server's own (single) knex connection for each of its transactions
 * and gives it back when the session is idle again: a CLI command never runs inside one of the server's transactions
 * nor the server inside one of its. The server's caches are dropped after every such turn, since what the CLI wrote
 * (a client, a setting) is what they cache.
 */

export const SHARE_FILE = 'latchkey.share.json';

const shareFileSchema = z.object({
  pid: z.number().int().positive(),
  port: z.number().int().min(1).max(65535),
  password: z.string().min(32),
  /** The server's issuer: a joined CLI speaks as the server (links it mails, the console client it checks). */
  issuer: z.url(),
});
export type ShareAddress = z.output<typeof shareFileSchema>;

/** A transaction left open this long by a client (a stuck or killed CLI) is rolled back so the server can go on. */
const IDLE_IN_TRANSACTION_MS = 10_000;
/** Everything before the password must fit in this, and arrive within AUTH_TIMEOUT_MS. */
const MAX_STARTUP_BYTES = 10_000;
const AUTH_TIMEOUT_MS = 5_000;

const PROTOCOL_V3 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
/** Frontend messages after which the backend answers: the end of a batch to run. */
const BATCH_ENDS = new Set(['S', 'Q', 'H']);
/**
 * What a client may send once in: queries, the extended protocol, COPY data. Anything else (a second startup packet,
 * which PGlite would take as a new session) ends the connection.
 */
const FRONTEND_TYPES = new Set(['Q', 'P', 'B', 'D', 'E', 'C', 'S', 'H', 'd', 'c', 'f', 'X']);

const onTurnHandlers = new WeakMap<Database, Array<() => void>>();

/** Called after each turn a shared-database client took (see above): the caller's caches may be stale. */
export function onSharedTurn(db: Database, handler: () => void): void {
  onTurnHandlers.set(db, [...(onTurnHandlers.get(db) ?? []), handler]);
}

/** The address of the server that holds `dir`, when process `holder` shares it. */
export function readShareFile(dir: string, holder: number): ShareAddress | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(path.join(dir, SHARE_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = shareFileSchema.safeParse(JSON.parse(raw));
  return parsed.success && parsed.data.pid === holder ? parsed.data : undefined;
}

function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const int32 = (...values: number[]) => Buffer.concat(values.map((value) => Buffer.from([value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255])));
const cstring = (...values: string[]) => Buffer.concat(values.map((value) => Buffer.from(`${value}\0`, 'utf8')));

function fatal(code: string, text: string): Buffer {
  return message('E', Buffer.concat([cstring('SFATAL', 'VFATAL', `C${code}`, `M${text}`), Buffer.from([0])]));
}

/** The transaction status of the last ReadyForQuery in a backend answer: I idle, T in a transaction, E failed one. */
function lastStatus(answer: Uint8Array): string | undefined {
  let status: string | undefined;
  for (let at = 0; at + 5 <= answer.length; ) {
    const length = ((answer[at + 1]! << 24) | (answer[at + 2]! << 16) | (answer[at + 3]! << 8) | answer[at + 4]!) >>> 0;
    if (answer[at] === 0x5a && at + 5 < answer.length) status = String.fromCharCode(answer[at + 5]!);
    at += 1 + length;
  }
  return status;
}

const sameSecret = (given: string, expected: string) =>
  crypto.timingSafeEqual(crypto.createHash('sha256').update(given).digest(), crypto.createHash('sha256').update(expected).digest());

export interface EmbeddedShare {
  port: number;
  close(): Promise<void>;
}

interface KnexPool {
  acquireConnection(): Promise<PGlite>;
  releaseConnection(connection: PGlite): Promise<void>;
}

/** Serves `db` (the embedded database of `dataDir`) to other local processes until `close()`. */
export async function shareEmbedded(db: Database, dataDir: string, issuer: string): Promise<EmbeddedShare> {
  const pool = db.client as unknown as KnexPool;
  const password = crypto.randomBytes(32).toString('base64url');
  const serverVersion = String(((await db.raw('show server_version')) as { rows: Array<{ server_version: string }> }).rows[0]!.server_version);
  const sessions = new Set<Promise<void>>();
  const sockets = new Set<net.Socket>();

  const greeting = Buffer.concat([
    message('R', int32(0)),
    ...Object.entries({ server_version: serverVersion, server_encoding: 'UTF8', client_encoding: 'UTF8', standard_conforming_strings: 'on', integer_datetimes: 'on', DateStyle: 'ISO, MDY' }).map(([key, value]) =>
      message('S', cstring(key, value)),
    ),
    message('K', int32(process.pid, crypto.randomInt(2 ** 31))),
    message('Z', Buffer.from('I')),
  ]);

  function serve(socket: net.Socket) {
    sockets.add(socket);
    let phase: 'startup' | 'password' | 'ready' | 'refused' = 'startup';
    let buffered = Buffer.alloc(0);
    let batch: Buffer[] = [];
    let held: PGlite | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let turns = Promise.resolve();
    const authTimer = setTimeout(() => socket.destroy(), AUTH_TIMEOUT_MS);

    const run = async (input: Uint8Array) => {
      held ??= await pool.acquireConnection();
      const connection = held;
      const answer = await connection.runExclusive(() => connection.execProtocolRaw(input));
      return { answer, status: lastStatus(answer) };
    };
    const giveBack = async () => {
      clearTimeout(idleTimer);
      const connection = held;
      held = undefined;
      if (!connection) return;
      await pool.releaseConnection(connection);
      for (const handler of onTurnHandlers.get(db) ?? []) handler();
    };
    /** A client gone (or stuck) in the middle of a transaction: end its batch, roll back, give the session back. */
    const abandon = async () => {
      if (held) {
        try {
          const { status } = await run(message('S'));
          if (status !== 'I') await run(message('Q', cstring('rollback')));
        } finally {
          await giveBack();
        }
      }
    };
    const turn = (work: () => Promise<void>) => {
      turns = turns.then(work).catch(() => void socket.destroy());
    };

    function onMessage(type: string, whole: Buffer) {
      if (!FRONTEND_TYPES.has(type)) {
        socket.destroy();
        return;
      }
      if (type === 'X') {
        socket.end();
        return;
      }
      batch.push(whole);
      if (!BATCH_ENDS.has(type)) return;
      const input = Buffer.concat(batch);
      batch = [];
      turn(async () => {
        clearTimeout(idleTimer);
        const { answer, status } = await run(input);
        if (socket.writable) socket.write(answer);
        if (status === 'I') await giveBack();
        else idleTimer = setTimeout(() => turn(async () => {
          await abandon();
          socket.destroy();
        }), IDLE_IN_TRANSACTION_MS);
      });
    }

    function onStartup(packet: Buffer) {
      const code = packet.readInt32BE(4);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        socket.write('N');
      } else if (code === PROTOCOL_V3) {
        phase = 'password';
        socket.write(message('R', int32(3))); // cleartext: over loopback, to a listener only the data dir's owner could name
      } else {
        socket.destroy(); // cancel requests and older protocols: not served
      }
    }

    function onPassword(type: string, whole: Buffer) {
      const given = whole.subarray(5, whole.indexOf(0, 5) === -1 ? whole.length : whole.indexOf(0, 5)).toString('utf8');
      if (type !== 'p' || !sameSecret(given, password)) {
        phase = 'refused';
        socket.end(fatal('28P01', 'password authentication failed'));
        return;
      }
      clearTimeout(authTimer);
      phase = 'ready';
      socket.write(greeting);
    }

    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (socket.destroyed || phase === 'refused') return;
        const headerSize = phase === 'startup' ? 0 : 1;
        if (buffered.length < headerSize + 4) return;
        const length = buffered.readInt32BE(headerSize);
        if (length < 4 || (phase !== 'ready' && length > MAX_STARTUP_BYTES)) {
          socket.destroy();
          return;
        }
        if (buffered.length < headerSize + length) return;
        const whole = buffered.subarray(0, headerSize + length);
        buffered = buffered.subarray(headerSize + length);
        const type = String.fromCharCode(whole[0]!);
        if (phase === 'startup') onStartup(whole);
        else if (phase === 'password') onPassword(type, whole);
        else onMessage(type, whole);
      }
    });
    socket.on('error', () => socket.destroy());
    const ended = new Promise<void>((resolve) =>
      socket.once('close', () => {
        clearTimeout(authTimer);
        sockets.delete(socket);
        turn(abandon);
        void turns.then(resolve);
      }),
    );
    sessions.add(ended);
    void ended.then(() => sessions.delete(ended));
  }

  const server = net.createServer(serve);
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { port } = server.address() as net.AddressInfo;

  // Written whole under a temporary name, readable by the owner only, then renamed: a reader sees all of it or nothing.
  const file = path.join(dataDir, SHARE_FILE);
  const temporary = `${file}.${process.pid}`;
  fs.rmSync(temporary, { force: true });
  fs.writeFileSync(temporary, JSON.stringify({ pid: process.pid, port, password, issuer } satisfies ShareAddress), { mode: 0o600, flag: 'wx' });
  fs.renameSync(temporary, file);
  const removeFile = () => {
    if (readShareFile(dataDir, process.pid)?.password === password) fs.rmSync(file, { force: true });
  };
  process.once('exit', removeFile);

  return {
    port,
    async close() {
      removeFile();
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await Promise.all([closed, ...sessions]);
    },
  };
}
