/**
 * The adaptation round loop (DESIGN.md §4, stage B), one implementation for
 * every method:
 *
 *   for each round: EMA teacher → publish (export) → target supervision and
 *   weights (per method: teacher probabilities, reliability + rule/agent, or
 *   oracle labels) → pixel weight maps → `stepsPerRound` steps of
 *   L = L_sup(source) + λ·Σ W·CE / Σ W → label-free round metrics → rewards
 *   (rl) → checkpoint.
 *
 * A label-free round guard ({@link SOURCE_GUARD}, #21 item 6) measures the
 * EMA teacher on the source validation volumes after every round, keeps the
 * latest teacher that still does the source task and stops after two rounds
 * that do not; the run returns the kept teacher.
 *
 * Checkpoints are written at the end of every round (student, Adam state, EMA
 * teacher, history, the guard's kept teacher); a cancelled run stops before the next step and leaves the
 * last round's checkpoint as it was, so resuming redoes only the unfinished
 * round, with the same batches (they are a function of (seed, round, step)).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '@purify/artifacts';
import { Rng } from '@purify/imaging';
import { buildUNet, createAdam, EmaTeacher, loadCheckpoint, resolveUNetConfig, saveCheckpoint, type Adam, type SegModel, type UNetConfig, type WeightSnapshot } from '@purify/models';
import { FEATURE_SCHEMA, normalizeFeatures, type ReliabilityOptions } from '@purify/reliability';
import { adaptBatchNorm, BatchSampler, batchTensors, decodeWeights, defaultTrainingWorkers, encodeWeights, predictSlices, stepSeed, validate as validateModel, type AugmentLevel, type SliceBatch, type SliceVolume, type TrainingSlice } from '@purify/training';
import { AdaptationConfigError } from './errors';
import { labelAgreement, organDice } from './figures';
import { channelsFirst } from './local-ports';
import { Method, targetSourceOf, TargetSource } from './methods';
import type { ActResult, AdaptationPorts, PolicyAddress, PublishedTeacher, RewardItem, ScoredVolume } from './ports';
import { episodicReward, proxyReward, regionAccuracy, regionRewards, wrongRegionBalance, type ProxyFigures } from './rewards';
import { CONSENSUS_VIEW, nextSeverity, shiftVolume, SIMULATED_SHIFT, simulatedShift } from './shift';
import { ParallelAdaptation } from './parallel-step';
import { adaptationStep, type DualStepResult } from './step';
import { classBalancedWeights, classGate, classMassWeights, classThresholds, keptPortion } from './curriculum';
import { keepLargestComponents, singleStructureClasses } from './topology';
import { decideRounds, SOURCE_GUARD, type KeepBestSettings, type RoundProxy } from './stop-rule';
import { argmaxLabels, confidenceWeights, consensusWeights, DAFORMER_THRESHOLD, entropyWeights, naiveWeights, regionPixelWeights, thresholdRegionWeights, weightStatistics, type WeightStatistics } from './weighting';

/** Hyper-parameters shared by every method (proto `TrainingHyperparameters`). */
export interface AdaptationHyperparameters {
  readonly rounds: number;
  readonly stepsPerRound: number;
  /** Slices per step; with a target term half (rounded up) are source slices. */
  readonly batchSize: number;
  readonly learningRate: number;
  /** λ: factor of the target term. */
  readonly targetWeight: number;
  /** Cap α of the EMA teacher's momentum. */
  readonly emaDecay: number;
  /** `confidence`: max-prob threshold (default 0.968); `rule`: reliability threshold (default 0.5). */
  readonly threshold: number;
  /**
   * `rule` / `rl`: a fixed pixel confidence gate under the region weights — a
   * pixel whose pseudo-label max-probability is below it gets weight 0 (any
   * value ≤ 1/K keeps every pixel). 0 (the default) = the class-balanced
   * curriculum gate of {@link keptPortionStart} … {@link keptPortionEnd}.
   */
  readonly pixelGate: number;
  /**
   * `cbst`, and `rule` / `rl` without a fixed `pixelGate`: the portion of each
   * class's most confident pixels kept in the first and the last round
   * (linear in between; defaults 0.2 and 0.8; CBST, docs/adaptation.md).
   */
  readonly keptPortionStart: number;
  readonly keptPortionEnd: number;
}

/** Default kept portions of the class-balanced curriculum (first and last round). */
export const DEFAULT_KEPT_PORTION = Object.freeze({ start: 0.2, end: 0.8 });

export const DEFAULT_HYPERPARAMETERS: Readonly<Omit<AdaptationHyperparameters, 'threshold' | 'pixelGate'>> = Object.freeze({
  rounds: 4,
  stepsPerRound: 50,
  batchSize: 8,
  // Fine-tuning a converged source model (the stage A schedule ends at a learning rate near 0): 1/30 of its
  // 3e-3 peak. Measured on the CT → MR demo data, seed 1, cbst 2 × 30 steps: 5e-4 lost 0.011–0.027 target Dice
  // (the student drifts before the pseudo-labels help), 1e-4 gained 0.005–0.010 (docs/adaptation.md). Longer
  // schedules at 3e-4 gain more but do not fit the benchmark's time budget yet (docs/adaptation.md, "A longer schedule").
  learningRate: 1e-4,
  targetWeight: 1,
  emaDecay: 0.99,
  keptPortionStart: DEFAULT_KEPT_PORTION.start,
  keptPortionEnd: DEFAULT_KEPT_PORTION.end,
});

/** Starting severity of the simulated shift (rl). */
const INITIAL_SEVERITY = 0.5;
/** Target images scored before the first round to calibrate the simulated shift (rl). */
const CALIBRATION_VOLUMES = 2;

/** The `rule` method's fixed, hand-set threshold on the region reliability score. */
export const RULE_THRESHOLD = 0.5;

/**
 * Fills defaults (0 / undefined = default, as in the proto) and checks ranges;
 * throws {@link AdaptationConfigError} naming `hyperparameters.<field>`.
 */
export function resolveHyperparameters(method: Method, h: Partial<AdaptationHyperparameters>): AdaptationHyperparameters {
  const pick = (v: number | undefined, d: number): number => (v === undefined || v === 0 ? d : v);
  const r: AdaptationHyperparameters = {
    rounds: pick(h.rounds, DEFAULT_HYPERPARAMETERS.rounds),
    stepsPerRound: pick(h.stepsPerRound, DEFAULT_HYPERPARAMETERS.stepsPerRound),
    batchSize: pick(h.batchSize, DEFAULT_HYPERPARAMETERS.batchSize),
    learningRate: pick(h.learningRate, DEFAULT_HYPERPARAMETERS.learningRate),
    targetWeight: pick(h.targetWeight, DEFAULT_HYPERPARAMETERS.targetWeight),
    emaDecay: pick(h.emaDecay, DEFAULT_HYPERPARAMETERS.emaDecay),
    threshold: pick(h.threshold, method === Method.Rule ? RULE_THRESHOLD : DAFORMER_THRESHOLD),
    pixelGate: h.pixelGate ?? 0,
    keptPortionStart: pick(h.keptPortionStart, DEFAULT_HYPERPARAMETERS.keptPortionStart),
    keptPortionEnd: pick(h.keptPortionEnd, DEFAULT_HYPERPARAMETERS.keptPortionEnd),
  };
  const bad = (field: string, want: string, got: number): never => {
    throw new AdaptationConfigError(`hyperparameters.${field}`, `\`hyperparameters.${field}\` must be ${want}, got ${got}`);
  };
  if (!Number.isInteger(r.rounds) || r.rounds < 1 || r.rounds > 1000) bad('rounds', 'an integer in [1, 1000]', r.rounds);
  if (!Number.isInteger(r.stepsPerRound) || r.stepsPerRound < 1 || r.stepsPerRound > 1_000_000) bad('steps_per_round', 'an integer in [1, 1000000]', r.stepsPerRound);
  const minBatch = targetSourceOf(method) === TargetSource.None ? 1 : 2;
  if (!Number.isInteger(r.batchSize) || r.batchSize < minBatch || r.batchSize > 1024) {
    bad('batch_size', `an integer in [${minBatch}, 1024]${minBatch === 2 ? ' (a batch holds source and target slices)' : ''}`, r.batchSize);
  }
  if (!(r.learningRate > 0 && r.learningRate <= 1)) bad('learning_rate', 'a number in (0, 1]', r.learningRate);
  if (!(r.targetWeight >= 0 && r.targetWeight <= 100)) bad('target_weight', 'a number in [0, 100]', r.targetWeight);
  if (!(r.emaDecay >= 0 && r.emaDecay < 1)) bad('ema_decay', 'a number in [0, 1)', r.emaDecay);
  if (!(r.threshold > 0 && r.threshold <= 1)) bad('threshold', 'a number in (0, 1]', r.threshold);
  if (!(r.pixelGate >= 0 && r.pixelGate <= 1)) bad('pixel_gate', 'a number in [0, 1] (0 = the class-balanced curriculum)', r.pixelGate);
  if (!(r.keptPortionStart > 0 && r.keptPortionStart <= 1)) bad('kept_portion_start', 'a number in (0, 1]', r.keptPortionStart);
  if (!(r.keptPortionEnd >= r.keptPortionStart && r.keptPortionEnd <= 1)) bad('kept_portion_end', `a number in [kept_portion_start = ${r.keptPortionStart}, 1]`, r.keptPortionEnd);
  return r;
}

