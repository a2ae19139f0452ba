import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  ActionSpace,
  AgentServiceClient,
  PolicyStage,
  type Experiment,
  type ExperimentArm,
  type PolicyMetrics,
  type PolicyRef,
  type PolicyVersion,
} from '@purify/proto';
import { createClient, unaryCall } from '@purify/runtime';
import { CliError, intArg, output, table } from '../cli-util';
import { serviceAddress } from '../services-file';

/**
 * `purify policy …`: the agent's policy registry and A/B experiments, through
 * the agent service's gRPC API.
 */

interface GlobalOpts {
  agent?: string;
  runDir: string;
  json: boolean;
  timeoutMs: number;
}

function agentAddress(opts: GlobalOpts): string {
  return serviceAddress('agent', opts.agent, resolve(opts.runDir)).address;
}

async function withAgent<T>(cmd: Command, work: (client: AgentServiceClient, opts: GlobalOpts) => Promise<T>): Promise<T> {
  const opts = cmd.optsWithGlobals<GlobalOpts>();
  const client = createClient(AgentServiceClient, 'agent', { addresses: [agentAddress(opts)], defaultTimeoutMs: opts.timeoutMs });
  try {
    return await work(client, opts);
  } finally {
    client.close();
  }
}

/** `NAME` or `NAME:VERSION` (version 0 / absent = the promoted version). */
export function parseRef(raw: string, requireVersion = false): PolicyRef {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?::(\d+))?$/.exec(raw);
  if (!m || (requireVersion && m[2] === undefined)) {
    throw new CliError(`policy reference must be NAME${requireVersion ? ':VERSION' : '[:VERSION]'} (e.g. weights:3), got "${raw}"`, 2);
  }
  return { name: m[1] as string, version: m[2] === undefined ? 0 : Number(m[2]) };
}

