import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../backend';
import { readFileSync } from 'node:fs';
import { resolveUNetConfig, type UNetConfig } from '../config';
import { EmaTeacher } from '../ema';
import { ModelConfigError, ModelInputError } from '../errors';
import { registerWasmTrainingKernels } from '../kernels';
import { WEIGHT_SUM_EPSILON, segmentationLoss, softDiceLoss, weightedCrossEntropy } from '../losses';
import type { SegModel, WeightSnapshot } from '../seg-model';
import { createAdam, trainStep } from '../train';
import { buildUNet } from '../unet';
import { splitBatch, type ParallelLossOptions } from './shared';
import { DataParallelTrainer, ParallelWorkerError, type HostBatch } from './trainer';

/**
 * Equivalence of data-parallel training with whole-batch training. The
 * reference is independent of the parallel code: the library's in-process
 * `segmentationLoss` / `trainStep` on the whole batch in this thread (wasm
 * with our kernels, like the workers — the cpu backend took ~0.7 s per
 * gradient even for this net), from the same initial weights.
 * Tiny U-Net (depth 2, 4-8 channels, 3 classes), batch [4, 16, 16, 1].
 */

const CONFIG: UNetConfig = resolveUNetConfig({ depth: 2, baseWidth: 4, norm: 'none', numClasses: 3, seed: 7 });
const N = 4;
const H = 16;
const W = 16;
const TOL_GRAD = 1e-4; // max |Δ| / max |reference| per gradient tensor (shard-wise vs whole-batch summation order)

/** mulberry32 uniforms in [0, 1). */
function uniforms(count: number, seed: number): Float32Array {
  let a = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  });
}

/** Images [n, H, W, 1] in [-1, 1) with labels thresholding them (class 0 < −0.3 ≤ 1 < 0.4 ≤ 2): a learnable toy task. */
function makeBatch(n: number, seed: number, weights?: 'none' | 'random' | 'zero-shard' | 'all-zero'): HostBatch {
  const images = uniforms(n * H * W, seed).map((u) => 2 * u - 1);
  const labels = Int32Array.from(images, (x) => (x < -0.3 ? 0 : x < 0.4 ? 1 : 2));
  let w: Float32Array | undefined;
  if (weights === 'random' || weights === 'zero-shard') w = uniforms(n * H * W, seed + 100);
  if (weights === 'zero-shard') w!.fill(0, (n / 2) * H * W); // images 2–3 (worker 1's shard) weigh nothing
  if (weights === 'all-zero') w = new Float32Array(n * H * W);
  return { shape: [n, H, W, 1], images, labels, weights: w };
}

function tensors(b: HostBatch): { images: tf.Tensor4D; labels: tf.Tensor3D; weights: tf.Tensor3D | undefined } {
  const [n, h, w, c] = b.shape;
  return {
    images: tf.tensor4d(b.images, [n, h, w, c]),
    labels: tf.tensor3d(b.labels as Int32Array, [n, h, w], 'int32'),
    weights: b.weights === undefined ? undefined : tf.tensor3d(b.weights, [n, h, w]),
  };
}

/**
 * In-process whole-batch loss and gradients (this thread's backend). With
 * `perShardForward`, the logits of each shard come from a separate forward pass
 * (BatchNorm statistics per shard, the data-parallel semantics) and the loss is
 * still the whole-batch loss of the concatenated logits.
 */
function referenceGradients(model: SegModel, b: HostBatch, loss: ParallelLossOptions, shardsOf?: number): { loss: number; grads: Float32Array[] } {
  const t = tensors(b);
  try {
    const { value, grads } = tf.variableGrads(() => {
      const logits =
        shardsOf === undefined
          ? model.logits(t.images, true)
          : tf.concat(splitBatch(b.shape[0], shardsOf).filter((s) => s.count > 0).map((s) => model.logits(tf.slice(t.images, [s.start, 0, 0, 0], [s.count, -1, -1, -1]), true)), 0);
      const l = segmentationLoss(logits, t.labels, { ...loss, weights: t.weights });
      return l.total;
    }, model.trainableVariables());
    const out = { loss: value.dataSync()[0]!, grads: model.trainableVariables().map((v) => new Float32Array(grads[v.name]!.dataSync())) };
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  } finally {
    tf.dispose([t.images, t.labels, ...(t.weights ? [t.weights] : [])]);
  }
}

