import * as tf from '@tensorflow/tfjs';

/**
 * Special functions for the Beta distribution, in two forms:
 * - scalar float64 (`lgamma`, `digamma`, `betaLogProb`, `betaEntropy`), accurate
 *   to ~1e-14 relative, for references and analysis;
 * - tfjs float32 tensor versions (`lgammaT`, `digammaT`, `betaLogProbT`,
 *   `betaEntropyT`) built from differentiable ops, so PPO gets exact
 *   gradients of the Beta log-density and entropy through autodiff.
 * Both use the recurrence to shift the argument up, then the Stirling
 * (lgamma) or asymptotic (digamma) series. Domain: x > 0 (NaN otherwise).
 */

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** ln Γ(x) for x > 0 (float64). */
export function lgamma(x: number): number {
  if (!(x > 0)) return Number.NaN;
  if (x === Infinity) return Infinity;
  // ln Γ(x) = ln Γ(x + k) − ln(x (x+1) … (x+k−1)); at most 10 factors below 10, so no overflow.
  let product = 1;
  while (x < 10) {
    product *= x;
    x += 1;
  }
  const shift = Math.log(product);
  const r = 1 / x;
  const r2 = r * r;
  // Stirling: 1/12x − 1/360x³ + 1/1260x⁵ − 1/1680x⁷ + 1/1188x⁹
  const series = r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))));
  return (x - 0.5) * Math.log(x) - x + HALF_LOG_2PI + series - shift;
}

/** ψ(x) = d/dx ln Γ(x) for x > 0 (float64). */
export function digamma(x: number): number {
  if (!(x > 0)) return Number.NaN;
  if (x === Infinity) return Infinity;
  let acc = 0;
  while (x < 10) {
    acc -= 1 / x;
    x += 1;
  }
  const r2 = 1 / (x * x);
  // ln x − 1/2x − 1/12x² + 1/120x⁴ − 1/252x⁶ + 1/240x⁸ − 1/132x¹⁰
  const series = r2 * (1 / 12 - r2 * (1 / 120 - r2 * (1 / 252 - r2 * (1 / 240 - r2 / 132))));
  return acc + Math.log(x) - 0.5 / x - series;
}

/** ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b) (float64). */
export function lbeta(a: number, b: number): number {
  return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/** log density of Beta(alpha, beta) at x ∈ (0, 1) (float64). */
export function betaLogProb(alpha: number, beta: number, x: number): number {
  return (alpha - 1) * Math.log(x) + (beta - 1) * Math.log1p(-x) - lbeta(alpha, beta);
}

/** Differential entropy of Beta(alpha, beta) in nats (float64). */
export function betaEntropy(alpha: number, beta: number): number {
  return lbeta(alpha, beta) - (alpha - 1) * digamma(alpha) - (beta - 1) * digamma(beta) + (alpha + beta - 2) * digamma(alpha + beta);
}

/** The recurrence shift of the tensor versions: x + SHIFT ≥ 6 for x > 0, where the short series is accurate to float32. */
const SHIFT = 6;

/** ln Γ(x), elementwise, x > 0 (float32 tensor; differentiable). */
export function lgammaT(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    let logProduct: tf.Tensor = tf.log(x);
    for (let i = 1; i < SHIFT; i++) logProduct = tf.add(logProduct, tf.log(tf.add(x, i)));
    const z = tf.add(x, SHIFT);
    const r = tf.reciprocal(z);
    const r2 = tf.square(r);
    // 1/12z − 1/360z³ + 1/1260z⁵ (next term < 2e-9 for z ≥ 6)
    const series = tf.mul(r, tf.sub(1 / 12, tf.mul(r2, tf.sub(1 / 360, tf.mul(r2, 1 / 1260)))));
    const stirling = tf.add(tf.sub(tf.mul(tf.sub(z, 0.5), tf.log(z)), z), tf.add(series, HALF_LOG_2PI));
    return tf.sub(stirling, logProduct);
  });
}

/** ψ(x), elementwise, x > 0 (float32 tensor; differentiable). */
export function digammaT(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    let recipSum: tf.Tensor = tf.reciprocal(x);
    for (let i = 1; i < SHIFT; i++) recipSum = tf.add(recipSum, tf.reciprocal(tf.add(x, i)));
    const z = tf.add(x, SHIFT);
    const r2 = tf.reciprocal(tf.square(z));
    // ln z − 1/2z − 1/12z² + 1/120z⁴ − 1/252z⁶
    const series = tf.mul(r2, tf.sub(1 / 12, tf.mul(r2, tf.sub(1 / 120, tf.mul(r2, 1 / 252)))));
    return tf.sub(tf.sub(tf.sub(tf.log(z), tf.div(0.5, z)), series), recipSum);
  });
}

function lbetaT(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.sub(tf.add(lgammaT(a), lgammaT(b)), lgammaT(tf.add(a, b)));
}

/**
 * Log-density at x ∈ (0, 1) and differential entropy (nats) of Beta(alpha, beta),
 * elementwise over float32 tensors of one shape, sharing ln B(α, β):
 *   log p(x) = (α − 1) ln x + (β − 1) ln(1 − x) − ln B(α, β)
 *   H        = ln B(α, β) − (α − 1) ψ(α) − (β − 1) ψ(β) + (α + β − 2) ψ(α + β)
 */
export function betaTermsT(alpha: tf.Tensor, beta: tf.Tensor, x: tf.Tensor): { logProb: tf.Tensor; entropy: tf.Tensor } {
  return tf.tidy(() => {
    const lb = lbetaT(alpha, beta);
    const am1 = tf.sub(alpha, 1);
    const bm1 = tf.sub(beta, 1);
    const logProb = tf.sub(tf.add(tf.mul(am1, tf.log(x)), tf.mul(bm1, tf.log1p(tf.neg(x)))), lb);
    const sum = tf.add(alpha, beta);
    const entropy = tf.add(lb, tf.sub(tf.mul(tf.sub(sum, 2), digammaT(sum)), tf.add(tf.mul(am1, digammaT(alpha)), tf.mul(bm1, digammaT(beta)))));
    return { logProb, entropy };
  });
}

/** log density of Beta(alpha, beta) at x ∈ (0, 1), elementwise (float32 tensors of one shape). */
export function betaLogProbT(alpha: tf.Tensor, beta: tf.Tensor, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(tf.add(tf.mul(tf.sub(alpha, 1), tf.log(x)), tf.mul(tf.sub(beta, 1), tf.log1p(tf.neg(x)))), lbetaT(alpha, beta)));
}

/** Differential entropy (nats) of Beta(alpha, beta), elementwise. */
export function betaEntropyT(alpha: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const sum = tf.add(alpha, beta);
    const terms = tf.sub(tf.mul(tf.sub(sum, 2), digammaT(sum)), tf.add(tf.mul(tf.sub(alpha, 1), digammaT(alpha)), tf.mul(tf.sub(beta, 1), digammaT(beta))));
    return tf.add(lbetaT(alpha, beta), terms);
  });
}