/** `ARM=NAME[:VERSION]@WEIGHT` for live arms, `ARM=NAME[:VERSION]` for the shadow arm. */
function parseArm(raw: string, shadow: boolean): ExperimentArm {
  const m = shadow ? /^([^=]+)=([^@]+)$/.exec(raw) : /^([^=]+)=([^@]+)@(.+)$/.exec(raw);
  if (!m) throw new CliError(`--${shadow ? 'shadow' : 'arm'} must be ${shadow ? 'ARM=NAME[:VERSION]' : 'ARM=NAME[:VERSION]@WEIGHT'}, got "${raw}"`, 2);
  const weight = shadow ? 0 : Number(m[3]);
  if (!Number.isFinite(weight)) throw new CliError(`--arm weight must be a number in [0, 1], got "${m[3]}" in "${raw}"`, 2);
  return { name: m[1] as string, policy: parseRef(m[2] as string), weight, shadow };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function numberList(raw: string): number[] {
  const parts = raw.split(',').map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError(`must be comma-separated numbers, got "${raw}"`);
  return parts;
}

const refText = (r: PolicyRef | undefined): string => (r ? `${r.name}:${r.version}` : '-');
const stageName = (s: PolicyStage): string => (PolicyStage[s] ?? String(s)).replace('POLICY_STAGE_', '').toLowerCase();
const spaceName = (s: ActionSpace): string => (ActionSpace[s] ?? String(s)).replace('ACTION_SPACE_', '').toLowerCase();

/** A PolicyVersion as plain JSON (enum names, ISO dates). */
function versionJson(v: PolicyVersion): Record<string, unknown> {
  return {
    ref: v.ref,
    stage: stageName(v.stage),
    parentVersion: v.parentVersion,
    spec: v.spec ? { ...v.spec, actionSpace: spaceName(v.spec.actionSpace) } : undefined,
    provenance: v.provenance,
    metrics: v.metrics.map((m) => ({ name: m.name, value: m.value, split: m.split })),
    createdAt: v.createdAt?.toISOString(),
  };
}

function experimentJson(e: Experiment): Record<string, unknown> {
  return { ...e, createdAt: e.createdAt?.toISOString(), updatedAt: e.updatedAt?.toISOString() };
}

function versionsTable(versions: readonly PolicyVersion[]): string {
  return table(
    ['POLICY', 'STAGE', 'PARENT', 'SPACE', 'FEATURES', 'CREATED'],
    versions.map((v) => [refText(v.ref), stageName(v.stage), v.parentVersion ? String(v.parentVersion) : '-', v.spec ? spaceName(v.spec.actionSpace) : '-', v.spec ? `${v.spec.numFeatures} (${v.spec.featureSchemaVersion})` : '-', v.createdAt?.toISOString() ?? '-']),
  );
}

function versionDetail(v: PolicyVersion, m: PolicyMetrics): string {
  const lines = [
    `policy       ${refText(v.ref)} (${stageName(v.stage)})`,
    `parent       ${v.parentVersion ? `${v.ref?.name}:${v.parentVersion}` : '- (registered)'}`,
    `created      ${v.createdAt?.toISOString() ?? '-'}`,
    `spec         ${v.spec ? `${spaceName(v.spec.actionSpace)}, ${v.spec.numFeatures} features (schema ${v.spec.featureSchemaVersion}), hidden [${v.spec.hiddenUnits.join(', ')}], levels [${v.spec.weightLevels.join(', ')}], seed ${v.spec.seed}` : '-'}`,
    `decisions    ${m.decisions} live, ${m.shadowDecisions} shadow; ${m.rewarded} rewarded, mean reward ${m.meanReward.toFixed(4)}`,
    `weights      ${m.weightHistogram.map((n, i) => `[${(i / 10).toFixed(1)},${((i + 1) / 10).toFixed(1)}${i === 9 ? ']' : ')'}:${n}`).join(' ')}`,
  ];
  const prov = Object.entries(v.provenance).sort(([a], [b]) => a.localeCompare(b));
  if (prov.length > 0) lines.push('provenance', ...prov.map(([k, val]) => `  ${k} = ${val}`));
  if (v.metrics.length > 0) lines.push('metrics', ...v.metrics.map((x) => `  ${x.name} = ${x.value}${x.split ? ` (${x.split})` : ''}`));
  return lines.join('\n');
}

function experimentDetail(e: Experiment): string {
  return [
    `experiment ${e.name} (${e.active ? 'active' : 'paused'}), salt ${e.salt}, updated ${e.updatedAt?.toISOString() ?? '-'}`,
    table(
      ['ARM', 'POLICY', 'WEIGHT', 'MODE'],
      e.arms.map((a) => [a.name, a.policy ? (a.policy.version === 0 ? `${a.policy.name} (promoted)` : refText(a.policy)) : '-', a.shadow ? '-' : String(a.weight), a.shadow ? 'shadow' : 'live']),
    ),
  ].join('\n');
}

function experimentCommand(): Command {
  const exp = new Command('experiment').description('A/B experiments over policy versions (deterministic split by routing key)');
  exp
    .command('list')
    .description('List experiments')
    .action(async (_opts: unknown, cmd: Command) =>
      withAgent(cmd, async (client, opts) => {
        const { experiments } = await unaryCall(client, 'listExperiments', {});
        output(opts.json, { experiments: experiments.map(experimentJson) }, () =>
          table(['EXPERIMENT', 'STATE', 'ARMS'], experiments.map((e) => [e.name, e.active ? 'active' : 'paused', e.arms.map((a) => `${a.name}=${refText(a.policy)}${a.shadow ? ' (shadow)' : `@${a.weight}`}`).join(', ')])),
        );
      }),
    );
  exp
    .command('show <name>')
    .description('Show an experiment and its arms')
    .action(async (name: string, _opts: unknown, cmd: Command) =>
      withAgent(cmd, async (client, opts) => {
        const e = await unaryCall(client, 'getExperiment', { name });
        output(opts.json, experimentJson(e), () => experimentDetail(e));
      }),
    );
  exp
    .command('create <name>')
    .description('Create an experiment; live arm weights must sum to 1')
    .option('--arm <ARM=NAME[:VERSION]@WEIGHT>', 'a live arm (repeat); version 0 or none follows the promoted version', collect, [])
    .option('--shadow <ARM=NAME[:VERSION]>', 'a shadow arm: decides on every request, logged only')
    .action(async (name: string, local: { arm: string[]; shadow?: string }, cmd: Command) =>
      withAgent(cmd, async (client, opts) => {
        const arms = [...local.arm.map((a) => parseArm(a, false)), ...(local.shadow ? [parseArm(local.shadow, true)] : [])];
        const e = await unaryCall(client, 'createExperiment', { name, arms });
        output(opts.json, experimentJson(e), () => experimentDetail(e));
      }),
    );
  exp
    .command('set-weights <name> <ARM=WEIGHT...>')
    .description('Change live arm weights at run time (keys move only as far as the new weights require)')
    .action(async (name: string, pairs: string[], _opts: unknown, cmd: Command) =>
      withAgent(cmd, async (client, opts) => {
        const current = await unaryCall(client, 'getExperiment', { name });
        const weights = new Map<string, number>();
        for (const pair of pairs) {
          const m = /^([^=]+)=(.+)$/.exec(pair);
          const w = m ? Number(m[2]) : Number.NaN;
          if (!m || !Number.isFinite(w)) throw new CliError(`weights must be ARM=WEIGHT, got "${pair}"`, 2);
          if (!current.arms.some((a) => a.name === m[1] && !a.shadow)) {
            throw new CliError(`experiment "${name}" has no live arm "${m[1]}" (live arms: ${current.arms.filter((a) => !a.shadow).map((a) => a.name).join(', ')})`, 2);
          }
          weights.set(m[1] as string, w);
        }
        const arms = current.arms.map((a) => ({ ...a, weight: weights.get(a.name) ?? a.weight }));
        const e = await unaryCall(client, 'updateExperiment', { name, arms, active: current.active });
        output(opts.json, experimentJson(e), () => experimentDetail(e));
      }),
    );
  for (const [verb, active] of [
    ['pause', false],
    ['resume', true],
  ] as const) {
    exp
      .command(`${verb} <name>`)
      .description(active ? 'Resume a paused experiment' : 'Pause an experiment (Act on it is refused until resumed)')
      .action(async (name: string, _opts: unknown, cmd: Command) =>
        withAgent(cmd, async (client, opts) => {
          const e = await unaryCall(client, 'updateExperiment', { name, arms: [], active });
          output(opts.json, experimentJson(e), () => experimentDetail(e));
        }),
      );
  }
  return exp;
}

export function policyCommand(): Command {
  const cmd = new Command('policy')
    .description('Agent policy registry: versions, promotion, archive, A/B experiments')
    .option('--agent <host:port>', 'agent address (default: from <run-dir>/services.json, else 127.0.0.1:50153)')
    .option('--run-dir <dir>', 'where `purify up` wrote services.json', '.purify')
    .option('--timeout-ms <ms>', 'deadline per call', intArg(1, 600_000), 30_000)
    .option('--json', 'machine-readable output', false);

  cmd
    .command('list')
    .description('List policy versions')
    .option('--name <name>', 'only this policy')
    .option('--all', 'include archived versions', false)
    .action(async (local: { name?: string; all: boolean }, sub: Command) =>
      withAgent(sub, async (client, opts) => {
        const { policies } = await unaryCall(client, 'listPolicies', { name: local.name ?? '', includeArchived: local.all });
        output(opts.json, { policies: policies.map(versionJson) }, () => versionsTable(policies));
      }),
    );
  cmd
    .command('show <NAME[:VERSION]>')
    .description('Show a version (default: the promoted one) with provenance and metrics')
    .action(async (raw: string, _opts: unknown, sub: Command) =>
      withAgent(sub, async (client, opts) => {
        const v = await unaryCall(client, 'getPolicy', { ref: parseRef(raw) });
        const m = await unaryCall(client, 'getPolicyMetrics', { ref: v.ref });
        output(opts.json, { ...versionJson(v), usage: { ...m, ref: undefined } }, () => versionDetail(v, m));
      }),
    );
  for (const [verb, rpc, help] of [
    ['promote', 'promotePolicy', 'Make a version the one `NAME` (version 0) resolves to'],
    ['archive', 'archivePolicy', 'Archive a version: kept for provenance, refuses new decisions'],
  ] as const) {
    cmd
      .command(`${verb} <NAME:VERSION>`)
      .description(help)
      .action(async (raw: string, _opts: unknown, sub: Command) =>
        withAgent(sub, async (client, opts) => {
          const v = await unaryCall(client, rpc, { ref: parseRef(raw, true) });
          output(opts.json, versionJson(v), () => versionsTable([v]));
        }),
      );
  }
  cmd
    .command('register <name>')
    .description('Register a new policy version (fresh weights from the seed, or imported with --weights)')
    .requiredOption('--features <n>', 'observation width (features per region)', intArg(1, 4096))
    .option('--schema <version>', 'feature schema version of the observations', 'v1')
    .option('--action-space <space>', 'discrete or beta', 'discrete')
    .option('--levels <list>', 'weight levels of the discrete space', numberList, [0, 0.25, 0.5, 0.75, 1])
    .option('--hidden <list>', 'hidden layer widths', numberList, [64, 64])
    .option('--seed <n>', 'seed of initial weights and sampling', intArg(0, 0xffffffff), 0)
    .option('--weights <file>', 'serialized policy weights to import')
    .option('--provenance <key=value>', 'provenance entry (repeat)', collect, [])
    .action(async (name: string, local: { features: number; schema: string; actionSpace: string; levels: number[]; hidden: number[]; seed: number; weights?: string; provenance: string[] }, sub: Command) =>
      withAgent(sub, async (client, opts) => {
        const space = { discrete: ActionSpace.ACTION_SPACE_DISCRETE, beta: ActionSpace.ACTION_SPACE_BETA }[local.actionSpace];
        if (space === undefined) throw new CliError(`--action-space must be discrete or beta, got "${local.actionSpace}"`, 2);
        const provenance: Record<string, string> = {};
        for (const entry of local.provenance) {
          const i = entry.indexOf('=');
          if (i <= 0) throw new CliError(`--provenance must be key=value, got "${entry}"`, 2);
          provenance[entry.slice(0, i)] = entry.slice(i + 1);
        }
        let weights = Buffer.alloc(0);
        if (local.weights) {
          try {
            weights = readFileSync(resolve(local.weights));
          } catch (err) {
            throw new CliError(`--weights ${local.weights} cannot be read: ${(err as Error).message}`, 2);
          }
        }
        const v = await unaryCall(client, 'registerPolicy', {
          name,
          spec: {
            actionSpace: space,
            weightLevels: space === ActionSpace.ACTION_SPACE_BETA ? [] : local.levels,
            hiddenUnits: local.hidden,
            featureSchemaVersion: local.schema,
            numFeatures: local.features,
            seed: local.seed,
          },
          provenance,
          weights,
        });
        output(opts.json, versionJson(v), () => versionsTable([v]));
      }),
    );
  cmd.addCommand(experimentCommand());
  return cmd;
}
