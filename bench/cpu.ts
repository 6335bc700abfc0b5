import fs from 'node:fs';
import type { LoadFigures } from './harness.js';

/** Kernel clock ticks per second (`getconf CLK_TCK`): 100 on every Linux build we run on. */
const TICK_MS = 1000 / Number(process.env.BENCH_CLK_TCK ?? 100);

/** CPU milliseconds per operation, by who spent them. */
export interface CpuSplit {
  serverMs: number;
  databaseMs: number;
  generatorMs: number;
}

/** User + system CPU of a process, all its threads (argon2's libuv pool included), in ms; undefined once it is gone. */
function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces: utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}

/**
 * Every PostgreSQL process on the machine (postmaster, backends, WAL writer, checkpointer): what the database spends
 * on the load is theirs together. Other work on a shared machine counts too, so short runs on a quiet one are best.
 */
function postgresCpu(): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    const ms = cpuMsOf(Number(entry));
    if (ms !== undefined) cpu.set(Number(entry), ms);
  }
  return cpu;
}

const generatorCpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

/**
 * Runs a load and splits the CPU it cost per completed operation: the server processes named, PostgreSQL, and this
 * process (the load generator). A backend that starts during the run counts from zero; one that exits is lost,
 * which pooled connections do not do.
 */
export async function withCpu<T extends LoadFigures>(serverPids: readonly number[], run: () => Promise<T>): Promise<T & { cpu: CpuSplit }> {
  const server0 = serverPids.map((pid) => cpuMsOf(pid) ?? 0);
  const db0 = postgresCpu();
  const gen0 = generatorCpuMs();
  const figures = await run();
  const gen = generatorCpuMs() - gen0;
  const server = serverPids.reduce((sum, pid, i) => sum + ((cpuMsOf(pid) ?? server0[i]!) - server0[i]!), 0);
  let db = 0;
  for (const [pid, ms] of postgresCpu()) db += ms - (db0.get(pid) ?? 0);
  const n = Math.max(1, figures.completed);
  return { ...figures, cpu: { serverMs: server / n, databaseMs: db / n, generatorMs: gen / n } };
}

export const formatCpu = (cpu: CpuSplit) =>
  `server ${cpu.serverMs.toFixed(2)} + db ${cpu.databaseMs.toFixed(2)} + gen ${cpu.generatorMs.toFixed(2)} ms/op`;
