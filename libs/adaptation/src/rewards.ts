/**
 * Rewards of the weighting policy (DESIGN.md §4 step 7). Nothing here ever
 * sees a target label: the per-region and episodic rewards are computed in
 * simulated-shift episodes, whose pseudo-targets are SOURCE images with a
 * random appearance shift (labels known); the proxy reward on the real target
 * is label-free.
 *
 * Layouts: label maps and region-index maps `[z, y, x]`; per-region arrays
 * `[regions]`.
 */
import { AdaptationConfigError } from './errors';

/** Which pixels a region's accuracy counts: those the pixel gate lets the weight map train on. */
export interface CountedPixels {
  /** 1 where the gate keeps the pixel (its teacher confidence reaches its class's threshold, or the fixed gate), else 0; same layout as the label maps. */
  readonly mask: ArrayLike<number>;
}

/**
 * Fraction of each region's pixels whose pseudo-label equals the known label
 * (simulated-shift episodes only). A region without pixels scores 1.
 *
 * With `counted`, only the pixels the weight map can train on (those the pixel
 * gate keeps) count, since the region's weight acts on those alone: a region whose
 * confident pixels are right is worth training on even when its unconfident
 * ones are wrong. A region with no such pixel is NaN — its weight changes
 * nothing, so there is no correctness to reward ({@link regionRewards} gives
 * it the episodic term only).
 */
export function regionAccuracy(pseudoLabel: ArrayLike<number>, label: ArrayLike<number>, regionIndex: ArrayLike<number>, numRegions: number, counted?: CountedPixels): Float32Array {
  if (pseudoLabel.length !== label.length || regionIndex.length !== label.length) {
    throw new AdaptationConfigError('label', `pseudo-label, label and region maps must have the same voxel count, got ${pseudoLabel.length}, ${label.length}, ${regionIndex.length}`);
  }
  if (counted !== undefined && counted.mask.length !== label.length) {
    throw new AdaptationConfigError('mask', `the gate mask must hold one value per voxel (${label.length}), got ${counted.mask.length}`);
  }
  const hit = new Float64Array(numRegions);
  const count = new Float64Array(numRegions);
  for (let i = 0; i < label.length; i++) {
    const r = regionIndex[i] as number;
    if (!(r >= 0 && r < numRegions)) throw new AdaptationConfigError('regionIndex', `regionIndex[${i}] = ${r} is not in [0, ${numRegions - 1}]`);
    if (counted !== undefined && (counted.mask[i] as number) === 0) continue;
    count[r]! += 1;
    if (pseudoLabel[i] === label[i]) hit[r]! += 1;
  }
  const empty = counted === undefined ? 1 : Number.NaN;
  return Float32Array.from(count, (c, r) => (c === 0 ? empty : (hit[r] as number) / c));
}

/**
 * Signed correctness of a region in [−1, 1] from its accuracy c: the pivot is
 * the accuracy a region needs to be worth training on;
 * s = (c − pivot)/(1 − pivot) above it and (c − pivot)/pivot below it.
 */
export function signedCorrectness(accuracy: number, pivot: number): number {
  if (!(pivot > 0 && pivot < 1)) throw new AdaptationConfigError('pivot', `pivot must be in (0, 1), got ${pivot}`);
  const s = accuracy >= pivot ? (accuracy - pivot) / (1 - pivot) : (accuracy - pivot) / pivot;
  return Math.min(1, Math.max(-1, s));
}

export interface RegionRewardOptions {
  /** Accuracy at which a region is neither right nor wrong (default 0.8). */
  readonly pivot?: number;
  /** Added to every region's reward: the episodic term (default 0). */
  readonly episodic?: number;
  /**
   * Factor of the correctness term of wrong regions (accuracy below the pivot;
   * default 1). See {@link wrongRegionBalance}.
   */
  readonly wrongScale?: number;
}

/**
 * The factor that gives the wrong regions of an episode as much total weight in
 * the reward as the right ones: n_right / n_wrong, clamped to [1, max]. In
 * simulated-shift episodes 95–99 % of the regions are right, so without it the
 * policy earns almost everything by weighting every region up and learns to
 * keep nearly all pseudo-labels (measured: 92–95 % of the target pixels),
 * which is naive self-training again.
 */
export function wrongRegionBalance(accuracies: Iterable<number>, pivot = 0.8, max = 20): number {
  let right = 0;
  let wrong = 0;
  for (const a of accuracies) {
    if (Number.isNaN(a)) continue;
    if (a >= pivot) right += 1;
    else wrong += 1;
  }
  if (wrong === 0 || right === 0) return 1;
  return Math.min(max, Math.max(1, right / wrong));
}

/**
 * Per-region reward r_j = s_j · (2 w_j − 1) + episodic, with s_j the signed
 * correctness of region j and w_j ∈ [0, 1] the weight the policy chose: a
 * correct region weighted up earns up to +1, a wrong one weighted up costs up
 * to −1, and weighting a wrong region down earns what weighting it up costs.
 * A region with NaN accuracy (nothing it weights is trained on) earns the
 * episodic term only.
 */
export function regionRewards(weights: Float32Array, accuracy: Float32Array, options: RegionRewardOptions = {}): Float32Array {
  if (weights.length !== accuracy.length) throw new AdaptationConfigError('weights', `weights and accuracy must have one value per region, got ${weights.length} and ${accuracy.length}`);
  const pivot = options.pivot ?? 0.8;
  const episodic = options.episodic ?? 0;
  const wrongScale = options.wrongScale ?? 1;
  return Float32Array.from(weights, (w, j) => {
    if (Number.isNaN(accuracy[j])) return episodic;
    const s = signedCorrectness(accuracy[j] as number, pivot);
    return (s < 0 ? wrongScale : 1) * s * (2 * w - 1) + episodic;
  });
}

/**
 * The episodic term: `scale · (dice_after − dice_before)`, the improvement of
 * the episode's student on the pseudo-target (organ-average Dice).
 */
export function episodicReward(diceBefore: number, diceAfter: number, scale = 5): number {
  if (!Number.isFinite(diceBefore) || !Number.isFinite(diceAfter)) return 0;
  return scale * (diceAfter - diceBefore);
}

/** Label-free figures of a model on the real target (probe set) and the source validation set. */
export interface ProxyFigures {
  /** Mean composition/decomposition agreement (mean region reliability score) on the probe target images, [0, 1]. */
  readonly agreement: number;
  /** Fraction of probe target pixels where teacher and student argmax agree, [0, 1]. */
  readonly consistency: number;
  /** Organ-average Dice on the source validation cases. */
  readonly sourceDice: number;
}

/**
 * Label-free proxy reward of one round on the real target (DESIGN.md §4 step 7,
 * online fine-tuning): the change in agreement plus the change in consistency,
 * minus any drop in source-validation Dice:
 * `(A₁ − A₀) + (C₁ − C₀) − max(0, D₀ − D₁)`.
 */
export function proxyReward(before: ProxyFigures, after: ProxyFigures): number {
  const v = after.agreement - before.agreement + (after.consistency - before.consistency) - Math.max(0, before.sourceDice - after.sourceDice);
  return Number.isFinite(v) ? v : 0;
}
