/**
 * Stage A end to end (what `purify train-source` runs): a labelled dataset →
 * slices on the working grid → {@link trainSegmentation} → a published registry
 * version, and optionally predictions of the held-out test cases on their
 * original grids.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeJsonAtomic, type ModelVersion, type NormalizationSpec } from '@purify/artifacts';
import { openDataset, readNifti, Rng, writeNifti, type Dataset, type DatasetCase } from '@purify/imaging';
import { loadCheckpoint, type Backend, type UNetConfig, type WeightSnapshot } from '@purify/models';
import { AugmentLevel, augmentPresetId, parseAugmentLevel } from './augmentation';
import { initTrainingBackend, type TrainingBackend, type TrainingBackendOptions } from './backend';
import { TrainingConfigError, TrainingDataError } from './errors';
import { defaultNormalization, resolveNormalization } from './normalization';
import { predictLabelVolume } from './predict';
import { checkRegistryClasses, gitCommit, publishSegmentationModel } from './publish';
import { slicesOf } from './sampler';
import { datasetClasses, labelledCases, loadSliceVolume, spacingForSize, type SliceVolume } from './slice-data';
import { StopReason, trainSegmentation, type TrainCallbacks, type TrainResult, type TrainSegmentationOptions, type ValidationRecord } from './trainer';

/**
 * The default source schedule (issue #20), one owner for `purify train-source`
 * and the benchmark: two phases, both validated on the held-out source cases
 * every `valEvery` steps (selection on source labels only).
 *
 * 1. **Explore** at the constant peak learning rate (after a 50-step warm-up)
 *    until the validation Dice has **converged**: `patience` validations in a
 *    row without a gain of more than `minDelta` in mean Dice (or `maxSteps`).
 * 2. **Anneal** from the best explore checkpoint: the learning rate falls from
 *    the peak to 0 (poly 0.9) over `annealFraction` × the explore steps. The
 *    model is the anneal's best validation checkpoint.
 *
 * So the step count is the data's: a set that converges fast trains briefly,
 * and training always ends at a small learning rate (measured: stopping at the
 * peak rate cost target Dice, docs/training.md). The augmentation preset was
 * chosen by the stage A ablation.
 */
export const SOURCE_SCHEDULE = Object.freeze({
  maxSteps: 3000,
  valEvery: 100,
  patience: 4,
  minDelta: 0.002,
  annealFraction: 0.5,
  learningRate: 3e-3,
  augment: AugmentLevel.GinClasswise,
});

