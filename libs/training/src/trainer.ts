/**
 * The segmentation training loop: seeded batches from slice pools, Adam with a
 * warm-up + decay schedule, gradient clipping, weighted CE + soft Dice,
 * validation by volume Dice per organ every `valEvery` steps, early stopping on
 * the validation Dice, the best weights kept, checkpoints every
 * `checkpointEvery` steps, exact resume, progress callbacks and cancellation.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  buildUNet,
  createAdam,
  loadCheckpoint,
  resolveUNetConfig,
  saveCheckpoint,
  trainStep,
  type Adam,
  type LrDecay,
  type SegModel,
  type UNetConfig,
  type WeightSnapshot,
} from '@purify/models';
import { TrainingConfigError } from './errors';
import { validate, type ValidationResult } from './predict';
import { BatchSampler, batchTensors, type SlicePool } from './sampler';
import type { SliceVolume } from './slice-data';

export interface TrainSegmentationOptions {
  /** Training slices; each pool contributes its share of every batch. */
  readonly pools: readonly SlicePool[];
  /** Labelled validation volumes (with `originalLabel`); none = no validation, the last weights are kept. */
  readonly validation?: readonly SliceVolume[] | undefined;
  /** Network tile `[H, W]` (multiples of 2^(depth−1)). */
  readonly tileYx: readonly [number, number];
  /** Number of classes K (background included). */
  readonly numClasses: number;
  /** U-Net options (default REFERENCE_UNET; inputChannels 1, numClasses and seed are set here). */
  readonly unet?: Partial<Omit<UNetConfig, 'numClasses' | 'inputChannels'>> | undefined;
  /** Weights to start from (e.g. a source model being adapted); default: fresh initialisation. */
  readonly initialWeights?: readonly WeightSnapshot[] | undefined;
  /** Total optimisation steps (updates). */
  readonly steps: number;
  readonly batchSize?: number | undefined;
  /** Peak learning rate (default 2e-3). */
  readonly learningRate?: number | undefined;
  /** Decay after warm-up (default 'poly', power 0.9, to 0 at `steps`). */
  readonly lrDecay?: LrDecay | undefined;
  /** Linear warm-up steps (default min(50, ⌊steps/10⌋)). */
  readonly warmupSteps?: number | undefined;
  readonly weightDecay?: number | undefined;
  /** Clip gradients to this global norm (default 5; 0 disables). */
  readonly clipNorm?: number | undefined;
  /** Loss weights (defaults 1 and 1). */
  readonly ceWeight?: number | undefined;
  readonly diceWeight?: number | undefined;
  /** Validate every this many steps (default max(25, ⌊steps/10⌋)); the last step is always validated. */
  readonly valEvery?: number | undefined;
  /** Stop after this many validations without improvement (default 0 = never). */
  readonly patience?: number | undefined;
  /** Smallest mean-Dice gain that counts as an improvement (default 1e-4). */
  readonly minDelta?: number | undefined;
  /** Slices per forward pass at validation (default 8). */
  readonly valBatchSize?: number | undefined;
  /** Folder for checkpoints: `last/` every `checkpointEvery` steps and at the end or on cancel, `best/` at each improvement. */
  readonly checkpointDir?: string | undefined;
  /** Default: `valEvery`. */
  readonly checkpointEvery?: number | undefined;
  /** Continue from `checkpointDir/last` when it exists. */
  readonly resume?: boolean | undefined;
  readonly seed: number;
  /** Abort = stop after the current step, checkpoint (if configured) and return with `stopReason: 'cancelled'`. */
  readonly signal?: AbortSignal | undefined;
  /** Check label/weight ranges on every step (two small reads; default true). */
  readonly validateBatches?: boolean | undefined;
}

export interface StepEvent {
  /** Updates done (1-based). */
  readonly step: number;
  readonly totalSteps: number;
  readonly loss: number;
  readonly ce: number;
  readonly dice: number;
  readonly gradNorm: number;
  readonly learningRate: number;
  /** Wall time of this step: batch assembly + augmentation + the update. */
  readonly ms: number;
}

export interface ValidationEvent {
  readonly step: number;
  /** Class index → mean volume Dice. */
  readonly dicePerClass: ReadonlyMap<number, number>;
  readonly meanDice: number;
  readonly bestMeanDice: number;
  readonly bestStep: number;
  readonly improved: boolean;
  readonly ms: number;
}

