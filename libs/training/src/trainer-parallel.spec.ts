import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeVolume, Rng, type Grid } from '@purify/imaging';
import { loadCheckpoint, ParallelWorkerError, registerWasmTrainingKernels, selectBackend, type WeightSnapshot } from '@purify/models';
import { TrainingConfigError } from './errors';
import { tempDir } from './fixtures.test-util';
import type { TrainingSlice } from './sampler';
import type { SliceVolume } from './slice-data';
import { defaultTrainingWorkers, trainSegmentation, type StepEvent, type TrainSegmentationOptions } from './trainer';

/**
 * trainSegmentation on data-parallel worker threads (`workers: 2`) against the
 * in-process loop (`workers: 1`), both on wasm with the purify kernels (the
 * workers' backend). Tiny U-Net without normalisation (BatchNorm would use
 * per-shard statistics), [16, 16] tiles, 3 classes.
 */

const K = 3;
const S = 16;

/** A bright square (class 1) and a darker bar (class 2) on a dark background, `size`×`size`. */
function shapesSlice(rng: Rng, size: number): { image: Float32Array; label: Uint8Array } {
  const image = new Float32Array(size * size);
  const label = new Uint8Array(size * size);
  for (let i = 0; i < image.length; i++) image[i] = 0.1 + 0.05 * rng.next();
  const side = rng.int(3, 6);
  const y0 = rng.int(0, size - side);
  const x0 = rng.int(0, size - side);
  for (let y = y0; y < y0 + side; y++) {
    for (let x = x0; x < x0 + side; x++) {
      image[y * size + x] = 0.9;
      label[y * size + x] = 1;
    }
  }
  const by = rng.int(0, size);
  for (let x = 0; x < size; x++) {
    if (label[by * size + x] === 0) {
      image[by * size + x] = 0.5;
      label[by * size + x] = 2;
    }
  }
  return { image, label };
}

const rng = new Rng(11);
const classesOf = (label: Uint8Array): number[] => [...new Set(label)].sort((a, b) => a - b);
/** Labelled full-size slices (weights 1). */
const SOURCE: TrainingSlice[] = Array.from({ length: 16 }, (_, i) => {
  const s = shapesSlice(rng, S);
  return { ...s, shape: [S, S] as const, classes: classesOf(s.label), ref: `src${i}` };
});
/** Smaller slices (padded into the tile with weight 0) with non-uniform weight maps, a zero band in each — the adaptation loop's target pool. */
const WEIGHTED: TrainingSlice[] = Array.from({ length: 16 }, (_, i) => {
  const s = shapesSlice(rng, 12);
  const weight = Float32Array.from({ length: 144 }, (_, p) => (Math.floor(p / 12) % 4 === 0 ? 0 : rng.next()));
  return { ...s, weight, shape: [12, 12] as const, classes: classesOf(s.label), ref: `tgt${i}` };
});

const VALIDATION: SliceVolume[] = [0, 1].map((k) => {
  const a = shapesSlice(rng, S);
  const b = shapesSlice(rng, S);
  const image = new Float32Array([...a.image, ...b.image]);
  const label = new Uint8Array([...a.label, ...b.label]);
  const grid: Grid = { shape: [2, S, S], spacingXyzMm: [1, 1, 1], originLpsMm: [0, 0, 0], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  return { id: `val${k}`, image, label, shape: [2, S, S], workingGrid: grid, originalGrid: grid, originalLabel: makeVolume(label, [2, S, S]), sliceClasses: [classesOf(a.label), classesOf(b.label)] };
});

/** Every feature of the loop: two pools (one weighted), augmentation, warm-up + poly decay, weight decay, active clipping, CE + ½ Dice, validation. */
const BASE: TrainSegmentationOptions = {
  pools: [{ slices: SOURCE, augment: 'light' }, { slices: WEIGHTED }],
  validation: VALIDATION,
  tileYx: [S, S],
  numClasses: K,
  unet: { depth: 2, baseWidth: 4, norm: 'none' },
  steps: 6,
  batchSize: 4,
  learningRate: 1e-2,
  warmupSteps: 2,
  weightDecay: 1e-2,
  clipNorm: 0.5,
  diceWeight: 0.5,
  valEvery: 3,
  seed: 3,
};

const threadCount = (): number => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const maxAbsDiff = (a: readonly WeightSnapshot[], b: readonly WeightSnapshot[]): number => {
  let m = 0;
  a.forEach((w, i) => {
    expect(b[i]!.name).toBe(w.name);
    w.values.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i]!.values[j]!))));
  });
  return m;
};