export interface TrainSourceOptions {
  /** Dataset folder (MSD / nnU-Net layout with dataset.json and labelsTr/). */
  readonly dataPath: string;
  /** Artifact store root; the model is published to `<artifactsDir>/models/<name>/<version>`. */
  readonly artifactsDir: string;
  /** Registry name (default 'source-ct'). */
  readonly name?: string | undefined;
  /** Working tile size in pixels (square; default 96); the in-plane spacing maps the first case's field of view onto it. */
  readonly size?: number | undefined;
  /**
   * Training tile in pixels (square; default = size). A tile smaller than the
   * working slices trains on random crops (cheaper steps at full resolution);
   * validation and prediction always run on whole slices.
   */
  readonly tile?: number | undefined;
  readonly normalization?: NormalizationSpec | undefined;
  /** Most explore steps (default {@link SOURCE_SCHEDULE}`.maxSteps`); the explore phase stops earlier once converged, then the anneal runs. */
  readonly steps?: number | undefined;
  readonly batchSize?: number | undefined;
  /** Peak learning rate (default {@link SOURCE_SCHEDULE}`.learningRate`). */
  readonly learningRate?: number | undefined;
  readonly seed?: number | undefined;
  /** Validate every this many steps (default {@link SOURCE_SCHEDULE}`.valEvery`). */
  readonly valEvery?: number | undefined;
  /** Explore until this many validations in a row bring no gain (default {@link SOURCE_SCHEDULE}`.patience`; 0 = explore for all `steps`). */
  readonly patience?: number | undefined;
  /** Anneal length as a fraction of the explore steps (default {@link SOURCE_SCHEDULE}`.annealFraction`; 0 = no anneal: one phase with poly decay to 0 at `steps`, early-stopped by `patience`). */
  readonly annealFraction?: number | undefined;
  /** Smallest validation mean-Dice gain that counts as an improvement for `patience` (default {@link SOURCE_SCHEDULE}`.minDelta`). */
  readonly minDelta?: number | undefined;
  /** Validation cases held out of imagesTr (default: the dataset's 'validation' list, else ⌈15 %⌉, at least 1). */
  readonly valCases?: number | undefined;
  /** Augmentation preset, `name` or `name@version` (default {@link SOURCE_SCHEDULE}`.augment`). */
  readonly augment?: string | undefined;
  readonly foregroundFraction?: number | undefined;
  readonly unet?: Partial<Omit<UNetConfig, 'numClasses' | 'inputChannels'>> | undefined;
  readonly backend?: Backend | 'auto' | undefined;
  readonly backendOptions?: TrainingBackendOptions | undefined;
  /** Checkpoint folder (default `<artifactsDir>/checkpoints/<name>`). */
  readonly checkpointDir?: string | undefined;
  readonly resume?: boolean | undefined;
  /** Write the best model's label maps of the test cases (imagesTs) here as `<id>.nii.gz`, on their original grids. */
  readonly predictTestDir?: string | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Data-parallel worker threads (1 = in-process); default: 2 on wasm with ≥ 2 cores and batches ≥ 2 (see `TrainSegmentationOptions.workers`). */
  readonly workers?: number | undefined;
}

export interface TrainSourceCallbacks extends TrainCallbacks {
  onBackend?(backend: TrainingBackend): void;
  onLoad?(event: { done: number; total: number; id: string }): void;
  onPredict?(event: { done: number; total: number; id: string; path: string }): void;
}

export interface TrainSourceResult {
  readonly version: ModelVersion | undefined;
  /** Both phases together: steps and validations of the anneal follow the explore phase's (global step numbers). */
  readonly training: Omit<TrainResult, 'model'> & { readonly exploreSteps: number };
  readonly backend: TrainingBackend;
  readonly classes: readonly { index: number; name: string }[];
  readonly trainCases: readonly string[];
  readonly valCases: readonly string[];
  readonly spacingXyMm: readonly [number, number];
  readonly tileYx: readonly [number, number];
  readonly normalization: NormalizationSpec;
  readonly predictions: readonly string[];
  readonly wallMs: number;
}

function splitCases(cases: readonly DatasetCase[], valCases: number | undefined, seed: number): { train: DatasetCase[]; val: DatasetCase[] } {
  const listed = cases.filter((c) => c.split === 'val');
  if (valCases === undefined && listed.length > 0) return { train: cases.filter((c) => c.split !== 'val'), val: listed };
  const n = valCases ?? Math.max(1, Math.ceil(cases.length * 0.15));
  if (!Number.isInteger(n) || n < 0 || n >= cases.length) {
    throw new TrainingConfigError(`valCases must be an integer in [0, ${cases.length - 1}] (the dataset has ${cases.length} labelled training cases), got ${JSON.stringify(valCases)}`);
  }
  const order = new Rng(seed).shuffle([...cases.keys()]);
  const valSet = new Set(order.slice(0, n));
  return { train: cases.filter((_, i) => !valSet.has(i)), val: cases.filter((_, i) => valSet.has(i)) };
}