export interface TrainCallbacks {
  onStep?(event: StepEvent): void;
  onValidation?(event: ValidationEvent): void;
  onCheckpoint?(event: { step: number; dir: string; kind: 'last' | 'best' }): void;
  /** Once, before the first step: where training starts (0, or the resumed step). */
  onStart?(event: { startStep: number; resumed: boolean; unet: UNetConfig; numParams: number }): void;
}

export const StopReason = { Completed: 'completed', EarlyStopped: 'early-stopped', Cancelled: 'cancelled' } as const;
export type StopReason = (typeof StopReason)[keyof typeof StopReason];

export interface ValidationRecord {
  readonly step: number;
  readonly meanDice: number;
  /** Class index → Dice (JSON-friendly). */
  readonly dicePerClass: Readonly<Record<string, number>>;
}

export interface TrainResult {
  /** The model with the best validation weights (the last weights without validation). The caller disposes it. */
  readonly model: SegModel;
  readonly stopReason: StopReason;
  /** Updates done in total (including those before a resume). */
  readonly stepsDone: number;
  readonly startStep: number;
  /** Step of the kept weights. */
  readonly bestStep: number;
  /** Validation of the kept weights (undefined without validation). */
  readonly best: ValidationRecord | undefined;
  readonly validations: readonly ValidationRecord[];
  /** Loss of every step of this process, in order (index 0 = step startStep + 1). */
  readonly losses: readonly number[];
  /** Mean wall time per training step in this process (validation excluded). */
  readonly msPerStep: number;
  readonly wallMs: number;
  readonly unet: UNetConfig;
}

interface ResolvedOptions {
  readonly steps: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly lrDecay: LrDecay;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  readonly clipNorm: number;
  readonly ceWeight: number;
  readonly diceWeight: number;
  readonly valEvery: number;
  readonly patience: number;
  readonly minDelta: number;
  readonly valBatchSize: number;
  readonly checkpointEvery: number;
  readonly seed: number;
}

/** What a checkpoint's `extra` holds. */
interface CheckpointExtra {
  readonly kind: 'purify-train-segmentation';
  readonly fingerprint: Record<string, unknown>;
  readonly bestStep: number;
  readonly bestMean: number;
  readonly sinceBest: number;
  readonly validations: ValidationRecord[];
}

