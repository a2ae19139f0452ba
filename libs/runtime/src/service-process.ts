/**
 * A service started as its own process from its TypeScript sources (tsx, the
 * `@purify/source` export condition) — how the integration tests run a
 * service next to the one under test, since services never import each
 * other. Resolves once the child reports `purify.ready` over IPC.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ServiceKind } from '@purify/proto';
import type { ReadyMessage } from './service-main';

export interface ServiceProcess {
  readonly child: ChildProcess;
  /** `host:port` the service listens on. */
  readonly address: string;
  /** SIGTERM (then waits for the exit); a no-op when it has already exited. */
  readonly stop: () => Promise<void>;
}

export interface ServiceProcessOptions {
  /** Environment of the child (default: this process's). */
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** `services/<kind>/src/main.ts` under the repository root `root`. */
export function serviceMain(root: string, kind: ServiceKind): string {
  return join(root, 'services', kind, 'src', 'main.ts');
}

/**
 * Starts `main` (a service's `main.ts`) with `argv` and waits for its ready
 * message; rejects with the child's stderr when it exits first.
 */
export function startServiceProcess(main: string, argv: readonly string[], options: ServiceProcessOptions = {}): Promise<ServiceProcess> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const child = spawn(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', main, ...argv], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: options.env ?? process.env,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    child.on('message', (m: ReadyMessage) => {
      if (m.type === 'purify.ready') resolve({ child, address: m.address, stop });
    });
    child.once('exit', (code, signal) => reject(new Error(`${main} exited (${signal ?? `code ${String(code)}`}) before it was ready: ${stderr}`)));
  });
}
