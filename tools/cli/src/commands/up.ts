import { resolve, join } from 'node:path';
import { Command } from 'commander';
import type { ServiceKind } from '@purify/proto';
import { DEFAULT_PORTS } from '@purify/runtime';
import { intArg, output, table } from '../cli-util';
import { launchServices, SERVICE_ORDER } from '../launcher';
import { removeServicesFile, writeServicesFile } from '../services-file';

export function upCommand(): Command {
  const cmd = new Command('up')
    .description('Start the four services on this machine and keep them running until Ctrl-C / SIGTERM')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--free-ports', 'let the OS pick free ports instead of the defaults', false)
    .option('--run-dir <dir>', 'where services.json and the service logs go', '.purify')
    .option('--artifacts-dir <dir>', 'artifact store root (models, policies, jobs)', 'artifacts')
    .option('--ready-timeout-ms <ms>', 'how long each service may take to start', intArg(100, 600_000), 30_000)
    .option('--shutdown-grace-ms <ms>', 'how long each service may drain on stop', intArg(0, 600_000), 10_000)
    .option('--log-level <level>', 'service log level (debug, info, warn, error)', 'info')
    .option('--json', 'print the started services as JSON', false);
  for (const kind of SERVICE_ORDER) {
    cmd.option(`--${kind}-port <port>`, `${kind} port`, intArg(0, 65535), DEFAULT_PORTS[kind]);
  }
  return cmd.action(async (opts: Record<string, unknown>) => {
    const runDir = resolve(String(opts['runDir']));
    const ports = Object.fromEntries(
      SERVICE_ORDER.map((k) => [k, opts['freePorts'] ? 0 : (opts[`${k}Port`] as number)]),
    ) as Record<ServiceKind, number>;
    const json = Boolean(opts['json']);
    const progress = (message: string): void => {
      process.stderr.write(`[purify up] ${message}\n`);
    };
    progress(`starting ${SERVICE_ORDER.join(', ')} (logs in ${join(runDir, 'logs')})`);
    const launch = await launchServices({
      host: String(opts['host']),
      ports,
      artifactsDir: resolve(String(opts['artifactsDir'])),
      logDir: join(runDir, 'logs'),
      readyTimeoutMs: opts['readyTimeoutMs'] as number,
      shutdownGraceMs: opts['shutdownGraceMs'] as number,
      logLevel: String(opts['logLevel']),
      onProgress: progress,
    });
    writeServicesFile(runDir, { startedAt: new Date().toISOString(), launcherPid: process.pid, services: launch.services });
    output(json, { services: launch.services }, () =>
      table(['SERVICE', 'ADDRESS', 'PID', 'LOG'], launch.services.map((s) => [s.kind, s.address, String(s.pid), s.logFile])),
    );
    progress('all services SERVING; Ctrl-C stops them');

    const reason = await new Promise<string>((resolveStop) => {
      process.once('SIGINT', () => resolveStop('SIGINT'));
      process.once('SIGTERM', () => resolveStop('SIGTERM'));
      process.once('SIGHUP', () => resolveStop('SIGHUP'));
      void launch.unexpectedExit.then((e) => resolveStop(`${e.kind} exited unexpectedly (code ${e.code ?? e.signal})`));
    });
    progress(`stopping (${reason})`);
    await launch.stop();
    removeServicesFile(runDir);
    progress('all services stopped');
    if (reason.includes('unexpectedly')) process.exitCode = 1;
  });
}
