/**
 * The segmentation training loop: seeded batches from slice pools, Adam with a
 * warm-up + decay schedule, gradient clipping, weighted CE + soft Dice,
 * validation by volume Dice per organ every `valEvery` steps, early stopping on
 * the validation Dice, the best weights kept, checkpoints every
 * `checkpointEvery` steps, exact resume, progress callbacks and cancellation.
 *
 * The steps run in-process (`workers: 1`) or data-parallel on worker threads
 * (`DataParallelTrainer` of `@purify/models`, docs/parallel-training.md): the
 * main thread keeps a host copy of the model and optimiser, draws the batches
 * (the next one while the workers compute the current step), and pulls the
 * replicas' weights only to validate, checkpoint and return.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  buildUNet,
  createAdam,
  DataParallelTrainer,
  loadCheckpoint,
  resolveUNetConfig,
  saveCheckpoint,
  trainStep,
  type Adam,
  type LrDecay,
  type SegModel,
  type TrainStepResult,
  type UNetConfig,
  type WeightSnapshot,
} from '@purify/models';
import { TrainingConfigError } from './errors';
import { validate, type ValidationResult } from './predict';
import { BatchSampler, batchTensors, type SliceBatch, type SlicePool } from './sampler';
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
  /** Check label/weight ranges on every step (two small reads; default true). Data-parallel workers always check their shard. */
  readonly validateBatches?: boolean | undefined;
  /**
   * Worker threads for data-parallel training, integer in [1, 64]: 1 trains
   * in-process on this thread; N > 1 trains N replicas on worker threads, each
   * on a shard of every batch (wasm backend with the purify kernels, or cpu
   * when this thread runs on cpu). Default {@link defaultTrainingWorkers}: 2 when
   * this thread trains on wasm, the machine has ≥ 2 cores and batches hold ≥ 2
   * slices, else 1. With BatchNorm each replica normalises over its own shard
   * (as PyTorch DataParallel); without BatchNorm and dropout the steps equal
   * in-process ones within float tolerance. Not part of the resume fingerprint.
   */
  readonly workers?: number | undefined;
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
  /** Worker threads used (1 = in-process). */
  readonly workers: number;
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
  readonly workers: number;
}

/** What a checkpoint's `extra` holds. */
interface CheckpointExtra {
  readonly kind: 'purify-train-segmentation';
  readonly fingerprint: Record<string, unknown>;
  readonly bestStep: number;
  readonly bestMean: number;
  readonly sinceBest: number;
  readonly validations: ValidationRecord[];
  /** Dropout-mask generator state of every data-parallel replica (absent after in-process training); replica 0's is also the model's. */
  readonly replicaRngStates?: number[] | undefined;
}

/**
 * The default of {@link TrainSegmentationOptions.workers}: 2 data-parallel
 * workers when this thread trains on wasm (tfjs-wasm uses one core under Node),
 * the machine has at least 2 cores and a batch holds at least 2 slices; else 1
 * (in-process). The native tensorflow backends are multi-threaded already.
 */