/** How the `rl` method learns its policy (DESIGN.md §4 step 7). */
export interface RlSettings {
  /** Simulated-shift episodes from source images (labels known). */
  readonly simulatedShift: boolean;
  /** Episodes before the first round (default 4). */
  readonly pretrainEpisodes: number;
  /** Episodes at the start of every later round (default 1). */
  readonly episodesPerRound: number;
  /** Pseudo-target volumes per episode (default 2). */
  readonly episodeVolumes: number;
  /** Training steps of the episode's scratch student (default 4). */
  readonly episodeSteps: number;
  /** Accuracy a region needs to count as correct (default 0.8). */
  readonly pivot: number;
  /** Factor of the episodic Dice-improvement term (default 5). */
  readonly episodicScale: number;
  /** Label-free proxy reward on the real target. */
  readonly onlineFinetuning: boolean;
  /** Target volumes held out as the probe set (default 1 when there are ≥ 3). */
  readonly probeVolumes: number;
  /**
   * Match the simulated shift's strength to the real target without labels
   * (default false = a fixed severity of 0.5): the severity follows the gap
   * between the mean region reliability of the pseudo-targets and of the target
   * images ({@link nextSeverity}). Off by default because the statistic
   * misleads on CT → MR: the real target's confident errors make it look more
   * reliable (0.91) than the pseudo-targets at severity 0.5 (0.87) although its
   * pseudo-labels are far worse, so the controller drove the shift to 0.
   */
  readonly calibrateShift: boolean;
  /** PPO update after every pre-training episode (default true), not only once per round. */
  readonly updateEachPretrainEpisode: boolean;
  /** Give an episode's wrong regions as much total reward weight as its right ones (default true; {@link wrongRegionBalance}). */
  readonly balanceRewards: boolean;
  /**
   * Judge a region by the pixels its weight trains on — those over the pixel
   * gate — not by all its pixels (default true; {@link regionAccuracy}).
   */
  readonly gatedAccuracy: boolean;
  /**
   * Ablations of the learned policy (#21 item 7; default `learned`):
   * `untrained` — the agent's policy acts as it is, without simulated-shift
   * episodes or online fine-tuning; `random` — every region gets a weight
   * drawn uniformly from {@link DEFAULT_WEIGHT_LEVELS} (seeded), the agent is
   * not asked and nothing is learned.
   */
  readonly policy: RlPolicyAblation;
  /**
   * The feature columns the agent observes (default `all`); `confidence` keeps
   * the region's mean confidence and entropy and sets every other column to 0 —
   * the ablation "rl on confidence features only".
   */
  readonly observedFeatures: 'all' | 'confidence';
}

export type RlPolicyAblation = 'learned' | 'untrained' | 'random';

/** How the gated methods weigh their target loss across classes ({@link AdaptationOptions.targetLoss}). */
export type TargetLoss = 'class-balanced' | 'uniform' | 'class-mass';
export const TARGET_LOSSES: readonly TargetLoss[] = Object.freeze(['class-balanced', 'uniform', 'class-mass']);

/** The action levels of the default agent policy (the trainer registers it with them), which the `random` ablation draws from. */
export const DEFAULT_WEIGHT_LEVELS: readonly number[] = Object.freeze([0, 0.25, 0.5, 0.75, 1]);

/** What a round report names as the policy of the `random` ablation (no agent policy decides). */
export const RANDOM_POLICY: PolicyAddress = Object.freeze({ name: 'random', version: 0 });

/** Feature columns the agent keeps under `observedFeatures: 'confidence'`. */
export const CONFIDENCE_FEATURES: readonly string[] = Object.freeze(['max_probability', 'entropy']);

/** Normalised observations `[rows, F]` with every column outside `keep` set to 0 (a copy). */
export function maskFeatures(observations: Float32Array, numFeatures: number, keep: readonly string[]): Float32Array {
  const kept = new Set(keep.map((name) => FEATURE_SCHEMA.features.findIndex((f) => f.name === name)));
  if (kept.has(-1)) throw new AdaptationConfigError('rl.observed_features', `unknown feature among ${keep.join(', ')} (schema ${FEATURE_SCHEMA.version})`);
  const out = new Float32Array(observations.length);
  for (let i = 0; i < observations.length; i++) if (kept.has(i % numFeatures)) out[i] = observations[i] as number;
  return out;
}

export const DEFAULT_RL_SETTINGS: RlSettings = Object.freeze({
  simulatedShift: true,
  pretrainEpisodes: 4,
  episodesPerRound: 1,
  episodeVolumes: 2,
  episodeSteps: 4,
  pivot: 0.8,
  episodicScale: 5,
  onlineFinetuning: false,
  probeVolumes: 1,
  calibrateShift: false,
  updateEachPretrainEpisode: true,
  balanceRewards: true,
  gatedAccuracy: true,
  policy: 'learned',
  observedFeatures: 'all',
});

