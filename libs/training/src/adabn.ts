/**
 * AdaBN on slice volumes: the BatchNorm running statistics of a model
 * re-estimated on the axial slices of unlabelled volumes (e.g. the target
 * domain's training images). Reads images only — `SliceVolume.label` is never
 * touched — so it is label-free by construction.
 */
import * as tf from '@tensorflow/tfjs';
import { reestimateBatchNorm, type BatchNormStatistics, type SegModel } from '@purify/models';
import { TrainingConfigError } from './errors';
import type { SliceVolume } from './slice-data';

export interface AdaBnOptions {
  /** Slices per forward pass (default 32); larger batches pool more exactly. */
  readonly batchSize?: number;
  /** Use at most this many slices, evenly spaced over all volumes (default: all). */
  readonly maxSlices?: number;
}

/**
 * Re-estimates `model`'s BatchNorm statistics from every axial slice of
 * `volumes` (images `[z, h, w]` in [0, 1] on the model's working grid; slices
 * are zero-padded at the bottom/right to the model's size multiple, as in
 * prediction). Returns the per-layer statistics written.
 */
export function adaptBatchNorm(model: SegModel, volumes: readonly SliceVolume[], options: AdaBnOptions = {}): BatchNormStatistics[] {
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TrainingConfigError(`AdaBN batchSize must be an integer ≥ 1, got ${JSON.stringify(options.batchSize)}`);
  if (volumes.length === 0) throw new TrainingConfigError('AdaBN needs at least one unlabelled volume');
  const shape = volumes[0]!.shape;
  if (volumes.some((v) => v.shape[1] !== shape[1] || v.shape[2] !== shape[2])) {
    throw new TrainingConfigError(`AdaBN volumes must share one in-plane size, got ${[...new Set(volumes.map((v) => `${v.shape[1]}×${v.shape[2]}`))].join(', ')}`);
  }
  const [, ny, nx] = shape;
  const refs: { v: SliceVolume; z: number }[] = volumes.flatMap((v) => Array.from({ length: v.shape[0] }, (_, z) => ({ v, z })));
  const max = options.maxSlices ?? refs.length;
  const picked = max >= refs.length ? refs : Array.from({ length: max }, (_, i) => refs[Math.floor(((i + 0.5) * refs.length) / max)]!);
  const m = model.sizeMultiple;
  const py = Math.ceil(ny / m) * m;
  const px = Math.ceil(nx / m) * m;
  function* batches(): Generator<tf.Tensor4D> {
    for (let b0 = 0; b0 < picked.length; b0 += batchSize) {
      const group = picked.slice(b0, b0 + batchSize);
      const data = new Float32Array(group.length * py * px);
      group.forEach(({ v, z }, i) => {
        for (let y = 0; y < ny; y++) data.set(v.image.subarray((z * ny + y) * nx, (z * ny + y + 1) * nx), (i * py + y) * px);
      });
      const t = tf.tensor4d(data, [group.length, py, px, 1], 'float32');
      try {
        yield t;
      } finally {
        t.dispose();
      }
    }
  }
  return reestimateBatchNorm(model, batches());
}
