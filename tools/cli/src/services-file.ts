import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '@purify/artifacts';
import type { ServiceKind } from '@purify/proto';
import { DEFAULT_PORTS } from '@purify/runtime';
import { CliError } from './cli-util';

/** What `purify up` records about a running set, for `purify status` and other commands. */
export interface ServicesFile {
  readonly startedAt: string;
  readonly launcherPid: number;
  readonly services: readonly { kind: ServiceKind; address: string; pid: number; logFile: string }[];
}

export function servicesFilePath(runDir: string): string {
  return join(runDir, 'services.json');
}

export function writeServicesFile(runDir: string, file: ServicesFile): void {
  writeJsonAtomic(servicesFilePath(runDir), file);
}

export function removeServicesFile(runDir: string): void {
  rmSync(servicesFilePath(runDir), { force: true });
}

export function readServicesFile(runDir: string): ServicesFile {
  const path = servicesFilePath(runDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new CliError(`no running services recorded at ${path} (start them with \`purify up\`, or pass --segmenter/--reliability/--agent/--trainer addresses)`);
  }
  try {
    const parsed = JSON.parse(text) as ServicesFile;
    if (!Array.isArray(parsed.services)) throw new Error('no "services" list');
    return parsed;
  } catch (err) {
    throw new CliError(`${path} is not a services file written by \`purify up\`: ${(err as Error).message}`);
  }
}

/**
 * Where to reach a service: the address given on the command line, else the one
 * `purify up` recorded in `<runDir>/services.json`, else its default port on
 * loopback. `source` says which, for error messages.
 */
export function serviceAddress(kind: ServiceKind, flag: string | undefined, runDir: string): { address: string; source: string } {
  if (flag) return { address: flag, source: `--${kind}` };
  try {
    const recorded = readServicesFile(runDir).services.find((s) => s.kind === kind);
    if (recorded) return { address: recorded.address, source: servicesFilePath(runDir) };
  } catch {
    // No running set recorded: the default address.
  }
  return { address: `127.0.0.1:${DEFAULT_PORTS[kind]}`, source: 'default' };
}
