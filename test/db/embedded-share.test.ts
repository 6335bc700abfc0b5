import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import pg from 'pg';
import { connectDatabase, type Database, joinedServer } from '../../src/db/connect.js';
import { type EmbeddedShare, onSharedTurn, SHARE_FILE, shareEmbedded } from '../../src/db/embedded-share.js';

// The server and the CLI are two processes in real life; here one process plays both, through the same socket.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-share-'));
let server: Database;
let share: EmbeddedShare;
let cli: Database;
let turns = 0;
beforeAll(async () => {
  server = connectDatabase({ dataDir: dir });
  await server.raw('create table counters (id int primary key, n int not null)');
  await server.raw('insert into counters values (1, 0)');
  share = await shareEmbedded(server, dir, 'http://localhost:3000');
  onSharedTurn(server, () => turns++);
  cli = connectDatabase({ dataDir: dir, joinRunningServer: true });
});
afterAll(async () => {
  await cli.destroy();
  await share.close();
  await server.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
});

const count = async (db: Database) => Number((await db('counters').where({ id: 1 }).first())!.n);

describe("the server's share of its embedded database", () => {
  test('the CLI joins the live holder, and speaks as its issuer', async () => {
    expect(joinedServer(cli)).toMatchObject({ pid: process.pid, port: share.port, issuer: 'http://localhost:3000' });
    expect(joinedServer(server)).toBeUndefined();
    expect(await count(cli)).toBe(0);
  });

  test("a CLI transaction and the server's queries never interleave; the server drops its caches after each turn", async () => {
    const before = turns;
    let serverSaw: number | undefined;
    await cli.transaction(async (trx) => {
      await trx('counters').where({ id: 1 }).update({ n: 41 });
      // The server's query waits for the whole transaction: it can neither see this write early nor run inside it.
      void count(server).then((n) => (serverSaw = n));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(serverSaw).toBeUndefined();
      await trx('counters').where({ id: 1 }).increment('n', 1);
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(serverSaw).toBe(42);
    expect(turns).toBeGreaterThan(before);

    await expect(cli.transaction(async (trx) => {
      await trx('counters').where({ id: 1 }).update({ n: 0 });
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    expect(await count(server)).toBe(42);
  });

  test('40 increments racing from both sides all count', async () => {
    const start = await count(server);
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? server : cli)('counters').where({ id: 1 }).increment('n', 1)));
    expect(await count(server)).toBe(start + 40);
  });

  test('a client that dies inside a transaction is rolled back, and the server goes on', async () => {
    const { port, password } = JSON.parse(fs.readFileSync(path.join(dir, SHARE_FILE), 'utf8')) as { port: number; password: string };
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'latchkey', password, database: 'latchkey' });
    client.on('error', () => undefined);
    await client.connect();
    await client.query('begin');
    await client.query('update counters set n = -1 where id = 1');
    (client as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    expect(await count(server)).toBeGreaterThan(0);
    await client.end().catch(() => undefined);
  });

  test('refuses a wrong password, and oversized or unknown greetings, before any query', async () => {
    const { port } = share;
    const wrong = new pg.Client({ host: '127.0.0.1', port, user: 'latchkey', password: 'x'.repeat(43), database: 'latchkey' });
    await expect(wrong.connect()).rejects.toThrow('password authentication failed');
    await wrong.end().catch(() => undefined);

    for (const greeting of [Buffer.from([0, 0x10, 0, 0, 0, 3, 0, 0]), Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2e])]) {
      const socket = net.connect(port, '127.0.0.1');
      socket.write(greeting);
      await new Promise((resolve) => socket.once('close', resolve));
    }
  });

  test('the share file is for the owner only and goes with the share', async () => {
    expect(fs.statSync(path.join(dir, SHARE_FILE)).mode & 0o777).toBe(0o600);
  });
});