function resolveOptions(o: TrainSegmentationOptions): ResolvedOptions {
  const int = (field: string, v: unknown, min: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new TrainingConfigError(`${field} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (field: string, v: unknown, ok: (x: number) => boolean, want: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new TrainingConfigError(`${field} must be ${want}, got ${JSON.stringify(v)}`);
    return v;
  };
  const steps = int('steps', o.steps, 1);
  const valEvery = int('valEvery', o.valEvery ?? Math.max(25, Math.floor(steps / 10)), 1);
  const lrDecay = o.lrDecay ?? 'poly';
  if (!['constant', 'poly', 'cosine'].includes(lrDecay)) throw new TrainingConfigError(`lrDecay must be 'constant', 'poly' or 'cosine', got ${JSON.stringify(lrDecay)}`);
  const warmupSteps = int('warmupSteps', o.warmupSteps ?? Math.min(50, Math.floor(steps / 10)), 0);
  if (lrDecay !== 'constant' && warmupSteps >= steps) throw new TrainingConfigError(`warmupSteps must be below steps (${steps}) with '${lrDecay}' decay, got ${warmupSteps}`);
  return {
    steps,
    batchSize: int('batchSize', o.batchSize ?? 8, 1),
    learningRate: num('learningRate', o.learningRate ?? 2e-3, (x) => x > 0, 'a number > 0'),
    lrDecay,
    warmupSteps,
    weightDecay: num('weightDecay', o.weightDecay ?? 0, (x) => x >= 0, 'a number ≥ 0'),
    clipNorm: num('clipNorm', o.clipNorm ?? 5, (x) => x >= 0, 'a number ≥ 0 (0 = no clipping)'),
    ceWeight: num('ceWeight', o.ceWeight ?? 1, (x) => x >= 0, 'a number ≥ 0'),
    diceWeight: num('diceWeight', o.diceWeight ?? 1, (x) => x >= 0, 'a number ≥ 0'),
    valEvery,
    patience: int('patience', o.patience ?? 0, 0),
    minDelta: num('minDelta', o.minDelta ?? 1e-4, (x) => x >= 0, 'a number ≥ 0'),
    valBatchSize: int('valBatchSize', o.valBatchSize ?? 8, 1),
    checkpointEvery: int('checkpointEvery', o.checkpointEvery ?? valEvery, 1),
    seed: int('seed', o.seed, -0x80000000),
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function record(step: number, v: ValidationResult): ValidationRecord {
  return { step, meanDice: v.meanDice, dicePerClass: Object.fromEntries([...v.dicePerClass].map(([k, d]) => [String(k), d])) };
}

/**
 * Trains a 2D U-Net on the pools' slices (see {@link TrainSegmentationOptions}).
 * Resuming from `checkpointDir/last` continues with exactly the batches, weights,
 * optimiser state and early-stopping state of an uninterrupted run (batches are a
 * function of (seed, step)). Returns the best model; the caller disposes it.
 */
export async function trainSegmentation(options: TrainSegmentationOptions, callbacks: TrainCallbacks = {}): Promise<TrainResult> {
  const started = Date.now();
  const o = resolveOptions(options);
  const [th, tw] = options.tileYx;
  const unet = resolveUNetConfig({ ...options.unet, inputChannels: 1, numClasses: options.numClasses, seed: options.unet?.seed ?? o.seed });
  const m = 2 ** (unet.depth - 1);
  if (!Number.isInteger(th) || !Number.isInteger(tw) || th < m || tw < m || th % m !== 0 || tw % m !== 0) {
    throw new TrainingConfigError(`tileYx must be positive multiples of ${m} (2^(depth−1) for depth ${unet.depth}), got [${options.tileYx.join(', ')}]`);
  }
  const sampler = new BatchSampler(options.pools, { batchSize: o.batchSize, tileYx: [th, tw], seed: o.seed });
  const validation = options.validation ?? [];
  if ((options.resume ?? false) && options.checkpointDir === undefined) throw new TrainingConfigError('resume needs a checkpointDir');
  const fingerprint: Record<string, unknown> = { ...o, tileYx: [th, tw], unet, pools: options.pools.map((p) => p.slices.length), validation: validation.map((v) => v.id) };
  delete fingerprint['valBatchSize'];
  delete fingerprint['checkpointEvery'];
  delete fingerprint['patience'];
  const schedule = { baseLr: o.learningRate, decay: o.lrDecay, warmupSteps: o.warmupSteps, totalSteps: o.steps };

  let model: SegModel | undefined;
  let optimizer: Adam | undefined;
  let bestWeights: WeightSnapshot[] | undefined;
  let bestStep = 0;
  let bestMean = -Infinity;
  let sinceBest = 0;
  const validations: ValidationRecord[] = [];
  let resumed = false;
  const lastDir = options.checkpointDir === undefined ? undefined : join(options.checkpointDir, 'last');
  const bestDir = options.checkpointDir === undefined ? undefined : join(options.checkpointDir, 'best');
  try {
    if (options.resume && lastDir !== undefined && existsSync(lastDir)) {
      const ck = await loadCheckpoint(lastDir);
      model = ck.model;
      optimizer = ck.optimizer;
      ck.ema?.dispose();
      const extra = ck.extra as CheckpointExtra | null;
      if (extra?.kind !== 'purify-train-segmentation') throw new TrainingConfigError(`checkpoint ${lastDir} was not written by trainSegmentation`);
      const diff = Object.keys(fingerprint).filter((k) => JSON.stringify(fingerprint[k]) !== JSON.stringify(extra.fingerprint[k]));
      if (diff.length > 0) {
        throw new TrainingConfigError(
          `checkpoint ${lastDir} was made with different settings (${diff.map((k) => `${k}: ${JSON.stringify(extra.fingerprint[k])} there, ${JSON.stringify(fingerprint[k])} now`).join('; ')}); resume with the same settings or start afresh`,
        );
      }
      bestStep = extra.bestStep;
      bestMean = extra.bestMean ?? -Infinity;
      sinceBest = extra.sinceBest;
      validations.push(...extra.validations);
      if (bestDir !== undefined && existsSync(bestDir) && validations.length > 0) {
        const best = await loadCheckpoint(bestDir);
        try {
          bestWeights = best.model.getWeights();
        } finally {
          best.dispose();
        }
      }
      resumed = true;
    } else {
      model = buildUNet(unet);
      if (options.initialWeights !== undefined) model.setWeights(options.initialWeights);
      optimizer = createAdam(model, { learningRate: schedule, weightDecay: o.weightDecay });
    }
    const startStep = optimizer.step;
    callbacks.onStart?.({ startStep, resumed, unet, numParams: model.numParams });

    const save = async (kind: 'last' | 'best', step: number): Promise<void> => {
      const dir = kind === 'last' ? lastDir : bestDir;
      if (dir === undefined) return;
      const extra: CheckpointExtra = { kind: 'purify-train-segmentation', fingerprint, bestStep, bestMean: Number.isFinite(bestMean) ? bestMean : -1, sinceBest, validations };
      await saveCheckpoint(dir, { model: model!, optimizer: optimizer!, extra });
      callbacks.onCheckpoint?.({ step, dir, kind });
    };

    const losses: number[] = [];
    let stepMs = 0;
    let stopReason: StopReason = StopReason.Completed;
    let step = startStep;
    while (step < o.steps) {
      if (options.signal?.aborted) {
        stopReason = StopReason.Cancelled;
        break;
      }
      const t0 = performance.now();
      const batch = sampler.batch(step);
      const tensors = batchTensors(batch);
      let result;
      try {
        result = trainStep(model, tensors, {
          optimizer,
          loss: { ceWeight: o.ceWeight, diceWeight: o.diceWeight },
          clipNorm: o.clipNorm > 0 ? o.clipNorm : undefined,
          validate: options.validateBatches ?? true,
        });
      } finally {
        tf.dispose([tensors.images, tensors.labels, tensors.weights]);
      }
      step = result.step;
      const ms = performance.now() - t0;
      stepMs += ms;
      losses.push(result.loss);
      if (!Number.isFinite(result.loss)) throw new TrainingConfigError(`training diverged at step ${step}: loss ${result.loss} (lower the learning rate, ${o.learningRate})`);
      callbacks.onStep?.({ step, totalSteps: o.steps, loss: result.loss, ce: result.ce, dice: result.dice, gradNorm: result.gradNorm, learningRate: result.learningRate, ms });

      let stop = false;
      if (validation.length > 0 && (step % o.valEvery === 0 || step === o.steps)) {
        const v0 = performance.now();
        const v = validate(model, validation, o.valBatchSize);
        const improved = v.meanDice > bestMean + o.minDelta;
        if (improved) {
          bestMean = v.meanDice;
          bestStep = step;
          bestWeights = model.getWeights();
          sinceBest = 0;
        } else {
          sinceBest++;
        }
        validations.push(record(step, v));
        callbacks.onValidation?.({ step, dicePerClass: v.dicePerClass, meanDice: v.meanDice, bestMeanDice: bestMean, bestStep, improved, ms: performance.now() - v0 });
        if (improved) await save('best', step);
        if (o.patience > 0 && sinceBest >= o.patience) {
          stopReason = StopReason.EarlyStopped;
          stop = true;
        }
      }
      if (step % o.checkpointEvery === 0 || step === o.steps || stop) await save('last', step);
      if (stop) break;
      await tick(); // let timers, signals and I/O through between steps
    }
    if (stopReason === StopReason.Cancelled && step > startStep && step % o.checkpointEvery !== 0) await save('last', step);

    if (bestWeights !== undefined) model.setWeights(bestWeights);
    else bestStep = step;
    const trained = model;
    model = undefined; // ownership passes to the caller
    const stepsRun = step - startStep;
    return {
      model: trained,
      stopReason,
      stepsDone: step,
      startStep,
      bestStep,
      best: validations.find((v) => v.step === bestStep),
      validations,
      losses,
      msPerStep: stepsRun > 0 ? stepMs / stepsRun : 0,
      wallMs: Date.now() - started,
      unet,
    };
  } finally {
    optimizer?.dispose();
    model?.dispose();
  }
}
