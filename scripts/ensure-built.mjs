#!/usr/bin/env node
// Builds dist/ with tsc. Plain JavaScript on purpose: it runs before anything is compiled.
//   node scripts/ensure-built.mjs               build (npm's `prepare`: after `npm ci`/`npm install`)
//   node scripts/ensure-built.mjs --when-stale  build only if a compiled file is missing or older than its source
//                                               (`npm start`, `npm run latchkey`): a start costs a stat per file,
//                                               not a compile.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const whenStale = process.argv.includes('--when-stale');

function* sources(dir) {
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(rel);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield rel;
  }
}

/** The first source whose compiled file is missing or older, or undefined when dist/ is up to date. */
function staleSource() {
  for (const dir of ['src', 'config', 'migrations']) {
    for (const source of sources(dir)) {
      const built = path.join(root, 'dist', source.replace(/\.ts$/, '.js'));
      if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(path.join(root, source)).mtimeMs) return source;
    }
  }
  return undefined;
}

// A dependencies-only install (the Dockerfile's first layer copies package.json before the sources) has nothing to
// build yet, and a production install has no TypeScript: both build later, or ship dist/ already.
if (!fs.existsSync(path.join(root, 'tsconfig.json')) || !fs.existsSync(path.join(root, 'src'))) process.exit(0);
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  if (whenStale && staleSource()) {
    process.stderr.write('dist/ is out of date and TypeScript is not installed: run `npm ci` (it builds) first.\n');
    process.exit(1);
  }
  process.exit(0);
}

if (whenStale) {
  const stale = staleSource();
  if (!stale) process.exit(0);
  process.stderr.write(`dist/ is missing or older than ${stale}: building once with tsc (npm run dev rebuilds as you edit)…\n`);
}
const result = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
