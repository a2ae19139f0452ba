import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { Metadata, status as Status } from '@grpc/grpc-js';
import { writeFileAtomic, writeJsonAtomic } from '@purify/artifacts';
import { enlargeImage, overlayImage, percentiles, tileHorizontally, writePng } from '@purify/imaging';
import { JobSpec, JobState, Method, Modality, RlAblation, TargetLoss, TrainerServiceClient, type Job, type JobEvent, type RoundEvent, type RoundSnapshot } from '@purify/proto';
import { createClient, PurifyError, unaryCall } from '@purify/runtime';
import { choiceArg, CliError, intArg, numberArg, table } from '../cli-util';
import { Progress, formatSeconds } from '../progress';
import { serviceAddress } from '../services-file';
import { OutputPolicy } from '../write-safety';

/**
 * `purify adapt`: submits an adaptation job to the trainer service, follows
 * its events with a progress bar, and writes a summary into the run folder.
 * The run folder remembers the job (`<out>/job.json`): running the command
 * again with the same `--out` reattaches to it (and resumes it when it failed
 * or was cancelled), whatever the other flags say.
 */

const METHODS: Readonly<Record<string, Method>> = {
  'source-only': Method.METHOD_SOURCE_ONLY,
  naive: Method.METHOD_NAIVE,
  confidence: Method.METHOD_CONFIDENCE,
  entropy: Method.METHOD_ENTROPY,
  consensus: Method.METHOD_CONSENSUS,
  cbst: Method.METHOD_CBST,
  rule: Method.METHOD_RULE,
  rl: Method.METHOD_RL,
  oracle: Method.METHOD_ORACLE,
};

export interface AdaptOptions {
  source: string;
  target: string;
  method: string;
  out: string;
  rounds?: number;
  stepsPerRound?: number;
  batchSize?: number;
  learningRate?: number;
  targetWeight?: number;
  emaDecay?: number;
  threshold?: number;
  pixelGate?: number;
  /** Class-balanced curriculum: kept portions of the first and last round. */
  keptPortion?: { start: number; end: number };
  /** No round guard: publish the last round's teacher. */
  keepLastRound?: boolean;
  /** cbst, rule, rl: how the target loss weighs classes (default class-balanced). */
  targetLoss?: TargetLossName;
  seed: number;
  initModel?: string;
  outputModel?: string;
  imageSize?: number;
  oracleLabels?: string;
  policy?: string;
  experiment?: string;
  onlineFinetuning: boolean;
  /** rl only: promote the policy the job ends with, so the next job starts from it. */
  promotePolicy?: boolean;
  /** rl only: act with the policy as it is (no episodes, no fine-tuning). */
  freezePolicy?: boolean;
  /** rl only: an ablation of the learned policy (#21 item 7). */
  rlAblation?: RlAblationName;
  /** AdaBN before round 1 (label-free target BatchNorm statistics). */
  adabn?: boolean;
  trainer?: string;
  runDir: string;
  timeoutMs: number;
  /** How long to keep reconnecting to a trainer that went away (default {@link DEFAULT_RECONNECT_MS}). */
  reconnectMs?: number;
  json: boolean;
  /** Where the one-line human summary goes (default stdout); a caller printing its own JSON on stdout passes stderr. */
  summaryStream?: NodeJS.WritableStream;
}

/** `--target-loss` values and their proto enum. */
export const TARGET_LOSS_NAMES = { 'class-balanced': TargetLoss.TARGET_LOSS_CLASS_BALANCED, uniform: TargetLoss.TARGET_LOSS_UNIFORM, 'class-mass': TargetLoss.TARGET_LOSS_CLASS_MASS } as const;
export type TargetLossName = keyof typeof TARGET_LOSS_NAMES;

export const targetLossArg = choiceArg(TARGET_LOSS_NAMES);

