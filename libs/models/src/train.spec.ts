import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { Norm, type UNetConfig } from './config';
import { EmaTeacher } from './ema';
import { ModelInputError } from './errors';
import type { SegModel } from './seg-model';
import { createAdam, trainStep, type TrainBatch } from './train';
import { buildUNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const SMALL: Partial<UNetConfig> = { baseWidth: 4, depth: 2, numClasses: 3, dropout: 0.25, seed: 9 };

/** A learnable toy task on [2, 8, 8, 1]: class = 0 below 0, 1 in [0, 1), 2 above 1. */
function toyBatch(seed = 1, weights?: number[]): TrainBatch {
  return tf.tidy(() => {
    const images = tf.randomNormal<tf.Rank.R4>([2, 8, 8, 1], 0, 1, 'float32', seed);
    const x = tf.squeeze(images, [3]);
    const labels = tf.add<tf.Tensor3D>(tf.cast(tf.greaterEqual(x, 0), 'int32'), tf.cast(tf.greaterEqual(x, 1), 'int32'));
    return { images, labels, weights: weights === undefined ? undefined : tf.tensor3d(weights, [2, 8, 8]) };
  });
}

const disposeBatch = (b: TrainBatch): void => tf.dispose([b.images, b.labels, ...(b.weights ? [b.weights] : [])]);
const flat = (m: SegModel): number[] => m.getWeights().flatMap((w) => Array.from(w.values));

describe('trainStep', () => {
  it('leaves the number of live tensors unchanged (dropout, weights, clipping, EMA)', () => {
    const model = buildUNet(SMALL);
    const optimizer = createAdam(model, { learningRate: { baseLr: 1e-2, warmupSteps: 2 } });
    const ema = EmaTeacher.create(model, { alpha: 0.99 });
    const batch = toyBatch(1, Array.from({ length: 128 }, (_, i) => (i % 3) / 2));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) trainStep(model, batch, { optimizer, ema, clipNorm: 1 });
    expect(tf.memory().numTensors).toBe(before);
    disposeBatch(batch);
    ema.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('reports losses, learning rate, step and α, and lowers the loss on a toy task', () => {
    const model = buildUNet({ ...SMALL, dropout: 0 });
    const optimizer = createAdam(model, { learningRate: { baseLr: 2e-2, warmupSteps: 2 } });
    const ema = EmaTeacher.create(model);
    const batch = toyBatch();
    const results = Array.from({ length: 8 }, () => trainStep(model, batch, { optimizer, ema }));
    const first = results[0]!;
    expect(first.learningRate).toBeCloseTo(1e-2, 12); // warm-up: 2e-2·1/2
    expect(results[1]!.learningRate).toBeCloseTo(2e-2, 12);
    expect(first.step).toBe(1);
    expect(first.emaAlpha).toBe(0);
    expect(results[1]!.emaAlpha).toBe(0.5);
    expect(first.loss).toBeCloseTo(first.ce + first.dice, 5);
    expect(first.gradNorm).toBeGreaterThan(0);
    expect(results[7]!.loss).toBeLessThan(first.loss);
    disposeBatch(batch);
    ema.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('with all weights 0: loss 0, no NaN, trainable weights untouched', () => {
    const model = buildUNet({ ...SMALL, norm: Norm.Instance }); // no running statistics, so nothing may change
    const optimizer = createAdam(model, { learningRate: 0.1 });
    const batch = toyBatch(2, new Array<number>(128).fill(0));
    const before = flat(model);
    const r = trainStep(model, batch, { optimizer, clipNorm: 1 });
    expect([r.loss, r.ce, r.dice, r.gradNorm]).toEqual([0, 0, 0, 0]);
    expect(flat(model)).toEqual(before);
    disposeBatch(batch);
    optimizer.dispose();
    model.dispose();
  });

  it('ignores labels where the weight is 0: same update bit for bit', () => {
    // Two identical models (same seed → same init and dropout masks); their label maps differ only at weight-0 pixels.
    const weights = Array.from({ length: 128 }, (_, i) => (i % 4 === 0 ? 0 : 0.5 + (i % 7) / 14));
    const a = toyBatch(3, weights);
    const relabelled = tf.tidy(() => {
      const w0 = tf.equal(a.weights!, 0);
      return tf.where<tf.Tensor3D>(w0, tf.fill([2, 8, 8], 2, 'int32'), a.labels as tf.Tensor3D);
    });
    const b: TrainBatch = { images: a.images, labels: relabelled, weights: a.weights };
    const results = [a, b].map((batch) => {
      const model = buildUNet(SMALL);
      const optimizer = createAdam(model, { learningRate: 1e-2 });
      trainStep(model, batch, { optimizer });
      trainStep(model, batch, { optimizer });
      const w = flat(model);
      optimizer.dispose();
      model.dispose();
      return w;
    });
    expect(tf.tidy(() => tf.sum(tf.notEqual(a.labels, relabelled)).dataSync()[0])).toBeGreaterThan(0); // the labels do differ
    expect(results[1]).toEqual(results[0]);
    disposeBatch(a);
    relabelled.dispose();
  });

  it.each<[string, (b: TrainBatch) => TrainBatch, string]>([
    ['labels out of range', (b) => ({ ...b, labels: tf.fill<tf.Rank.R3>([2, 8, 8], 3, 'int32') }), 'batch.labels values must be in [0, 2], got range [3, 3]'],
    ['weights above 1', (b) => ({ ...b, weights: tf.fill<tf.Rank.R3>([2, 8, 8], 1.5) }), 'batch.weights must be in [0, 1], got range [1.5, 1.5]'],
    [
      'labels of the wrong size',
      (b) => ({ ...b, labels: tf.zeros<tf.Rank.R3>([2, 8, 4], 'int32') }),
      'batch.labels must be [2, 8, 8] (int32 label map) or [2, 8, 8, 3] (probabilities), got [2, 8, 4]',
    ],
    ['weights of the wrong size', (b) => ({ ...b, weights: tf.zeros([2, 8]) as unknown as tf.Tensor3D }), 'batch.weights must be [2, 8, 8], got [2, 8]'],
    ['float label map', (b) => ({ ...b, labels: tf.zeros<tf.Rank.R3>([2, 8, 8]) }), 'batch.labels as a label map must be int32, got float32'],
    [
      'images of odd size',
      (b) => ({ ...b, images: tf.zeros<tf.Rank.R4>([2, 7, 8, 1]) }),
      'batch.images must be [N, H, W, 1] with N ≥ 1 and H, W positive multiples of 2 (2^(depth−1)), got [2, 7, 8, 1]',
    ],
  ])('rejects %s', (_name, edit, message) => {
    const model = buildUNet(SMALL);
    const optimizer = createAdam(model, { learningRate: 1e-2 });
    const good = toyBatch();
    const bad = edit(good);
    expect(() => trainStep(model, bad, { optimizer })).toThrow(new ModelInputError(message));
    tf.dispose([...new Set([good.images, good.labels, bad.images, bad.labels, ...(bad.weights ? [bad.weights] : [])])]);
    optimizer.dispose();
    model.dispose();
  });
});
