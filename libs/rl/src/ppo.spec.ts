import * as tf from '@tensorflow/tfjs';
import { selectRlBackend } from './backend';
import { Adam, clipByGlobalNorm, ppoLoss, type PpoLossSettings } from './ppo';

beforeAll(async () => {
  await selectRlBackend();
});

/** Evaluates the loss terms on plain arrays (one row per array element). */
function terms(rows: { logProb: number; oldLogProb: number; adv: number; value: number; oldValue: number; ret: number; entropy: number }[], settings: PpoLossSettings) {
  return tf.tidy(() => {
    const col = (k: keyof (typeof rows)[number]) => tf.tensor1d(rows.map((r) => r[k]));
    const t = ppoLoss(
      { logProbs: col('logProb'), oldLogProbs: col('oldLogProb'), advantages: col('adv'), values: col('value'), oldValues: col('oldValue'), returns: col('ret'), entropies: col('entropy') },
      settings,
    );
    return {
      total: t.total.dataSync()[0]!,
      policyLoss: t.policyLoss.dataSync()[0]!,
      valueLoss: t.valueLoss.dataSync()[0]!,
      entropy: t.entropy.dataSync()[0]!,
      approxKl: t.approxKl.dataSync()[0]!,
    };
  });
}

describe('ppoLoss', () => {
  // Three rows, ε = 0.2:
  //   ratio 1.5, A =  1: min(1.5, clip→1.2)·1      = 1.2   (clipped: no incentive beyond 1 + ε)
  //   ratio 0.5, A = −1: min(−0.5, clip→0.8·−1)    = −0.8  (clipped: pessimistic bound)
  //   ratio 1.0, A =  2: 2
  // policyLoss = −(1.2 − 0.8 + 2)/3 = −0.8
  // values [1, 0, 2] vs returns [0, 0, 1]: valueLoss = ½·(1 + 0 + 1)/3 = 1/3
  // entropies [0.3, 0.6, 0.9]: entropy 0.6
  // approxKl = mean((ρ − 1) − ln ρ) = ((0.5 − ln 1.5) + (−0.5 − ln 0.5) + 0)/3 = 0.0721318…
  // total = −0.8 + 0.5·(1/3) − 0.01·0.6 = −0.639333…
  const rows = [
    { logProb: Math.log(1.5), oldLogProb: 0, adv: 1, value: 1, oldValue: 1, ret: 0, entropy: 0.3 },
    { logProb: Math.log(0.5), oldLogProb: 0, adv: -1, value: 0, oldValue: 0, ret: 0, entropy: 0.6 },
    { logProb: -0.7, oldLogProb: -0.7, adv: 2, value: 2, oldValue: 2, ret: 1, entropy: 0.9 },
  ];
  const settings = { clipRatio: 0.2, valueCoef: 0.5, entropyCoef: 0.01, valueClip: 0 };

  it('clipped surrogate, value loss, entropy, KL and total on a hand example', () => {
    const t = terms(rows, settings);
    expect(t.policyLoss).toBeCloseTo(-0.8, 6);
    expect(t.valueLoss).toBeCloseTo(1 / 3, 6);
    expect(t.entropy).toBeCloseTo(0.6, 6);
    expect(t.approxKl).toBeCloseTo((0.5 - Math.log(1.5) + (-0.5 - Math.log(0.5))) / 3, 6);
    expect(t.total).toBeCloseTo(-0.8 + 0.5 / 3 - 0.006, 6);
  });

  it('unclipped where the ratio stays inside [1 − ε, 1 + ε]: ratio 1.1, A = 1 → policyLoss −1.1', () => {
    expect(terms([{ ...rows[0]!, logProb: Math.log(1.1) }], settings).policyLoss).toBeCloseTo(-1.1, 6);
  });

  it('value clipping takes the larger error: V 3, V_old 1, R 2.5, c 0.5 → max((0.5)², (1.5 − 2.5)²)/2 = 0.5', () => {
    // Unclipped the error would be (3 − 2.5)² / 2 = 0.125.
    const row = { ...rows[2]!, value: 3, oldValue: 1, ret: 2.5 };
    expect(terms([row], settings).valueLoss).toBeCloseTo(0.125, 6);
    expect(terms([row], { ...settings, valueClip: 0.5 }).valueLoss).toBeCloseTo(0.5, 6);
  });
});

describe('clipByGlobalNorm', () => {
  it.each([
    // grads [3, 4] and [12]: global norm √(9 + 16 + 144) = 13
    ['clips to norm 6.5: every gradient × 0.5', 6.5, [1.5, 2, 6]],
    ['leaves gradients under the limit alone', 20, [3, 4, 12]],
    ['0 disables clipping', 0, [3, 4, 12]],
  ])('%s', (_name, maxNorm, expected) => {
    const [norm, values] = tf.tidy(() => {
      const out = clipByGlobalNorm([tf.tensor1d([3, 4]), tf.tensor1d([12])], maxNorm);
      return [out.norm.dataSync()[0]!, [...out.grads[0]!.dataSync(), ...out.grads[1]!.dataSync()]];
    });
    expect(norm).toBeCloseTo(13, 5);
    expected.forEach((v, i) => expect(values[i]).toBeCloseTo(v, 5));
  });
});

describe('Adam', () => {
  it('hand example: two steps on p = [1, −2] with lr 0.1', () => {
    // Step 1, g = [0.5, −4]: m̂ = g, v̂ = g², p ← p − 0.1·g/(|g| + 1e-5) ≈ [0.9, −1.9]
    // Step 2, g = [0.5, 4] (sign flipped on the second entry): computed in float64 below from the same formulas.
    const lr = 0.1;
    const g1 = [0.5, -4];
    const g2 = [0.5, 4];
    let m = g1.map((g) => 0.1 * g);
    let v = g1.map((g) => 0.001 * g * g);
    const p1 = [1, -2].map((p, i) => p - (lr * (m[i]! / 0.1)) / (Math.sqrt(v[i]! / 0.001) + 1e-5));
    m = m.map((mi, i) => 0.9 * mi + 0.1 * g2[i]!);
    v = v.map((vi, i) => 0.999 * vi + 0.001 * g2[i]! ** 2);
    const p2 = p1.map((p, i) => p - (lr * (m[i]! / (1 - 0.81))) / (Math.sqrt(v[i]! / (1 - 0.999 ** 2)) + 1e-5));

    const before = tf.memory().numTensors;
    const p0 = tf.tensor1d([1, -2]);
    const adam = new Adam([p0], lr);
    const [q1] = tf.tidy(() => adam.step([p0], [tf.tensor1d(g1)]));
    const [q2] = tf.tidy(() => adam.step([q1!], [tf.tensor1d(g2)]));
    const got1 = q1!.dataSync();
    const got2 = q2!.dataSync();
    p1.forEach((p, i) => expect(got1[i]).toBeCloseTo(p, 5));
    p2.forEach((p, i) => expect(got2[i]).toBeCloseTo(p, 5));
    expect(Array.from(p0.dataSync())).toEqual([1, -2]); // the input parameters are not modified
    tf.dispose([p0, q1!, q2!]);
    adam.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
