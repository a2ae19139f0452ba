import { resolve } from 'node:path';
import { Command } from 'commander';
import {
  AgentServiceClient,
  ReliabilityServiceClient,
  SegmenterServiceClient,
  TrainerServiceClient,
  type ServiceInfo,
  type ServiceKind,
} from '@purify/proto';
import { checkHealth, createClient, listServices, unaryCall } from '@purify/runtime';
import { intArg, output, table } from '../cli-util';
import { SERVICE_ORDER } from '../launcher';
import { readServicesFile } from '../services-file';

interface StatusRow {
  kind: ServiceKind;
  address: string;
  health: string;
  services: string[];
  version?: string;
  uptimeS?: number | undefined;
  capabilities?: Record<string, string>;
  error?: string;
}

/**
 * GetInfo through the service's own client. Every generated client has the same
 * `getInfo` signature, so one of them stands for all four in the type.
 */
async function fetchInfo(kind: ServiceKind, address: string, timeoutMs: number): Promise<ServiceInfo> {
  const ctors = {
    segmenter: SegmenterServiceClient,
    reliability: ReliabilityServiceClient,
    agent: AgentServiceClient,
    trainer: TrainerServiceClient,
  };
  const client = createClient(ctors[kind] as typeof SegmenterServiceClient, kind, { addresses: [address], maxAttempts: 1 });
  try {
    return await unaryCall(client, 'getInfo', {}, { timeoutMs });
  } finally {
    client.close();
  }
}

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('Health of a running set of services (from `purify up`, or the addresses given)')
    .option('--run-dir <dir>', 'where `purify up` wrote services.json', '.purify')
    .option('--timeout-ms <ms>', 'per-probe deadline', intArg(1, 600_000), 2000)
    .option('--json', 'machine-readable output', false);
  for (const kind of SERVICE_ORDER) cmd.option(`--${kind} <host:port>`, `${kind} address (overrides services.json)`);
  return cmd.action(async (opts: Record<string, unknown>) => {
    const given = SERVICE_ORDER.filter((k) => typeof opts[k] === 'string').map((k) => ({ kind: k, address: String(opts[k]) }));
    const targets = given.length > 0 ? given : readServicesFile(resolve(String(opts['runDir']))).services;
    const timeoutMs = opts['timeoutMs'] as number;
    const rows: StatusRow[] = await Promise.all(
      targets.map(async ({ kind, address }) => {
        try {
          const [health, services, info] = await Promise.all([
            checkHealth(address, '', timeoutMs),
            listServices(address, timeoutMs),
            fetchInfo(kind, address, timeoutMs),
          ]);
          const uptimeS = info.startedAt ? Math.round((Date.now() - info.startedAt.getTime()) / 1000) : undefined;
          return { kind, address, health, services, version: info.version, uptimeS, capabilities: info.capabilities };
        } catch (err) {
          return { kind, address, health: 'UNREACHABLE', services: [], error: (err as Error).message };
        }
      }),
    );
    output(Boolean(opts['json']), { services: rows }, () =>
      table(
        ['SERVICE', 'ADDRESS', 'HEALTH', 'VERSION', 'UPTIME', 'SERVICES (reflection)'],
        rows.map((r) => [
          r.kind,
          r.address,
          r.health,
          r.version ?? '-',
          r.uptimeS === undefined ? '-' : `${r.uptimeS}s`,
          r.error ?? r.services.join(','),
        ]),
      ),
    );
    if (rows.some((r) => r.health !== 'SERVING')) process.exitCode = 1;
  });
}
