import * as tf from '@tensorflow/tfjs';
import { selectRlBackend } from './backend';
import { python } from './oracle.test-util';
import { betaEntropy, betaEntropyT, betaLogProb, betaLogProbT, betaTermsT, digamma, digammaT, lgamma, lgammaT } from './special';

// Arguments spanning the shift region (< 10), the series region and large values.
const XS = [1e-3, 0.1, 0.5, 1, 1.5, 1.693, 2, 3.7, 9.99, 10, 25.3, 150, 1e4];
// (α, β, x) for Beta densities: α, β > 1 as the policy produces them, plus < 1 for the scalar form.
const BETA_CASES: [number, number, number][] = [
  [1.693, 1.693, 0.5],
  [2, 5, 0.1],
  [1.01, 30, 1e-6],
  [30, 1.01, 1 - 1e-6],
  [12.5, 3.25, 0.8],
  [45, 45, 0.52],
  [0.5, 0.5, 0.3],
];

interface Reference {
  lgamma: number[];
  digamma: number[];
  logpdf: number[];
  entropy: number[];
  /** The same at the float32-rounded (α, β, x) that the tensor versions receive. */
  logpdf32: number[];
  entropy32: number[];
}

let ref: Reference;

beforeAll(async () => {
  await selectRlBackend();
  // scipy.special.gammaln / psi and scipy.stats.beta, computed in float64.
  ref = python<Reference>(`
import json
import numpy as np
from scipy import special, stats
xs = ${JSON.stringify(XS)}
cases = ${JSON.stringify(BETA_CASES)}
cases32 = [[np.float32(v).item() for v in c] for c in cases]
print(json.dumps({
  'lgamma': [float(special.gammaln(x)) for x in xs],
  'digamma': [float(special.psi(x)) for x in xs],
  'logpdf': [float(stats.beta.logpdf(x, a, b)) for a, b, x in cases],
  'entropy': [float(stats.beta(a, b).entropy()) for a, b, _ in cases],
  'logpdf32': [float(stats.beta.logpdf(x, a, b)) for a, b, x in cases32],
  'entropy32': [float(stats.beta(a, b).entropy()) for a, b, _ in cases32],
}))`);
});

describe('scalar special functions (float64) vs scipy', () => {
  it.each([
    // [x, exact value]: Γ(1) = Γ(2) = 1; Γ(1/2) = √π; ψ(1) = −γ (Euler–Mascheroni); ψ(1/2) = −γ − 2 ln 2
    ['lgamma(1) = 0', () => lgamma(1), 0],
    ['lgamma(2) = 0', () => lgamma(2), 0],
    ['lgamma(0.5) = ln √π', () => lgamma(0.5), 0.5 * Math.log(Math.PI)],
    ['lgamma(6) = ln 120', () => lgamma(6), Math.log(120)],
    ['digamma(1) = −γ', () => digamma(1), -0.5772156649015329],
    ['digamma(0.5) = −γ − 2 ln 2', () => digamma(0.5), -0.5772156649015329 - 2 * Math.LN2],
  ])('%s (hand values)', (_name, f, expected) => {
    expect(f()).toBeCloseTo(expected, 13);
  });

  it('lgamma and digamma match scipy.special.gammaln/psi to 1e-13 relative at 13 points in [1e-3, 1e4]', () => {
    XS.forEach((x, i) => {
      expect(Math.abs(lgamma(x) - ref.lgamma[i]!)).toBeLessThanOrEqual(1e-13 * Math.max(1, Math.abs(ref.lgamma[i]!)));
      expect(Math.abs(digamma(x) - ref.digamma[i]!)).toBeLessThanOrEqual(1e-13 * Math.max(1, Math.abs(ref.digamma[i]!)));
    });
  });

  it('Beta log-density and entropy match scipy.stats.beta to 1e-10', () => {
    // The entropy formula cancels terms of size ~(α+β)·ψ(α+β) (~400 at α = β = 45), so both sides round at ~1e-11.
    BETA_CASES.forEach(([a, b, x], i) => {
      expect(betaLogProb(a, b, x)).toBeCloseTo(ref.logpdf[i]!, 10);
      expect(betaEntropy(a, b)).toBeCloseTo(ref.entropy[i]!, 10);
    });
  });

  it.each([
    // Domain is x > 0: 0, negatives and NaN give NaN.
    [0],
    [-1.5],
    [Number.NaN],
  ])('lgamma and digamma of %p are NaN (outside the domain x > 0)', (x) => {
    expect(lgamma(x)).toBeNaN();
    expect(digamma(x)).toBeNaN();
  });
});

