import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ServiceKind } from '@purify/proto';
import { waitUntilServing, type ReadyMessage } from '@purify/runtime';

/**
 * Starts the four services as child processes on loopback, in dependency order,
 * and stops them all again. Each child is in its own process group (so a
 * terminal Ctrl-C reaches only the launcher, which then drains them in order)
 * and holds an IPC channel to the launcher (so if the launcher dies, however it
 * dies, the children see the channel close and shut themselves down).
 */

export const SERVICE_ORDER: readonly ServiceKind[] = ['segmenter', 'agent', 'reliability', 'trainer'];

export interface LaunchOptions {
  readonly host: string;
  /** Port per service; 0 lets the OS pick a free one. */
  readonly ports: Readonly<Record<ServiceKind, number>>;
  readonly artifactsDir: string;
  /** Each child's stdout and stderr go to `<logDir>/<service>.log`. */
  readonly logDir: string;
  readonly readyTimeoutMs: number;
  /** How long each service may drain on stop before it is killed. */
  readonly shutdownGraceMs: number;
  readonly logLevel?: string;
  /** Progress callback (for the terminal). */
  readonly onProgress?: (message: string) => void;
}

export interface LaunchedService {
  readonly kind: ServiceKind;
  readonly address: string;
  readonly pid: number;
  readonly logFile: string;
}

export interface Launch {
  readonly services: readonly LaunchedService[];
  /** Resolves when a service exits on its own (a crash) — not during stop(). */
  readonly unexpectedExit: Promise<{ kind: ServiceKind; code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM to every service in reverse start order; SIGKILL after the grace period. */
  stop(): Promise<void>;
}

/** File to run for a service and the node flags it needs (tsx for sources). */
export function serviceEntry(kind: ServiceKind): { file: string; nodeArgs: string[] } {
  const file = require.resolve(`@purify/${kind}-service/main`);
  if (!file.endsWith('.ts')) return { file, nodeArgs: [] };
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  return { file, nodeArgs: [`--import=${tsx}`, '--conditions=@purify/source'] };
}

function serviceFlags(kind: ServiceKind, options: LaunchOptions, started: Map<ServiceKind, LaunchedService>): string[] {
  const addressOf = (k: ServiceKind): string => {
    const s = started.get(k);
    if (!s) throw new Error(`${kind} needs ${k}, which is not running`);
    return s.address;
  };
  const flags = ['--host', options.host, '--port', String(options.ports[kind]), '--shutdown-grace-ms', String(options.shutdownGraceMs)];
  if (options.logLevel) flags.push('--log-level', options.logLevel);
  switch (kind) {
    case 'segmenter':
    case 'agent':
      return [...flags, '--artifacts-dir', options.artifactsDir];
    case 'reliability':
      return [...flags, '--segmenter-addresses', addressOf('segmenter')];
    case 'trainer':
      return [
        ...flags,
        '--artifacts-dir',
        options.artifactsDir,
        '--segmenter-addresses',
        addressOf('segmenter'),
        '--reliability-addresses',
        addressOf('reliability'),
        '--agent-addresses',
        addressOf('agent'),
      ];
  }
}

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function exitedPromise(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts every service and resolves once all report SERVING; on failure stops what started. */
export async function launchServices(options: LaunchOptions): Promise<Launch> {
  mkdirSync(options.logDir, { recursive: true });
  const started = new Map<ServiceKind, LaunchedService>();
  const children = new Map<ServiceKind, ChildProcess>();
  let stopping = false;
  let reportExit: (e: { kind: ServiceKind; code: number | null; signal: NodeJS.Signals | null }) => void = () => undefined;
  const unexpectedExit = new Promise<{ kind: ServiceKind; code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    reportExit = resolve;
  });

  const startOne = async (kind: ServiceKind): Promise<void> => {
    const { file, nodeArgs } = serviceEntry(kind);
    const logFile = join(options.logDir, `${kind}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawn(process.execPath, [...nodeArgs, file, ...serviceFlags(kind, options, started)], {
      stdio: ['ignore', fd, fd, 'ipc'],
      detached: true,
      env: { ...process.env },
    });
    closeSync(fd);
    children.set(kind, child);
    const ready = await new Promise<ReadyMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${kind} did not start within ${options.readyTimeoutMs} ms; last log lines:\n${tail(logFile)}`));
      }, options.readyTimeoutMs);
      child.on('message', (msg: ReadyMessage) => {
        if (msg.type === 'purify.ready') {
          clearTimeout(timer);
          resolve(msg);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${kind} exited during start (code ${code ?? signal}); last log lines:\n${tail(logFile)}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${kind} could not be started: ${err.message}`));
      });
    });
    await waitUntilServing(ready.address, options.readyTimeoutMs);
    child.removeAllListeners('exit');
    child.once('exit', (code, signal) => {
      if (!stopping) reportExit({ kind, code, signal });
    });
    started.set(kind, { kind, address: ready.address, pid: ready.pid, logFile });
    options.onProgress?.(`${kind} serving on ${ready.address} (pid ${ready.pid})`);
  };

  const stop = async (): Promise<void> => {
    stopping = true;
    for (const kind of [...SERVICE_ORDER].reverse()) {
      const child = children.get(kind);
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      const exited = exitedPromise(child);
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), options.shutdownGraceMs + 3000);
      await exited;
      clearTimeout(killTimer);
      options.onProgress?.(`${kind} stopped`);
    }
  };

  try {
    // segmenter and agent need nobody; reliability needs the segmenter; the trainer needs all three.
    await Promise.all([startOne('segmenter'), startOne('agent')]);
    await startOne('reliability');
    await startOne('trainer');
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    services: SERVICE_ORDER.map((k) => started.get(k) as LaunchedService),
    unexpectedExit,
    stop,
  };
}