export function defaultTrainingWorkers(batchSize: number, backend: string = tf.getBackend(), cores: number = availableParallelism()): number {
  return backend === 'wasm' && cores >= 2 && batchSize >= 2 ? 2 : 1;
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
  const intIn = (field: string, v: unknown, min: number, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new TrainingConfigError(`${field} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return v;
  };
  const steps = int('steps', o.steps, 1);
  const batchSize = int('batchSize', o.batchSize ?? 8, 1);
  const valEvery = int('valEvery', o.valEvery ?? Math.max(25, Math.floor(steps / 10)), 1);
  const lrDecay = o.lrDecay ?? 'poly';
  if (!['constant', 'poly', 'cosine'].includes(lrDecay)) throw new TrainingConfigError(`lrDecay must be 'constant', 'poly' or 'cosine', got ${JSON.stringify(lrDecay)}`);
  const warmupSteps = int('warmupSteps', o.warmupSteps ?? Math.min(50, Math.floor(steps / 10)), 0);
  if (lrDecay !== 'constant' && warmupSteps >= steps) throw new TrainingConfigError(`warmupSteps must be below steps (${steps}) with '${lrDecay}' decay, got ${warmupSteps}`);
  return {
    steps,
    batchSize,
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
    workers: o.workers === undefined ? defaultTrainingWorkers(batchSize) : intIn('workers', o.workers, 1, 64),
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** How a step is run: in-process on the host model, or on data-parallel workers whose state reaches the host on {@link sync}. */
interface StepRunner {
  /** Runs the update of `batch` (for a parallel runner, posted to the workers by the next macrotask). */
  step(batch: SliceBatch): Promise<TrainStepResult>;
  /** Copies the replicas' weights (and with `optimizer`, the Adam state and dropout streams) to the host model/optimiser. */
  sync(optimizer: boolean): Promise<void>;
  /** The replicas' dropout-stream states (parallel runner only). */
  rngStates(): number[] | undefined;
  /** Ends the worker threads (resolves once they have exited). Idempotent. */
  dispose(): Promise<void>;
}

function inProcessRunner(model: SegModel, optimizer: Adam, o: ResolvedOptions, validateBatches: boolean): StepRunner {
  return {
    step: async (batch) => {
      const tensors = batchTensors(batch);
      try {
        return trainStep(model, tensors, {
          optimizer,
          loss: { ceWeight: o.ceWeight, diceWeight: o.diceWeight },
          clipNorm: o.clipNorm > 0 ? o.clipNorm : undefined,
          validate: validateBatches,
        });
      } finally {
        tf.dispose([tensors.images, tensors.labels, tensors.weights]);
      }
    },
    sync: () => Promise.resolve(),
    rngStates: () => undefined,
    dispose: () => Promise.resolve(),
  };
}

/** Starts `workers` replicas holding the host model's weights, Adam state and dropout streams (`rngStates`: one per replica, else derived as the trainer does). */
async function parallelRunner(model: SegModel, optimizer: Adam, o: ResolvedOptions, rngStates: readonly number[] | undefined): Promise<StepRunner> {
  const trainer = await DataParallelTrainer.create({
    config: model.config,
    weights: model.getWeights(),
    workers: o.workers,
    backend: tf.getBackend() === 'cpu' ? 'cpu' : 'wasm',
    optimizer: { ...optimizer.config, learningRate: optimizer.config.schedule },
    loss: { ceWeight: o.ceWeight, diceWeight: o.diceWeight },
    clipNorm: o.clipNorm > 0 ? o.clipNorm : undefined,
  });
  let rng: number[] | undefined;
  try {
    if (optimizer.step > 0) await trainer.setOptimizerState(optimizer.getState());
    const states = rngStates?.length === o.workers ? [...rngStates] : await trainer.getRngStates();
    states[0] = model.rng.state; // replica 0 continues the model's own stream (as in-process training would)
    await trainer.setRngStates(states);
  } catch (err) {
    await trainer.dispose();
    throw err;
  }
  return {
    step: async (batch) => {
      const [n, h, w] = batch.shape;
      const r = await trainer.step({ shape: [n, h, w, 1], images: batch.images, labels: batch.labels, weights: batch.weights });
      rng = undefined;
      return r;
    },
    sync: async (withOptimizer) => {
      model.setWeights(await trainer.getWeights());
      if (!withOptimizer) return;
      optimizer.setState((await trainer.getOptimizerState()).adam);
      rng = await trainer.getRngStates();
      model.rng.state = rng[0]!;
    },
    rngStates: () => rng,
    dispose: () => trainer.dispose(),
  };
}

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
  delete fingerprint['workers'];
  const schedule = { baseLr: o.learningRate, decay: o.lrDecay, warmupSteps: o.warmupSteps, totalSteps: o.steps };

  let model: SegModel | undefined;
  let optimizer: Adam | undefined;
  let runner: StepRunner | undefined;
  let replicaRngStates: number[] | undefined;
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
      replicaRngStates = extra.replicaRngStates;
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
    const parallel = o.workers > 1 && startStep < o.steps;
    runner = parallel ? await parallelRunner(model, optimizer, o, replicaRngStates) : inProcessRunner(model, optimizer, o, options.validateBatches ?? true);
    // Whether the host model (weights; optimiser state) lags the replicas.
    let stale = { weights: false, optimizer: false };
    const sync = async (withOptimizer: boolean): Promise<void> => {
      if (!stale.weights && !(withOptimizer && stale.optimizer)) return;
      await runner!.sync(withOptimizer);
      stale = { weights: false, optimizer: stale.optimizer && !withOptimizer };
    };

    const save = async (kind: 'last' | 'best', step: number): Promise<void> => {
      const dir = kind === 'last' ? lastDir : bestDir;
      if (dir === undefined) return;
      await sync(true);
      const rngs = runner?.rngStates();
      const extra: CheckpointExtra = {
        kind: 'purify-train-segmentation',
        fingerprint,
        bestStep,
        bestMean: Number.isFinite(bestMean) ? bestMean : -1,
        sinceBest,
        validations,
        ...(rngs === undefined ? {} : { replicaRngStates: rngs }),
      };
      await saveCheckpoint(dir, { model: model!, optimizer: optimizer!, extra });
      callbacks.onCheckpoint?.({ step, dir, kind });
    };

    const losses: number[] = [];
    let stepMs = 0;
    let stopReason: StopReason = StopReason.Completed;
    let step = startStep;
    let prefetched: SliceBatch | undefined;
    while (step < o.steps) {
      if (options.signal?.aborted) {
        stopReason = StopReason.Cancelled;
        break;
      }
      const t0 = performance.now();
      const batch = prefetched ?? sampler.batch(step);
      prefetched = undefined;
      const pending = runner.step(batch);
      pending.catch(() => undefined); // a worker error may arrive while the next batch is drawn; it is rethrown by the await below
      if (parallel) {
        stale = { weights: true, optimizer: true };
        if (step + 1 < o.steps) {
          // The step is posted to the workers once this macrotask ends; draw the next batch meanwhile.
          await tick();
          prefetched = sampler.batch(step + 1);
        }
      }
      const result = await pending;
      step = result.step;
      const ms = performance.now() - t0;
      stepMs += ms;
      losses.push(result.loss);
      if (!Number.isFinite(result.loss)) throw new TrainingConfigError(`training diverged at step ${step}: loss ${result.loss} (lower the learning rate, ${o.learningRate})`);
      callbacks.onStep?.({ step, totalSteps: o.steps, loss: result.loss, ce: result.ce, dice: result.dice, gradNorm: result.gradNorm, learningRate: result.learningRate, ms });

      let stop = false;
      if (validation.length > 0 && (step % o.valEvery === 0 || step === o.steps)) {
        const v0 = performance.now();
        await sync(false);
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
    await sync(false);
    await runner.dispose();

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
      workers: parallel ? o.workers : 1,
    };
  } finally {
    await runner?.dispose(); // ends the worker threads on every path (error, cancel, completion)
    optimizer?.dispose();
    model?.dispose();
  }
}
