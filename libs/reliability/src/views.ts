import { Rng, percentiles } from '@purify/imaging';

/**
 * Extra views of an image for the agreement features. The caller predicts
 * them (e.g. through the segmenter) and hands the probabilities to
 * `computeFeatures`.
 */

/**
 * Mirrors every row of `data` along its last axis (x), rows of `rowLength`
 * values: works for images `[z, y, x]` and probabilities `[K, z, y, x]` alike.
 * An involution: flipping twice gives the input back. Returns a new array.
 */
export function flipX<T extends Float32Array | Float64Array>(data: T, rowLength: number): T {
  if (!Number.isSafeInteger(rowLength) || rowLength < 1 || data.length % rowLength !== 0) {
    throw new RangeError(`flipX needs a row length ≥ 1 dividing ${data.length} values, got ${rowLength}`);
  }
  const out = new (data.constructor as new (n: number) => T)(data.length);
  for (let row = 0; row < data.length; row += rowLength) {
    for (let x = 0; x < rowLength; x++) out[row + x] = data[row + rowLength - 1 - x] as number;
  }
  return out;
}

/** Parameters of one appearance perturbation. */
export interface AppearancePerturbation {
  /** Gamma applied to the robust-range intensity t ∈ [0, 1]; log-uniform in [0.7, 1.5]. */
  readonly gamma: number;
  /** Contrast factor around the mean of t; uniform in [0.75, 1.25]. */
  readonly contrast: number;
}

/** The perturbation drawn for `seed` (deterministic: the same seed gives the same values). */
export function appearancePerturbation(seed: number): AppearancePerturbation {
  const rng = new Rng(seed);
  const gamma = Math.exp(rng.uniform(Math.log(0.7), Math.log(1.5)));
  const contrast = rng.uniform(0.75, 1.25);
  return { gamma, contrast };
}

/**
 * Appearance perturbation of a RAW image (HU or scanner units, any layout),
 * applied before the model's own normalisation so the segmenter sees an
 * ordinary input: with lo/hi the 1st/99th percentiles of the image,
 * t = (v − lo)/(hi − lo), t' = (clamp(t, 0, 1)^gamma − m)·contrast + m + (t − clamp(t, 0, 1))
 * (m = mean of clamp(t, 0, 1)), v' = lo + t'·(hi − lo). Values outside [lo, hi]
 * keep their distance to the range. A constant image is returned unchanged.
 */
export function perturbAppearance(raw: Float32Array, perturbation: AppearancePerturbation): Float32Array {
  const [lo, hi] = percentiles(raw, [1, 99]) as [number, number];
  const out = new Float32Array(raw.length);
  const range = hi - lo;
  if (!(range > 0)) {
    out.set(raw);
    return out;
  }
  let mean = 0;
  for (let i = 0; i < raw.length; i++) mean += Math.min(Math.max(((raw[i] as number) - lo) / range, 0), 1);
  mean /= raw.length;
  const { gamma, contrast } = perturbation;
  for (let i = 0; i < raw.length; i++) {
    const t = ((raw[i] as number) - lo) / range;
    const inside = Math.min(Math.max(t, 0), 1);
    const t2 = (Math.pow(inside, gamma) - mean) * contrast + mean + (t - inside);
    out[i] = lo + t2 * range;
  }
  return out;
}