export interface AdaptationOptions {
  readonly method: Method;
  /** Routing-key prefix and decision context (the job id). */
  readonly runId: string;
  /** Labelled source slices (weight 1). */
  readonly source: readonly SliceVolume[];
  /** Labelled source validation volumes (with `originalLabel`) for the label-free source-validation Dice. */
  readonly sourceValidation: readonly SliceVolume[];
  /** Unlabelled target volumes (never carry labels). */
  readonly target: readonly SliceVolume[];
  /** Target TRAINING labels on the working grid, by case id: `oracle` only (refused otherwise). */
  readonly oracleLabels?: ReadonlyMap<string, Uint8Array> | undefined;
  readonly numClasses: number;
  /** Training tile `[H, W]` (multiples of the U-Net's size multiple). */
  readonly tileYx: readonly [number, number];
  readonly unet: Partial<UNetConfig>;
  /** Starting weights (the source model); default: fresh initialisation. */
  readonly initialWeights?: readonly WeightSnapshot[] | undefined;
  readonly hyperparameters: AdaptationHyperparameters;
  readonly rl?: Partial<RlSettings> | undefined;
  readonly seed: number;
  readonly ports: AdaptationPorts;
  /**
   * Augmentation of the source and target slices (default 'strong' for both):
   * the source term keeps the appearance augmentation the source model was
   * trained with (with less, the student re-specialises to the source look and
   * loses what transferred), and the student sees augmented target slices while
   * the teacher labelled clean ones (DESIGN.md §4 step 6: CE(student(aug(x_t)), ŷ)).
   */
  readonly sourceAugment?: AugmentLevel | undefined;
  readonly targetAugment?: AugmentLevel | undefined;
  /**
   * AdaBN before round 1: re-estimate the starting model's BatchNorm statistics
   * on the target training images (label-free; `adaptBatchNorm` of
   * @purify/training) — the student and the first EMA teacher start from them.
   */
  readonly adabn?: boolean | undefined;
  /**
   * `rule` / `rl` (our purification pipeline): the source labels' shape prior
   * (topology.ts) — a class that is one connected structure in the source
   * volumes keeps only its largest 3-D component in each target pseudo-label;
   * the other pieces become background. Default false.
   */
  readonly shapePrior?: boolean | undefined;
  /**
   * The target loss of `cbst`, `rule`, `rl` (default `class-balanced`):
   * `class-balanced` normalises each batch per class
   * ({@link classBalancedWeights}); `uniform` weighs every kept pixel alike, as
   * the other methods do — the setting for schedules longer than two or three
   * rounds, where the normalisation drifts (it multiplies the small organs'
   * pixels, false positives included: CT → MR seed 1, cbst 3 × 100 steps at
   * 3e-4, 0.867 with it, 0.919 without; docs/adaptation.md); `class-mass`
   * keeps each class's gated mass and lets region weights redistribute it
   * within the class ({@link classMassWeights}; the same as `uniform` for
   * `cbst`, which has no region weights).
   */
  readonly targetLoss?: TargetLoss | undefined;
  /** Folder of the round checkpoint (`<dir>/last`). */
  readonly checkpointDir?: string | undefined;
  /** Continue from `<checkpointDir>/last` when it exists. */
  readonly resume?: boolean | undefined;
  /** Aborting stops before the next step; the last round checkpoint stays as it was. */
  readonly signal?: AbortSignal | undefined;
  /** Reliability settings of the local pipeline (informational; ports own them). */
  readonly reliability?: ReliabilityOptions | undefined;
  /**
   * Which network the run returns (and the trainer publishes): the EMA
   * `teacher` (default; the mean teacher's smoothed weights, the same network
   * that labelled the target every round) or the last `student`.
   */
  readonly finalModel?: 'teacher' | 'student' | undefined;
  /**
   * The label-free round guard (#21 item 6; {@link decideRounds}): after every
   * round the EMA teacher's organ Dice on the source validation volumes is
   * measured (`teacher_source_val_dice`); the run returns the teacher of the
   * latest round within `maxSourceDrop` of the starting model's (round 0 = the
   * starting model) and stops after `patience` rounds in a row that are not.
   * Default {@link SOURCE_GUARD} for the pseudo-label methods when there are
   * source validation volumes and `finalModel` is `teacher`; `false` = off.
   */
  readonly roundGuard?: KeepBestSettings | false | undefined;
  /**
   * Worker threads for the student's training steps (`ParallelAdaptation`,
   * docs/parallel-training.md); 1 = in process. Default: 2 on wasm with ≥ 2
   * cores and batches of ≥ 2 slices (`defaultTrainingWorkers`). The simulated-shift
   * episodes' scratch students always train in process.
   */
  readonly workers?: number | undefined;
}

export interface StepReport {
  /** 1-based round and step within it. */
  readonly round: number;
  readonly step: number;
  readonly globalStep: number;
  readonly loss: number;
  /** The supervised term (CE + soft Dice): on source slices, or for the oracle on labelled target slices. */
  readonly sourceLoss: number;
  /** The weighted pseudo-label term before λ (0 for source-only and the oracle). */
  readonly targetLoss: number;
  readonly learningRate: number;
  readonly ms: number;
}

export interface RoundReport {
  /** 1-based. */
  readonly round: number;
  /** Label-free figures: `source_val_dice`, `teacher_student_agreement`, `mean_weight`, and where measured `target_confidence` (the teacher's mean max probability on the target), `mean_reliability`, `sim_reward`, `sim_region_accuracy`, `proxy_reward`. */
  readonly metrics: Readonly<Record<string, number>>;
  /** ms per phase: export, teacher, reliability, agent, episodes, training, metrics, feedback. */
  readonly timingsMs: Readonly<Record<string, number>>;
  readonly teacher: PublishedTeacher | undefined;
  readonly policy: PolicyAddress | undefined;
  readonly weights: WeightStatistics;
  /** One target training slice as this round supervised it (pseudo-label methods; proto `RoundSnapshot`). */
  readonly snapshot?: RoundSnapshot | undefined;
}

/**
 * What a round did to one target training slice — the first target case, the
 * slice with the most pseudo-label foreground: `[height, width]` planes of the
 * image, the teacher's pseudo-label, its reliability (the region score under
 * each pixel for `rule` / `rl`, else the teacher's max class probability), the
 * supervision weights, and the student's prediction after the round's
 * training. Label-free: no target label is read.
 */
export interface RoundSnapshot {
  readonly caseId: string;
  readonly slice: number;
  readonly height: number;
  readonly width: number;
  readonly image: Float32Array;
  readonly pseudoLabel: Uint8Array;
  readonly reliability: Float32Array;
  readonly weights: Float32Array;
  readonly prediction: Uint8Array;
}

export interface AdaptationCallbacks {
  onStart?(e: { startRound: number; resumed: boolean; unet: UNetConfig }): void;
  onStep?(e: StepReport): void;
  onWeights?(round: number, stats: WeightStatistics): void;
  onRound?(e: RoundReport): void;
  onLog?(message: string): void;
  onCheckpoint?(e: { round: number; dir: string }): void;
  onPolicy?(policy: PolicyAddress): void;
}

export const StopReason = { Completed: 'completed', Cancelled: 'cancelled' } as const;
export type StopReason = (typeof StopReason)[keyof typeof StopReason];

export interface AdaptationResult {
  /** The adapted network — the EMA teacher or the student, per `finalModel` (the caller disposes it). */
  readonly model: SegModel;
  readonly stopReason: StopReason;
  /** Rounds completed in total (including those before a resume). */
  readonly roundsDone: number;
  readonly rounds: readonly RoundReport[];
  readonly policy: PolicyAddress | undefined;
  readonly unet: UNetConfig;
  /** With the round guard: the round whose teacher `model` is (0 = the starting model). */
  readonly keptRound?: number | undefined;
}

/**
 * The label-free figures that describe the model a run returns: those of the
 * round the round guard kept, else of the last round; none when the kept model
 * is the starting one (round 0: no round of this run made it).
 */
export function resultRoundMetrics(result: Pick<AdaptationResult, 'rounds' | 'keptRound'>): Readonly<Record<string, number>> {
  const round = result.keptRound ?? result.rounds[result.rounds.length - 1]?.round ?? 0;
  return result.rounds.find((r) => r.round === round)?.metrics ?? {};
}

/** The round guard's state in the round checkpoint (its kept teacher is the file `kept-r<keptRound>.bin` beside it). */
interface GuardCheckpoint {
  readonly proxies: RoundProxy[];
  readonly keptRound: number;
  readonly stopped: boolean;
}

interface CheckpointExtra {
  readonly kind: 'purify-adaptation';
  readonly fingerprint: Record<string, unknown>;
  readonly roundsDone: number;
  readonly history: RoundReport[];
  readonly policy: PolicyAddress | null;
  readonly pending: PendingProxy | null;
  /** Severity of the simulated shift after the last finished round (rl). */
  readonly severity?: number | undefined;
  /** The round guard (absent in checkpoints written without it). */
  readonly guard?: GuardCheckpoint | undefined;
}

