#!/usr/bin/env node
'use strict';
// The `purify` command. In a built install (`npm run build`, container images)
// it runs the compiled CLI; in a source checkout it runs the TypeScript sources
// through tsx, so `npm ci` is the only set-up step. PURIFY_RUNTIME=dist|source
// forces one or the other.
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

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
