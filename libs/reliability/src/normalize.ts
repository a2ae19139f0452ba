import { percentiles } from '@purify/imaging';
import { ReliabilityError } from './errors';

/**
 * A model's input normalisation (mirrors the registry's `NormalizationSpec`
 * and proto `Normalization`). Applied to the whole image before cropping, as
 * the segmenter applies it to the whole volume inside `Segment`.
 */
export type IntensityNormalization =
  /** clamp(v, lowHu, highHu) → [0, 1]. */
  | { readonly kind: 'ct-window'; readonly lowHu: number; readonly highHu: number }
  /** clamp to the [low, high] percentiles (0–100, type 7) of the volume → [0, 1]; constant input → 0. */
  | { readonly kind: 'percentile'; readonly low: number; readonly high: number }
  /** (v − mean)/std over the volume (population std); std 0 → 0. */
  | { readonly kind: 'zscore' };

/** Normalises a raw image (any layout; statistics over all of it); returns a new Float32Array. */
export function normalizeIntensities(raw: ArrayLike<number>, spec: IntensityNormalization): Float32Array {
  const out = new Float32Array(raw.length);
  if (raw.length === 0) throw new ReliabilityError('image', '`image` has no voxels');
  let low: number;
  let high: number;
  if (spec.kind === 'zscore') {
    let mean = 0;
    for (let i = 0; i < raw.length; i++) mean += raw[i] as number;
    mean /= raw.length;
    let sq = 0;
    for (let i = 0; i < raw.length; i++) sq += ((raw[i] as number) - mean) ** 2;
    const std = Math.sqrt(sq / raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = std > 0 ? ((raw[i] as number) - mean) / std : 0;
    return out;
  }
  if (spec.kind === 'ct-window') {
    [low, high] = [spec.lowHu, spec.highHu];
    if (!(high > low)) throw new ReliabilityError('normalization', `a CT window needs highHu > lowHu, got [${low}, ${high}]`);
  } else {
    if (!(spec.low >= 0 && spec.low < spec.high && spec.high <= 100)) {
      throw new ReliabilityError('normalization', `percentile normalisation needs 0 ≤ low < high ≤ 100, got [${spec.low}, ${spec.high}]`);
    }
    [low, high] = percentiles(raw, [spec.low, spec.high]) as [number, number];
  }
  const range = high - low;
  for (let i = 0; i < raw.length; i++) out[i] = range > 0 ? (Math.min(Math.max(raw[i] as number, low), high) - low) / range : 0;
  return out;
}
