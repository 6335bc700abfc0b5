import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import { connectDatabase, type Database } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { PROJECT_ROOT } from '../src/paths.js';
import { freePort, startServerProcess, type ServerProcess } from '../test/helpers/process.js';

/** What the benchmarks share: a database of their own, the server as its own process, load loops and figures. */
export const DATABASE_URL = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

export interface LoadFigures {
  completed: number;
  errors: number;
  perSecond: number;
  p50: number;
  p99: number;
  firstError?: string;
}

function figures(latencies: number[], errors: number, seconds: number, firstError?: string): LoadFigures {
  return { completed: latencies.length, errors, perSecond: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), firstError };
}

/** Starts `task` at a fixed rate (open loop: a slow answer does not slow the arrivals) and times each run. */
export async function openLoop(rate: number, seconds: number, task: (i: number) => Promise<void>): Promise<LoadFigures> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const running: Promise<void>[] = [];
  for (let i = 0; i < rate * seconds; i++) {
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    running.push(
      (async () => {
        const t0 = performance.now();
        try {
          await task(i);
          latencies.push(performance.now() - t0);
        } catch (error) {
          errors++;
          firstError ??= String(error);
        }
      })(),
    );
  }
  await Promise.all(running);
  return figures(latencies, errors, (performance.now() - started) / 1000, firstError);
}

/** `concurrency` workers each running `task` back to back for `seconds` (closed loop: throughput at that concurrency). */
export async function closedLoop(concurrency: number, seconds: number, task: (worker: number, i: number) => Promise<void>): Promise<LoadFigures> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await task(worker, count++);
          latencies.push(performance.now() - t0);
        } catch (error) {
          errors++;
          firstError ??= String(error);
        }
      }
    }),
  );
  return figures(latencies, errors, (performance.now() - started) / 1000, firstError);
}

export interface BenchDatabase {
  db: Database;
  schema: string;
  /** For the server process: the same database, this schema first on its search path. */
  url: string;
  drop(): Promise<void>;
}

export async function benchDatabase(poolMax = 10): Promise<BenchDatabase> {
  const schema = `bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: DATABASE_URL, pool: { min: 0, max: 1 } });
  await admin.raw('create schema ??', [schema]);
  await admin.destroy();
  const db = connectDatabase({ url: DATABASE_URL, searchPath: schema, poolMax });
  await migrateToLatest(db);
  const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return {
    db,
    schema,
    url,
    drop: async () => {
      await db.raw('drop schema ?? cascade', [schema]);
      await db.destroy();
    },
  };
}

export const masterKey = crypto.randomBytes(32);

export async function startBenchServer(database: BenchDatabase, env: Record<string, string> = {}, port?: number): Promise<ServerProcess> {
  port ??= await freePort();
  return startServerProcess({ DATABASE_URL: database.url, LATCHKEY_MASTER_KEY: masterKey.toString('hex'), LATCHKEY_ISSUER: `http://127.0.0.1:${port}`, LOG_LEVEL: 'error', LATCHKEY_MIGRATE_ON_START: 'false', ...env }, port);
}

/** Resident set size of a process, from /proc (Linux): now and the highest it has been. */
export function rssOf(pid: number): { rssMb: number; peakMb: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kib('VmRSS') / 1024, peakMb: kib('VmHWM') / 1024 };
}

export function writeResults(results: Record<string, unknown>) {
  const dir = path.join(PROJECT_ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify({ measuredAt: new Date().toISOString(), ...results }, null, 2)}\n`);
}