let tmp: ReturnType<typeof tempDir>;
beforeAll(async () => {
  await selectBackend('wasm');
  registerWasmTrainingKernels();
});
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

describe('trainSegmentation with data-parallel workers', () => {
  it('2 workers follow the in-process loop step by step: losses, schedule, clipping, validations and weights', async () => {
    const events: Record<string, StepEvent[]> = { one: [], two: [] };
    const opts: TrainSegmentationOptions = { ...BASE, steps: 24, learningRate: 5e-2, valEvery: 12, clipNorm: 1 };
    const one = await trainSegmentation({ ...opts, workers: 1 }, { onStep: (e) => events['one']!.push(e) });
    const two = await trainSegmentation({ ...opts, workers: 2 }, { onStep: (e) => events['two']!.push(e) });
    try {
      expect([one.workers, two.workers]).toEqual([1, 2]);
      expect(two.losses).toHaveLength(24);
      expect(events['two']!.map((e) => e.step)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
      events['one']!.forEach((a, i) => {
        const b = events['two']![i]!;
        expect(b.learningRate).toBe(a.learningRate); // warm-up then poly decay, from the same step counter
        for (const f of ['loss', 'ce', 'dice', 'gradNorm'] as const) expect(Math.abs(b[f] - a[f])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(a[f])));
      });
      // Clipping was active in some steps (norm above 1), not in others.
      expect(Math.max(...events['one']!.map((e) => e.gradNorm))).toBeGreaterThan(1);
      expect(Math.min(...events['one']!.map((e) => e.gradNorm))).toBeLessThan(1);
      expect(two.validations.map((v) => v.step)).toEqual([12, 24]);
      expect(one.validations[1]!.meanDice).toBeGreaterThan(0.1); // it learnt something, so the comparison means something
      two.validations.forEach((v, i) => expect(Math.abs(v.meanDice - one.validations[i]!.meanDice)).toBeLessThanOrEqual(1e-3));
      expect(two.bestStep).toBe(one.bestStep);
      // Kept weights: within 1/1000 of one Adam update (lr 5e-2) after 24 steps (measured: ~3e-7).
      expect(maxAbsDiff(one.model.getWeights(), two.model.getWeights())).toBeLessThanOrEqual(5e-5);
    } finally {
      one.model.dispose();
      two.model.dispose();
    }
  });

  it('starts from initialWeights on the workers', async () => {
    const from = await trainSegmentation({ ...BASE, validation: [], steps: 3, workers: 1 });
    const initialWeights = from.model.getWeights();
    from.model.dispose();
    const one = await trainSegmentation({ ...BASE, validation: [], steps: 3, seed: 4, initialWeights, workers: 1 });
    const two = await trainSegmentation({ ...BASE, validation: [], steps: 3, seed: 4, initialWeights, workers: 2 });
    try {
      expect(Math.abs(two.losses[0]! - one.losses[0]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, one.losses[0]!));
      expect(maxAbsDiff(one.model.getWeights(), two.model.getWeights())).toBeLessThanOrEqual(1e-4);
    } finally {
      one.model.dispose();
      two.model.dispose();
    }
  });

  it('resuming a cancelled parallel run (with dropout) gives exactly the uninterrupted run', async () => {
    const opts: TrainSegmentationOptions = { ...BASE, unet: { depth: 2, baseWidth: 4, norm: 'none', dropout: 0.3 }, workers: 2, checkpointEvery: 3, valEvery: 2 };
    const dirA = join(tmp.dir, 'a');
    const dirB = join(tmp.dir, 'b');
    const a = await trainSegmentation({ ...opts, checkpointDir: dirA });
    const controller = new AbortController();
    const b1 = await trainSegmentation({ ...opts, checkpointDir: dirB, signal: controller.signal }, { onStep: (e) => e.step === 4 && controller.abort() });
    expect(b1.stopReason).toBe('cancelled');
    expect(b1.stepsDone).toBe(4);
    b1.model.dispose();
    let started = -1;
    const b2 = await trainSegmentation({ ...opts, checkpointDir: dirB, resume: true }, { onStart: (e) => (started = e.startStep) });
    try {
      expect(started).toBe(4);
      expect(b2.losses).toEqual(a.losses.slice(4));
      expect(b2.validations).toEqual(a.validations);
      expect(b2.bestStep).toBe(a.bestStep);
      expect(maxAbsDiff(a.model.getWeights(), b2.model.getWeights())).toBe(0);
      const [ca, cb] = [await loadCheckpoint(join(dirA, 'last')), await loadCheckpoint(join(dirB, 'last'))];
      expect(cb.optimizer.step).toBe(6);
      expect(maxAbsDiff(ca.model.getWeights(), cb.model.getWeights())).toBe(0);
      expect(cb.model.rng.state).toBe(ca.model.rng.state);
      expect((cb.extra as { replicaRngStates: number[] }).replicaRngStates).toEqual((ca.extra as { replicaRngStates: number[] }).replicaRngStates);
      [ca, cb].forEach((c) => c.dispose());
    } finally {
      a.model.dispose();
      b2.model.dispose();
    }
  });

  it('ends its worker threads on completion, cancel and a worker error, and leaves no tensors behind', async () => {
    const before = threadCount();
    const tensors = tf.memory().numTensors;
    let during = 0;
    const done = await trainSegmentation({ ...BASE, steps: 3, valEvery: 1, workers: 2 }, { onStep: () => (during = threadCount()) });
    expect(during).toBeGreaterThanOrEqual(before + 2);
    expect(threadCount()).toBe(before);
    done.model.dispose();

    const controller = new AbortController();
    const cancelled = await trainSegmentation({ ...BASE, steps: 50, workers: 2, signal: controller.signal }, { onStep: (e) => e.step === 2 && controller.abort() });
    expect(cancelled.stopReason).toBe('cancelled');
    expect(cancelled.stepsDone).toBe(2);
    expect(threadCount()).toBe(before);
    cancelled.model.dispose();

    // Label 7 ≥ K in the second pool: the worker holding that shard refuses the batch.
    const bad = WEIGHTED.map((s) => ({ ...s, label: s.label.map((v) => (v === 2 ? 7 : v)), classes: [0, 1, 7] }));
    await expect(trainSegmentation({ ...BASE, pools: [{ slices: SOURCE }, { slices: bad }], workers: 2 })).rejects.toThrow(ParallelWorkerError);
    await expect(trainSegmentation({ ...BASE, pools: [{ slices: SOURCE }, { slices: bad }], workers: 2 })).rejects.toThrow(/^worker 1: batch\.labels values must be in \[0, 2\], got range \[0, 7\]/);
    expect(threadCount()).toBe(before);
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it.each([
    { workers: 0, message: 'workers must be an integer in [1, 64], got 0' },
    { workers: 1.5, message: 'workers must be an integer in [1, 64], got 1.5' },
    { workers: 65, message: 'workers must be an integer in [1, 64], got 65' },
  ])('refuses workers $workers', async ({ workers, message }) => {
    await expect(trainSegmentation({ ...BASE, workers })).rejects.toThrow(new TrainingConfigError(message));
  });

  it.each([
    { batchSize: 8, backend: 'wasm', cores: 2, want: 2 },
    { batchSize: 2, backend: 'wasm', cores: 16, want: 2 },
    { batchSize: 1, backend: 'wasm', cores: 2, want: 1 },
    { batchSize: 8, backend: 'wasm', cores: 1, want: 1 },
    { batchSize: 8, backend: 'cpu', cores: 2, want: 1 },
    { batchSize: 8, backend: 'tensorflow', cores: 8, want: 1 },
  ])('default workers for batch $batchSize on $backend with $cores cores: $want', ({ batchSize, backend, cores, want }) => {
    expect(defaultTrainingWorkers(batchSize, backend, cores)).toBe(want);
  });
});