describe('tensor special functions (float32, differentiable) vs scipy', () => {
  it('lgammaT and digammaT match scipy to float32 accuracy (1e-5 relative)', () => {
    const [lg, dg] = tf.tidy(() => {
      const x = tf.tensor1d(XS);
      return [lgammaT(x).dataSync(), digammaT(x).dataSync()];
    });
    XS.forEach((_, i) => {
      expect(Math.abs(lg[i]! - ref.lgamma[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ref.lgamma[i]!)));
      expect(Math.abs(dg[i]! - ref.digamma[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ref.digamma[i]!)));
    });
  });

  it('betaLogProbT / betaEntropyT / betaTermsT match scipy.stats.beta (abs 1e-4 up to α, β = 45)', () => {
    // Compared with scipy at the float32-rounded inputs (rounding x = 1 − 1e-6 alone moves ln(1 − x) by 1.3 %).
    const cases = BETA_CASES.filter(([a, b]) => a > 1 && b > 1);
    const [lp, h, terms] = tf.tidy(() => {
      const a = tf.tensor1d(cases.map((c) => c[0]));
      const b = tf.tensor1d(cases.map((c) => c[1]));
      const x = tf.tensor1d(cases.map((c) => c[2]));
      const t = betaTermsT(a, b, x);
      return [betaLogProbT(a, b, x).dataSync(), betaEntropyT(a, b).dataSync(), [t.logProb.dataSync(), t.entropy.dataSync()]];
    });
    cases.forEach((c, i) => {
      const k = BETA_CASES.indexOf(c);
      expect(Math.abs(lp[i]! - ref.logpdf32[k]!)).toBeLessThan(1e-4);
      expect(Math.abs(h[i]! - ref.entropy32[k]!)).toBeLessThan(1e-4);
      expect(terms[0]![i]).toBe(lp[i]);
      expect(terms[1]![i]).toBe(h[i]);
    });
  });

  it('d/dx lgammaT = digamma and d/dx digammaT = trigamma (scipy polygamma(1, x)) through autodiff', () => {
    const xs = [1.2, 2.5, 7, 40];
    const trigamma = python<number[]>(`import json; from scipy import special; print(json.dumps([float(special.polygamma(1, x)) for x in ${JSON.stringify(xs)}]))`);
    const [g1, g2] = tf.tidy(() => {
      const x = tf.tensor1d(xs);
      return [tf.grad((v: tf.Tensor) => tf.sum(lgammaT(v)))(x).dataSync(), tf.grad((v: tf.Tensor) => tf.sum(digammaT(v)))(x).dataSync()];
    });
    xs.forEach((x, i) => {
      expect(g1[i]).toBeCloseTo(digamma(x), 5);
      expect(g2[i]).toBeCloseTo(trigamma[i]!, 5);
    });
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor1d([1.5, 2.5]);
    tf.dispose([lgammaT(x), digammaT(x), betaLogProbT(x, x, tf.scalar(0.3)), betaEntropyT(x, x), x]);
    // betaLogProbT's scalar argument above is the only tensor made outside a tidy; it is not in the dispose list.
    expect(tf.memory().numTensors).toBe(before + 1);
  });
});