/** `--rl-ablation` values and their proto enum. */
export const RL_ABLATIONS = { untrained: RlAblation.RL_ABLATION_UNTRAINED_POLICY, random: RlAblation.RL_ABLATION_RANDOM_POLICY, 'confidence-features': RlAblation.RL_ABLATION_CONFIDENCE_FEATURES } as const;
export type RlAblationName = keyof typeof RL_ABLATIONS;

const rlAblationArg = choiceArg(RL_ABLATIONS);

/** How long `adapt` keeps reconnecting to a trainer that went away before it gives up. */
export const DEFAULT_RECONNECT_MS = 120_000;

interface RunFile {
  readonly jobId: string;
  readonly trainer: string;
  readonly spec: unknown;
  readonly createdAt: string;
}

/** `--kept-portion start,end`: two numbers in (0, 1], start ≤ end. */
function keptPortionArg(raw: string): { start: number; end: number } {
  const parts = raw.split(',').map((x) => Number(x.trim()));
  const [start, end] = parts;
  if (parts.length !== 2 || !(start! > 0 && start! <= 1) || !(end! >= start! && end! <= 1)) throw new InvalidArgumentError(`must be two portions start,end with 0 < start ≤ end ≤ 1, got "${raw}"`);
  return { start: start!, end: end! };
}

/** `NAME` or `NAME:VERSION` (0 / absent = latest). */
function parseRef(raw: string, flag: string): { name: string; version: number } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?::(\d+))?$/.exec(raw);
  if (!m) throw new CliError(`${flag} must be NAME[:VERSION], got "${raw}"`, 2);
  return { name: m[1] as string, version: m[2] === undefined ? 0 : Number(m[2]) };
}

function trainerAddress(opts: AdaptOptions): string {
  return serviceAddress('trainer', opts.trainer, resolve(opts.runDir)).address;
}

function modalityOf(path: string): Modality {
  try {
    const json = JSON.parse(readFileSync(join(path, 'dataset.json'), 'utf8')) as { channel_names?: Record<string, string>; modality?: Record<string, string> };
    const name = Object.values(json.channel_names ?? json.modality ?? {})[0] ?? '';
    if (/^cbct/i.test(name)) return Modality.MODALITY_CBCT;
    if (/^ct\b/i.test(name)) return Modality.MODALITY_CT;
    return Modality.MODALITY_MR;
  } catch {
    return Modality.MODALITY_UNSPECIFIED;
  }
}

