/**
 * Per-pixel supervision weights of the target pseudo-labels, one function per
 * weighting strategy (DESIGN.md §4 baselines). Pure and synchronous.
 *
 * Layouts: class probabilities `[K, z, y, x]` float32 (C-ordered, x fastest,
 * softmax over K — the layout of the segmenter and reliability contracts);
 * label maps and weight maps `[z, y, x]`. Weights are in [0, 1]. An "image" is
 * one axial slice (the 2D working unit), so per-image quantities are per slice.
 * Entropies use natural logarithms with 0·log 0 = 0.
 */
import { AdaptationConfigError } from './errors';

/** DAFormer's confidence threshold. */
export const DAFORMER_THRESHOLD = 0.968;

function checkProbs(probs: Float32Array, k: number, shapeZyx: readonly [number, number, number], field: string): number {
  const n = shapeZyx[0] * shapeZyx[1] * shapeZyx[2];
  if (!Number.isInteger(k) || k < 2) throw new AdaptationConfigError('numClasses', `numClasses must be an integer ≥ 2, got ${k}`);
  if (probs.length !== k * n) {
    throw new AdaptationConfigError(field, `${field} must hold [K, z, y, x] = [${k}, ${shapeZyx.join(', ')}] = ${k * n} values, got ${probs.length}`);
  }
  return n;
}

/** argmax over K of `[K, z, y, x]` probabilities → `[z, y, x]` class indices (ties → the lower class). */
export function argmaxLabels(probs: Float32Array, k: number, shapeZyx: readonly [number, number, number]): Uint8Array {
  const n = checkProbs(probs, k, shapeZyx, 'probabilities');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestP = probs[i] as number;
    for (let c = 1; c < k; c++) {
      const p = probs[c * n + i] as number;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    out[i] = best;
  }
  return out;
}

/** `naive`: every pseudo-labelled pixel at weight 1. */
export function naiveWeights(shapeZyx: readonly [number, number, number]): Float32Array {
  return new Float32Array(shapeZyx[0] * shapeZyx[1] * shapeZyx[2]).fill(1);
}

/**
 * `confidence` (DAFormer): per slice s the quality q_s = (pixels with max-prob ≥ τ) / (pixels of s);
 * w(x) = q_s · [max_c p_c(x) ≥ τ]. (DAFormer's reference code gives every pixel
 * the weight q_s; the pixel mask is the threshold part of the method as
 * DESIGN.md states it.)
 */
export function confidenceWeights(probs: Float32Array, k: number, shapeZyx: readonly [number, number, number], threshold = DAFORMER_THRESHOLD): Float32Array {
  const n = checkProbs(probs, k, shapeZyx, 'probabilities');
  if (!(threshold > 0 && threshold <= 1)) throw new AdaptationConfigError('threshold', `threshold must be in (0, 1], got ${threshold}`);
  const hw = shapeZyx[1] * shapeZyx[2];
  const above = new Uint8Array(n);
  const out = new Float32Array(n);
  for (let s = 0; s < shapeZyx[0]; s++) {
    let count = 0;
    for (let i = s * hw; i < (s + 1) * hw; i++) {
      let max = 0;
      for (let c = 0; c < k; c++) max = Math.max(max, probs[c * n + i] as number);
      if (max >= threshold) {
        above[i] = 1;
        count++;
      }
    }
    const q = count / hw;
    for (let i = s * hw; i < (s + 1) * hw; i++) out[i] = above[i] === 1 ? q : 0;
  }
  return out;
}

