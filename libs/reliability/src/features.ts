import { ReliabilityError } from './errors';
import { buildRegions, type AnchorGrid, type Region } from './grid';
import { argmaxAt, jsDivergenceAt, maxAt, normalizedEntropyAt } from './measures';
import { CLASS_FRACTION_COLUMNS, FEATURE_INDEX, NUM_FEATURES } from './schema';
import type { Composition } from './decompose';

export interface FeatureInputs {
  readonly grid: AnchorGrid;
  /** Whole-image class probabilities p_full, float32 `[K, z, y, x]`. */
  readonly whole: Float32Array;
  readonly composition: Composition;
  /** Probabilities of the horizontally flipped image, flipped back to the image frame (see `flipX`), `[K, z, y, x]`. */
  readonly flip?: Float32Array | undefined;
  /** Probabilities of the appearance-perturbed image, `[K, z, y, x]`. */
  readonly appearance?: Float32Array | undefined;
  /** Adaptation round (context feature). */
  readonly round?: number;
  readonly splitByClass?: boolean;
}

/** Per-pixel maps, each float32 `[z, y, x]`. */
export interface ReliabilityMaps {
  /** Per-pixel reliability in [0, 1] (see {@link pixelReliability}). */
  readonly reliability: Float32Array;
  /** argmax of p_full, as float class index. */
  readonly pseudoLabel: Float32Array;
  /** argmax of p_comp, as float class index. */
  readonly composedLabel: Float32Array;
  /** Mean over classes of the variance across overlapping patches, [0, 0.25]. */
  readonly patchVariance: Float32Array;
  /** JS divergence (bits) between p_full and p_comp, [0, 1]. */
  readonly jsDivergence: Float32Array;
  /** Region index of every pixel (as float). */
  readonly regionIndex: Float32Array;
  /** max over classes of p_full: the whole-image prediction's confidence, [0, 1]. */
  readonly maxProbability: Float32Array;
}

export interface ReliabilityResult {
  readonly grid: AnchorGrid;
  readonly numClasses: number;
  readonly regions: readonly Region[];
  /** Row-major `[regions, NUM_FEATURES]`, columns per `FEATURE_SCHEMA`, raw (not normalised). */
  readonly features: Float32Array;
  /** Region reliability score in [0, 1] (higher = more reliable). */
  readonly scores: Float32Array;
  /** Mean per-pixel reliability of each slice, `[z]`. */
  readonly sliceScores: Float32Array;
  readonly maps: ReliabilityMaps;
}

/**
 * The fixed per-pixel reliability (schema v1): a product of agreement and
 * confidence terms, each in [0, 1] and 1 when perfectly reliable,
 *
 *   r = (1 − H/log K) · (1 − JS(p_full, p_comp)) · (1 − 4·var)
 *       · (1 − JS(p_full, p_flip))       [when the flip view is given]
 *       · (1 − JS(p_full, p_appearance)) [when the appearance view is given]
 *
 * with JS in bits and var the mean-over-classes patch variance (≤ 0.25).
 */
export function pixelReliability(entropyNorm: number, js: number, variance: number, flipJs: number, appearanceJs: number): number {
  const r = (1 - entropyNorm) * (1 - js) * (1 - 4 * variance) * (1 - flipJs) * (1 - appearanceJs);
  return Math.min(1, Math.max(0, r));
}

const F = NUM_FEATURES;
const col = (name: string): number => FEATURE_INDEX[name] as number;
const C = {
  js: col('js_divergence'),
  agree: col('argmax_agreement'),
  dice: col('dice_mean'),
  variance: col('patch_variance'),
  maxProb: col('max_probability'),
  entropy: col('entropy'),
  class0: col('class_fraction_0'),
  foreground: col('foreground_fraction'),
  boundary: col('boundary_density'),
  flipView: col('flip_view'),
  flipJs: col('flip_js'),
  appView: col('appearance_view'),
  appJs: col('appearance_js'),
  regionFraction: col('region_fraction'),
  round: col('round'),
  slice: col('slice_reliability'),
  reliability: col('reliability'),
};

/**
 * Region features, scores and maps from the whole-image prediction and the
 * composition (DESIGN §4 step 4). Pure; float64 accumulation.
 */