function buildSpec(opts: AdaptOptions, jobId: string): JobSpec {
  const method = METHODS[opts.method];
  if (method === undefined) throw new CliError(`--method must be one of ${Object.keys(METHODS).join(', ')}, got "${opts.method}"`, 2);
  if (opts.oracleLabels !== undefined && opts.method !== 'oracle') throw new CliError(`--oracle-labels is for --method oracle only (target labels never reach the other methods), got --method ${opts.method}`, 2);
  if (opts.method === 'oracle' && opts.oracleLabels === undefined) throw new CliError('--method oracle needs --oracle-labels DIR (the target training labels, e.g. <data>/mr-oracle/labelsTr)', 2);
  if (opts.policy !== undefined && opts.experiment !== undefined) throw new CliError('give --policy or --experiment, not both', 2);
  for (const [flag, on] of [['--promote-policy', opts.promotePolicy], ['--freeze-policy', opts.freezePolicy]] as const) {
    if (on === true && opts.method !== 'rl') throw new CliError(`${flag} is for --method rl only, got --method ${opts.method}`, 2);
  }
  if (opts.freezePolicy === true && (opts.onlineFinetuning || opts.rlAblation !== undefined)) {
    throw new CliError(`--freeze-policy acts with the policy as it is; it cannot be combined with ${opts.onlineFinetuning ? '--online-finetuning' : `--rl-ablation ${opts.rlAblation}`}`, 2);
  }
  const size = opts.imageSize;
  return JobSpec.fromPartial({
    jobId,
    method,
    source: { path: resolve(opts.source), modality: modalityOf(resolve(opts.source)), caseIds: [] },
    target: { path: resolve(opts.target), modality: modalityOf(resolve(opts.target)), caseIds: [] },
    ...(opts.oracleLabels === undefined ? {} : { oracleLabels: { path: resolve(opts.oracleLabels), modality: Modality.MODALITY_UNSPECIFIED, caseIds: [] } }),
    ...(opts.initModel === undefined ? {} : { initModel: parseRef(opts.initModel, '--init-model') }),
    outputModel: opts.outputModel ?? '',
    // 0 = the trainer's default (proto convention).
    hyperparameters: {
      rounds: opts.rounds ?? 0,
      stepsPerRound: opts.stepsPerRound ?? 0,
      batchSize: opts.batchSize ?? 0,
      learningRate: opts.learningRate ?? 0,
      targetWeight: opts.targetWeight ?? 0,
      emaDecay: opts.emaDecay ?? 0,
      threshold: opts.threshold ?? 0,
      pixelGate: opts.pixelGate ?? 0,
      keptPortionStart: opts.keptPortion?.start ?? 0,
      keptPortionEnd: opts.keptPortion?.end ?? 0,
      imageSizeYx: size === undefined ? [] : [size, size],
      keepLastRound: opts.keepLastRound ?? false,
      targetLoss: TARGET_LOSS_NAMES[opts.targetLoss ?? 'class-balanced'],
    },
    seed: opts.seed,
    ...(opts.policy !== undefined ? { agentTarget: { $case: 'policy' as const, policy: parseRef(opts.policy, '--policy') } } : {}),
    ...(opts.experiment !== undefined ? { agentTarget: { $case: 'experiment' as const, experiment: opts.experiment } } : {}),
    simulatedShiftPretraining: opts.method === 'rl' && opts.freezePolicy !== true,
    onlineFinetuning: opts.onlineFinetuning,
    promotePolicy: opts.promotePolicy ?? false,
    freezePolicy: opts.freezePolicy ?? false,
    adabn: opts.adabn ?? false,
    rlAblation: opts.rlAblation === undefined ? RlAblation.RL_ABLATION_NONE : RL_ABLATIONS[opts.rlAblation],
  });
}

/** gRPC codes after which a watch reconnects: the trainer went away (killed, stopped, restarting). */
const RECONNECT_CODES = new Set([Status.UNAVAILABLE, Status.CANCELLED]);
const TERMINAL_STATES = [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED];

/** How {@link follow} reaches the trainer and how long it keeps trying when the trainer goes away. */
interface FollowSettings {
  readonly address: string;
  /** Give up after this long without an answer (the last successful read resets it). */
  readonly reconnectMs: number;
  /** One line per lost connection (default: nothing). */
  readonly onLost?: (reason: string) => void;
}

/**
 * Follows WatchJob until the job ends and returns the finished job. When the
 * stream breaks because the trainer went away it reconnects from the next
 * sequence with backoff; a terminal `state` event carries the job, so the
 * outcome is known even if the trainer stops right after it. After
 * `reconnectMs` without an answer it fails with one line naming the job's last
 * known state.
 */
