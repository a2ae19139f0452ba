import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { ModelInputError } from './errors';
import { segmentationLoss, softDiceLoss, weightedCrossEntropy } from './losses';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * The tiny case used throughout: 1×1×4 pixels (as [N, H, W] = [1, 2, 2]), K = 2.
 * logits chosen so the softmax is exact:
 *   p0: [0, 0]        → P = [0.5, 0.5]
 *   p1: [ln 3, 0]     → P = [0.75, 0.25]
 *   p2: [0, ln 3]     → P = [0.25, 0.75]
 *   p3: [0, ln 9]     → P = [0.1, 0.9]
 * labels [0, 0, 1, 0] → CE = [ln 2, −ln 0.75, −ln 0.75, −ln 0.1] = [0.693147, 0.287682, 0.287682, 2.302585]
 */
const LOGITS = [0, 0, Math.log(3), 0, 0, Math.log(3), 0, Math.log(9)];
const LABELS = [0, 0, 1, 0];
const logits = (): tf.Tensor4D => tf.tensor4d(LOGITS, [1, 2, 2, 2]);
const labels = (): tf.Tensor3D => tf.tensor3d(LABELS, [1, 2, 2], 'int32');
const weights = (w: number[]): tf.Tensor3D => tf.tensor3d(w, [1, 2, 2]);

function value(make: () => tf.Scalar): number {
  return tf.tidy(() => make().dataSync()[0]!);
}

describe('weightedCrossEntropy (hand-computed, 1×2×2 pixels, K=2)', () => {
  it.each<[string, number[] | undefined, number]>([
    // no weights: mean CE = (0.693147 + 0.287682 + 0.287682 + 2.302585) / 4
    ['no weights = plain mean', undefined, 3.571096 / 4],
    // all ones: same as the plain mean
    ['all weights 1', [1, 1, 1, 1], 3.571096 / 4],
    // w = [1, 0.5, 0, 0.25]: Σw = 1.75, Σw·CE = 0.693147 + 0.143841 + 0 + 0.575646 = 1.412634
    ['w = [1, 0.5, 0, 0.25]', [1, 0.5, 0, 0.25], 1.412634 / 1.75],
    // one pixel only: its CE
    ['only pixel 3', [0, 0, 0, 1], 2.302585],
    // all zero: 0 / max(0, ε) = 0, not NaN
    ['all weights 0 → 0', [0, 0, 0, 0], 0],
  ])('%s', (_name, w, expected) => {
    const before = tf.memory().numTensors;
    const got = value(() => weightedCrossEntropy(logits(), labels(), w && weights(w)));
    expect(got).toBeCloseTo(expected, 5);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('accepts one-hot targets [N, H, W, K] with the same result as the label map', () => {
    const w = [1, 0.5, 0, 0.25];
    const fromMap = value(() => weightedCrossEntropy(logits(), labels(), weights(w)));
    const fromOneHot = value(() => weightedCrossEntropy(logits(), tf.tensor4d([1, 0, 1, 0, 0, 1, 1, 0], [1, 2, 2, 2]), weights(w)));
    expect(fromOneHot).toBeCloseTo(fromMap, 6);
  });

  it('has gradient w·(softmax − onehot)/Σw per pixel, exactly 0 where w = 0', () => {
    // d/dz_pk of Σ w_p CE_p / Σw = w_p (P_pk − T_pk) / Σw, Σw = 1.75
    const w = [1, 0.5, 0, 0.25];
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => weightedCrossEntropy(z as tf.Tensor4D, labels(), weights(w)))(logits()).dataSync());
    const P = [0.5, 0.5, 0.75, 0.25, 0.25, 0.75, 0.1, 0.9];
    const T = [1, 0, 1, 0, 0, 1, 1, 0];
    const expected = P.map((p, i) => (w[Math.floor(i / 2)]! * (p - T[i]!)) / 1.75);
    Array.from(g).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    expect([g[4]!, g[5]!].map(Math.abs)).toEqual([0, 0]); // pixel 2 (w = 0): exactly zero (±0)
  });

  it('gives zero loss and zero (not NaN) gradient when every weight is 0, even for extreme logits', () => {
    const z = tf.tensor4d([1e4, -1e4, -1e4, 1e4, 0, 0, 50, -50], [1, 2, 2, 2]);
    const { value: l, grads } = tf.tidy(() => {
      const r = tf.valueAndGrad((x: tf.Tensor) => weightedCrossEntropy(x as tf.Tensor4D, labels(), weights([0, 0, 0, 0])))(z);
      return { value: r.value.dataSync()[0], grads: Array.from(r.grad.dataSync(), Math.abs) }; // ±0 both count as zero
    });
    expect(l).toBe(0);
    expect(grads).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    z.dispose();
  });
});

