#!/usr/bin/env node
// Development: tsc in watch mode, and the server restarted after every compile without errors. The restart follows
// tsc's own "Found 0 errors" rather than file events, so the server never starts on a half-written dist/.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

let server;
let stopping = false;

function stopServer() {
  return new Promise((resolve) => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return resolve();
    server.once('exit', () => resolve());
    server.kill('SIGTERM');
  });
}

async function restartServer() {
  await stopServer();
  if (stopping) return;
  server = spawn(process.execPath, ['--enable-source-maps', 'dist/src/main.js'], { cwd: root, stdio: 'inherit' });
}

const watcher = spawn(process.execPath, [tsc, '-p', '.', '--watch', '--preserveWatchOutput'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let pending = '';
let restarting = Promise.resolve();
watcher.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += chunk;
  const lines = pending.split('\n');
  pending = lines.pop();
  for (const line of lines) {
    const found = /Found (\d+) errors?\. Watching for file changes/.exec(line);
    if (found && found[1] === '0') restarting = restarting.then(restartServer);
    else if (found) process.stderr.write('dev: the server keeps running the last build that compiled\n');
  }
});

async function shutdown() {
  stopping = true;
  watcher.kill('SIGTERM');
  await restarting;
  await stopServer();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
