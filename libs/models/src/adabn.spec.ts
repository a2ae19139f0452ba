import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { reestimateBatchNorm } from './adabn';
import { Norm } from './config';
import { ModelInputError } from './errors';
import { Rng } from './rng';
import { buildUNet } from './unet';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Naive 'same' 3×3 convolution without bias: x [n, h, w, ci], kernel [3, 3, ci, co] (tfjs layout) → [n, h, w, co]. */
function conv3x3(x: Float64Array, n: number, h: number, w: number, ci: number, kernel: Float32Array, co: number): Float64Array {
  const out = new Float64Array(n * h * w * co);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let o = 0; o < co; o++) {
          let s = 0;
          for (let dy = 0; dy < 3; dy++)
            for (let dx = 0; dx < 3; dx++) {
              const yy = y + dy - 1;
              const xq = xx + dx - 1;
              if (yy < 0 || yy >= h || xq < 0 || xq >= w) continue;
              for (let i = 0; i < ci; i++) s += x[((b * h + yy) * w + xq) * ci + i]! * kernel[((dy * 3 + dx) * ci + i) * co + o]!;
            }
          out[((b * h + y) * w + xx) * co + o] = s;
        }
  return out;
}

/** Per-channel mean and biased variance of [.., c] values. */
function moments(x: Float64Array, c: number): { mean: number[]; variance: number[] } {
  const m = x.length / c;
  const mean = Array.from({ length: c }, (_, k) => {
    let s = 0;
    for (let i = k; i < x.length; i += c) s += x[i]!;
    return s / m;
  });
  const variance = Array.from({ length: c }, (_, k) => {
    let s = 0;
    for (let i = k; i < x.length; i += c) s += (x[i]! - mean[k]!) ** 2;
    return s / m;
  });
  return { mean, variance };
}

/** y = relu(γ (x − mean)/√(var + ε) + β) per channel. */
function normRelu(x: Float64Array, c: number, st: { mean: number[]; variance: number[] }, gamma: Float32Array, beta: Float32Array): Float64Array {
  return x.map((v, i) => Math.max(0, (gamma[i % c]! * (v - st.mean[i % c]!)) / Math.sqrt(st.variance[i % c]! + 1e-5) + beta[i % c]!));
}