describe('softDiceLoss (hand-computed, smooth 0)', () => {
  it.each<[string, { w?: number[]; ignoreBackground?: boolean }, number]>([
    // class 0: P=[.5,.75,.25,.1], T=[1,1,0,1]: I=1.35, S=1.6+3=4.6 → dice 2.7/4.6 = 0.586957
    // class 1: P=[.5,.25,.75,.9], T=[0,0,1,0]: I=0.75, S=2.4+1=3.4 → dice 1.5/3.4 = 0.441176
    ['all classes', {}, 1 - (2.7 / 4.6 + 1.5 / 3.4) / 2],
    ['ignoring background', { ignoreBackground: true }, 1 - 1.5 / 3.4],
    // w=[1,.5,0,.25]: class 0: I = .5+.375+.025 = .9, S = .9 + 1.75 = 2.65 → 1.8/2.65
    //                 class 1: I = 0, S = (.5+.125+0+.225) + 0 = .85 → 0
    ['pixel weights [1, .5, 0, .25]', { w: [1, 0.5, 0, 0.25] }, 1 - 1.8 / 2.65 / 2],
  ])('%s', (_name, o, expected) => {
    const got = value(() => softDiceLoss(logits(), labels(), { smooth: 0, ignoreBackground: o.ignoreBackground, weights: o.w && weights(o.w) }));
    expect(got).toBeCloseTo(expected, 5);
  });

  it('scores 0 loss when all weights are 0 (both sums 0: dice = s/s = 1)', () => {
    expect(value(() => softDiceLoss(logits(), labels(), { weights: weights([0, 0, 0, 0]) }))).toBe(0);
  });

  it('has exactly zero gradient at weight-0 pixels', () => {
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => softDiceLoss(z as tf.Tensor4D, labels(), { weights: weights([1, 0, 0.5, 0]) }))(logits()).dataSync());
    expect([g[2]!, g[3]!, g[6]!, g[7]!].map(Math.abs)).toEqual([0, 0, 0, 0]); // pixels 1 and 3 (w = 0)
    expect(Math.abs(g[0]!)).toBeGreaterThan(0);
  });
});

