/**
 * Running observation normaliser: per-feature count, mean and sum of squared
 * deviations (M2), merged batch by batch with the parallel form of Welford's
 * algorithm (Chan et al.), all in float64. Immutable: `merged` returns a new
 * normaliser, so a policy version's normaliser never changes after it is made.
 */

/** Standard deviations are sqrt(variance + NORM_EPSILON). */
export const NORM_EPSILON = 1e-8;
/** Normalised features are clipped to ±NORM_CLIP. */
export const NORM_CLIP = 10;

export interface NormalizerState {
  /** Rows seen. */
  readonly count: number;
  /** Per-feature mean, length numFeatures. */
  readonly mean: readonly number[];
  /** Per-feature sum of squared deviations from the mean, length numFeatures. */
  readonly m2: readonly number[];
}

export class RunningNormalizer {
  private constructor(
    readonly count: number,
    private readonly meanValues: Float64Array,
    private readonly m2Values: Float64Array,
  ) {}

  /** Nothing seen yet: normalisation is the identity (then clipping). */
  static empty(numFeatures: number): RunningNormalizer {
    return new RunningNormalizer(0, new Float64Array(numFeatures), new Float64Array(numFeatures));
  }

  static fromState(state: NormalizerState): RunningNormalizer {
    return new RunningNormalizer(state.count, Float64Array.from(state.mean), Float64Array.from(state.m2));
  }

  get numFeatures(): number {
    return this.meanValues.length;
  }

  get state(): NormalizerState {
    return { count: this.count, mean: Array.from(this.meanValues), m2: Array.from(this.m2Values) };
  }

  get mean(): Float64Array {
    return this.meanValues.slice();
  }

  /** Population variance per feature (M2 / count); 1 when nothing was seen. */
  get variance(): Float64Array {
    const v = new Float64Array(this.numFeatures);
    for (let f = 0; f < v.length; f++) v[f] = this.count > 0 ? this.m2Values[f]! / this.count : 1;
    return v;
  }

  /**
   * A new normaliser that has also seen `numRows` rows of `rows`
   * ([numRows, numFeatures] row-major). The batch's own mean and M2 are computed
   * in two passes, then merged: δ = mean_b − mean_a, n = n_a + n_b,
   * mean = mean_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n.
   */
  merged(rows: ArrayLike<number>, numRows: number): RunningNormalizer {
    if (numRows === 0) return this;
    const width = this.numFeatures;
    const batchMean = new Float64Array(width);
    const batchM2 = new Float64Array(width);
    for (let r = 0; r < numRows; r++) for (let f = 0; f < width; f++) batchMean[f]! += rows[r * width + f]!;
    for (let f = 0; f < width; f++) batchMean[f]! /= numRows;
    for (let r = 0; r < numRows; r++) {
      for (let f = 0; f < width; f++) {
        const d = rows[r * width + f]! - batchMean[f]!;
        batchM2[f]! += d * d;
      }
    }
    return this.mergedWith(numRows, batchMean, batchM2);
  }

  /** Merges another normaliser's statistics (same width) into a new one. */
  mergedWith(countB: number, meanB: ArrayLike<number>, m2B: ArrayLike<number>): RunningNormalizer {
    const countA = this.count;
    const total = countA + countB;
    const mean = new Float64Array(this.numFeatures);
    const m2 = new Float64Array(this.numFeatures);
    for (let f = 0; f < mean.length; f++) {
      const delta = meanB[f]! - this.meanValues[f]!;
      mean[f] = this.meanValues[f]! + (delta * countB) / total;
      m2[f] = this.m2Values[f]! + m2B[f]! + (delta * delta * countA * countB) / total;
    }
    return new RunningNormalizer(total, mean, m2);
  }

  /**
   * (x − mean) / sqrt(variance + NORM_EPSILON), clipped to ±NORM_CLIP, for
   * `numRows` rows of [numRows, numFeatures] row-major; identity (clipped)
   * before any data was seen. Returns float32 of the same layout.
   */
  normalize(rows: ArrayLike<number>, numRows: number): Float32Array {
    const width = this.numFeatures;
    const out = new Float32Array(numRows * width);
    const shift = new Float64Array(width);
    const scale = new Float64Array(width).fill(1);
    if (this.count > 0) {
      for (let f = 0; f < width; f++) {
        shift[f] = this.meanValues[f]!;
        scale[f] = 1 / Math.sqrt(this.m2Values[f]! / this.count + NORM_EPSILON);
      }
    }
    for (let r = 0; r < numRows; r++) {
      for (let f = 0; f < width; f++) {
        const z = (rows[r * width + f]! - shift[f]!) * scale[f]!;
        out[r * width + f] = z > NORM_CLIP ? NORM_CLIP : z < -NORM_CLIP ? -NORM_CLIP : z;
      }
    }
    return out;
  }
}
