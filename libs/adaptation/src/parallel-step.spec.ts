import * as tf from '@tensorflow/tfjs';
import { Rng } from '@purify/imaging';
import { EmaTeacher, buildUNet, createAdam, type SegModel, type WeightSnapshot } from '@purify/models';
import { initTrainingBackend, type SliceBatch } from '@purify/training';
import { dualHostBatch, ParallelAdaptation } from './parallel-step';
import { adaptationStep } from './step';

beforeAll(async () => {
  await initTrainingBackend('wasm');
});

/** Seeded uniforms in [0, 1). */
function uniforms(count: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: count }, () => rng.uniform());
}

const H = 16;
const W = 16;

/** n slices: images in [0, 1), labels thresholding them into 3 classes, weights `weights`. */
function slices(n: number, seed: number, weights: 'ones' | 'random' | 'zero'): SliceBatch {
  const images = uniforms(n * H * W, seed);
  const labels = Int32Array.from(images, (x) => (x < 0.35 ? 0 : x < 0.7 ? 1 : 2));
  const w = weights === 'ones' ? new Float32Array(n * H * W).fill(1) : weights === 'zero' ? new Float32Array(n * H * W) : uniforms(n * H * W, seed + 50);
  return { shape: [n, H, W], images, labels, weights: w, refs: [] };
}

function tensors(b: SliceBatch): { images: tf.Tensor4D; labels: tf.Tensor3D; weights: tf.Tensor3D } {
  const [n, h, w] = b.shape;
  return { images: tf.tensor4d(b.images, [n, h, w, 1]), labels: tf.tensor3d(b.labels, [n, h, w], 'int32'), weights: tf.tensor3d(b.weights, [n, h, w]) };
}

function maxAbsDiff(a: readonly WeightSnapshot[], b: readonly WeightSnapshot[]): number {
  let d = 0;
  a.forEach((x, i) => x.values.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]!.values[j]!)))));
  return d;
}

describe('dualHostBatch', () => {
  it('interleaves the groups and writes the CE coefficients scaled into [0, 1] with their scale as normaliser', () => {
    // 2 source slices and 1 target slice of 1×2 pixels; target weights [1, 0.5], λ = 3.
    // Coefficients: source 1/(2·2) = 0.25; target 3·[1, 0.5]/1.5 = [2, 1]. Scale 2 → weights 0.125 and [1, 0.5], Z = 0.5.
    const source: SliceBatch = { shape: [2, 1, 2], images: Float32Array.of(1, 2, 3, 4), labels: Int32Array.of(0, 1, 1, 0), weights: new Float32Array(4).fill(1), refs: [] };
    const target: SliceBatch = { shape: [1, 1, 2], images: Float32Array.of(9, 8), labels: Int32Array.of(2, 2), weights: Float32Array.of(1, 0.5), refs: [] };
    const b = dualHostBatch(source, target, 3);
    expect(b.shape).toEqual([3, 1, 2, 1]);
    expect([...b.images]).toEqual([1, 2, 9, 8, 3, 4]); // s0 t0 s1
    expect([...b.labels]).toEqual([0, 1, 2, 2, 1, 0]);
    expect([...b.weights!]).toEqual([0.125, 0.125, 1, 0.5, 0.125, 0.125]);
    expect([...b.diceWeights!]).toEqual([1, 1, 0, 0, 1, 1]);
    expect(b.ceNormaliser).toBe(0.5);
  });

  it.each([
    ['no target', undefined, 1],
    ['λ = 0', slices(1, 3, 'random'), 0],
  ])('%s: the source batch alone, plain CE + Dice', (_what, target, lambda) => {
    const source = slices(2, 1, 'ones');
    const b = dualHostBatch(source, target, lambda);
    expect(b).toEqual({ shape: [2, H, W, 1], images: source.images, labels: source.labels });
  });

  it.each([
    ['a negative λ', slices(1, 3, 'random'), -1, 'targetWeight must be a finite number ≥ 0, got -1'],
    ['tiles of different sizes', { ...slices(1, 3, 'random'), shape: [1, 8, 32] as [number, number, number] }, 1, 'source and target tiles must have the same size, got 16×16 and 8×32'],
  ])('rejects %s', (_what, target, lambda, message) => {
    expect(() => dualHostBatch(slices(2, 1, 'ones'), target, lambda)).toThrow(message);
  });
});