describe('reestimateBatchNorm (AdaBN)', () => {
  // depth 1, width 3: image → conv1 → bn1 → relu → conv2 → bn2 → relu → head. Images [4, 8, 8, 1].
  const [n, h, w, c] = [4, 8, 8, 3];
  const rng = new Rng(7);
  const images = Float32Array.from({ length: n * h * w }, () => rng.next());

  /** The statistics each BatchNorm layer should hold after AdaBN over `groups` (slice index ranges), computed with plain loops. */
  function expected(model: ReturnType<typeof buildUNet>, groups: [number, number][]): { bn1: { mean: number[]; variance: number[] }; bn2: { mean: number[]; variance: number[] } } {
    const weights = new Map(model.getWeights().map((x) => [x.name, x.values]));
    const k1 = weights.get('enc0_conv1/kernel')!;
    const k2 = weights.get('enc0_conv2/kernel')!;
    const [g1, b1] = [weights.get('enc0_bn1/gamma')!, weights.get('enc0_bn1/beta')!];
    const pooled = (parts: { mean: number[]; variance: number[]; count: number }[]) => {
      const total = parts.reduce((a, p) => a + p.count, 0);
      const mean = Array.from({ length: c }, (_, k) => parts.reduce((a, p) => a + p.mean[k]! * p.count, 0) / total);
      const variance = Array.from({ length: c }, (_, k) => parts.reduce((a, p) => a + (p.variance[k]! + p.mean[k]! ** 2) * p.count, 0) / total - mean[k]! ** 2);
      return { mean, variance };
    };
    const l1: { mean: number[]; variance: number[]; count: number }[] = [];
    const l2: { mean: number[]; variance: number[]; count: number }[] = [];
    for (const [s, e] of groups) {
      const x = Float64Array.from(images.subarray(s * h * w, e * h * w));
      const a1 = conv3x3(x, e - s, h, w, 1, k1, c);
      const st1 = moments(a1, c);
      l1.push({ ...st1, count: (e - s) * h * w });
      // Within the pass each layer normalises with its own batch statistics (training mode).
      const a2 = conv3x3(normRelu(a1, c, st1, g1, b1), e - s, h, w, c, k2, c);
      l2.push({ ...moments(a2, c), count: (e - s) * h * w });
    }
    return { bn1: pooled(l1), bn2: pooled(l2) };
  }

  it.each([
    { name: 'one batch: every layer holds that batch’s statistics', groups: [[0, 4]] as [number, number][] },
    { name: 'two batches: pixel-weighted pooled mean and E[x²] − mean²', groups: [[0, 3], [3, 4]] as [number, number][] },
  ])('$name', ({ groups }) => {
    const model = buildUNet({ depth: 1, baseWidth: c, numClasses: 2, norm: Norm.Batch, seed: 3 });
    try {
      // Non-trivial γ, β so the second layer's input depends on the first layer's normalisation.
      model.setWeights(model.getWeights().map((x) => (x.name.endsWith('/gamma') ? { ...x, values: Float32Array.from([0.5, 1.5, 2]) } : x.name.endsWith('/beta') ? { ...x, values: Float32Array.from([0.1, -0.2, 0.3]) } : x)));
      const want = expected(model, groups);
      const before = tf.memory().numTensors;
      const batches = groups.map(([s, e]) => tf.tensor4d(images.subarray(s * h * w, e * h * w), [e - s, h, w, 1]));
      const stats = reestimateBatchNorm(model, batches);
      tf.dispose(batches);
      expect(tf.memory().numTensors).toBe(before);
      expect(stats.map((s) => s.layer)).toEqual(['enc0_bn1', 'enc0_bn2']);
      expect(stats.map((s) => s.count)).toEqual([n * h * w, n * h * w]);
      const held = new Map(model.getWeights().map((x) => [x.name, Array.from(x.values)]));
      for (const [layer, st] of [['enc0_bn1', want.bn1], ['enc0_bn2', want.bn2]] as const) {
        held.get(`${layer}/moving_mean`)!.forEach((v, k) => expect(v).toBeCloseTo(st.mean[k]!, 4));
        held.get(`${layer}/moving_variance`)!.forEach((v, k) => expect(v).toBeCloseTo(st.variance[k]!, 4));
      }
    } finally {
      model.dispose();
    }
  });

  it('changes only the running statistics, and inference then uses them', () => {
    const model = buildUNet({ depth: 1, baseWidth: c, numClasses: 2, norm: Norm.Batch, seed: 4 });
    try {
      const before = model.getWeights();
      const x = tf.tensor4d(images, [n, h, w, 1]);
      const p0 = model.predict(x);
      reestimateBatchNorm(model, [x]);
      const p1 = model.predict(x);
      const after = model.getWeights();
      before.forEach((wt, i) => {
        if (wt.trainable) expect(Array.from(after[i]!.values)).toEqual(Array.from(wt.values));
        else expect(Array.from(after[i]!.values)).not.toEqual(Array.from(wt.values));
      });
      // In training mode on the same batch the network normalises with the same statistics: inference now agrees with it.
      const train = tf.tidy(() => tf.softmax(model.logits(x, true)));
      expect(tf.max(tf.abs(tf.sub(p1, train))).dataSync()[0]).toBeLessThan(1e-4);
      expect(tf.max(tf.abs(tf.sub(p0, p1))).dataSync()[0]).toBeGreaterThan(1e-3);
      tf.dispose([x, p0, p1, train]);
    } finally {
      model.dispose();
    }
  });

  it('needs a batch; a model without BatchNorm is left alone', () => {
    const model = buildUNet({ depth: 1, baseWidth: 2, numClasses: 2, norm: Norm.Batch });
    const plain = buildUNet({ depth: 1, baseWidth: 2, numClasses: 2, norm: Norm.None });
    try {
      expect(() => reestimateBatchNorm(model, [])).toThrow(new ModelInputError('reestimateBatchNorm needs at least one batch of images'));
      expect(reestimateBatchNorm(plain, [])).toEqual([]);
    } finally {
      model.dispose();
      plain.dispose();
    }
  });
});
