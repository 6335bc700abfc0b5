import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { CALLBACK } from '../test/helpers/factories.js';
import { queriesDuring } from '../test/helpers/queries.js';
import { completeLogin, relyingParty, startLogin } from '../test/helpers/relying-party.js';
import { benchDoorDecisions } from './door-decisions.js';
import { benchDatabase, type LoadFigures, rssOf, startBenchServer, writeResults } from './harness.js';
import { addPasswordUsers, addTotpUsers, argon2Baseline, benchLogins, setupLatchkey } from './logins.js';
import { benchClientCredentials, benchRefresh, mintRefreshTokens, startBareProvider, TOKEN_CONCURRENCY } from './tokens.js';

/**
 * `npm run bench`: every row of issue 7's table against PostgreSQL, each beside its baseline measured in this same
 * run, as a ratio, with whether it meets its target. Figures go to bench/results/latest.json.
 */
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const GROWTH_USERS = Number(process.env.BENCH_GROWTH_USERS ?? 1_000_000);
const GROWTH_AUDIT_ROWS = Number(process.env.BENCH_GROWTH_AUDIT_ROWS ?? 10_000_000);

interface Row {
  name: string;
  figure: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean;
  summary: string;
}
const rows: Row[] = [];
const results: Record<string, unknown> = {};
const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const perSecond = (f: LoadFigures) => `${fmt(f.perSecond)}/s (p50 ${fmt(f.p50)} ms, p99 ${fmt(f.p99)} ms${f.errors ? `, ${f.errors} errors: ${f.firstError}` : ''})`;

function ratioRow(name: string, figure: LoadFigures, baseline: LoadFigures, baselineName: string, least: number) {
  const ratio = figure.perSecond / baseline.perSecond;
  // A baseline that failed measures nothing: no ratio against it can be called met.
  const met = ratio >= least && Number.isFinite(ratio) && figure.errors === 0 && baseline.errors === 0;
  rows.push({
    name,
    figure: perSecond(figure),
    baseline: `${baselineName} ${fmt(baseline.perSecond)}/s${baseline.errors ? ` (${baseline.errors} errors: ${baseline.firstError})` : ''}`,
    ratio: `${fmt(ratio, 2)}x`,
    target: `>= ${least}x`,
    met,
    summary: `${name}: ${fmt(figure.perSecond)}/s, ${fmt(ratio, 2)}x ${baselineName} (target ${least}x) — ${met ? 'met' : 'NOT met'}`,
  });
  results[name] = { figure, baseline, ratio, target: least, met };
}

// Door decisions first, before the growth rows leave PostgreSQL busy with writes and vacuum.
log('door decisions');
const door = await benchDoorDecisions();
const doorMet = door.decisions.p99 < 10 && door.decisions.perSecond >= 0.95 * door.rate && door.decisions.errors === 0;
rows.push({
  name: 'door decision (card + code)',
  figure: `${fmt(door.decisions.perSecond)}/s, p50 ${fmt(door.decisions.p50, 2)} ms, p99 ${fmt(door.decisions.p99, 2)} ms`,
  baseline: `SELECT 1 p99 ${fmt(door.baseline.p99, 2)} ms`,
  ratio: `${fmt(door.decisions.p99 / door.baseline.p99)}x p99`,
  target: `p99 < 10 ms at ${door.rate}/s`,
  met: doorMet,
  summary: `door decisions: p99 ${fmt(door.decisions.p99, 2)} ms at ${fmt(door.decisions.perSecond)}/s (target < 10 ms at ${door.rate}/s) — ${doorMet ? 'met' : 'NOT met'}`,
});
results.doorDecisions = { ...door, met: doorMet };