/** Opens and checks a labelled dataset; errors name dataset.json or the missing folder. */
export function openLabelledDataset(path: string): { dataset: Dataset; classes: { index: number; name: string }[]; cases: DatasetCase[] } {
  let dataset: Dataset;
  try {
    dataset = openDataset(path);
  } catch (err) {
    throw new TrainingDataError((err as Error).message);
  }
  if (dataset.layout !== 'msd') throw new TrainingDataError(`${dataset.root}: no dataset.json; train-source needs a labelled dataset folder (dataset.json, imagesTr/, labelsTr/)`);
  const classes = datasetClasses(dataset);
  const cases = labelledCases(dataset);
  if (dataset.channelNames.length !== 1) {
    throw new TrainingDataError(`${dataset.jsonPath ?? dataset.root}: the model takes one input channel, the dataset has ${dataset.channelNames.length} (${dataset.channelNames.join(', ')})`);
  }
  return { dataset, classes, cases };
}

type PhaseOptions = Omit<TrainSegmentationOptions, 'steps' | 'patience' | 'lrDecay' | 'warmupSteps' | 'checkpointDir' | 'initialWeights'>;

/** What the explore phase leaves for the anneal (`<checkpointDir>/explore/done.json`, so a resumed run goes straight to the anneal). */
interface ExploreRecord {
  readonly stepsDone: number;
  readonly bestStep: number;
  readonly stopReason: string;
  readonly validations: ValidationRecord[];
  readonly msPerStep: number;
  readonly workers: number;
}

/**
 * The two-phase schedule of {@link SOURCE_SCHEDULE}: explore at a constant
 * learning rate until converged, then anneal to 0 from the best explore
 * weights. Returns the anneal's best model with both phases' records (global
 * step numbers). With `annealFraction` 0, one phase: poly decay to 0 at
 * `maxSteps`, stopped early by `patience`.
 */
async function trainExploreAnneal(
  common: PhaseOptions,
  o: { maxSteps: number; patience: number; annealFraction: number; checkpointDir: string },
  callbacks: TrainCallbacks,
): Promise<TrainResult & { exploreSteps: number }> {
  if (!(o.annealFraction >= 0 && o.annealFraction <= 10)) throw new TrainingConfigError(`annealFraction must be a number in [0, 10], got ${JSON.stringify(o.annealFraction)}`);
  if (o.annealFraction === 0) {
    const single = await trainSegmentation({ ...common, steps: o.maxSteps, patience: o.patience, checkpointDir: o.checkpointDir }, callbacks);
    return { ...single, exploreSteps: single.stepsDone };
  }
  const exploreDir = join(o.checkpointDir, 'explore');
  const doneFile = join(exploreDir, 'done.json');
  let explore: ExploreRecord;
  let weights: WeightSnapshot[];
  let exploreWallMs = 0;
  if (common.resume === true && existsSync(doneFile)) {
    explore = JSON.parse(readFileSync(doneFile, 'utf8')) as ExploreRecord;
    const best = await loadCheckpoint(join(exploreDir, explore.validations.length > 0 ? 'best' : 'last'));
    try {
      weights = best.model.getWeights();
    } finally {
      best.dispose();
    }
  } else {
    const r = await trainSegmentation({ ...common, steps: o.maxSteps, lrDecay: 'constant', warmupSteps: Math.min(50, Math.floor(o.maxSteps / 10)), patience: o.patience, checkpointDir: exploreDir }, callbacks);
    if (r.stopReason === StopReason.Cancelled) return { ...r, exploreSteps: r.stepsDone };
    weights = r.model.getWeights();
    r.model.dispose();
    explore = { stepsDone: r.stepsDone, bestStep: r.bestStep, stopReason: r.stopReason, validations: [...r.validations], msPerStep: r.msPerStep, workers: r.workers };
    exploreWallMs = r.wallMs;
    writeJsonAtomic(doneFile, explore);
  }
  const offset = explore.stepsDone;
  const annealSteps = Math.max(1, Math.round(o.annealFraction * offset));
  // The anneal reports global step numbers, after the explore phase's.
  const shifted: TrainCallbacks = {
    onStep: (e) => callbacks.onStep?.({ ...e, step: offset + e.step, totalSteps: offset + annealSteps }),
    onValidation: (e) => callbacks.onValidation?.({ ...e, step: offset + e.step, bestStep: offset + e.bestStep }),
    onCheckpoint: (e) => callbacks.onCheckpoint?.({ ...e, step: offset + e.step }),
  };
  const a = await trainSegmentation(
    { ...common, initialWeights: weights, steps: annealSteps, lrDecay: 'poly', warmupSteps: Math.min(20, Math.floor(annealSteps / 10)), patience: 0, checkpointDir: join(o.checkpointDir, 'anneal') },
    shifted,
  );
  const at = (v: ValidationRecord): ValidationRecord => ({ ...v, step: offset + v.step });
  const best = a.best === undefined ? undefined : at(a.best);
  return {
    ...a,
    stepsDone: offset + a.stepsDone,
    startStep: a.startStep === 0 ? 0 : offset + a.startStep,
    bestStep: offset + a.bestStep,
    best,
    validations: [...explore.validations, ...a.validations.map(at)],
    msPerStep: (explore.msPerStep * offset + a.msPerStep * (a.stepsDone - a.startStep)) / Math.max(1, offset + a.stepsDone - a.startStep),
    wallMs: exploreWallMs + a.wallMs,
    exploreSteps: offset,
  };
}

