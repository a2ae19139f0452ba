/**
 * Per-pixel measures on class-probability vectors. A probability map is
 * float32 `[K, …]` (class axis first, as the segmenter streams it); the
 * functions here read one pixel's K values at `offset + k·stride`.
 * Terms with p = 0 contribute 0 (0·log 0 = 0).
 */

const LN2 = Math.LN2;

/** Shannon entropy in nats of the K values at `p[offset + k·stride]`. */
export function entropyAt(p: ArrayLike<number>, offset: number, stride: number, k: number): number {
  let h = 0;
  for (let c = 0; c < k; c++) {
    const v = p[offset + c * stride] as number;
    if (v > 0) h -= v * Math.log(v);
  }
  return h;
}

/** Entropy divided by log K, in [0, 1] for a distribution; 0 when K = 1. */
export function normalizedEntropyAt(p: ArrayLike<number>, offset: number, stride: number, k: number): number {
  return k > 1 ? entropyAt(p, offset, stride, k) / Math.log(k) : 0;
}

/**
 * Jensen–Shannon divergence in bits (log base 2) between the K-vectors at
 * `p[offset + k·stride]` and `q[offset + k·stride]`:
 * JS = ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2; in [0, 1] for distributions.
 */
export function jsDivergenceAt(p: ArrayLike<number>, q: ArrayLike<number>, offset: number, stride: number, k: number): number {
  let js = 0;
  for (let c = 0; c < k; c++) {
    const a = p[offset + c * stride] as number;
    const b = q[offset + c * stride] as number;
    const m = (a + b) / 2;
    if (a > 0) js += a * Math.log(a / m);
    if (b > 0) js += b * Math.log(b / m);
  }
  // Rounding can leave a tiny negative value for identical inputs.
  return Math.max(0, js / (2 * LN2));
}

/** Index of the largest of the K values (the lowest index wins ties). */
export function argmaxAt(p: ArrayLike<number>, offset: number, stride: number, k: number): number {
  let best = 0;
  let bestValue = p[offset] as number;
  for (let c = 1; c < k; c++) {
    const v = p[offset + c * stride] as number;
    if (v > bestValue) {
      bestValue = v;
      best = c;
    }
  }
  return best;
}

/** The largest of the K values. */
export function maxAt(p: ArrayLike<number>, offset: number, stride: number, k: number): number {
  let best = p[offset] as number;
  for (let c = 1; c < k; c++) best = Math.max(best, p[offset + c * stride] as number);
  return best;
}

/**
 * Gaussian stitching weights of a P × P patch, Float64Array `[y, x]`:
 * w(y, x) = exp(−((y − c)² + (x − c)²) / (2σ²)) with c = (P − 1)/2 (the patch
 * centre, between pixels for even P) and σ = sigmaFraction · P. The maximum is
 * 1 (at the centre pixels); the map is symmetric under flips and transposition.
 * Stitching divides by the summed weights per pixel, so only ratios matter.
 */
export function gaussianWeights(patchSize: number, sigmaFraction: number): Float64Array {
  const c = (patchSize - 1) / 2;
  const sigma = sigmaFraction * patchSize;
  const out = new Float64Array(patchSize * patchSize);
  let max = 0;
  for (let y = 0; y < patchSize; y++) {
    for (let x = 0; x < patchSize; x++) {
      const v = Math.exp(-((y - c) ** 2 + (x - c) ** 2) / (2 * sigma * sigma));
      out[y * patchSize + x] = v;
      max = Math.max(max, v);
    }
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / max;
  return out;
}
