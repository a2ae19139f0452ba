/**
 * Whole-volume prediction slice by slice, and validation by volume Dice per organ
 * on the original grid.
 */
import * as tf from '@tensorflow/tfjs';
import { makeVolume, resampleToGrid, type Volume } from '@purify/imaging';
import { computeCaseMetrics, MetricsAccumulator, type MetricsSummary } from '@purify/metrics';
import type { SegModel } from '@purify/models';
import type { SliceVolume } from './slice-data';

/**
 * Class probabilities `[z, h, w, K]` (float32, C-ordered) of every axial slice of
 * `image` `[z, h, w]`, predicted in batches of `batchSize` slices. Slices are
 * zero-padded at the bottom/right to a multiple of the model's size multiple and
 * the padding is cut off again.
 */
export function predictSlices(model: SegModel, image: Float32Array, shape: readonly [number, number, number], batchSize = 8): Float32Array {
  const [nz, ny, nx] = shape;
  const k = model.config.numClasses;
  const m = model.sizeMultiple;
  const py = Math.ceil(ny / m) * m;
  const px = Math.ceil(nx / m) * m;
  const out = new Float32Array(nz * ny * nx * k);
  for (let z0 = 0; z0 < nz; z0 += batchSize) {
    const b = Math.min(batchSize, nz - z0);
    const probs = tf.tidy(() => {
      let x = tf.tensor4d(image.subarray(z0 * ny * nx, (z0 + b) * ny * nx), [b, ny, nx, 1], 'float32');
      if (py !== ny || px !== nx) x = tf.pad(x, [[0, 0], [0, py - ny], [0, px - nx], [0, 0]]);
      let p = model.predict(x); // [b, py, px, K]
      if (py !== ny || px !== nx) p = tf.slice(p, [0, 0, 0, 0], [b, ny, nx, k]);
      return p;
    });
    try {
      out.set(probs.dataSync(), z0 * ny * nx * k);
    } finally {
      probs.dispose();
    }
  }
  return out;
}

/**
 * The label map `[z, y, x]` (uint8 class indices) of a case on its **original**
 * grid: probabilities on the working grid are resampled back linearly class by
 * class (when the grids differ), then the argmax is taken.
 */
export function predictLabelVolume(model: SegModel, volume: SliceVolume, batchSize = 8): Volume<Uint8Array> {
  const probs = predictSlices(model, volume.image, volume.shape, batchSize);
  const k = model.config.numClasses;
  const grid = volume.originalGrid;
  const same = volume.workingGrid.shape.every((d, i) => d === grid.shape[i]);
  const n = same ? volume.image.length : grid.shape[0] * grid.shape[1] * grid.shape[2];
  // Per class channel on the original grid, [K][n].
  const channels: Float32Array[] = [];
  for (let c = 0; c < k; c++) {
    const ch = new Float32Array(volume.image.length);
    for (let i = 0; i < ch.length; i++) ch[i] = probs[i * k + c] as number;
    channels.push(same ? ch : (resampleToGrid(makeVolume(ch, volume.workingGrid.shape, volume.workingGrid), grid, { interpolation: 'linear' }).data as Float32Array));
  }
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestP = -Infinity;
    for (let c = 0; c < k; c++) {
      const p = (channels[c] as Float32Array)[i] as number;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    labels[i] = best;
  }
  return makeVolume(labels, grid.shape, grid);
}

/** Validation result: volume Dice per organ (mean over cases) and the organ average. */
export interface ValidationResult {
  /** Class index (≥ 1) → mean Dice over the validation cases. */
  readonly dicePerClass: ReadonlyMap<number, number>;
  /** Mean over organs of the per-organ means. */
  readonly meanDice: number;
  readonly summary: MetricsSummary;
}

/**
 * Predicts every validation volume, maps it back to its original grid and scores
 * it against the original label volume with `@purify/metrics` (Dice per organ per
 * case; mean over cases, then over organs; DESIGN.md §6).
 */
export function validate(model: SegModel, volumes: readonly SliceVolume[], batchSize = 8): ValidationResult {
  const labels = Array.from({ length: model.config.numClasses - 1 }, (_, i) => i + 1);
  const acc = new MetricsAccumulator();
  for (const v of volumes) {
    if (v.originalLabel === undefined) throw new Error(`validation case ${v.id} has no label volume`);
    const pred = predictLabelVolume(model, v, batchSize);
    acc.update(v.id, computeCaseMetrics(pred, v.originalLabel, labels));
  }
  const summary = acc.aggregate();
  const dicePerClass = new Map(summary.labels.map((l) => [l.label, l.dice.mean]));
  return { dicePerClass, meanDice: summary.organAverage.dice, summary };
}