/** Decisions of a round waiting for their proxy reward (sent when the next round's figures exist). */
interface PendingProxy {
  readonly decisionIds: string[];
  readonly before: ProxyFigures;
  readonly after: ProxyFigures;
}

/** The target supervision of one round. */
interface RoundTargets {
  readonly slices: TrainingSlice[];
  readonly weightMaps: Float32Array[];
  readonly pseudo: Map<string, Uint8Array>;
  readonly meanReliability: number | undefined;
  readonly decisionIds: string[];
  /** The first target case's slice, before the round's training (the prediction is added after it). */
  readonly snapshot?: Omit<RoundSnapshot, 'prediction'> | undefined;
  /** Per class: the pixel gate's confidence threshold this round (gated methods). */
  readonly thresholds?: Float32Array | undefined;
  /** Mean max class probability of the teacher over the target training pixels (pseudo-label methods). */
  readonly meanConfidence?: number | undefined;
}

/** The slice of `label` (`[z, h, w]`) with the most foreground; the lowest such index on ties. */
export function busiestSlice(label: Uint8Array, shape: readonly [number, number, number]): number {
  const [z, h, w] = shape;
  let best = 0;
  let most = -1;
  for (let s = 0; s < z; s++) {
    let n = 0;
    for (let i = s * h * w; i < (s + 1) * h * w; i++) if ((label[i] as number) !== 0) n++;
    if (n > most) [best, most] = [s, n];
  }
  return best;
}

/** Slice `s` (a copy) of a `[z, h, w]` array with `h·w = n` pixels per slice. */
function planeOf<T extends Float32Array | Uint8Array>(a: T, s: number, n: number): T {
  return a.slice(s * n, (s + 1) * n) as T;
}

/** The snapshot planes of one target volume, on its busiest pseudo-label slice. */
function snapshotPlanes(v: SliceVolume, label: Uint8Array, reliability: Float32Array, weights: Float32Array): Omit<RoundSnapshot, 'prediction'> {
  const [, h, w] = v.shape;
  const s = busiestSlice(label, v.shape);
  const plane = <T extends Float32Array | Uint8Array>(a: T): T => planeOf(a, s, h * w);
  return { caseId: v.id, slice: s, height: h, width: w, image: plane(v.image), pseudoLabel: plane(label), reliability: plane(reliability), weights: plane(weights) };
}

/** Per-pixel max class probability of channels-first `probs` `[k, n]`. */
function maxProbabilityOf(probs: Float32Array, k: number): Float32Array {
  const n = probs.length / k;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let m = probs[i] as number;
    for (let c = 1; c < k; c++) m = Math.max(m, probs[c * n + i] as number);
    out[i] = m;
  }
  return out;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class Timer {
  readonly ms: Record<string, number> = {};
  async time<T>(phase: string, work: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      this.ms[phase] = (this.ms[phase] ?? 0) + performance.now() - t0;
    }
  }
}

function cancelled(signal: AbortSignal | undefined): boolean {
  return signal?.aborted ?? false;
}

/** Slices of one volume as training slices with labels and weights (slices without any weight are left out). */
function targetSlices(v: SliceVolume, label: Uint8Array, weights: Float32Array): TrainingSlice[] {
  const [z, h, w] = v.shape;
  const n = h * w;
  const out: TrainingSlice[] = [];
  for (let s = 0; s < z; s++) {
    const wt = weights.subarray(s * n, (s + 1) * n);
    if (!wt.some((x) => x > 0)) continue;
    const lab = label.subarray(s * n, (s + 1) * n);
    const present = new Set<number>();
    for (let i = 0; i < n; i++) if ((wt[i] as number) > 0) present.add(lab[i] as number);
    out.push({ image: v.image.subarray(s * n, (s + 1) * n), label: lab, weight: wt, shape: [h, w], classes: [...present].sort((a, b) => a - b), ref: `${v.id}:${s}` });
  }
  return out;
}

/** Argmax labels of `model` on `image` `[z, h, w]`. */
function labelsOfImage(model: SegModel, image: Float32Array, shape: readonly [number, number, number]): Uint8Array {
  const [z, h, w] = shape;
  return argmaxLabels(channelsFirst(predictSlices(model, image, shape), z * h * w, model.config.numClasses), model.config.numClasses, shape);
}

function labelsOf(model: SegModel, v: SliceVolume): Uint8Array {
  return labelsOfImage(model, v.image, v.shape);
}

