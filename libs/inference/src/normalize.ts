/**
 * The model's own intensity normalisation, applied to the input volume on its
 * original grid (before any resampling, as nnU-Net does).
 */
import { makeVolume, percentileClip, windowHu, type Volume } from '@purify/imaging';
import type { NormalizationSpec } from '@purify/artifacts';

/**
 * Normalises a volume `[z, y, x]` (any voxel type; CT in HU) as a model's meta
 * says and returns a new float32 volume with the same geometry:
 *   - `ct-window`: clip to [lowHu, highHu], scale to [0, 1];
 *   - `percentile`: clip to the [low, high] percentiles of the whole volume (type 7), scale to [0, 1];
 *   - `zscore`: (v − mean) / std over the whole volume (population std; a constant volume gives 0).
 */
export function normalizeVolume(volume: Volume, spec: NormalizationSpec): Volume<Float32Array> {
  switch (spec.kind) {
    case 'ct-window':
      return windowHu(volume, { lowHu: spec.lowHu, highHu: spec.highHu });
    case 'percentile':
      return percentileClip(volume, { lowerPercentile: spec.low, upperPercentile: spec.high }).volume;
    case 'zscore': {
      const src = volume.data;
      let sum = 0;
      for (let i = 0; i < src.length; i++) sum += src[i] as number;
      const mean = sum / src.length;
      let sq = 0;
      for (let i = 0; i < src.length; i++) {
        const d = (src[i] as number) - mean;
        sq += d * d;
      }
      const std = Math.sqrt(sq / src.length);
      const out = new Float32Array(src.length);
      if (std > 0) for (let i = 0; i < src.length; i++) out[i] = ((src[i] as number) - mean) / std;
      return makeVolume(out, volume.shape, volume, 'normalised volume');
    }
  }
}
