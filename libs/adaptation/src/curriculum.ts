/**
 * Class-balanced curriculum gating (CBST, Zou et al., ECCV 2018): instead of one
 * confidence threshold for every pixel — which on a shifted target keeps the
 * background and drops most organ pixels, so the student is taught
 * "background" — each class gets its own threshold, the confidence at which
 * the most confident `portion` of the pixels predicted as that class are kept.
 * The portion grows round by round (a curriculum: the surest pixels first),
 * so every class keeps supervision in every round.
 *
 * And the target term's loss is normalised per class within each batch
 * ({@link classBalancedWeights}), so the many background pixels cannot swamp
 * the organs.
 *
 * Layouts: label maps and per-pixel max-probabilities `[z, y, x]` (one value
 * per voxel); class indices 0..K−1.
 */
import { AdaptationConfigError } from './errors';

/** The kept portion of each class in round `round` (0-based) of `rounds`: linear from `start` to `end`. */
export function keptPortion(round: number, rounds: number, start: number, end: number): number {
  if (!(start > 0 && start <= 1) || !(end > 0 && end <= 1)) throw new AdaptationConfigError('kept_portion', `kept portions must be in (0, 1], got start ${start}, end ${end}`);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(round) || round < 0 || round >= rounds) {
    throw new AdaptationConfigError('round', `round must be an integer in [0, ${rounds - 1}], got ${round}`);
  }
  return rounds === 1 ? end : start + ((end - start) * round) / (rounds - 1);
}

/** Type-7 quantile (linear between order statistics) of ascending-sorted values, q in [0, 1]. */
function quantileSorted(sorted: Float32Array, q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i]! + f * (sorted[i + 1]! - sorted[i]!) : sorted[i]!;
}

/**
 * Per-class thresholds τ_c over a set of volumes: τ_c is the (1 − portion)
 * quantile (type 7) of the max-probabilities of the pixels whose pseudo-label
 * is c, so the most confident `portion` of each class lies at or above it.
 * A class no pixel is predicted as gets +∞ (nothing to keep).
 */
export function classThresholds(maxProbability: readonly Float32Array[], labels: readonly Uint8Array[], numClasses: number, portion: number): Float32Array {
  if (!(portion > 0 && portion <= 1)) throw new AdaptationConfigError('kept_portion', `the kept portion must be in (0, 1], got ${portion}`);
  if (maxProbability.length !== labels.length) throw new AdaptationConfigError('labels', `one label map per probability map, got ${labels.length} and ${maxProbability.length}`);
  const counts = new Array<number>(numClasses).fill(0);
  labels.forEach((l, v) => {
    if (l.length !== maxProbability[v]!.length) throw new AdaptationConfigError('labels', `volume ${v}: ${l.length} labels for ${maxProbability[v]!.length} probabilities`);
    for (let i = 0; i < l.length; i++) {
      const c = l[i]!;
      if (c >= numClasses) throw new AdaptationConfigError('labels', `volume ${v}: label ${c} at voxel ${i} is not a class in [0, ${numClasses - 1}]`);
      counts[c]!++;
    }
  });
  const values = counts.map((n) => new Float32Array(n));
  const fill = new Array<number>(numClasses).fill(0);
  labels.forEach((l, v) => {
    const p = maxProbability[v]!;
    for (let i = 0; i < l.length; i++) values[l[i]!]![fill[l[i]!]!++] = p[i]!;
  });
  return Float32Array.from(values, (vals) => (vals.length === 0 ? Number.POSITIVE_INFINITY : quantileSorted(vals.sort(), 1 - portion)));
}

/** 1 where a pixel's max-probability reaches its pseudo-label's threshold, else 0. */
export function classGate(maxProbability: Float32Array, label: Uint8Array, thresholds: Float32Array): Uint8Array {
  if (maxProbability.length !== label.length) throw new AdaptationConfigError('labels', `${label.length} labels for ${maxProbability.length} probabilities`);
  const out = new Uint8Array(label.length);
  for (let i = 0; i < label.length; i++) out[i] = maxProbability[i]! >= (thresholds[label[i]!] ?? Number.POSITIVE_INFINITY) ? 1 : 0;
  return out;
}