describe('ParallelAdaptation equals adaptationStep in process', () => {
  // No BatchNorm (norm 'none'): with it the two paths differ by design (statistics per shard).
  const config = { depth: 2, baseWidth: 4, norm: 'none' as const, numClasses: 3, seed: 9 };
  const cases: [string, number, number, 'random' | 'zero' | undefined, number][] = [
    // [what, source slices, target slices, target weights, λ]
    ['2 + 2 slices, random weights, λ = 1', 2, 2, 'random', 1],
    ['3 + 1 slices (uneven shards), λ = 0.5', 3, 1, 'random', 0.5],
    ['every target weight 0 (target term 0)', 2, 2, 'zero', 1],
    ['source only', 4, 0, undefined, 1],
  ];
  it.each(cases)('%s: 3 steps on 2 workers, same losses, student, teacher and Adam state', async (_what, nS, nT, tw, lambda) => {
    const batches = [0, 1, 2].map((s) => ({ source: slices(nS, 100 + s, 'ones'), target: tw === undefined ? undefined : slices(nT, 200 + s, tw) }));
    const make = (prefix: string): { model: SegModel; adam: ReturnType<typeof createAdam>; ema: EmaTeacher } => {
      const model = buildUNet(config, { namePrefix: prefix });
      const adam = createAdam(model, { learningRate: 1e-2 });
      return { model, adam, ema: EmaTeacher.create(model, { alpha: 0.9 }) };
    };
    const ref = make('ref_');
    const par = make('par_');
    const models = [ref, par];
    try {
      // One in-process step first on both, so the parallel trainer starts from a used optimiser and a teacher ≠ student.
      for (const m of models) {
        const t = tensors(batches[0]!.source);
        adaptationStep(m.model, { source: t }, { optimizer: m.adam, targetWeight: lambda, clipNorm: 5, ema: m.ema });
        tf.dispose(Object.values(t));
      }
      const parallel = await ParallelAdaptation.create(par.model, par.adam, par.ema, { workers: 2, clipNorm: 5 });
      try {
        for (const b of batches) {
          const s = tensors(b.source);
          const t = b.target === undefined ? undefined : tensors(b.target);
          const want = adaptationStep(ref.model, { source: s, target: t }, { optimizer: ref.adam, targetWeight: lambda, clipNorm: 5, ema: ref.ema });
          tf.dispose([...Object.values(s), ...(t ? Object.values(t) : [])]);
          const got = await parallel.step(b.source, b.target, lambda);
          expect(got.loss).toBeCloseTo(want.loss, 5);
          expect(got.sourceLoss).toBeCloseTo(want.sourceLoss, 5);
          expect(got.targetLoss).toBeCloseTo(want.targetLoss, 5);
          expect(got.gradNorm).toBeCloseTo(want.gradNorm, 4);
          expect(got.step).toBe(want.step);
        }
        await parallel.sync();
      } finally {
        await parallel.dispose();
      }
      expect(maxAbsDiff(par.model.getWeights(), ref.model.getWeights())).toBeLessThan(5e-5);
      expect(maxAbsDiff(par.ema.model.getWeights(), ref.ema.model.getWeights())).toBeLessThan(5e-5);
      expect(par.adam.step).toBe(4);
      expect(par.ema.updates).toBe(ref.ema.updates);
    } finally {
      for (const m of models) {
        m.adam.dispose();
        m.ema.dispose();
        m.model.dispose();
      }
    }
  });
});