/** Trains, validates and publishes a source model (see the module comment). */
export async function trainSourceModel(options: TrainSourceOptions, callbacks: TrainSourceCallbacks = {}): Promise<TrainSourceResult> {
  const started = Date.now();
  const name = options.name ?? 'source-ct';
  const seed = options.seed ?? 1;
  const size = options.size ?? 96;
  if (!Number.isInteger(size) || size < 8) throw new TrainingConfigError(`size must be an integer ≥ 8, got ${JSON.stringify(options.size)}`);
  const tile = options.tile ?? size;
  if (!Number.isInteger(tile) || tile < 8 || tile > size) throw new TrainingConfigError(`tile must be an integer in [8, size = ${size}], got ${JSON.stringify(options.tile)}`);
  const { dataset, classes, cases } = openLabelledDataset(options.dataPath);
  const artifactsDir = resolve(options.artifactsDir);
  checkRegistryClasses(artifactsDir, name, classes);
  const normalization = resolveNormalization(options.normalization ?? defaultNormalization(dataset.channelNames[0] ?? ''));
  const augment = parseAugmentLevel(options.augment ?? SOURCE_SCHEDULE.augment);
  const steps = options.steps ?? SOURCE_SCHEDULE.maxSteps;
  const learningRate = options.learningRate ?? SOURCE_SCHEDULE.learningRate;
  const { train, val } = splitCases(cases, options.valCases, seed);
  const tests = dataset.cases.filter((c) => c.split === 'test');
  if (options.predictTestDir !== undefined && tests.length === 0) {
    throw new TrainingDataError(`${dataset.root}: --predict-test: the dataset has no test cases (imagesTs/ is empty or missing)`);
  }

  const first = train[0]!;
  const firstPath = first.imagePaths[0];
  const firstImage = await readNifti(firstPath ?? '').catch((err: unknown) => {
    throw new TrainingDataError(`case ${first.id}: cannot read image ${firstPath ?? '(channel 0)'}: ${(err as Error).message}`);
  });
  const spacingXyMm = spacingForSize(firstImage, [size, size]);
  const backend = await initTrainingBackend(options.backend ?? 'auto', options.backendOptions);
  callbacks.onBackend?.(backend);

  const load = async (list: readonly DatasetCase[], offset: number, total: number, requireLabel: boolean): Promise<SliceVolume[]> => {
    const out: SliceVolume[] = [];
    for (const c of list) {
      out.push(await loadSliceVolume(c, { normalization, spacingXyMm, numClasses: classes.length, requireLabel, keepOriginalLabel: requireLabel }));
      callbacks.onLoad?.({ done: offset + out.length, total, id: c.id });
    }
    return out;
  };
  const total = train.length + val.length;
  const trainVolumes = await load(train, 0, total, true);
  const valVolumes = await load(val, train.length, total, true);
  const tileYx: [number, number] = [tile, tile];
  const common = {
    pools: [{ slices: slicesOf(trainVolumes), augment, foregroundFraction: options.foregroundFraction ?? 0.5 }],
    validation: valVolumes,
    tileYx,
    numClasses: classes.length,
    unet: options.unet,
    batchSize: options.batchSize,
    learningRate,
    valEvery: options.valEvery ?? SOURCE_SCHEDULE.valEvery,
    minDelta: options.minDelta ?? SOURCE_SCHEDULE.minDelta,
    seed,
    resume: options.resume,
    signal: options.signal,
    workers: options.workers,
  };
  const result = await trainExploreAnneal(
    common,
    {
      maxSteps: steps,
      patience: options.patience ?? SOURCE_SCHEDULE.patience,
      annealFraction: options.annealFraction ?? SOURCE_SCHEDULE.annealFraction,
      checkpointDir: options.checkpointDir ?? join(artifactsDir, 'checkpoints', name),
    },
    callbacks,
  );
  const { model, ...training } = result;
  try {
    let version: ModelVersion | undefined;
    const predictions: string[] = [];
    if (result.stopReason !== 'cancelled') {
      const best = result.best;
      const metrics = best === undefined
        ? []
        : [
            ...classes.slice(1).map((c) => ({ name: `dice_${c.name}`, value: best.dicePerClass[String(c.index)] ?? Number.NaN, split: 'source-val' })),
            { name: 'dice_mean', value: best.meanDice, split: 'source-val' },
          ];
      const commit = gitCommit();
      version = publishSegmentationModel({
        artifactsDir,
        name,
        model,
        classes,
        inputSizeYx: tileYx,
        spacingXyMm,
        normalization,
        provenance: {
          dataset: dataset.root,
          datasetName: dataset.name,
          seed: String(seed),
          steps: String(result.stepsDone),
          bestStep: String(result.bestStep),
          stopReason: result.stopReason,
          batchSize: String(options.batchSize ?? 8),
          learningRate: String(learningRate),
          maxSteps: String(steps),
          convergence: `explore until ${options.patience ?? SOURCE_SCHEDULE.patience} validations (every ${options.valEvery ?? SOURCE_SCHEDULE.valEvery} steps) gain ≤ ${options.minDelta ?? SOURCE_SCHEDULE.minDelta}, then anneal ${options.annealFraction ?? SOURCE_SCHEDULE.annealFraction} × explore steps`,
          exploreSteps: String(result.exploreSteps),
          augment: augmentPresetId(augment),
          unet: JSON.stringify(result.unet),
          backend: backend.backend,
          wasmKernels: backend.wasmKernels,
          trainCases: train.map((c) => c.id).join(','),
          valCases: val.map((c) => c.id).join(','),
          msPerStep: result.msPerStep.toFixed(1),
          workers: String(result.workers),
          wallTimeS: ((Date.now() - started) / 1000).toFixed(1),
          ...(commit === undefined ? {} : { commit }),
        },
        metrics,
      });
      if (options.predictTestDir !== undefined) {
        const dir = resolve(options.predictTestDir);
        for (const c of tests) {
          const volume = await loadSliceVolume(c, { normalization, spacingXyMm, numClasses: classes.length, requireLabel: false, keepOriginalLabel: false });
          const path = join(dir, `${c.id}.nii.gz`);
          writeNifti(path, predictLabelVolume(model, volume));
          predictions.push(path);
          callbacks.onPredict?.({ done: predictions.length, total: tests.length, id: c.id, path });
        }
      }
    }
    return {
      version,
      training,
      backend,
      classes,
      trainCases: train.map((c) => c.id),
      valCases: val.map((c) => c.id),
      spacingXyMm,
      tileYx,
      normalization,
      predictions,
      wallMs: Date.now() - started,
    };
  } finally {
    model.dispose();
  }
}