export function computeFeatures(inputs: FeatureInputs): ReliabilityResult {
  const { grid, whole, composition } = inputs;
  const [z, h, w] = grid.shapeZyx;
  const hw = h * w;
  const n = z * hw;
  const k = composition.numClasses;
  const check = (a: Float32Array | undefined, field: string): void => {
    if (a !== undefined && a.length !== k * n) {
      throw new ReliabilityError(field, `\`${field}\` must hold [K, z, y, x] = [${k}, ${z}, ${h}, ${w}] = ${k * n} values, got ${a.length}`);
    }
  };
  check(whole, 'whole');
  check(inputs.flip, 'flip');
  check(inputs.appearance, 'appearance');
  const round = inputs.round ?? 0;
  if (!(Number.isSafeInteger(round) && round >= 0)) throw new ReliabilityError('round', `\`round\` must be an integer ≥ 0, got ${round}`);
  const comp = composition.probabilities;

  // Per-pixel pass: labels and measures.
  const pseudoLabel = new Float32Array(n);
  const composedLabel = new Float32Array(n);
  const jsMap = new Float32Array(n);
  const relMap = new Float32Array(n);
  const maxMap = new Float64Array(n);
  const entMap = new Float64Array(n);
  const flipMap = inputs.flip ? new Float64Array(n) : undefined;
  const appMap = inputs.appearance ? new Float64Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    // Pixel i = (s, y, x); class c of it sits at c·n + i in [K, z, y, x].
    pseudoLabel[i] = argmaxAt(whole, i, n, k);
    composedLabel[i] = argmaxAt(comp, i, n, k);
    const js = jsDivergenceAt(whole, comp, i, n, k);
    jsMap[i] = js;
    maxMap[i] = maxAt(whole, i, n, k);
    const ent = normalizedEntropyAt(whole, i, n, k);
    entMap[i] = ent;
    const fj = inputs.flip ? jsDivergenceAt(whole, inputs.flip, i, n, k) : 0;
    const aj = inputs.appearance ? jsDivergenceAt(whole, inputs.appearance, i, n, k) : 0;
    if (flipMap) flipMap[i] = fj;
    if (appMap) appMap[i] = aj;
    relMap[i] = pixelReliability(ent, js, composition.variance[i] as number, fj, aj);
  }

  const { regions, regionOf } = buildRegions(grid, pseudoLabel, inputs.splitByClass ?? false);
  const r = regions.length;
  const sums = new Float64Array(r * F);
  // Per region and class: pixels labelled c in the whole argmax, in the composed argmax, in both.
  const dice = new Float64Array(r * k * 3);
  const sliceSum = new Float64Array(z);
  for (let i = 0; i < n; i++) {
    const reg = regionOf[i] as number;
    const o = reg * F;
    const s = Math.floor(i / hw);
    const yx = i - s * hw;
    const y = Math.floor(yx / w);
    const x = yx - y * w;
    const a = pseudoLabel[i] as number;
    const b = composedLabel[i] as number;
    sums[o + C.js] = (sums[o + C.js] as number) + (jsMap[i] as number);
    if (a === b) sums[o + C.agree] = (sums[o + C.agree] as number) + 1;
    sums[o + C.variance] = (sums[o + C.variance] as number) + (composition.variance[i] as number);
    sums[o + C.maxProb] = (sums[o + C.maxProb] as number) + (maxMap[i] as number);
    sums[o + C.entropy] = (sums[o + C.entropy] as number) + (entMap[i] as number);
    const cc = o + C.class0 + Math.min(a, CLASS_FRACTION_COLUMNS - 1);
    sums[cc] = (sums[cc] as number) + 1;
    if (a !== 0) sums[o + C.foreground] = (sums[o + C.foreground] as number) + 1;
    const boundary =
      (x > 0 && pseudoLabel[i - 1] !== a) || (x + 1 < w && pseudoLabel[i + 1] !== a) || (y > 0 && pseudoLabel[i - w] !== a) || (y + 1 < h && pseudoLabel[i + w] !== a);
    if (boundary) sums[o + C.boundary] = (sums[o + C.boundary] as number) + 1;
    if (flipMap) sums[o + C.flipJs] = (sums[o + C.flipJs] as number) + (flipMap[i] as number);
    if (appMap) sums[o + C.appJs] = (sums[o + C.appJs] as number) + (appMap[i] as number);
    sums[o + C.reliability] = (sums[o + C.reliability] as number) + (relMap[i] as number);
    const d = reg * k * 3;
    dice[d + a * 3] = (dice[d + a * 3] as number) + 1;
    dice[d + b * 3 + 1] = (dice[d + b * 3 + 1] as number) + 1;
    if (a === b) dice[d + a * 3 + 2] = (dice[d + a * 3 + 2] as number) + 1;
    sliceSum[s] = (sliceSum[s] as number) + (relMap[i] as number);
  }

  const sliceScores = new Float32Array(z);
  for (let s = 0; s < z; s++) sliceScores[s] = (sliceSum[s] as number) / hw;
  const features = new Float32Array(r * F);
  const scores = new Float32Array(r);
  const cellArea = grid.stride * grid.stride;
  const MEANS = [C.js, C.agree, C.variance, C.maxProb, C.entropy, C.foreground, C.boundary, C.flipJs, C.appJs, C.reliability];
  for (const region of regions) {
    const o = region.index * F;
    const count = region.pixelCount;
    for (const c of MEANS) features[o + c] = (sums[o + c] as number) / count;
    for (let c = 0; c < CLASS_FRACTION_COLUMNS; c++) features[o + C.class0 + c] = (sums[o + C.class0 + c] as number) / count;
    let diceSum = 0;
    let present = 0;
    for (let c = 0; c < k; c++) {
      const d = (region.index * k + c) * 3;
      const both = (dice[d] as number) + (dice[d + 1] as number);
      if (both > 0) {
        diceSum += (2 * (dice[d + 2] as number)) / both;
        present++;
      }
    }
    features[o + C.dice] = diceSum / present;
    features[o + C.flipView] = inputs.flip ? 1 : 0;
    features[o + C.appView] = inputs.appearance ? 1 : 0;
    features[o + C.regionFraction] = count / cellArea;
    features[o + C.round] = round;
    features[o + C.slice] = sliceScores[region.slice] as number;
    scores[region.index] = features[o + C.reliability] as number;
  }

  return {
    grid,
    numClasses: k,
    regions,
    features,
    scores,
    sliceScores,
    maps: {
      reliability: relMap,
      pseudoLabel,
      composedLabel,
      patchVariance: composition.variance,
      jsDivergence: jsMap,
      regionIndex: Float32Array.from(regionOf),
      maxProbability: Float32Array.from(maxMap),
    },
  };
}

