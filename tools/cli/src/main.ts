// Entry point of the `purify` command (see bin/purify.js).
import { CommanderError } from 'commander';
import { PurifyError } from '@purify/runtime';
import { CliError } from './cli-util';
import { buildProgram } from './program';

async function run(argv: readonly string[]): Promise<void> {
  try {
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
  }
}

// Started by bin/purify.js with an IPC channel: if that wrapper goes away, behave
// as if told to stop (long-running commands drain what they started).
if (process.channel) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  process.channel.unref();
}

void run(process.argv.slice(2));
