import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeVolume, Rng, type Grid } from '@purify/imaging';
import { loadCheckpoint, selectBackend } from '@purify/models';
import { TrainingConfigError } from './errors';
import { tempDir } from './fixtures.test-util';
import type { TrainingSlice } from './sampler';
import type { SliceVolume } from './slice-data';
import { trainSegmentation, type TrainSegmentationOptions } from './trainer';

/**
 * A trivially learnable task: [8, 8] slices, a bright square (intensity 0.9, class 1) of side 2–4 at a
 * random place on a dark background (0.1, class 0). Tiny, because the pure-JS cpu backend is slow.
 */
function squareSlice(rng: Rng, ref: string): { image: Float32Array; label: Uint8Array } {
  const image = new Float32Array(64).fill(0.1);
  const label = new Uint8Array(64);
  const side = rng.int(2, 5);
  const y0 = rng.int(0, 8 - side);
  const x0 = rng.int(0, 8 - side);
  for (let y = y0; y < y0 + side; y++) {
    for (let x = x0; x < x0 + side; x++) {
      image[y * 8 + x] = 0.9;
      label[y * 8 + x] = 1;
    }
  }
  void ref;
  return { image, label };
}

const rng = new Rng(42);
const SLICES: TrainingSlice[] = Array.from({ length: 24 }, (_, i) => ({ ...squareSlice(rng, `s${i}`), shape: [8, 8] as const, classes: [0, 1], ref: `s${i}` }));

/** Two validation volumes [2, 8, 8] at 1 mm (working grid = original grid). */
const VALIDATION: SliceVolume[] = [0, 1].map((k) => {
  const a = squareSlice(rng, 'a');
  const b = squareSlice(rng, 'b');
  const image = new Float32Array([...a.image, ...b.image]);
  const label = new Uint8Array([...a.label, ...b.label]);
  const grid: Grid = { shape: [2, 8, 8], spacingXyzMm: [1, 1, 1], originLpsMm: [0, 0, 0], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  return { id: `val${k}`, image, label, shape: [2, 8, 8], workingGrid: grid, originalGrid: grid, originalLabel: makeVolume(label, [2, 8, 8]), sliceClasses: [[0, 1], [0, 1]] };
});

const BASE: TrainSegmentationOptions = {
  pools: [{ slices: SLICES, augment: 'light' }],
  validation: VALIDATION,
  tileYx: [8, 8],
  numClasses: 2,
  unet: { depth: 2, baseWidth: 2, norm: 'batch' },
  steps: 6,
  batchSize: 2,
  learningRate: 1e-2,
  warmupSteps: 0,
  valEvery: 2,
  seed: 5,
};

let tmp: ReturnType<typeof tempDir>;
beforeAll(async () => {
  await selectBackend('cpu');
});
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

describe('trainSegmentation', () => {
  it('reduces the loss on a trivially learnable task and leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    const steps: number[] = [];
    const result = await trainSegmentation({ ...BASE, pools: [{ slices: SLICES }], unet: { depth: 2, baseWidth: 4, norm: 'none' }, batchSize: 4, steps: 20, valEvery: 10, learningRate: 2e-2 }, { onStep: (e) => steps.push(e.step) });
    const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    // Mean loss of the last 5 steps well below the first 5 (CE + Dice of a 2-class problem).
    expect(mean(result.losses.slice(-5))).toBeLessThan(0.7 * mean(result.losses.slice(0, 5)));
    expect(steps).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(result.validations.map((v) => v.step)).toEqual([10, 20]);
    expect(result.best?.step).toBe(result.bestStep);
    expect(result.stopReason).toBe('completed');
    result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resuming after a cancel gives the same weights, losses and validations as an uninterrupted run', async () => {
    const dirA = join(tmp.dir, 'a');
    const dirB = join(tmp.dir, 'b');
    const a = await trainSegmentation({ ...BASE, checkpointDir: dirA, checkpointEvery: 3 });
    // Interrupted: cancel after step 4 (a checkpoint at 3, and one at 4 on cancel), then resume to 6.
    const controller = new AbortController();
    const b1 = await trainSegmentation({ ...BASE, checkpointDir: dirB, checkpointEvery: 3, signal: controller.signal }, { onStep: (e) => e.step === 4 && controller.abort() });
    expect(b1.stopReason).toBe('cancelled');
    expect(b1.stepsDone).toBe(4);
    b1.model.dispose();
    let started = -1;
    const b2 = await trainSegmentation({ ...BASE, checkpointDir: dirB, checkpointEvery: 3, resume: true }, { onStart: (e) => (started = e.startStep) });
    expect(started).toBe(4);
    expect(b2.losses).toEqual(a.losses.slice(4));
    expect(b2.validations).toEqual(a.validations);
    expect(b2.bestStep).toBe(a.bestStep);
    const wa = a.model.getWeights();
    const wb = b2.model.getWeights();
    wa.forEach((w, i) => wb[i]!.values.forEach((v, j) => expect(Math.abs(v - w.values[j]!)).toBeLessThanOrEqual(1e-6)));
    // The last checkpoints agree too (same step, same weights).
    const [ca, cb] = [await loadCheckpoint(join(dirA, 'last')), await loadCheckpoint(join(dirB, 'last'))];
    expect(cb.optimizer.step).toBe(6);
    const [la, lb] = [ca.model.getWeights(), cb.model.getWeights()];
    la.forEach((w, i) => lb[i]!.values.forEach((v, j) => expect(Math.abs(v - w.values[j]!)).toBeLessThanOrEqual(1e-6)));
    [ca, cb].forEach((c) => c.dispose());
    a.model.dispose();
    b2.model.dispose();
  });

  it('stops early after `patience` validations without improvement and keeps the best weights', async () => {
    // minDelta 10: nothing after the first validation counts as an improvement → stop at the second (step 4).
    const r = await trainSegmentation({ ...BASE, steps: 20, patience: 1, minDelta: 10 });
    expect(r.stopReason).toBe('early-stopped');
    expect(r.stepsDone).toBe(4);
    expect(r.bestStep).toBe(2);
    expect(r.best?.step).toBe(2);
    r.model.dispose();
  });

  it('refuses to resume with other settings, naming them', async () => {
    const dir = join(tmp.dir, 'c');
    (await trainSegmentation({ ...BASE, steps: 2, checkpointDir: dir })).model.dispose();
    await expect(trainSegmentation({ ...BASE, steps: 2, learningRate: 5e-3, checkpointDir: dir, resume: true })).rejects.toThrow(
      new TrainingConfigError(`checkpoint ${join(dir, 'last')} was made with different settings (learningRate: 0.01 there, 0.005 now); resume with the same settings or start afresh`),
    );
  });

  it.each([
    { patch: { steps: 0 }, message: 'steps must be an integer ≥ 1, got 0' },
    { patch: { learningRate: -1 }, message: 'learningRate must be a number > 0, got -1' },
    { patch: { tileYx: [7, 8] }, message: 'tileYx must be positive multiples of 2 (2^(depth−1) for depth 2), got [7, 8]' },
    { patch: { resume: true }, message: 'resume needs a checkpointDir' },
    { patch: { lrDecay: 'step' }, message: `lrDecay must be 'constant', 'poly' or 'cosine', got "step"` },
  ])('bad option: $message', async ({ patch, message }) => {
    const before = tf.memory().numTensors;
    await expect(trainSegmentation({ ...BASE, ...patch } as TrainSegmentationOptions)).rejects.toThrow(new TrainingConfigError(message));
    expect(tf.memory().numTensors).toBe(before);
  });
});