async function follow(client: TrainerServiceClient, jobId: string, onEvent: (e: JobEvent) => void, settings: FollowSettings): Promise<Job> {
  let next = 0;
  let attempt = 0;
  let lostSince: number | undefined;
  let last: Job | undefined;
  const lost = (reason: string): void => {
    if (lostSince === undefined) settings.onLost?.(reason);
    lostSince ??= Date.now();
    if (Date.now() - lostSince > settings.reconnectMs) {
      const state = last === undefined ? 'unknown' : stateName(last.state);
      throw new CliError(
        `lost the trainer at ${settings.address} while following job ${jobId} (${reason}; no answer for ${formatSeconds(settings.reconnectMs / 1000)}); ` +
          `the job's last known state is ${state}. The trainer keeps the job and its round checkpoints: run the same command again to reattach.`,
      );
    }
  };
  for (;;) {
    const outcome = await new Promise<'ended' | 'lost'>((resolveDone, reject) => {
      const call = client.watchJob({ jobId, fromSequence: next }, new Metadata(), { deadline: Infinity });
      call.on('data', (e: JobEvent) => {
        next = Number(e.sequence) + 1;
        attempt = 0;
        lostSince = undefined;
        if (e.job !== undefined) last = e.job;
        onEvent(e);
      });
      call.on('end', () => resolveDone('ended'));
      call.on('error', (err: Error & { code?: number; details?: string }) => {
        if (err.code !== undefined && RECONNECT_CODES.has(err.code)) resolveDone('lost');
        else reject(new CliError(`trainer at ${settings.address}: watching job ${jobId} failed: ${err.message}`));
      });
    });
    if (last !== undefined && TERMINAL_STATES.includes(last.state)) return last;
    if (outcome === 'ended') {
      try {
        const job = await unaryCall(client, 'getJob', { jobId });
        if (TERMINAL_STATES.includes(job.state)) return job;
      } catch (err) {
        if (!(err instanceof PurifyError) || !RECONNECT_CODES.has(err.grpcStatus)) throw new CliError(`trainer at ${settings.address}: ${(err as Error).message}`);
        lost((err as Error).message);
      }
    } else lost('the watch stream broke: the trainer stopped or is unreachable');
    attempt++;
    await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** Math.min(attempt, 5))));
  }
}

const stateName = (s: JobState): string => (JobState[s] ?? String(s)).replace('JOB_STATE_', '').toLowerCase();

function summaryMarkdown(job: Job, rounds: readonly RoundEvent[], wallMs: number): string {
  const names = [...new Set(rounds.flatMap((r) => r.metrics.map((m) => m.name)))];
  const phases = [...new Set(rounds.flatMap((r) => Object.keys(r.timingsMs)))];
  const lines = [
    `# Adaptation ${job.jobId}`,
    '',
    `- method: ${job.spec ? (Method[job.spec.method] ?? '').replace('METHOD_', '').toLowerCase() : '?'}`,
    `- state: ${stateName(job.state)}${job.message ? ` — ${job.message}` : ''}`,
    `- result model: ${job.resultModel ? `${job.resultModel.name}:${job.resultModel.version}` : '-'}`,
    `- policy: ${job.policy ? `${job.policy.name}:${job.policy.version}` : '-'}`,
    `- resumes: ${job.resumes}; wall time of this command: ${formatSeconds(wallMs / 1000)}`,
    '',
    'Label-free round figures (no target label is ever read):',
    '',
    '```',
    table(['round', ...names], rounds.map((r) => [String(r.round), ...names.map((n) => { const m = r.metrics.find((x) => x.name === n); return m === undefined ? '' : m.value.toFixed(4); })])),
    '```',
    '',
    'Time per phase (ms):',
    '',
    '```',
    table(['round', ...phases], rounds.map((r) => [String(r.round), ...phases.map((p) => (r.timingsMs[p] ?? 0).toFixed(0))])),
    '```',
    '',
  ];
  return lines.join('\n');
}

/** What a finished adaptation run reports (also written to `<out>/summary.json`). */
export interface AdaptSummary {
  readonly jobId: string;
  readonly trainer: string;
  readonly state: string;
  readonly message: string;
  readonly resultModel: { name: string; version: number } | null;
  readonly policy: { name: string; version: number } | null;
  readonly resumes: number;
  readonly metrics: readonly { name: string; value: number; split: string }[];
  readonly rounds: readonly { round: number; metrics: Record<string, number>; timingsMs: Record<string, number> }[];
  /** Supervision-weight histogram (10 bins over [0, 1]) and mean per round. */
  readonly weights: readonly { round: number; mean: number; zeroFraction: number; histogram: number[] }[];
  /** Per round, the figure of one target training slice ({@link writeRoundFigure}), a file in the run folder. */
  readonly figures?: readonly { round: number; file: string; caseId: string; slice: number }[];
  readonly wallMs: number;
}

/** Panels of {@link writeRoundFigure}, left to right. */
export const ROUND_FIGURE_PANELS = ['image', 'pseudo-label', 'reliability', 'weights', 'prediction'] as const;