const mean = (xs: readonly number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Runs the loop (see the module comment). */
export async function runAdaptation(o: AdaptationOptions, cb: AdaptationCallbacks = {}): Promise<AdaptationResult> {
  const method = o.method;
  const source = targetSourceOf(method);
  const h = o.hyperparameters;
  const requested: RlSettings = { ...DEFAULT_RL_SETTINGS, ...o.rl };
  if (!['learned', 'untrained', 'random'].includes(requested.policy)) throw new AdaptationConfigError('rl.policy', `rl.policy must be learned, untrained or random, got ${JSON.stringify(requested.policy)}`);
  if (requested.observedFeatures !== 'all' && requested.observedFeatures !== 'confidence') {
    throw new AdaptationConfigError('rl.observed_features', `rl.observed_features must be all or confidence, got ${JSON.stringify(requested.observedFeatures)}`);
  }
  // The untrained and random ablations learn nothing: no episodes, no online fine-tuning.
  const rl: RlSettings = requested.policy === 'learned' ? requested : { ...requested, simulatedShift: false, onlineFinetuning: false };
  if (o.oracleLabels !== undefined && method !== Method.Oracle) {
    throw new AdaptationConfigError('oracle_labels', `\`oracle_labels\` are for the oracle method only, got them for method ${method}`);
  }
  if (method === Method.Oracle && o.oracleLabels === undefined) throw new AdaptationConfigError('oracle_labels', '`oracle_labels` are required by the oracle method');
  if (source === TargetSource.Reliability && o.ports.reliability === undefined) throw new AdaptationConfigError('ports.reliability', `method ${method} needs a reliability port`);
  if (method === Method.Rl && o.ports.agent === undefined) throw new AdaptationConfigError('ports.agent', 'method rl needs an agent port');
  if (o.source.length === 0) throw new AdaptationConfigError('source', 'the source has no training volumes');
  if (source !== TargetSource.None && o.target.length === 0) throw new AdaptationConfigError('target', 'the target has no volumes');
  for (const t of o.target) if (t.label !== undefined) throw new AdaptationConfigError('target', `target volume ${t.id} carries labels; target volumes must be unlabelled`);
  const unet = resolveUNetConfig({ ...o.unet, inputChannels: 1, numClasses: o.numClasses });
  const [th, tw] = o.tileYx;
  const m = 2 ** (unet.depth - 1);
  if (!(th >= m && tw >= m && th % m === 0 && tw % m === 0)) throw new AdaptationConfigError('tileYx', `tileYx must be positive multiples of ${m}, got [${o.tileYx.join(', ')}]`);
  const workers = o.workers ?? defaultTrainingWorkers(h.batchSize);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new AdaptationConfigError('workers', `workers must be an integer in [1, 64], got ${JSON.stringify(workers)}`);

  // Probe volumes (online fine-tuning only) are held out of the target training set.
  const probeCount = method === Method.Rl && rl.onlineFinetuning && o.target.length >= 3 ? Math.min(rl.probeVolumes, o.target.length - 1) : 0;
  const trainTargets = o.target.slice(0, o.target.length - probeCount);
  const probes = probeCount > 0 ? o.target.slice(o.target.length - probeCount) : o.target.slice(0, Math.min(2, o.target.length));

  if (o.adabn === true && trainTargets.length === 0) throw new AdaptationConfigError('adabn', '`adabn` re-estimates BatchNorm statistics on the target images, but the job has no target volumes');
  // source-only from a trained model is that model as is (the baseline every gap is measured from): no training rounds.
  const rounds = method === Method.SourceOnly && o.initialWeights !== undefined ? 0 : h.rounds;
  // Pixel gate and per-class loss normalisation: cbst always; rule and rl (our reliability pipeline) too.
  const gated = method === Method.Cbst || method === Method.Rule || method === Method.Rl;
  const classBalanced = method === Method.Cbst || (gated && h.pixelGate === 0);
  const targetLoss: TargetLoss = o.targetLoss ?? 'class-balanced';
  if (!TARGET_LOSSES.includes(targetLoss)) throw new AdaptationConfigError('target_loss', `target_loss must be one of ${TARGET_LOSSES.join(', ')}, got ${JSON.stringify(targetLoss)}`);
  const fingerprint: Record<string, unknown> = { method, seed: o.seed, h, unet, tile: [th, tw], source: o.source.map((v) => v.id), target: o.target.map((v) => v.id), adabn: o.adabn === true, shapePrior: o.shapePrior === true, classBalancedLoss: targetLoss === 'class-balanced',
    // Only when set, so checkpoints written before it existed still resume.
    ...(targetLoss === 'class-mass' ? { targetLoss } : {}),
    // Only when ablated, so checkpoints written before the ablations existed still resume.
    ...(method === Method.Rl && (rl.policy !== 'learned' || rl.observedFeatures !== 'all') ? { rlAblation: { policy: rl.policy, observedFeatures: rl.observedFeatures } } : {}) };
  const lastDir = o.checkpointDir === undefined ? undefined : join(o.checkpointDir, 'last');
  const guard = o.roundGuard === false || !(source === TargetSource.Teacher || source === TargetSource.Reliability) || o.sourceValidation.length === 0 || (o.finalModel ?? 'teacher') !== 'teacher' ? undefined : (o.roundGuard ?? SOURCE_GUARD);
  const keptFile = (round: number): string | undefined => (o.checkpointDir === undefined ? undefined : join(o.checkpointDir, `kept-r${round}.bin`));
  let student: SegModel | undefined;
  let optimizer: Adam | undefined;
  let ema: EmaTeacher | undefined;
  let roundsDone = 0;
  let history: RoundReport[] = [];
  let policy: PolicyAddress | undefined;
  let pending: PendingProxy | null = null;
  let severity = INITIAL_SEVERITY;
  let resumed = false;
  let resumedGuard: GuardCheckpoint | undefined;
  /** The guard's proxies, its kept round and that round's teacher weights. */
  let kept: { proxies: RoundProxy[]; keptRound: number; stopped: boolean; weights: WeightSnapshot[] } | undefined;
  try {
    if (o.resume === true && lastDir !== undefined && existsSync(lastDir)) {
      const ck = await loadCheckpoint(lastDir);
      student = ck.model;
      optimizer = ck.optimizer;
      ema = ck.ema;
      const extra = ck.extra as CheckpointExtra | null;
      if (extra?.kind !== 'purify-adaptation' || ema === undefined) throw new AdaptationConfigError('checkpoint', `checkpoint ${lastDir} was not written by the adaptation loop`);
      const diff = Object.keys(fingerprint).filter((k) => JSON.stringify(fingerprint[k]) !== JSON.stringify(extra.fingerprint[k]));
      if (diff.length > 0) {
        throw new AdaptationConfigError('checkpoint', `checkpoint ${lastDir} was made with different settings (${diff.join(', ')}); resume with the same job spec or start afresh`);
      }
      roundsDone = extra.roundsDone;
      history = extra.history;
      policy = extra.policy ?? undefined;
      pending = extra.pending;
      severity = extra.severity ?? INITIAL_SEVERITY;
      resumedGuard = extra.guard;
      resumed = true;
    } else {
      student = buildUNet(unet);
      if (o.initialWeights !== undefined) student.setWeights(o.initialWeights);
      if (o.adabn === true) {
        const stats = adaptBatchNorm(student, trainTargets);
        cb.onLog?.(`AdaBN: BatchNorm statistics of ${stats.length} layers re-estimated on ${trainTargets.length} target volumes (${trainTargets.reduce((a, v) => a + v.shape[0], 0)} slices)`);
      }
      optimizer = createAdam(student, { learningRate: h.learningRate });
      ema = EmaTeacher.create(student, { alpha: h.emaDecay });
    }
    cb.onStart?.({ startRound: roundsDone, resumed, unet });
    const ports = o.ports;
    const log = (msg: string): void => cb.onLog?.(msg);
    if (guard !== undefined) {
      if (!resumed) {
        kept = { proxies: [{ round: 0, sourceValDice: validateModel(ema.model, o.sourceValidation).meanDice }], keptRound: 0, stopped: false, weights: ema.model.getWeights() };
        const file = keptFile(0);
        if (file !== undefined) writeFileAtomic(file, encodeWeights(ema.model));
      } else if (resumedGuard !== undefined) {
        const file = keptFile(resumedGuard.keptRound);
        if (file === undefined || !existsSync(file)) throw new AdaptationConfigError('checkpoint', `the round guard's kept teacher of round ${resumedGuard.keptRound} (${file ?? 'no checkpoint folder'}) is missing; start the job afresh`);
        kept = { proxies: [...resumedGuard.proxies], keptRound: resumedGuard.keptRound, stopped: resumedGuard.stopped, weights: decodeWeights(readFileSync(file), file).weights };
      } else log('round guard off: the checkpoint was written without it');
    }

    /** The target batch with its weights normalised per class ({@link classBalancedWeights}) for the class-balanced methods; others as drawn. */
    const balance = (b: SliceBatch): SliceBatch => (gated && targetLoss === 'class-balanced' ? { ...b, weights: classBalancedWeights(b.labels, b.weights, o.numClasses) } : b);

    const sourceSampler = (round: number, n: number): BatchSampler =>
      new BatchSampler([{ slices: sourceSlices, augment: o.sourceAugment ?? 'strong', foregroundFraction: 0.5 }], { batchSize: n, tileYx: [th, tw], seed: stepSeed(o.seed, round * 2) });
    const sourceSlices = o.source.flatMap((v) => {
      const [z, hh, ww] = v.shape;
      const n = hh * ww;
      return Array.from({ length: z }, (_, s): TrainingSlice => ({ image: v.image.subarray(s * n, (s + 1) * n), label: v.label!.subarray(s * n, (s + 1) * n), shape: [hh, ww], classes: v.sliceClasses[s] ?? [], ref: `${v.id}:${s}` }));
    });

    // The random-policy ablation's draws: a function of (seed, round, call within the round), so a resumed round draws the same weights.
    const randomCalls = new Map<number, number>();
    const act = async (scored: ScoredVolume, routingKey: string, round: number, deterministic: boolean, context: Record<string, string>): Promise<ActResult> => {
      if (rl.policy === 'random') {
        const call = randomCalls.get(round) ?? 0;
        randomCalls.set(round, call + 1);
        const rng = new Rng(stepSeed(o.seed ^ 0x7a4d, round * 100_003 + call));
        const weights = Float32Array.from({ length: scored.numRegions }, () => DEFAULT_WEIGHT_LEVELS[Math.floor(rng.next() * DEFAULT_WEIGHT_LEVELS.length)] as number);
        return { weights, decisionIds: [], policy: RANDOM_POLICY };
      }
      const agent = ports.agent!;
      const normalised = normalizeFeatures(scored.features, FEATURE_SCHEMA);
      const observations = rl.observedFeatures === 'confidence' ? maskFeatures(normalised, scored.numFeatures, CONFIDENCE_FEATURES) : normalised;
      const r = await agent.act({ observations, numRows: scored.numRegions, numFeatures: scored.numFeatures, routingKey, deterministic, context: { run: o.runId, round: String(round), ...context } }, policy, o.signal);
      if (r.weights.length !== scored.numRegions) throw new AdaptationConfigError('agent', `the agent answered ${r.weights.length} decisions for ${scored.numRegions} regions`);
      if (policy === undefined || r.policy.name !== policy.name || r.policy.version !== policy.version) {
        policy = r.policy;
        cb.onPolicy?.(policy);
      }
      return r;
    };

    /**
     * The pixel gate of one round over a set of volumes (max-probabilities and
     * pseudo-labels): a fixed `pixelGate`, or the class-balanced curriculum's
     * per-class thresholds at this round's kept portion. Returns one 0/1 mask
     * per volume and the thresholds used (per class).
     */
    const pixelGates = (round: number, maxProbs: readonly Float32Array[], labels: readonly Uint8Array[]): { masks: Uint8Array[]; thresholds: Float32Array } => {
      const thresholds = classBalanced
        ? classThresholds(maxProbs, labels, o.numClasses, keptPortion(round, h.rounds, h.keptPortionStart, h.keptPortionEnd))
        : new Float32Array(o.numClasses).fill(h.pixelGate);
      return { masks: maxProbs.map((p, i) => classGate(p, labels[i]!, thresholds)), thresholds };
    };

    // The shape prior of our purification: which classes are one structure in the source labels (source labels only).
    const singleStructures = o.shapePrior === true && source === TargetSource.Reliability ? singleStructureClasses(o.source.map((v) => ({ label: v.label!, shape: v.shape })), o.numClasses) : [];
    if (singleStructures.length > 0) log(`shape prior: classes ${singleStructures.join(', ')} are one connected structure in the source labels; their pseudo-labels keep only their largest component`);

    /** Pixel weights and pseudo-labels of one round for the real target. */
    const roundTargets = async (round: number, teacher: PublishedTeacher | undefined, timer: Timer): Promise<RoundTargets> => {
      const decisionIds: string[] = [];
      const scores: number[] = [];
      const k = o.numClasses;
      // Pass 1, per volume: the pseudo-label, the method's weights before any pixel gate, and the confidences.
      const perVolume: { v: SliceVolume; label: Uint8Array; weights: Float32Array; maxProbability?: Float32Array; reliability?: Float32Array }[] = [];
      for (const v of trainTargets) {
        if (cancelled(o.signal)) break;
        if (source === TargetSource.OracleLabels) {
          const label = o.oracleLabels!.get(v.id);
          if (label === undefined) throw new AdaptationConfigError('oracle_labels', `no oracle label for target case ${v.id}`);
          perVolume.push({ v, label, weights: naiveWeights(v.shape) });
        } else if (source === TargetSource.Teacher) {
          const probs = await timer.time('teacher', () => ports.teacher.predict(teacher!, v, o.signal));
          const label = argmaxLabels(probs, k, v.shape);
          const maxProbability = maxProbabilityOf(probs, k);
          let weights: Float32Array;
          if (method === Method.Naive || method === Method.Cbst) weights = naiveWeights(v.shape);
          else if (method === Method.Confidence) weights = confidenceWeights(probs, k, v.shape, h.threshold);
          else if (method === Method.Entropy) weights = entropyWeights(probs, k, v.shape);
          else {
            const view = shiftVolume(v, stepSeed(o.seed ^ 0x0c0ffee, round * 100_003 + perVolume.length), CONSENSUS_VIEW);
            const viewProbs = await timer.time('teacher', () => ports.teacher.predict(teacher!, view, o.signal));
            weights = consensusWeights(probs, viewProbs, k, v.shape);
          }
          perVolume.push({ v, label, weights, maxProbability, reliability: maxProbability });
        } else {
          const scored = await timer.time('reliability', () => ports.reliability!.score(teacher!, v, round, o.signal));
          scores.push(...scored.scores);
          let regionWeights: Float32Array;
          if (method === Method.Rule) regionWeights = thresholdRegionWeights(scored.scores, h.threshold);
          else {
            const r = await timer.time('agent', () => act(scored, `${o.runId}/${v.id}`, round, !rl.onlineFinetuning, { case: v.id }));
            regionWeights = r.weights;
            decisionIds.push(...r.decisionIds);
          }
          perVolume.push({
            v,
            label: singleStructures.length > 0 ? keepLargestComponents(scored.pseudoLabel, v.shape, singleStructures).label : scored.pseudoLabel,
            weights: regionPixelWeights(regionWeights, scored.regionIndex),
            maxProbability: scored.maxProbability,
            reliability: Float32Array.from(scored.regionIndex, (r) => scored.scores[r] as number),
          });
        }
      }
      // Pass 2: the pixel gate over all volumes (class-balanced thresholds need every volume's confidences).
      let thresholds: Float32Array | undefined;
      if (gated && perVolume.length > 0) {
        const gates = pixelGates(round, perVolume.map((p) => p.maxProbability!), perVolume.map((p) => p.label));
        thresholds = gates.thresholds;
        perVolume.forEach((p, i) => {
          const mask = gates.masks[i]!;
          for (let j = 0; j < mask.length; j++) if (mask[j] === 0) p.weights[j] = 0;
        });
        if (targetLoss === 'class-mass') classMassWeights(perVolume.map((p) => p.weights), perVolume.map((p) => p.label), gates.masks, o.numClasses);
      }
      const slices: TrainingSlice[] = [];
      const pseudo = new Map<string, Uint8Array>();
      let snapshot: RoundTargets['snapshot'];
      for (const p of perVolume) {
        if (snapshot === undefined && p.reliability !== undefined) snapshot = snapshotPlanes(p.v, p.label, p.reliability, p.weights);
        pseudo.set(p.v.id, p.label);
        slices.push(...targetSlices(p.v, p.label, p.weights));
      }
      let confidenceSum = 0;
      let confidenceCount = 0;
      for (const p of perVolume) {
        if (p.maxProbability === undefined) continue;
        for (const x of p.maxProbability) confidenceSum += x;
        confidenceCount += p.maxProbability.length;
      }
      const meanConfidence = confidenceCount > 0 ? confidenceSum / confidenceCount : undefined;
      return { slices, weightMaps: perVolume.map((p) => p.weights), pseudo, meanReliability: scores.length > 0 ? mean(scores) : undefined, decisionIds, snapshot, thresholds, meanConfidence };
    };

    /** One simulated-shift episode: pseudo-targets from source volumes, per-region + episodic rewards, then feedback. */
    const episode = async (round: number, index: number, teacher: PublishedTeacher): Promise<{ reward: number; accuracy: number; reliability: number }> => {
      const rng = new Rng(stepSeed(o.seed ^ 0x51a1, round * 1009 + index));
      const pool = rng.shuffle([...o.source.keys()]).slice(0, Math.min(rl.episodeVolumes, o.source.length));
      const shift = rl.calibrateShift ? simulatedShift(severity) : SIMULATED_SHIFT;
      const pts = pool.map((i, j) => shiftVolume(o.source[i]!, rng.nextUint32(), shift, `sim-r${round}-e${index}-${j}-${o.source[i]!.id}`));
      const simScores: number[] = [];
      const items: { ids: readonly string[]; weights: Float32Array; accuracy: Float32Array }[] = [];
      const tslices: TrainingSlice[] = [];
      const episodeWeights: Float32Array[] = [];
      const scoredAll: ScoredVolume[] = [];
      for (const pt of pts) scoredAll.push(await ports.reliability!.score(teacher, pt, round, o.signal));
      // The episode's pixel gate is the real round's: the same rule over the pseudo-targets' own confidences.
      const { masks } = pixelGates(round, scoredAll.map((x) => x.maxProbability), scoredAll.map((x) => x.pseudoLabel));
      for (const [j, pt] of pts.entries()) {
        const scored = scoredAll[j]!;
        simScores.push(...scored.scores);
        const r = await act(scored, `${o.runId}/sim/${pt.id}`, round, false, { simulated: 'true' });
        const accuracy = regionAccuracy(scored.pseudoLabel, pt.label!, scored.regionIndex, scored.numRegions, rl.gatedAccuracy ? { mask: masks[j]! } : undefined);
        items.push({ ids: r.decisionIds, weights: r.weights, accuracy });
        const weights = regionPixelWeights(r.weights, scored.regionIndex);
        for (let i = 0; i < weights.length; i++) if (masks[j]![i] === 0) weights[i] = 0;
        episodeWeights.push(weights);
        tslices.push(...targetSlices(pt, scored.pseudoLabel, weights));
      }
      // The slices view these maps: rescaling in place reaches them (zero stays zero).
      if (targetLoss === 'class-mass') classMassWeights(episodeWeights, scoredAll.map((x) => x.pseudoLabel), masks, o.numClasses);
      // The episode's scratch student: a copy of the current student, trained briefly on source + weighted pseudo-target.
      const scratch = buildUNet(student!.config);
      const scratchOpt = createAdam(scratch, { learningRate: h.learningRate });
      let before = 0;
      let after = 0;
      try {
        scratch.setWeights(student!.getWeights());
        const dice = (): number => mean(pts.map((pt) => organDice(labelsOf(scratch, pt), pt.label!, o.numClasses)));
        before = dice();
        if (tslices.length > 0) {
          const nT = Math.floor(h.batchSize / 2);
          const src = new BatchSampler([{ slices: sourceSlices, augment: 'none' }], { batchSize: h.batchSize - nT, tileYx: [th, tw], seed: stepSeed(o.seed ^ 0xe9, round * 1009 + index) });
          const tgt = new BatchSampler([{ slices: tslices, augment: 'none' }], { batchSize: nT, tileYx: [th, tw], seed: stepSeed(o.seed ^ 0xea, round * 1009 + index) });
          for (let s = 0; s < rl.episodeSteps; s++) {
            const a = batchTensors(src.batch(s));
            const b = batchTensors(balance(tgt.batch(s)));
            try {
              adaptationStep(scratch, { source: a, target: b }, { optimizer: scratchOpt, targetWeight: h.targetWeight, clipNorm: 5 });
            } finally {
              tf.dispose([a.images, a.labels, a.weights, b.images, b.labels, b.weights]);
            }
          }
        }
        after = dice();
      } finally {
        scratchOpt.dispose();
        scratch.dispose();
      }
      const episodic = episodicReward(before, after, rl.episodicScale);
      const rewards: RewardItem[] = [];
      const all: number[] = [];
      const wrongScale = rl.balanceRewards ? wrongRegionBalance(items.flatMap((it) => [...it.accuracy]), rl.pivot) : 1;
      for (const it of items) {
        const r = regionRewards(it.weights, it.accuracy, { pivot: rl.pivot, episodic, wrongScale });
        it.ids.forEach((id, j) => {
          rewards.push({ decisionId: id, reward: r[j] as number, done: true });
          all.push(r[j] as number);
        });
      }
      if (rewards.length > 0) await ports.agent!.feedback(rewards, o.signal);
      return { reward: mean(all), accuracy: mean(items.flatMap((it) => [...it.accuracy].filter((a) => !Number.isNaN(a)))), reliability: mean(simScores) };
    };

    /** A PPO update of the current policy; `phase` (`episodes` | `online`) and the round go into the new version's provenance. */
    const updatePolicy = async (round: number, phase: 'episodes' | 'online'): Promise<void> => {
      if (policy === undefined) return;
      const next = await ports.agent!.update(policy, { run: o.runId, round: String(round + 1), phase }, o.signal);
      if (next !== undefined) {
        log(`policy updated: ${policy.name}:${policy.version} → ${next.name}:${next.version}`);
        policy = next;
        cb.onPolicy?.(policy);
      }
    };

    let stopReason: StopReason = StopReason.Completed;
    for (let r = roundsDone; r < rounds && kept?.stopped !== true; r++) {
      if (cancelled(o.signal)) {
        stopReason = StopReason.Cancelled;
        break;
      }
      const timer = new Timer();
      const metrics: Record<string, number> = {};
      const needsTeacher = source === TargetSource.Teacher || source === TargetSource.Reliability;
      const teacher = needsTeacher ? await timer.time('export', () => ports.teacher.publish(ema!.model, r, o.signal)) : undefined;

      // rl: learn the policy in simulated-shift episodes (source images, labels known).
      if (method === Method.Rl && rl.simulatedShift) {
        const episodes = r === 0 ? rl.pretrainEpisodes : rl.episodesPerRound;
        const results: { reward: number; accuracy: number; reliability: number }[] = [];
        await timer.time('episodes', async () => {
          // Label-free difficulty of the real target: the previous round's mean reliability, or (first round) that of a few target images.
          const targetReliability = !rl.calibrateShift
            ? Number.NaN
            : (history[history.length - 1]?.metrics['mean_reliability'] ??
              mean((await Promise.all(trainTargets.slice(0, CALIBRATION_VOLUMES).map((v) => ports.reliability!.score(teacher!, v, r, o.signal)))).flatMap((x) => [...x.scores])));
          if (Number.isFinite(targetReliability)) metrics['target_reliability'] = targetReliability;
          metrics['sim_severity'] = severity;
          for (let e = 0; e < episodes && !cancelled(o.signal); e++) {
            const result = await episode(r, e, teacher!);
            results.push(result);
            if (rl.calibrateShift) severity = nextSeverity(severity, result.reliability, targetReliability);
            if (r === 0 && rl.updateEachPretrainEpisode && e < episodes - 1 && !cancelled(o.signal)) await updatePolicy(r, 'episodes');
          }
          if (results.length > 0 && !cancelled(o.signal)) await updatePolicy(r, 'episodes');
        });
        if (results.length > 0) {
          metrics['sim_reward'] = mean(results.map((x) => x.reward));
          metrics['sim_region_accuracy'] = mean(results.map((x) => x.accuracy));
          metrics['sim_reliability'] = mean(results.map((x) => x.reliability));
        }
      }

      const targets: RoundTargets =
        source === TargetSource.None ? { slices: [], weightMaps: [], pseudo: new Map(), meanReliability: undefined, decisionIds: [] } : await roundTargets(r, teacher, timer);
      if (cancelled(o.signal)) {
        stopReason = StopReason.Cancelled;
        break;
      }
      if (targets.meanReliability !== undefined) metrics['mean_reliability'] = targets.meanReliability;
      if (targets.meanConfidence !== undefined) metrics['target_confidence'] = targets.meanConfidence;
      if (targets.thresholds !== undefined) {
        if (classBalanced) metrics['kept_portion'] = keptPortion(r, h.rounds, h.keptPortionStart, h.keptPortionEnd);
        targets.thresholds.forEach((t, c) => {
          if (Number.isFinite(t)) metrics[`gate_class_${c}`] = t;
        });
      }
      // Online fine-tuning: the previous round's decisions get their proxy reward now that this round's agreement is known.
      if (pending !== null && targets.meanReliability !== undefined) {
        const p: PendingProxy = pending;
        const reward = proxyReward(p.before, { ...p.after, agreement: targets.meanReliability });
        metrics['proxy_reward'] = reward;
        await timer.time('feedback', () => ports.agent!.feedback(p.decisionIds.map((id) => ({ decisionId: id, reward, done: false })), o.signal));
        await timer.time('feedback', () => updatePolicy(r, 'online'));
        pending = null;
      }
      const stats = weightStatistics(targets.weightMaps);
      cb.onWeights?.(r + 1, stats);
      if (source !== TargetSource.None && targets.slices.length === 0) log(`round ${r + 1}: every target pixel has weight 0; training on the source term only`);

      // Train. The oracle is the target-supervised analogue of the source model: its whole batch is
      // labelled target slices under the supervised loss (CE + soft Dice), with in-domain (light) augmentation.
      const oracle = source === TargetSource.OracleLabels;
      const withTarget = !oracle && targets.slices.length > 0 && h.targetWeight > 0;
      const nT = withTarget ? Math.floor(h.batchSize / 2) : 0;
      const src = oracle
        ? new BatchSampler([{ slices: targets.slices, augment: 'light', foregroundFraction: 0.5 }], { batchSize: h.batchSize, tileYx: [th, tw], seed: stepSeed(o.seed, r * 2) })
        : sourceSampler(r, h.batchSize - nT);
      const tgt = withTarget ? new BatchSampler([{ slices: targets.slices, augment: o.targetAugment ?? 'strong', foregroundFraction: 0.5 }], { batchSize: nT, tileYx: [th, tw], seed: stepSeed(o.seed, r * 2 + 1) }) : undefined;
      let stopped = false;
      await timer.time('training', async () => {
        const draw = (s: number): { a: SliceBatch; b: SliceBatch | undefined } => {
          const b = tgt?.batch(s);
          return { a: src.batch(s), b: b === undefined ? undefined : balance(b) };
        };
        const inProcess = (a: SliceBatch, b: SliceBatch | undefined): DualStepResult => {
          const ta = batchTensors(a);
          const tb = b === undefined ? undefined : batchTensors(b);
          try {
            return adaptationStep(student!, { source: ta, target: tb }, { optimizer: optimizer!, targetWeight: h.targetWeight, clipNorm: 5, ema });
          } finally {
            tf.dispose([ta.images, ta.labels, ta.weights, ...(tb ? [tb.images, tb.labels, tb.weights] : [])]);
          }
        };
        const parallel = workers > 1 ? await ParallelAdaptation.create(student!, optimizer!, ema, { workers, clipNorm: 5 }) : undefined;
        try {
          let next = draw(0);
          for (let s = 0; s < h.stepsPerRound; s++) {
            if (cancelled(o.signal)) {
              stopped = true;
              break;
            }
            const t0 = performance.now();
            const { a, b } = next;
            // On workers, this thread draws and augments the next batch while they compute.
            const pending = parallel === undefined ? Promise.resolve(inProcess(a, b)) : parallel.step(a, b, h.targetWeight);
            if (s + 1 < h.stepsPerRound) next = draw(s + 1);
            const res = await pending;
            if (!Number.isFinite(res.loss)) throw new AdaptationConfigError('hyperparameters.learning_rate', `training diverged in round ${r + 1} step ${s + 1}: loss ${res.loss} (lower \`hyperparameters.learning_rate\`, ${h.learningRate})`);
            cb.onStep?.({ round: r + 1, step: s + 1, globalStep: res.step, loss: res.loss, sourceLoss: res.sourceLoss, targetLoss: res.targetLoss, learningRate: res.learningRate, ms: performance.now() - t0 });
            await tick();
          }
          // Export, metrics and the checkpoint read the host's student, teacher and optimiser.
          await parallel?.sync();
        } finally {
          await parallel?.dispose();
        }
      });
      if (stopped) {
        stopReason = StopReason.Cancelled;
        break;
      }

      // Label-free round metrics.
      await timer.time('metrics', () => {
        if (o.sourceValidation.length > 0) metrics['source_val_dice'] = validateModel(student!, o.sourceValidation).meanDice;
        metrics['teacher_student_agreement'] = mean(probes.map((v) => labelAgreement(labelsOf(ema!.model, v), labelsOf(student!, v))));
        metrics['mean_weight'] = stats.pixels > 0 ? stats.mean : Number.NaN;
        if (kept !== undefined) {
          // The round guard: keep this round's teacher while it still does the source task.
          const dice = validateModel(ema!.model, o.sourceValidation).meanDice;
          metrics['teacher_source_val_dice'] = dice;
          kept.proxies.push({ round: r + 1, sourceValDice: dice });
          const d = decideRounds(kept.proxies, guard);
          if (d.keep === r + 1) {
            kept.keptRound = r + 1;
            kept.weights = ema!.model.getWeights();
            const file = keptFile(r + 1);
            if (file !== undefined) writeFileAtomic(file, encodeWeights(ema!.model));
          }
          kept.stopped = d.stop;
          metrics['kept_round'] = kept.keptRound;
          if (d.keep !== r + 1 || d.stop) log(`round guard after round ${r + 1}: ${d.reason}`);
        }
      });
      if (method === Method.Rl && rl.onlineFinetuning && targets.decisionIds.length > 0) {
        const prev = history[history.length - 1];
        const figures = (x: Readonly<Record<string, number>> | undefined): ProxyFigures => ({
          agreement: x?.['mean_reliability'] ?? targets.meanReliability ?? 0,
          consistency: x?.['teacher_student_agreement'] ?? 0,
          sourceDice: x?.['source_val_dice'] ?? 0,
        });
        const before = prev === undefined ? { ...figures(metrics), consistency: metrics['teacher_student_agreement'] ?? 0, sourceDice: metrics['source_val_dice'] ?? 0 } : figures(prev.metrics);
        const after = figures(metrics);
        if (r + 1 < rounds) pending = { decisionIds: targets.decisionIds, before, after };
        else {
          // The last round: no next agreement to wait for; the episode ends here.
          const reward = proxyReward(before, { ...after, agreement: before.agreement });
          metrics['proxy_reward'] = reward;
          await timer.time('feedback', () => ports.agent!.feedback(targets.decisionIds.map((id) => ({ decisionId: id, reward, done: true })), o.signal));
          await timer.time('feedback', () => updatePolicy(r, 'online'));
        }
      }
      // The student's prediction of the snapshot's one slice (2D per slice, so the same as in its volume).
      const shot = targets.snapshot;
      const snapshot: RoundSnapshot | undefined = shot === undefined ? undefined : { ...shot, prediction: labelsOfImage(student, shot.image, [1, shot.height, shot.width]) };
      const report: RoundReport = { round: r + 1, metrics, timingsMs: timer.ms, teacher, policy, weights: stats, snapshot };
      // The history goes into the round checkpoint as JSON: without the snapshot's pixel planes.
      history.push({ ...report, snapshot: undefined });
      roundsDone = r + 1;
      if (lastDir !== undefined) {
        const extra: CheckpointExtra = { kind: 'purify-adaptation', fingerprint, roundsDone, history, policy: policy ?? null, pending, severity,
          ...(kept === undefined ? {} : { guard: { proxies: kept.proxies, keptRound: kept.keptRound, stopped: kept.stopped } }) };
        await saveCheckpoint(lastDir, { model: student, optimizer, ema, extra });
        // Only the kept teacher the checkpoint names stays.
        if (kept !== undefined) for (const f of readdirSync(o.checkpointDir!)) if (/^kept-r\d+\.bin$/.test(f) && f !== `kept-r${kept.keptRound}.bin`) rmSync(join(o.checkpointDir!, f), { force: true });
        cb.onCheckpoint?.({ round: roundsDone, dir: lastDir });
      }
      cb.onRound?.(report);
    }
    let model: SegModel;
    if ((o.finalModel ?? 'teacher') === 'teacher') {
      model = buildUNet(unet);
      if (kept !== undefined && kept.keptRound < roundsDone) {
        const at = (round: number): string => (kept!.proxies[round]?.sourceValDice ?? Number.NaN).toFixed(3);
        log(`round guard: returning the teacher of round ${kept.keptRound} (source validation Dice ${at(kept.keptRound)}) instead of round ${roundsDone}'s (${at(roundsDone)})`);
        model.setWeights(kept.weights);
      } else model.setWeights(ema.model.getWeights());
    } else {
      model = student;
      student = undefined; // ownership passes to the caller
    }
    return { model, stopReason, roundsDone, rounds: history, policy, unet, keptRound: kept?.keptRound };
  } finally {
    student?.dispose();
    optimizer?.dispose();
    ema?.dispose();
  }
}