describe('segmentationLoss', () => {
  it('is ceWeight·CE + diceWeight·Dice', () => {
    const w = [1, 0.5, 0, 0.25];
    const [total, ce, dice] = tf.tidy(() => {
      const l = segmentationLoss(logits(), labels(), { weights: weights(w), ceWeight: 2, diceWeight: 0.5, smooth: 0 });
      return [l.total, l.ce, l.dice].map((t) => t.dataSync()[0]!);
    });
    expect(ce).toBeCloseTo(1.412634 / 1.75, 5);
    expect(dice).toBeCloseTo(1 - 1.8 / 2.65 / 2, 5);
    expect(total).toBeCloseTo(2 * (1.412634 / 1.75) + 0.5 * (1 - 1.8 / 2.65 / 2), 5);
  });

  it('applies the pixel weights to Dice only when diceUsesWeights (default true)', () => {
    const w = weights([1, 0.5, 0, 0.25]);
    const unweighted = value(() => segmentationLoss(logits(), labels(), { weights: w, diceUsesWeights: false, smooth: 0 }).dice);
    expect(unweighted).toBeCloseTo(1 - (2.7 / 4.6 + 1.5 / 3.4) / 2, 5);
    w.dispose();
  });

  it('matches a numpy reference on random tensors [2, 4, 6, 3]', () => {
    const z = tf.randomNormal<tf.Rank.R4>([2, 4, 6, 3], 0, 2, 'float32', 5);
    const y = tf.randomUniform<tf.Rank.R3>([2, 4, 6], 0, 3, 'int32', 6);
    const w = tf.randomUniform<tf.Rank.R3>([2, 4, 6], 0, 1, 'float32', 7);
    const ours = tf.tidy(() => {
      const l = segmentationLoss(z, y, { weights: w, ignoreBackground: true, smooth: 1e-5 });
      return [l.ce.dataSync()[0]!, l.dice.dataSync()[0]!];
    });
    const script = `
import json, sys, numpy as np
d = json.load(sys.stdin)
z = np.array(d['z'], dtype=np.float64).reshape(2, 4, 6, 3)
y = np.array(d['y']).reshape(2, 4, 6)
w = np.array(d['w'], dtype=np.float64).reshape(2, 4, 6)
ls = z - z.max(-1, keepdims=True); ls = ls - np.log(np.exp(ls).sum(-1, keepdims=True))
t = np.eye(3)[y]
ce = -(t * ls).sum(-1)
ce_loss = (w * ce).sum() / max(w.sum(), 1e-6)
p = np.exp(ls)[..., 1:]; t = t[..., 1:]; ww = w[..., None]
dice = (2 * (ww * p * t).sum((0, 1, 2)) + 1e-5) / ((ww * p).sum((0, 1, 2)) + (ww * t).sum((0, 1, 2)) + 1e-5)
print(json.dumps([ce_loss, 1 - dice.mean()]))
`;
    const input = JSON.stringify({ z: Array.from(z.dataSync()), y: Array.from(y.dataSync()), w: Array.from(w.dataSync()) });
    const ref = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input, encoding: 'utf8' })) as [number, number];
    expect(ours[0]).toBeCloseTo(ref[0], 5);
    expect(ours[1]).toBeCloseTo(ref[1], 5);
    tf.dispose([z, y, w]);
  });
});

describe('loss input checks', () => {
  it.each<[string, () => unknown, string]>([
    [
      'label map of the wrong size',
      () => weightedCrossEntropy(logits(), tf.zeros<tf.Rank.R3>([1, 2, 3], 'int32')),
      'weightedCrossEntropy: label map must be [1, 2, 2] like the logits, got [1, 2, 3]',
    ],
    ['float label map', () => weightedCrossEntropy(logits(), tf.zeros<tf.Rank.R3>([1, 2, 2])), 'weightedCrossEntropy: label map must be int32, got float32'],
    [
      'weights of the wrong size',
      () => softDiceLoss(logits(), labels(), { weights: tf.ones([1, 4]) as unknown as tf.Tensor3D }),
      'softDiceLoss: weights must be [1, 2, 2] (one per pixel), got [1, 4]',
    ],
    ['logits of rank 3', () => weightedCrossEntropy(tf.zeros([2, 2, 2]) as unknown as tf.Tensor4D, labels()), 'weightedCrossEntropy: logits must be [N, H, W, K] with K ≥ 2, got [2, 2, 2]'],
    ['negative ceWeight', () => segmentationLoss(logits(), labels(), { ceWeight: -1 }), 'segmentationLoss: ceWeight must be a finite number ≥ 0, got -1'],
  ])('rejects %s', (_name, call, message) => {
    tf.tidy(() => {
      expect(call).toThrow(new ModelInputError(message));
    });
  });
});