/**
 * Per-class normalisation of a weighted pseudo-label batch: with S_c the
 * weight sum of class c's pixels and C the number of classes with S_c > 0,
 * w'(x) = w(x) / (C · S_{ŷ(x)}). The weighted cross-entropy Σ w'·CE / Σ w'
 * (Σ w' = 1) then equals the mean over the classes present of each class's
 * own weighted mean CE — the background counts as one class, not as most of
 * the pixels. All weights stay in [0, 1]; an all-zero batch stays zero.
 */
export function classBalancedWeights(labels: Int32Array | Uint8Array, weights: Float32Array, numClasses: number): Float32Array {
  if (labels.length !== weights.length) throw new AdaptationConfigError('weights', `${weights.length} weights for ${labels.length} labels`);
  const sums = new Float64Array(numClasses);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!(c >= 0 && c < numClasses)) throw new AdaptationConfigError('labels', `label ${c} at pixel ${i} is not a class in [0, ${numClasses - 1}]`);
    sums[c]! += weights[i]!;
  }
  const present = sums.reduce((n, s) => n + (s > 0 ? 1 : 0), 0);
  const out = new Float32Array(weights.length);
  if (present === 0) return out;
  for (let i = 0; i < labels.length; i++) {
    const w = weights[i]!;
    if (w > 0) out[i] = w / (present * sums[labels[i]!]!);
  }
  return out;
}

/**
 * Region weights that redistribute supervision WITHIN each class instead of
 * moving it between classes (`targetLoss: 'class-mass'`): over a round's
 * volumes, each class c keeps the total weight its pixel gate kept (G_c
 * pixels) — w'(x) = w(x) · G_{ŷ(x)} / W_{ŷ(x)}, W_c the weight sum of class c
 * under the gate — then every weight is divided by the largest class factor
 * so all stay in [0, 1] (the weighted loss Σ w·CE / Σ w does not see a common
 * factor). A purifier that down-weights doubtful organ regions then trusts
 * that organ's other regions more, rather than teaching the background; the
 * class proportions stay those of the gated pseudo-labels, unlike
 * {@link classBalancedWeights}, which makes them equal and drifts over
 * rounds. A class whose gated pixels all have weight 0 stays 0. In place.
 */
export function classMassWeights(weights: readonly Float32Array[], labels: readonly Uint8Array[], masks: readonly Uint8Array[], numClasses: number): void {
  if (weights.length !== labels.length || weights.length !== masks.length) throw new AdaptationConfigError('weights', `${weights.length} weight maps for ${labels.length} label maps and ${masks.length} gates`);
  const kept = new Float64Array(numClasses);
  const mass = new Float64Array(numClasses);
  weights.forEach((w, v) => {
    const label = labels[v]!;
    const mask = masks[v]!;
    if (label.length !== w.length || mask.length !== w.length) throw new AdaptationConfigError('weights', `volume ${v}: ${w.length} weights, ${label.length} labels, ${mask.length} gate values`);
    for (let i = 0; i < w.length; i++) {
      if (mask[i] === 0) continue;
      const c = label[i]!;
      if (!(c < numClasses)) throw new AdaptationConfigError('labels', `label ${c} at pixel ${i} is not a class in [0, ${numClasses - 1}]`);
      kept[c]! += 1;
      mass[c]! += w[i]!;
    }
  });
  const factor = Array.from(kept, (g, c) => (mass[c]! > 0 ? g / mass[c]! : 0));
  const top = Math.max(...factor);
  if (!(top > 0)) return;
  weights.forEach((w, v) => {
    const label = labels[v]!;
    for (let i = 0; i < w.length; i++) if (w[i]! > 0) w[i] = Math.min(1, (w[i]! * factor[label[i]!]!) / top);
  });
}