/** max |a − b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return s === 0 ? d : d / s;
}

function maxAbsDiff(a: readonly WeightSnapshot[], b: readonly WeightSnapshot[]): number {
  let d = 0;
  a.forEach((x, i) => {
    expect(x.name).toBe(b[i]!.name);
    x.values.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]!.values[j]!))));
  });
  return d;
}

const threadCount = (): number => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

let model: SegModel; // in-process reference
let initial: WeightSnapshot[];
let one: DataParallelTrainer;
let two: DataParallelTrainer;
const ADAM = { learningRate: 1e-2 };

beforeAll(async () => {
  await selectBackend('wasm');
  registerWasmTrainingKernels();
  model = buildUNet(CONFIG, { namePrefix: 'ref_' });
  initial = model.getWeights();
  const trainers = await Promise.all(
    [1, 2].map((workers) => DataParallelTrainer.create({ config: CONFIG, weights: initial, workers, optimizer: ADAM, ema: { alpha: 0.9 } })),
  );
  one = trainers[0]!;
  two = trainers[1]!;
});

afterAll(async () => {
  await Promise.all([one, two].map((t) => t?.dispose()));
  model?.dispose();
});

describe('DataParallelTrainer.gradients equals the whole-batch gradient', () => {
  const cases: [string, 'none' | 'random' | 'zero-shard' | 'all-zero', ParallelLossOptions][] = [
    // [what, pixel weights, loss] — batch [4, 16, 16, 1]; expected = in-process gradient of the whole-batch loss
    ['weighted CE, non-uniform weights', 'random', { diceWeight: 0 }],
    ['weighted CE, all weights zero in shard 1 (images 2–3)', 'zero-shard', { diceWeight: 0 }],
    ['weighted CE, every weight zero (loss 0, gradient 0)', 'all-zero', { diceWeight: 0 }],
    ['CE + Dice, no weights', 'none', {}],
    ['CE + Dice, non-uniform weights gating both terms', 'random', {}],
    ['CE + Dice (×0.5, background ignored, Dice unweighted), zero shard', 'zero-shard', { diceWeight: 0.5, ignoreBackground: true, diceUsesWeights: false }],
  ];
  it.each(cases)('%s', async (_what, weights, loss) => {
    const b = makeBatch(N, 11, weights);
    const ref = referenceGradients(model, b, loss);
    for (const trainer of [one, two]) {
      const got = await trainer.gradients(b, { loss });
      expect(got.loss).toBeCloseTo(ref.loss, 5);
      expect(got.gradients.map((g) => g.name)).toEqual(initial.filter((w) => w.trainable).map((w) => w.name));
      got.gradients.forEach((g, i) => expect(relErr(g.values, ref.grads[i]!)).toBeLessThanOrEqual(TOL_GRAD));
      if (weights === 'all-zero') got.gradients.forEach((g) => expect(Math.max(...g.values.map(Math.abs))).toBe(0));
    }
  });

  it('is sensitive to the weighting: the naive mean of per-shard losses differs (zero-weight shard)', async () => {
    // Naive data parallelism averages each shard's own normalised loss: with shard 1 all zero it halves the gradient.
    const b = makeBatch(N, 11, 'zero-shard');
    const ref = referenceGradients(model, b, { diceWeight: 0 });
    const shard0 = referenceGradients(model, { ...b, shape: [2, H, W, 1], images: b.images.slice(0, 2 * H * W), labels: b.labels.slice(0, 2 * H * W), weights: b.weights!.slice(0, 2 * H * W) }, { diceWeight: 0 });
    const naive = shard0.grads.map((g) => g.map((v) => v / 2));
    expect(relErr(naive[0]!, ref.grads[0]!)).toBeGreaterThan(0.3);
    const got = await two.gradients(b, { loss: { diceWeight: 0 } });
    expect(relErr(got.gradients[0]!.values, ref.grads[0]!)).toBeLessThanOrEqual(TOL_GRAD);
  });

  it('separate Dice weights and a given CE normaliser: CE = Σ w·CE / Z, Dice over the Dice-weighted pixels only', async () => {
    // Two groups as the adaptation loss has them: images 0 and 2 supervised by CE + Dice, images 1 and 3 by CE only,
    // so each shard holds one of each. Reference: the same loss written with the library's single-group terms.
    const b = makeBatch(N, 13, 'random');
    const diceWeights = new Float32Array(N * H * W);
    for (const i of [0, 2]) diceWeights.fill(1, i * H * W, (i + 1) * H * W);
    const z = 321.5;
    const t = tensors(b);
    const d = tf.tensor3d(diceWeights, [N, H, W]);
    const wd = tf.mul<tf.Tensor3D>(t.weights!, d);
    const sum = (x: tf.Tensor): number => Math.max(tf.sum(x).dataSync()[0]!, WEIGHT_SUM_EPSILON);
    const [sw, swd] = [sum(t.weights!), sum(wd)];
    let ceDice = 0;
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.logits(t.images, true);
      ceDice = tf.mul(weightedCrossEntropy(logits, t.labels, wd), swd / z).dataSync()[0]!;
      return tf.add<tf.Scalar>(tf.mul(weightedCrossEntropy(logits, t.labels, t.weights), sw / z), softDiceLoss(logits, t.labels, { weights: d }));
    }, model.trainableVariables());
    const ref = { loss: value.dataSync()[0]!, grads: model.trainableVariables().map((v) => new Float32Array(grads[v.name]!.dataSync())) };
    tf.dispose([value, ...Object.values(grads), t.images, t.labels, t.weights!, d, wd]);
    for (const trainer of [one, two]) {
      const got = await trainer.gradients({ ...b, diceWeights, ceNormaliser: z });
      expect(got.loss).toBeCloseTo(ref.loss, 5);
      expect(got.ceDiceWeighted).toBeCloseTo(ceDice, 6);
      expect(got.ceDiceWeighted!).toBeLessThan(got.ce);
      got.gradients.forEach((g, i) => expect(relErr(g.values, ref.grads[i]!)).toBeLessThanOrEqual(TOL_GRAD));
    }
  });

  it.each([
    ['Dice weights of the wrong length', { diceWeights: new Float32Array(3) }, 'batch.diceWeights must be a Float32Array of 1024 values ([4, 16, 16]), got Float32Array of 3'],
    ['a CE normaliser of 0', { ceNormaliser: 0 }, 'batch.ceNormaliser must be a finite number > 0, got 0'],
    ['Dice weights above 1 in images 2–3', { diceWeights: new Float32Array(N * H * W).fill(2, 2 * H * W) }, 'worker 1: batch.diceWeights must be in [0, 1], got 2 (images 2–3)'],
  ])('rejects %s', async (_what, extra, message) => {
    await expect(two.gradients({ ...makeBatch(N, 3, 'random'), ...extra })).rejects.toThrow(message);
  });

  it('handles more workers than images (batch 1 on 2 workers: shards of 1 and 0 images)', async () => {
    for (const n of [1]) {
      const b = makeBatch(n, 5, 'random');
      const ref = referenceGradients(model, b, {});
      const got = await two.gradients(b);
      expect(got.loss).toBeCloseTo(ref.loss, 5);
      got.gradients.forEach((g, i) => expect(relErr(g.values, ref.grads[i]!)).toBeLessThanOrEqual(TOL_GRAD));
    }
  });
});

describe('DataParallelTrainer.step equals trainStep on the whole batch', () => {
  it('2 steps of Adam with active clipping and an EMA teacher: same losses, weights, teacher; replicas identical', async () => {
    // Reference: in-process trainStep from the same weights; clipNorm 0.05 is below the gradient norm, so clipping acts.
    const ref = buildUNet(CONFIG, { namePrefix: 'ref_step_' });
    ref.setWeights(initial);
    const optimizer = createAdam(ref, ADAM);
    const ema = EmaTeacher.create(ref, { alpha: 0.9 });
    const batches = [makeBatch(N, 21, 'zero-shard'), makeBatch(N, 22, 'random')];
    const refResults = batches.map((b) => {
      const t = tensors(b);
      try {
        return trainStep(ref, t, { optimizer, ema, clipNorm: 0.05 });
      } finally {
        tf.dispose([t.images, t.labels, t.weights!]);
      }
    });
    expect(refResults[0]!.gradNorm).toBeGreaterThan(0.05);
    for (const trainer of [one, two]) {
      await trainer.setWeights(initial);
      await trainer.setWeights(initial, { teacher: true });
      const zeros = (): Float32Array[] => initial.filter((w) => w.trainable).map((w) => new Float32Array(w.values.length));
      await trainer.setOptimizerState({ step: 0, m: zeros(), v: zeros() }, 0); // back to a fresh optimiser and teacher
      for (let s = 0; s < 2; s++) {
        const r = await trainer.step(batches[s]!, { clipNorm: 0.05 });
        const e = refResults[s]!;
        expect(r.loss).toBeCloseTo(e.loss, 5);
        expect(r.ce).toBeCloseTo(e.ce, 5);
        expect(r.dice).toBeCloseTo(e.dice, 5);
        expect(r.gradNorm).toBeCloseTo(e.gradNorm, 4);
        expect(r.learningRate).toBe(e.learningRate);
        expect(r.step).toBe(e.step);
        expect(r.emaAlpha).toBe(e.emaAlpha);
        expect(r.timings).toHaveLength(trainer.workers);
      }
      // Adam's step is ~lr·sign(g) per weight: 1e-5 is 1/1000 of one update (lr 1e-2).
      expect(maxAbsDiff(await trainer.getWeights(), ref.getWeights())).toBeLessThan(1e-5);
      expect(maxAbsDiff(await trainer.getTeacherWeights(), ema.model.getWeights())).toBeLessThan(1e-5);
      const state = await trainer.getOptimizerState();
      expect(state.adam.step).toBe(2);
      expect(state.emaUpdates).toBe(2);
    }
    // Every replica applies the same update to the same reduced gradient: bit-identical.
    expect(maxAbsDiff(await two.getWeights(1), await two.getWeights(0))).toBe(0);
    ema.dispose();
    optimizer.dispose();
    ref.dispose();
  });
});

describe('BatchNorm: per-shard batch statistics', () => {
  it('gradients equal the per-shard-forward oracle; running statistics are the shard-size-weighted mean', async () => {
    const bnConfig = { ...CONFIG, norm: 'batch' as const };
    const bnModel = buildUNet(bnConfig, { namePrefix: 'ref_bn_' });
    const bnInitial = bnModel.getWeights();
    const trainer = await DataParallelTrainer.create({ config: bnConfig, weights: bnInitial, workers: 2, optimizer: ADAM, updateMode: 'broadcast' });
    try {
      const b = makeBatch(N, 31, 'random');
      // Exact oracle: each shard's logits from its own forward pass, then the whole-batch loss.
      const perShard = referenceGradients(bnModel, b, {}, 2);
      // Running statistics oracle: for each shard, a training forward from the initial weights; mean weighted by shard size (2 and 2).
      const stats = [0, 1].map((s) => {
        bnModel.setWeights(bnInitial);
        const t = tensors(makeBatch(N, 31, 'random'));
        tf.tidy(() => bnModel.logits(tf.slice(t.images, [2 * s, 0, 0, 0], [2, -1, -1, -1]), true));
        tf.dispose([t.images, t.labels, t.weights!]);
        return bnModel.getWeights().filter((w) => !w.trainable);
      });
      bnModel.setWeights(bnInitial);
      const whole = referenceGradients(bnModel, b, {});

      const got = await trainer.gradients(b);
      expect(got.loss).toBeCloseTo(perShard.loss, 5);
      got.gradients.forEach((g, i) => expect(relErr(g.values, perShard.grads[i]!)).toBeLessThanOrEqual(TOL_GRAD));
      const running = (await trainer.getWeights()).filter((w) => !w.trainable);
      expect(running.length).toBeGreaterThan(0);
      running.forEach((w, i) => {
        const expected = stats[0]![i]!.values.map((v, j) => 0.5 * v + 0.5 * stats[1]![i]!.values[j]!);
        expect(relErr(w.values, expected)).toBeLessThanOrEqual(1e-5);
      });
      expect(maxAbsDiff(await trainer.getWeights(1), await trainer.getWeights(0))).toBe(0);

      // Looser check against whole-batch statistics: not equal, but the same direction.
      const flatGot = got.gradients.flatMap((g) => Array.from(g.values));
      const flatWhole = whole.grads.flatMap((g) => Array.from(g));
      const dot = flatGot.reduce((a, v, i) => a + v * flatWhole[i]!, 0);
      const cos = dot / Math.hypot(...flatGot) / Math.hypot(...flatWhole);
      expect(cos).toBeGreaterThan(0.9);
      expect(relErr(flatGot, flatWhole)).toBeGreaterThan(1e-3); // genuinely different statistics

      // Broadcast update mode: a step keeps the replicas identical too.
      await trainer.step(b);
      expect(maxAbsDiff(await trainer.getWeights(1), await trainer.getWeights(0))).toBe(0);
    } finally {
      await trainer.dispose();
      bnModel.dispose();
    }
  });
});

describe('errors and lifecycle', () => {
  it('a worker-side error rejects with the worker message; the trainer stays usable', async () => {
    await two.setWeights(initial); // the step test moved them
    const b = makeBatch(N, 41, 'random');
    const bad = { ...b, labels: Int32Array.from(b.labels) };
    bad.labels[3 * H * W + 5] = 7; // image 3 → worker 1's shard
    const failed = two.gradients(bad);
    await expect(failed).rejects.toThrow(new ParallelWorkerError('worker 1: batch.labels values must be in [0, 2], got range [0, 7] (images 2–3)', 'ModelInputError'));
    await expect(failed).rejects.toMatchObject({ workerErrorName: 'ModelInputError' });
    const ref = referenceGradients(model, b, {});
    const got = await two.gradients(b);
    got.gradients.forEach((g, i) => expect(relErr(g.values, ref.grads[i]!)).toBeLessThanOrEqual(TOL_GRAD));
  });

  it.each([
    // [batch change, expected message]
    [{ shape: [4, 15, 16, 1] }, 'batch.shape must be [N, H, W, 1] with N ≥ 1 and H, W positive multiples of 2 (2^(depth−1)), got [4, 15, 16, 1]'],
    [{ images: new Float32Array(10) }, 'batch.images must be a Float32Array of 1024 values ([4, 16, 16, 1]), got Float32Array of 10'],
    [{ labels: new Float32Array(1024) }, 'batch.labels must be an Int32Array label map of 1024 values ([4, 16, 16]) or a Float32Array of probabilities of 3072 values ([4, 16, 16, 3]), got Float32Array of 1024'],
    [{ weights: new Float32Array(3) }, 'batch.weights must be a Float32Array of 1024 values ([4, 16, 16]), got Float32Array of 3'],
  ])('rejects a malformed batch %p', async (change, message) => {
    await expect(two.step({ ...makeBatch(N, 1), ...change } as HostBatch)).rejects.toThrow(new ModelInputError(message));
  });

  it.each([
    // [options change, expected message]
    [{ workers: 0 }, 'DataParallelOptions.workers must be an integer in [1, 64], got 0'],
    [{ clipNorm: -1 }, 'DataParallelOptions.clipNorm must be a finite number > 0, got -1'],
    [{ ema: { alpha: 1 } }, 'DataParallelOptions.ema.alpha must be a number in [0, 1), got 1'],
  ])('rejects bad options %p', async (change, message) => {
    await expect(DataParallelTrainer.create({ config: CONFIG, optimizer: ADAM, ...change })).rejects.toThrow(new ModelConfigError(message));
  });

  it('a worker failing at start-up rejects create() and leaves no thread behind; dispose() ends every thread', async () => {
    const before = threadCount();
    const missing = initial.filter((w) => w.name !== 'head/bias');
    await expect(DataParallelTrainer.create({ config: CONFIG, weights: missing, workers: 2, optimizer: ADAM })).rejects.toThrow(
      new ParallelWorkerError(`worker 0: setWeights: weight 'head/bias' is missing (received ${initial.length - 1} weights)`, 'ModelInputError'),
    );
    expect(threadCount()).toBe(before);

    const t = await DataParallelTrainer.create({ config: CONFIG, workers: 2, optimizer: ADAM });
    expect(t.liveWorkers).toBe(2);
    expect(threadCount()).toBeGreaterThanOrEqual(before + 2);
    await t.dispose();
    expect(t.liveWorkers).toBe(0);
    expect(threadCount()).toBe(before);
    await expect(t.step(makeBatch(N, 1))).rejects.toThrow(new ModelInputError('DataParallelTrainer has been disposed'));
    await t.dispose(); // idempotent
  });
});
