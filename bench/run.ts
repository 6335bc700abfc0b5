import { benchDoorDecisions, writeResults } from './door-decisions.js';

/** `npm run bench`: each benchmark beside its baseline from the same run, as a ratio, and whether it meets its target. */
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

const door = await benchDoorDecisions();
const meets = door.decisions.p99 < 10 && door.decisions.perSecond >= 0.95 * door.rate && door.decisions.errors === 0;
console.log('benchmark                         figure                          baseline (same run)            ratio   target');
console.log(
  `door decision (card + code)       ${fmt(door.decisions.perSecond)}/s, p50 ${fmt(door.decisions.p50, 2)} ms, p99 ${fmt(door.decisions.p99, 2)} ms   ` +
    `SELECT 1: p99 ${fmt(door.baseline.p99, 2)} ms   ${fmt(door.decisions.p99 / door.baseline.p99)}x p99   ` +
    `p99 < 10 ms at ${door.rate}/s: ${meets ? 'MET' : 'NOT MET'}${door.decisions.errors ? ` (${door.decisions.errors} errors)` : ''}`,
);
writeResults({ doorDecisions: { ...door, target: { p99Ms: 10, perSecond: door.rate }, met: meets } });
console.log('summary: door decisions', meets ? 'meet' : 'miss', `the target (${fmt(door.decisions.perSecond)}/s, p99 ${fmt(door.decisions.p99, 2)} ms); figures in bench/results/latest.json`);
process.exit(0);
