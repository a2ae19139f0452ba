import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '@purify/artifacts';
import type { ServiceKind } from '@purify/proto';
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
