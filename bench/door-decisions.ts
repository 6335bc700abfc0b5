import http from 'node:http';
import { createDoorDecisions } from '../src/access/decisions.js';
import { createAccessService } from '../src/access/service.js';
import { createChangeFeed } from '../src/db/change-feed.js';
import { createQueries } from '../src/db/index.js';
import { systemClock } from '../src/security/clock.js';
import { createThrottle } from '../src/security/throttle.js';
import { accessCodeLookupKey, createSecretBox } from '../src/security/secret-box.js';
import { withCpu } from './cpu.js';
import { benchDatabase, type LoadFigures, masterKey, openLoop, SECONDS, startBenchServer } from './harness.js';

/**
 * Door decisions (card + code) against PostgreSQL, through the real server process over loopback, at a fixed
 * arrival rate, beside the floor any decision stands on: a bare `SELECT 1` round trip through the same kind of pool.
 */
const RATE = Number(process.env.BENCH_DECISIONS_PER_SECOND ?? 500);
const DOORS = 64;
/** Meets the target: p99 under 10 ms with (nearly) every arrival served. */
export const doorTargetMet = (f: LoadFigures, rate: number) => f.p99 < 10 && f.perSecond >= 0.95 * rate && f.errors === 0;
// Above the target rate, steps of this many decisions/s, each this long, until one misses: the highest that meets.
const SWEEP_STEP = Number(process.env.BENCH_DOOR_SWEEP_STEP ?? 100);
const SWEEP_SECONDS = Number(process.env.BENCH_DOOR_SWEEP_SECONDS ?? 5);

export async function benchDoorDecisions() {
  const database = await benchDatabase();
  const { db } = database;
  let server: Awaited<ReturnType<typeof startBenchServer>> | undefined;
  const feed = createChangeFeed(db);
  try {
    const queries = createQueries(db);
    const throttle = createThrottle(queries, systemClock);
    const access = createAccessService({ queries, box: createSecretBox(masterKey), clock: systemClock, lookupKey: accessCodeLookupKey(masterKey), throttle, notifier: { notify: async () => undefined }, webPinMinLength: 6, feed });
    const doorDecisions = createDoorDecisions({ queries, clock: systemClock, lookupKey: accessCodeLookupKey(masterKey), throttle, feed });
    const by = { actorId: null };
    const site = await access.createSite({ name: 'Bench', time_zone: 'Asia/Seoul' }, by);
    const schedule = await access.createSchedule(site.id, { name: '2FA', windows: [{ start: 0, end: 1440, mode: 'card_and_code' }] }, by);
    const doors: Array<{ id: string }> = [];
    for (let i = 0; i < DOORS; i++) doors.push(await access.createDoor(site.id, { name: `Door ${i}`, has_keypad: true, schedule_id: schedule.id }, by));
    const users: number[] = [];
    for (let i = 0; i < 200; i++) {
      const user = await queries.users.insert({ email: `bench-${i}@example.test`, name: `Bench ${i}`, passwordHash: null });
      await access.addCredential(user.id, { kind: 'card', identifier: `BENCH-${i}` }, by);
      await access.addMfaCode(user.id, { code: String(100000 + i) }, by);
      users.push(i);
    }
    await access.createLevel(site.id, { name: 'All', door_ids: doors.map((d) => d.id), user_ids: (await db('users').pluck('id')) as string[] }, by);
    const { token, id: controllerId } = await access.createController(site.id, 'Bench controller', by);

    server = await startBenchServer(database);
    // Plain http.request on a keep-alive agent, like a controller's client: fetch costs the load generator more CPU
    // than the server spends answering.
    const agent = new http.Agent({ keepAlive: true, maxSockets: DOORS });
    const target = new URL(server.url);
    const post = (route: string, body: unknown) =>
      new Promise<{ result?: string }>((resolve, reject) => {
        const payload = JSON.stringify(body);
        const request = http.request(
          { agent, host: target.hostname, port: target.port, method: 'POST', path: `/api/access/v1/${route}`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
          (response) => {
            let text = '';
            response.on('data', (chunk) => (text += chunk));
            response.on('end', () => (response.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`HTTP ${response.statusCode}`))));
          },
        );
        request.on('error', reject);
        request.end(payload);
      });
    // Each door serves one person at a time, as a real reader does: card, then that person's code.
    const doorQueue = doors.map(() => Promise.resolve());
    const decision = (i: number) => {
      const door = doors[i % DOORS]!;
      const person = i % users.length;
      const run = doorQueue[i % DOORS]!.then(async () => {
        const card = await post('credential', { door_id: door.id, credential: `BENCH-${person}` });
        if (card.result !== 'code_required') throw new Error(`card: ${card.result}`);
        const code = await post('keypad', { door_id: door.id, code: String(100000 + person) });
        if (code.result !== 'grant') throw new Error(`code: ${code.result}`);
      });
      doorQueue[i % DOORS] = run.catch(() => undefined);
      return run;
    };
    if (process.env.BENCH_QUERY_TIMES) {
      const started = new Map<string, number>();
      const spent = new Map<string, number[]>();
      db.on('query', (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, performance.now()));
      db.on('query-response', (_r: unknown, q: { __knexQueryUid: string; sql: string }) => {
        const key = q.sql.replace(/\s+/g, ' ').slice(0, 60);
        spent.set(key, [...(spent.get(key) ?? []), performance.now() - started.get(q.__knexQueryUid)!]);
      });
      const t0 = performance.now();
      for (let i = 0; i < 200; i++) {
        await doorDecisions.presentCredential({ door_id: doors[1]!.id, credential: `BENCH-${i}`, direction: 'in' }, { controllerId });
        await doorDecisions.enterCode({ door_id: doors[1]!.id, code: String(100000 + i) }, { controllerId });
      }
      // Diagnostics: the decision without HTTP, and what each of its queries costs.
      console.log('in-process decision', ((performance.now() - t0) / 200).toFixed(2), 'ms');
      for (const [sql, times] of spent) console.log(`${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(2)} ms x${times.length}  ${sql}`);
    }
    const baseline = await openLoop(RATE, SECONDS, async () => {
      await db.raw('select 1');
    });
    // Warm-up at the rate measured, just before it: the server opening its pool's connections, the controllers their
    // keep-alive connections, and the hot paths compiling are start-up costs, not a decision's.
    await openLoop(RATE, 2, decision);
    const decisions = await withCpu([server.child.pid!], () => openLoop(RATE, SECONDS, decision));
    const sweep: Array<{ rate: number; figures: LoadFigures }> = [];
    if (doorTargetMet(decisions, RATE)) {
      for (let rate = RATE + SWEEP_STEP; ; rate += SWEEP_STEP) {
        const figures = await openLoop(rate, SWEEP_SECONDS, decision);
        sweep.push({ rate, figures });
        if (!doorTargetMet(figures, rate)) break;
      }
    }
    const highest = [{ rate: RATE, figures: decisions }, ...sweep].filter((s) => doorTargetMet(s.figures, s.rate)).at(-1);
    return { rate: RATE, seconds: SECONDS, baseline, decisions, sweep, highestRateMet: highest?.rate ?? null };
  } finally {
    await feed.close();
    await server?.stop();
    await database.drop();
  }
}