/**
 * `round-<r>.png`: what round r did to one target training slice — image;
 * the teacher's pseudo-label; its reliability (blue 0 → red 1); the
 * supervision weights (same scale); the student's prediction after the
 * round. Label-free: the trainer sends no target label. Returns the file name.
 */
export function writeRoundFigure(dir: string, round: number, s: RoundSnapshot): string {
  const n = s.height * s.width;
  const floats = (b: Uint8Array, what: string): Float32Array => {
    if (b.byteLength !== 4 * n) throw new CliError(`round ${round} snapshot: ${what} has ${b.byteLength} bytes, expected ${4 * n} for ${s.height}×${s.width} float32`);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  const labels = (b: Uint8Array, what: string): Uint8Array => {
    if (b.byteLength !== n) throw new CliError(`round ${round} snapshot: ${what} has ${b.byteLength} bytes, expected ${n} for ${s.height}×${s.width} uint8`);
    return b;
  };
  const image = { data: floats(s.image, 'the image'), shape: [s.height, s.width] as [number, number] };
  const [lo, hi] = percentiles(image.data, [1, 99]) as [number, number];
  const range = { min: lo, max: hi > lo ? hi : lo + 1 };
  const k = Math.max(1, Math.ceil(192 / Math.max(s.height, s.width)));
  const panels = [
    overlayImage(image, range),
    overlayImage(image, { ...range, labels: labels(s.pseudoLabel, 'the pseudo-label') }),
    overlayImage(image, { ...range, heat: floats(s.reliability, 'the reliability map'), heatAlpha: 0.6 }),
    overlayImage(image, { ...range, heat: floats(s.weights, 'the weight map'), heatAlpha: 0.6 }),
    overlayImage(image, { ...range, labels: labels(s.prediction, 'the prediction') }),
  ].map((p) => enlargeImage(p, k));
  const file = `round-${round}.png`;
  writePng(join(dir, file), tileHorizontally(panels, { gap: 4 }));
  return file;
}

/** Submits (or reattaches to) an adaptation job, follows it to the end, and writes the summary. */
export async function runAdapt(opts: AdaptOptions): Promise<AdaptSummary> {
  const started = Date.now();
  // A run folder, reattached by design: only the dataset-folder rule applies (tools/cli/src/write-safety.ts).
  const out = new OutputPolicy().folder(opts.out, '--out');
  mkdirSync(out, { recursive: true });
  const runFile = join(out, 'job.json');
  let jobId: string;
  let spec: JobSpec;
  let address = trainerAddress(opts);
  if (existsSync(runFile)) {
    const stored = JSON.parse(readFileSync(runFile, 'utf8')) as RunFile;
    jobId = stored.jobId;
    spec = JobSpec.fromJSON(stored.spec);
    if (!opts.trainer && !existsSync(join(resolve(opts.runDir), 'services.json'))) address = stored.trainer;
    process.stderr.write(`reattaching to job ${jobId} recorded in ${runFile}\n`);
  } else {
    jobId = `adapt-${opts.method}-s${opts.seed}-${randomBytes(3).toString('hex')}`;
    spec = buildSpec(opts, jobId);
    writeJsonAtomic(runFile, { jobId, trainer: address, spec: JobSpec.toJSON(spec), createdAt: new Date().toISOString() } satisfies RunFile);
  }
  const client = createClient(TrainerServiceClient, 'trainer', { addresses: [address], defaultTimeoutMs: opts.timeoutMs });
  try {
    let job: Job;
    try {
      job = await unaryCall(client, 'startJob', { spec });
    } catch (err) {
      throw new CliError(`trainer at ${address}: ${(err as Error).message}`);
    }
    const rounds = job.progress?.rounds ?? 1;
    const steps = job.progress?.steps ?? 1;
    const bar = new Progress(`adapt ${opts.method}`, rounds * steps, opts.json);
    const roundEvents = new Map<number, RoundEvent>();
    const weightEvents = new Map<number, AdaptSummary['weights'][number]>();
    const figures = new Map<number, NonNullable<AdaptSummary['figures']>[number]>();
    job = await follow(client, jobId, (e) => {
      const ev = e.event;
      if (ev?.$case === 'step') bar.update((ev.step.round - 1) * steps + ev.step.step, `round ${ev.step.round}/${rounds} loss ${ev.step.loss.toFixed(3)}`);
      else if (ev?.$case === 'round') {
        roundEvents.set(ev.round.round, ev.round);
        const snap = ev.round.snapshot;
        if (snap !== undefined) figures.set(ev.round.round, { round: ev.round.round, file: writeRoundFigure(out, ev.round.round, snap), caseId: snap.caseId, slice: snap.slice });
        const dice = ev.round.metrics.find((m) => m.name === 'source_val_dice');
        if (!opts.json) process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}round ${ev.round.round}: source-val Dice ${dice ? dice.value.toFixed(3) : '-'}\n`);
      } else if (ev?.$case === 'weights') {
        weightEvents.set(ev.weights.round, { round: ev.weights.round, mean: ev.weights.mean, zeroFraction: ev.weights.zeroFraction, histogram: ev.weights.histogram.map(Number) });
      } else if (ev?.$case === 'log' && !opts.json) process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${ev.log}\n`);
    }, {
      address,
      reconnectMs: opts.reconnectMs ?? DEFAULT_RECONNECT_MS,
      onLost: (reason) => process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}trainer at ${address}: ${reason}; reconnecting for up to ${formatSeconds((opts.reconnectMs ?? DEFAULT_RECONNECT_MS) / 1000)}\n`),
    });
    const ordered = [...roundEvents.values()].sort((a, b) => a.round - b.round);
    const summary: AdaptSummary = {
      jobId,
      trainer: address,
      state: stateName(job.state),
      message: job.message,
      resultModel: job.resultModel ?? null,
      policy: job.policy ?? null,
      resumes: job.resumes,
      metrics: job.metrics.map((m) => ({ name: m.name, value: m.value, split: m.split })),
      rounds: ordered.map((r) => ({ round: r.round, metrics: Object.fromEntries(r.metrics.map((m) => [m.name, m.value])), timingsMs: r.timingsMs, teacher: r.teacherModel ?? null, policy: r.policy ?? null })),
      weights: [...weightEvents.values()].sort((a, b) => a.round - b.round),
      figures: [...figures.values()].sort((a, b) => a.round - b.round),
      wallMs: Date.now() - started,
    };
    writeJsonAtomic(join(out, 'summary.json'), summary);
    writeFileAtomic(join(out, 'summary.md'), summaryMarkdown(job, ordered, summary.wallMs));
    if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else (opts.summaryStream ?? process.stdout).write(`job ${jobId}: ${summary.state}${job.resultModel ? `, model ${job.resultModel.name}:${job.resultModel.version}` : ''}; summary in ${join(out, 'summary.md')}\n`);
    if (job.state !== JobState.JOB_STATE_SUCCEEDED) throw new CliError(`job ${jobId} ${summary.state}: ${job.message} (run the same command again to resume it)`);
    return summary;
  } finally {
    client.close();
  }
}

function positive(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 8 || n % 8 !== 0) throw new InvalidArgumentError(`must be a multiple of 8 ≥ 8, got "${raw}"`);
  return n;
}

export function adaptCommand(): Command {
  return new Command('adapt')
    .description('Adapt a source model to an unlabelled target domain through the trainer service (resumable: rerun with the same --out)')
    .requiredOption('--source <dir>', 'labelled source dataset (MSD / nnU-Net layout)')
    .requiredOption('--target <dir>', 'unlabelled target dataset (any labels in it are ignored)')
    .option('--method <name>', `one of ${Object.keys(METHODS).join(', ')}`, 'rl')
    .requiredOption('--out <dir>', 'run folder: job record and summary')
    .option('--rounds <n>', 'adaptation rounds (default: the trainer default)', intArg(1, 1000))
    .option('--steps-per-round <n>', 'training steps per round', intArg(1, 1_000_000))
    .option('--batch-size <n>', 'slices per step (half source, half target)', intArg(1, 1024))
    .option('--learning-rate <x>', 'peak learning rate of the student (default: the trainer default, 1e-4)', numberArg(0, 1, { min: true }))
    .option('--target-weight <x>', 'λ, the factor of the target pseudo-label term (default 1)', numberArg(0, 100, { min: true }))
    .option('--ema-decay <x>', 'cap α of the EMA teacher momentum (default 0.99)', numberArg(0, 1, { min: true, max: true }))
    .option('--threshold <x>', 'confidence: max-probability threshold (default 0.968); rule: reliability-score threshold (default 0.5)', numberArg(0, 1, { min: true }))
    .option('--pixel-gate <x>', 'rule, rl: a fixed gate instead of the class-balanced curriculum — pixels whose pseudo-label max-probability is below x get weight 0 (≤ 1/classes keeps every pixel)', numberArg(0, 1, { min: true }))
    .option('--kept-portion <start,end>', 'cbst, rule, rl: portion of each class\'s most confident pixels kept in the first and last round (default 0.2,0.8)', keptPortionArg)
    .option('--keep-last-round', 'publish the last round\'s teacher even when its source validation Dice fell more than 0.02 below the starting model\'s (default: the round guard keeps the latest round that did not, and stops after two that did)', false)
    .option('--target-loss <kind>', 'cbst, rule, rl: class-balanced (default: each class the same total weight per batch), uniform (every kept pixel alike — for more than two or three rounds, where class-balanced drifts) or class-mass (each class keeps its gated mass; region weights redistribute it within the class)', targetLossArg)
    .option('--seed <n>', 'seed of everything random in the job', intArg(0, 2 ** 31 - 1), 1)
    .option('--init-model <name[:v]>', 'starting (source) model in the registry')
    .option('--output-model <name>', 'registry name of the adapted model (default adapted-<job id>)')
    .option('--image-size <n>', 'working tile when there is no --init-model (square, multiple of 8)', positive)
    .option('--oracle-labels <dir>', 'target TRAINING labels, for --method oracle only')
    .option('--policy <name[:v]>', 'agent policy for --method rl (default purify-weights-<feature schema>, e.g. purify-weights-v2, registered on first use)')
    .option('--experiment <name>', 'agent A/B experiment for --method rl')
    .option('--online-finetuning', 'rl: also fine-tune the policy on the target with the label-free proxy reward', false)
    .option('--promote-policy', 'rl: when the job succeeds, promote the policy version it ends with — the next job using the policy (at version 0, the default) starts from it', false)
    .option('--freeze-policy', 'rl: act with the policy as it is (e.g. one a previous job promoted): no simulated-shift episodes, no fine-tuning', false)
    .option('--rl-ablation <kind>', `rl: an ablation of the learned policy — ${Object.keys(RL_ABLATIONS).join(', ')} (untrained: the policy acts without episodes; random: uniform random region weights; confidence-features: the agent sees only confidence and entropy)`, rlAblationArg)
    .option('--adabn', 'before round 1, re-estimate the BatchNorm statistics on the unlabelled target training images (AdaBN); with --method source-only and --init-model: that model with target statistics, no training', false)
    .option('--trainer <host:port>', 'trainer address (default: from <run-dir>/services.json, else 127.0.0.1:50154)')
    .option('--run-dir <dir>', 'where `purify up` wrote services.json', '.purify')
    .option('--timeout-ms <ms>', 'deadline of each unary call', intArg(1, 600_000), 30_000)
    .option('--reconnect-ms <ms>', 'how long to keep reconnecting when the trainer goes away while the job runs; then exit with the job\'s last known state', intArg(0, 86_400_000), DEFAULT_RECONNECT_MS)
    .option('--json', 'print the summary as JSON', false)
    .action(async (opts: AdaptOptions) => {
      await runAdapt(opts);
    });
}
