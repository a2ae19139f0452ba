/**
 * AdaBN (Li et al., 2016): re-estimates every BatchNorm layer's running mean and
 * variance on unlabelled images of a new domain, leaving every learned weight
 * as it is. Label-free target-statistics adaptation before self-training.
 *
 * One pass in training mode: each BatchNorm layer normalises with the
 * statistics of the batch it sees (as in training) and records them; the
 * running statistics become the pooled statistics over all batches — the mean
 * of the per-batch means weighted by pixels, and the pooled (biased) variance
 * E[x²] − mean². With a single batch they are exactly that batch's statistics
 * at every layer.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelInputError } from './errors';
import { FusedBatchNormalization } from './layers';
import type { SegModel } from './seg-model';

export interface BatchNormStatistics {
  /** Layer name without the model's prefix, e.g. `enc0_bn1`. */
  readonly layer: string;
  readonly mean: Float32Array;
  readonly variance: Float32Array;
  /** Pixels (N·H·W) pooled. */
  readonly count: number;
}

/** The model's BatchNorm layers in forward order (none for instance norm or no norm). */
function batchNormLayers(model: SegModel): FusedBatchNormalization[] {
  return model.networks.probabilities.layers.filter((l): l is FusedBatchNormalization => l instanceof FusedBatchNormalization);
}

/**
 * Re-estimates the running statistics of every BatchNorm layer of `model` from
 * `batches` (each float32 images `[N, H, W, C]`, H and W multiples of the
 * model's size multiple; the caller keeps ownership) and writes them into the
 * model. Returns the new statistics per layer. A model without BatchNorm is
 * left unchanged (empty result).
 */
export function reestimateBatchNorm(model: SegModel, batches: Iterable<tf.Tensor4D>): BatchNormStatistics[] {
  const layers = batchNormLayers(model);
  if (layers.length === 0) return [];
  const sums = layers.map((l) => {
    const channels = l.runningStatistics.mean.shape[0] as number;
    return { mean: new Float64Array(channels), meanSq: new Float64Array(channels), count: 0 };
  });
  layers.forEach((layer, i) => {
    const acc = sums[i]!;
    layer.statisticsSink = (mean, variance, count) => {
      for (let c = 0; c < mean.length; c++) {
        acc.mean[c]! += mean[c]! * count;
        acc.meanSq[c]! += (variance[c]! + mean[c]! * mean[c]!) * count;
      }
      acc.count += count;
    };
  });
  try {
    let seen = 0;
    for (const images of batches) {
      model.checkImages(images, `batch ${seen}`);
      tf.dispose(model.logits(images, true));
      seen++;
    }
    if (seen === 0) throw new ModelInputError('reestimateBatchNorm needs at least one batch of images');
  } finally {
    for (const layer of layers) layer.statisticsSink = undefined;
  }
  const prefix = model.namePrefix;
  return layers.map((layer, i) => {
    const acc = sums[i]!;
    const mean = Float32Array.from(acc.mean, (s) => s / acc.count);
    const variance = Float32Array.from(acc.meanSq, (s, c) => Math.max(0, s / acc.count - mean[c]! * mean[c]!));
    const { mean: mv, variance: vv } = layer.runningStatistics;
    tf.tidy(() => {
      mv.write(tf.tensor1d(mean));
      vv.write(tf.tensor1d(variance));
    });
    return { layer: layer.name.startsWith(prefix) ? layer.name.slice(prefix.length) : layer.name, mean, variance, count: acc.count };
  });
}
