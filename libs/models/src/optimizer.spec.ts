import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { ModelConfigError, ModelInputError } from './errors';
import { Adam, clipByGlobalNorm } from './optimizer';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Reference Adam/AdamW in float64, written from the PyTorch documentation. */
function referenceAdam(theta: number[], grads: number[][], lr: (t: number) => number, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0): number[] {
  const th = [...theta];
  const m = th.map(() => 0);
  const v = th.map(() => 0);
  grads.forEach((g, step) => {
    const t = step + 1;
    const a = lr(step);
    th.forEach((x, i) => {
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
      const mh = m[i] / (1 - b1 ** t);
      const vh = v[i] / (1 - b2 ** t);
      th[i] = x * (1 - a * wd) - (a * mh) / (Math.sqrt(vh) + eps);
    });
  });
  return th;
}

describe('Adam', () => {
  it('first step moves each weight by ≈ lr·sign(g) (m̂ = g, v̂ = g²)', () => {
    // θ = [1, 1], g = [0.5, −2], lr 0.1 → θ ≈ [0.9, 1.1]
    const x = tf.variable(tf.tensor1d([1, 1]));
    const adam = new Adam([x], { learningRate: 0.1 });
    const g = tf.tensor1d([0.5, -2]);
    expect(adam.apply([g])).toBe(0.1);
    const got = Array.from(x.dataSync());
    expect(got[0]).toBeCloseTo(0.9, 6);
    expect(got[1]).toBeCloseTo(1.1, 6);
    expect(adam.step).toBe(1);
    tf.dispose([x, g]);
    adam.dispose();
  });

  it.each<[string, number]>([
    ['Adam', 0],
    ['AdamW (weight decay 0.1)', 0.1],
  ])('%s matches a float64 reference over 5 steps with a warm-up schedule', (_name, weightDecay) => {
    const theta = [0.3, -1.2, 2.0];
    const grads = [
      [0.1, -0.4, 0.0],
      [0.2, 0.1, -0.3],
      [-0.5, 0.3, 0.2],
      [0.05, -0.02, 0.7],
      [0.0, 0.9, -0.1],
    ];
    const x = tf.variable(tf.tensor1d(theta));
    const adam = new Adam([x], { learningRate: { baseLr: 0.01, warmupSteps: 2 }, weightDecay });
    for (const g of grads) tf.tidy(() => adam.apply([tf.tensor1d(g)]));
    const expected = referenceAdam(theta, grads, (s) => (s < 2 ? (0.01 * (s + 1)) / 2 : 0.01), 0.9, 0.999, 1e-8, weightDecay);
    Array.from(x.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    x.dispose();
    adam.dispose();
  });

  it('state round-trips: a restored optimiser continues identically', () => {
    const make = (): [tf.Variable, Adam] => {
      const v = tf.variable(tf.tensor1d([1, 2]));
      return [v, new Adam([v], { learningRate: 0.05 })];
    };
    const [x1, a1] = make();
    const [x2, a2] = make();
    tf.tidy(() => a1.apply([tf.tensor1d([0.3, -0.1])]));
    a2.setState(a1.getState());
    x2.assign(x1);
    tf.tidy(() => a1.apply([tf.tensor1d([0.2, 0.4])]));
    tf.tidy(() => a2.apply([tf.tensor1d([0.2, 0.4])]));
    expect(x2.dataSync()).toEqual(x1.dataSync());
    expect(a2.step).toBe(2);
    tf.dispose([x1, x2]);
    a1.dispose();
    a2.dispose();
  });

  it('allocates its moments up front and nothing per update', () => {
    const x = tf.variable(tf.ones([3, 3]));
    const adam = new Adam([x], { learningRate: 0.1 });
    const g = tf.ones([3, 3]);
    const before = tf.memory().numTensors;
    adam.apply([g]);
    adam.apply([g]);
    expect(tf.memory().numTensors).toBe(before);
    adam.dispose();
    tf.dispose([x, g]);
  });

  it.each<[Parameters<typeof Adam.prototype.setState>[0], string]>([
    [{ step: -1, m: [], v: [] }, 'AdamState.step must be an integer ≥ 0, got -1'],
    [{ step: 1, m: [], v: [] }, 'AdamState.m must hold 1 arrays, got 0'],
    [{ step: 1, m: [new Float32Array(2)], v: [new Float32Array(3)] }, 'AdamState.v[0] must have 2 values, got 3'],
  ])('setState rejects %j', (state, message) => {
    const x = tf.variable(tf.ones([2]));
    const adam = new Adam([x], { learningRate: 0.1 });
    expect(() => adam.setState(state)).toThrow(new ModelInputError(message));
    adam.dispose();
    x.dispose();
  });

  it('rejects bad hyper-parameters', () => {
    expect(() => new Adam([], { learningRate: 0.1, beta1: 1 })).toThrow(new ModelConfigError('AdamConfig.beta1 must be a number in [0, 1), got 1'));
  });
});

describe('clipByGlobalNorm', () => {
  it.each<[string, number, number[][]]>([
    // grads [3, 4] and [12]: global norm √(9 + 16 + 144) = 13
    ['norm above max (6.5): scaled by 6.5/13 = 0.5', 6.5, [[1.5, 2], [6]]],
    ['norm below max (20): unchanged', 20, [[3, 4], [12]]],
    ['norm equal to max (13): unchanged', 13, [[3, 4], [12]]],
  ])('%s', (_name, maxNorm, expected) => {
    const grads = [tf.tensor1d([3, 4]), tf.tensor1d([12])];
    const { clipped, norm } = clipByGlobalNorm(grads, maxNorm);
    expect(norm.dataSync()[0]).toBeCloseTo(13, 5);
    clipped.forEach((c, i) => Array.from(c.dataSync()).forEach((v, j) => expect(v).toBeCloseTo(expected[i]![j]!, 5)));
    tf.dispose([...grads, ...clipped, norm]);
  });

  it('rejects a non-positive max norm', () => {
    expect(() => clipByGlobalNorm([], 0)).toThrow(new ModelInputError('clipByGlobalNorm: maxNorm must be a finite number > 0, got 0'));
  });
});