/** Normalised entropy H(p)/log K of pixel i of `[K, n]` probabilities, in [0, 1]. */
function normEntropy(probs: Float32Array, i: number, n: number, k: number): number {
  let h = 0;
  for (let c = 0; c < k; c++) {
    const p = probs[c * n + i] as number;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.min(1, Math.max(0, h / Math.log(k)));
}

/** `entropy`: w(x) = 1 − H(p(x)) / log K. */
export function entropyWeights(probs: Float32Array, k: number, shapeZyx: readonly [number, number, number]): Float32Array {
  const n = checkProbs(probs, k, shapeZyx, 'probabilities');
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 - normEntropy(probs, i, n, k);
  return out;
}

/**
 * `consensus` (in the spirit of FPL+): the pixel term is the dual-view
 * agreement a(x) = [argmax p(x) = argmax p_view(x)] between the prediction on
 * the image and on an appearance-translated view; the image term is
 * u_s = 1 − mean over the slice of H(p̄(x))/log K with p̄ = (p + p_view)/2.
 * w(x) = a(x) · u_s.
 */
export function consensusWeights(probs: Float32Array, viewProbs: Float32Array, k: number, shapeZyx: readonly [number, number, number]): Float32Array {
  const n = checkProbs(probs, k, shapeZyx, 'probabilities');
  checkProbs(viewProbs, k, shapeZyx, 'viewProbabilities');
  const main = argmaxLabels(probs, k, shapeZyx);
  const view = argmaxLabels(viewProbs, k, shapeZyx);
  const hw = shapeZyx[1] * shapeZyx[2];
  const mean = new Float32Array(k * n);
  for (let i = 0; i < k * n; i++) mean[i] = ((probs[i] as number) + (viewProbs[i] as number)) / 2;
  const out = new Float32Array(n);
  for (let s = 0; s < shapeZyx[0]; s++) {
    let h = 0;
    for (let i = s * hw; i < (s + 1) * hw; i++) h += normEntropy(mean, i, n, k);
    const u = 1 - h / hw;
    for (let i = s * hw; i < (s + 1) * hw; i++) out[i] = main[i] === view[i] ? u : 0;
  }
  return out;
}

/** `rule`: region weight 1 where the reliability score is ≥ τ, else 0. */
export function thresholdRegionWeights(scores: Float32Array, threshold: number): Float32Array {
  if (!(threshold >= 0 && threshold <= 1)) throw new AdaptationConfigError('threshold', `threshold must be in [0, 1], got ${threshold}`);
  return scores.map((s) => (s >= threshold ? 1 : 0));
}

/** Pixel weight map `[z, y, x]`: W(x) = w[region(x)] (DESIGN.md §4 step 5). */
export function regionPixelWeights(regionWeights: Float32Array, regionIndex: Int32Array | Float32Array): Float32Array {
  const out = new Float32Array(regionIndex.length);
  for (let i = 0; i < regionIndex.length; i++) {
    const r = regionIndex[i] as number;
    const w = regionWeights[r];
    if (!Number.isInteger(r) || w === undefined) {
      throw new AdaptationConfigError('regionIndex', `regionIndex[${i}] = ${r} is not a region index in [0, ${regionWeights.length - 1}]`);
    }
    out[i] = w;
  }
  return out;
}

/** Summary of a set of weight maps (proto `WeightStats`). */
export interface WeightStatistics {
  readonly mean: number;
  /** Population standard deviation. */
  readonly std: number;
  /** Fraction of pixels with weight exactly 0. */
  readonly zeroFraction: number;
  /** Counts in `bins` equal bins over [0, 1]; the last bin includes 1. */
  readonly histogram: readonly number[];
  readonly pixels: number;
}

/** Mean, std, zero fraction and histogram of all pixels of `maps` (float64 accumulation). */
export function weightStatistics(maps: readonly Float32Array[], bins = 10): WeightStatistics {
  const histogram = new Array<number>(bins).fill(0);
  let n = 0;
  let sum = 0;
  let sq = 0;
  let zeros = 0;
  for (const m of maps) {
    for (let i = 0; i < m.length; i++) {
      const w = m[i] as number;
      n++;
      sum += w;
      sq += w * w;
      if (w === 0) zeros++;
      histogram[Math.min(bins - 1, Math.max(0, Math.floor(w * bins)))]! += 1;
    }
  }
  if (n === 0) return { mean: 0, std: 0, zeroFraction: 0, histogram, pixels: 0 };
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), zeroFraction: zeros / n, histogram, pixels: n };
}