const database = await benchDatabase();
let server: Awaited<ReturnType<typeof startBenchServer>> | undefined;
let bare: Awaited<ReturnType<typeof startBareProvider>> | undefined;
try {
  // Set up as the app itself would, in this process, before the server starts (it finds its keys made).
  const latchkey = await setupLatchkey(database, 'http://127.0.0.1');
  log('users');
  const emails = await addPasswordUsers(latchkey, 'user', 1000);
  const totpUsers = await addTotpUsers(latchkey, 1000);

  // Start to ready, migrations applied: spawn to the first 200 from /readyz; the best of three.
  const starts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const started = await startBenchServer(database);
    starts.push(performance.now() - t0);
    await started.stop();
  }
  const startMs = Math.min(...starts);
  rows.push({ name: 'start to ready', figure: `${fmt(startMs, 0)} ms`, baseline: '—', ratio: '—', target: '< 1500 ms', met: startMs < 1500, summary: `start to ready: ${fmt(startMs, 0)} ms (target < 1500 ms) — ${startMs < 1500 ? 'met' : 'NOT met'}` });
  results.startToReady = { bestMs: startMs, runsMs: starts };

  server = await startBenchServer(database);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idle = rssOf(server.child.pid!);

  log('argon2id baseline and password logins');
  const argon2 = await argon2Baseline();
  const passwordLogins = await benchLogins(server, latchkey, { emails });
  ratioRow('password login', passwordLogins, argon2, 'argon2id verify', 0.8);
  log('TOTP logins');
  const totpLogins = await benchLogins(server, latchkey, { totpUsers });
  ratioRow('password + TOTP login', totpLogins, argon2, 'argon2id verify', 0.75);
  const loaded = rssOf(server.child.pid!);
  const memoryMet = idle.rssMb < 150 && loaded.peakMb < 300;
  rows.push({ name: 'memory (RSS)', figure: `idle ${fmt(idle.rssMb, 0)} MB, peak under logins ${fmt(loaded.peakMb, 0)} MB`, baseline: '—', ratio: '—', target: '< 150 / < 300 MB', met: memoryMet, summary: `memory: ${fmt(idle.rssMb, 0)} MB idle, ${fmt(loaded.peakMb, 0)} MB peak under login load (target < 150 / < 300 MB) — ${memoryMet ? 'met' : 'NOT met'}` });
  results.memory = { idleMb: idle.rssMb, peakUnderLoginsMb: loaded.peakMb };

  log('tokens: Latchkey and bare oidc-provider');
  const machine = await latchkey.clients.register({ client_name: 'Bench machine', grant_types: ['client_credentials', 'refresh_token', 'authorization_code'], redirect_uris: [CALLBACK] });
  const tokenClient = { client_id: machine.clientId, client_secret: machine.clientSecret! };
  bare = await startBareProvider(tokenClient, TOKEN_CONCURRENCY);
  // Refresh first: the bare provider's memory adapter is an LRU store, and thousands of client-credentials tokens
  // would push the minted refresh tokens out of it.
  const ourChains = await mintRefreshTokens(latchkey.providers.provider, machine.clientId, (await latchkey.queries.users.findByEmail(emails[0]!))!.id, TOKEN_CONCURRENCY);
  const bareRefresh = await benchRefresh(bare.url, tokenClient, bare.refreshTokens);
  const oursRefresh = await benchRefresh(server.url, tokenClient, ourChains);
  ratioRow('refresh token with rotation', oursRefresh, bareRefresh, 'bare oidc-provider', 0.6);
  const bareCc = await benchClientCredentials(bare.url, tokenClient);
  const oursCc = await benchClientCredentials(server.url, tokenClient);
  ratioRow('client credentials token', oursCc, bareCc, 'bare oidc-provider', 0.7);
  bare.stop();
  bare = undefined;

  log('queries per request');
  // The app in this process, where knex's query events can be counted, on its own port (its issuer).
  const inProcess = http.createServer();
  await new Promise<void>((resolve) => inProcess.listen(0, '127.0.0.1', resolve));
  const inProcessUrl = `http://127.0.0.1:${(inProcess.address() as AddressInfo).port}`;
  const countingLatchkey = await setupLatchkey(database, inProcessUrl);
  inProcess.on('request', countingLatchkey.app.callback());
  const firstParty = await countingLatchkey.clients.register({ client_name: 'Counted app', redirect_uris: [CALLBACK], first_party: true });
  const rp = await relyingParty(inProcessUrl, firstParty.clientId, firstParty.clientSecret);
  const oneLogin = async () => {
    const started = await startLogin(rp, { prompt: '', scope: 'openid email' });
    const page = await started.agent.submit(started.page, '/login', { email: emails[1]!, password: 'benchmark password, long enough' });
    await completeLogin(rp, started, page.url);
  };
  await oneLogin();
  const loginQueries = (await queriesDuring(database.db, oneLogin)).length;
  const ccConfig = await relyingParty(inProcessUrl, tokenClient.client_id, tokenClient.client_secret);
  await oidc.clientCredentialsGrant(ccConfig, {});
  const ccQueries = (await queriesDuring(database.db, () => oidc.clientCredentialsGrant(ccConfig, {}))).length;
  inProcess.closeAllConnections();
  inProcess.close();
  await countingLatchkey.close();
  const queriesMet = loginQueries <= 12 && ccQueries <= 2;
  rows.push({ name: 'queries per request', figure: `${loginQueries} per password login, ${ccQueries} per client-credentials token`, baseline: 'knex query events', ratio: '—', target: '<= 12 / <= 2', met: queriesMet, summary: `queries: ${loginQueries} per password login (target <= 12), ${ccQueries} per client-credentials token (target <= 2) — ${queriesMet ? 'met' : 'NOT met'}` });
  results.queries = { passwordLogin: loginQueries, clientCredentials: ccQueries };

  log(`growth: ${GROWTH_USERS} users and ${GROWTH_AUDIT_ROWS} audit rows`);
  await database.db.raw(`insert into users (email, name, password_hash, email_verified) select 'grown-' || g || '@bench.test', 'Grown', 'unused', true from generate_series(1, ?) g`, [GROWTH_USERS]);
  for (let done = 0; done < GROWTH_AUDIT_ROWS; done += 1_000_000) {
    await database.db.raw(
      `insert into audit_events (occurred_at, action, outcome, subject_id, ip, details)
       select now() - (g || ' seconds')::interval, (array['login.password', 'mfa.verify', 'door.decision'])[1 + g % 3],
              case when g % 7 = 0 then 'failure' else 'success' end, gen_random_uuid(), '10.0.' || (g % 250) || '.1', '{"reason":"grown"}'
       from generate_series(?::bigint, ?::bigint) g`,
      [done + 1, Math.min(done + 1_000_000, GROWTH_AUDIT_ROWS)],
    );
    log(`  audit rows: ${Math.min(done + 1_000_000, GROWTH_AUDIT_ROWS)}`);
  }
  await database.db.raw('analyze');
  const grownLogins = await benchLogins(server, latchkey, { emails });
  ratioRow('password login, grown database', grownLogins, passwordLogins, 'same login, 1 000 users', 0.9);
  await latchkey.close();

  await server.stop();
  server = undefined;
} finally {
  bare?.stop();
  await server?.stop();
  await database.drop();
}

const widths = (['name', 'figure', 'baseline', 'ratio', 'target'] as const).map((key) => Math.max(key.length, ...rows.map((r) => r[key].length)));
const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ');
console.log(line(['benchmark', 'figure', 'baseline (same run)', 'ratio', 'target']), ' result');
for (const row of rows) console.log(line([row.name, row.figure, row.baseline, row.ratio, row.target]), ` ${row.met ? 'MET' : 'NOT MET'}`);
console.log('');
for (const row of rows) console.log(`summary: ${row.summary}`);
writeResults({ rows: rows.map(({ summary: _summary, ...row }) => row), ...results });
console.log('figures: bench/results/latest.json');
process.exit(0);
