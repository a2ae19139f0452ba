#!/usr/bin/env node
'use strict';
// The `purify` command. In a built install (`npm run build`, container images)
// it runs the compiled CLI; in a source checkout it runs the TypeScript sources
// through tsx, so `npm ci` is the only set-up step. PURIFY_RUNTIME=dist|source
// forces one or the other.
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

checkNode();

const root = join(__dirname, '..');
const dist = join(root, 'dist', 'main.js');
const source = join(root, 'src', 'main.ts');
const mode = process.env.PURIFY_RUNTIME || (existsSync(source) ? 'source' : 'dist');

if (mode === 'dist') {
  require(dist);
} else {
  const { pathToFileURL } = require('node:url');
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const child = spawn(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', source, ...process.argv.slice(2)], {
    // The IPC channel lets the CLI notice if this wrapper dies (even by SIGKILL)
    // and stop what it started instead of living on as an orphan.
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 + (require('node:os').constants.signals[signal] || 0) : 1);
  });
}

/**
 * Stops at once, in one line, on a Node the repository does not support (its
 * package.json "engines"), instead of failing later somewhere obscure. `npm ci`
 * refuses such a Node by itself (engine-strict in .npmrc); this covers `npm
 * start` and `npx purify` after switching Node on an installed checkout.
 */
function checkNode() {
  let range;
  try {
    const pkg = require(join(__dirname, '..', '..', '..', 'package.json'));
    range = pkg.name === 'purify' && pkg.engines ? pkg.engines.node : undefined;
  } catch {
    return; // not inside the repository: nothing to check against
  }
  if (!range || require('semver').satisfies(process.versions.node, range, { includePrerelease: true })) return;
  process.stderr.write(`purify: needs Node ${range} (package.json "engines"), found ${process.version} at ${process.execPath}; .nvmrc names the version CI uses\n`);
  process.exit(1);
}
