// Entry point of the `purify` command (see bin/purify.js).
import { initTelemetry } from '@purify/telemetry';

// Telemetry first: its gRPC instrumentation must be in place before grpc-js loads,
// so everything else is required after this call.
const telemetry = initTelemetry('cli');

/* eslint-disable @typescript-eslint/no-require-imports -- load order, see above */
const { CommanderError } = require('commander') as typeof import('commander');
const { PurifyError, clientTlsFromEnv, setDefaultClientTls } = require('@purify/runtime') as typeof import('@purify/runtime');
const { CliError } = require('./cli-util') as typeof import('./cli-util');
const { buildProgram } = require('./program') as typeof import('./program');
/* eslint-enable @typescript-eslint/no-require-imports */

async function run(argv: readonly string[]): Promise<void> {
  try {
    // PURIFY_TLS_CA / _CERT / _KEY / _SERVER_NAME: TLS (and mTLS) for every client the CLI creates.
    setDefaultClientTls(clientTlsFromEnv());
    await buildProgram().exitOverride().parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or the help / version).
      process.exitCode = err.exitCode;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`purify: ${message}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : err instanceof PurifyError && err.code === 'INVALID_ARGUMENT' ? 2 : 1;
  } finally {
    await telemetry.shutdown();
  }
}

// Started by bin/purify.js with an IPC channel: if that wrapper goes away, behave
// as if told to stop (long-running commands drain what they started).
if (process.channel) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  process.channel.unref();
}

void run(process.argv.slice(2));
