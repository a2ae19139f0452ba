/**
 * Intensity normalisation to [0, 1]. Inputs are volumes of any voxel type (CT in HU,
 * MR/CBCT in arbitrary units); outputs are new Float32Array volumes with the input's
 * geometry. NaN voxels stay NaN (reject them at load time with `requireFinite`).
 */
import { makeVolume, type Volume } from './volume';

export class IntensityError extends Error {
  override readonly name = 'IntensityError';
}

export interface HuWindow {
  /** Lower bound in HU (maps to 0). */
  readonly lowHu: number;
  /** Upper bound in HU (maps to 1). */
  readonly highHu: number;
}

/** A window from its centre (level) and width in HU: [centre − width/2, centre + width/2]. */
export function huWindow(centreHu: number, widthHu: number): HuWindow {
  if (!Number.isFinite(centreHu) || !Number.isFinite(widthHu) || widthHu <= 0) {
    throw new IntensityError(`HU window needs a finite centre and a positive width, got centre ${centreHu}, width ${widthHu}`);
  }
  return { lowHu: centreHu - widthHu / 2, highHu: centreHu + widthHu / 2 };
}

/** The abdominal soft-tissue window (level 40 HU, width 400 HU) used by default for CT. */
export const ABDOMEN_WINDOW: HuWindow = Object.freeze({ lowHu: -160, highHu: 240 });

/** CT: clip to the HU window and scale linearly: v' = (clamp(v, low, high) − low) / (high − low) ∈ [0, 1]. */
export function windowHu(volume: Volume, window: HuWindow = ABDOMEN_WINDOW): Volume<Float32Array> {
  const { lowHu, highHu } = window;
  if (!(highHu > lowHu)) throw new IntensityError(`HU window must have highHu > lowHu, got [${lowHu}, ${highHu}]`);
  return rescale(volume, lowHu, highHu);
}

/**
 * Percentile of `values` (0 ≤ p ≤ 100) with linear interpolation between order
 * statistics (Hyndman–Fan type 7, numpy's default): h = (n − 1)·p/100,
 * q = x[⌊h⌋] + (h − ⌊h⌋)(x[⌊h⌋+1] − x[⌊h⌋]). NaNs are ignored. Throws on no values.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  return percentiles(values, [p])[0] as number;
}

/** Several percentiles of the same values with one sort (see {@link percentile}). */
export function percentiles(values: ArrayLike<number>, ps: readonly number[]): number[] {
  for (const p of ps) if (!(p >= 0 && p <= 100)) throw new IntensityError(`percentile must be in [0, 100], got ${p}`);
  const sorted = new Float64Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isNaN(v)) sorted[n++] = v;
  }
  if (n === 0) throw new IntensityError('percentile of no values (empty input, empty mask, or all NaN)');
  const s = sorted.subarray(0, n).sort();
  return ps.map((p) => {
    const h = ((n - 1) * p) / 100;
    const lo = Math.floor(h);
    const hi = Math.min(lo + 1, n - 1);
    return (s[lo] as number) + (h - lo) * ((s[hi] as number) - (s[lo] as number));
  });
}

export interface PercentileClipOptions {
  /** Lower percentile, maps to 0 (default 0.5). */
  lowerPercentile?: number;
  /** Upper percentile, maps to 1 (default 99.5). */
  upperPercentile?: number;
  /**
   * Foreground mask `[z, y, x]` with the volume's shape: percentiles are computed over
   * voxels where mask ≠ 0 only (the whole volume is still rescaled).
   */
  mask?: ArrayLike<number>;
}

export interface PercentileClipResult {
  readonly volume: Volume<Float32Array>;
  /** The intensities that mapped to 0 and 1. */
  readonly low: number;
  readonly high: number;
}

/**
 * MR/CBCT: clip to the [lower, upper] percentiles (type 7, over the volume or the
 * mask) and scale linearly to [0, 1]. A constant input (high = low) maps to 0.
 */
export function percentileClip(volume: Volume, options: PercentileClipOptions = {}): PercentileClipResult {
  const lowerP = options.lowerPercentile ?? 0.5;
  const upperP = options.upperPercentile ?? 99.5;
  if (!(lowerP < upperP)) throw new IntensityError(`lowerPercentile must be below upperPercentile, got ${lowerP} and ${upperP}`);
  let values: ArrayLike<number> = volume.data;
  if (options.mask !== undefined) {
    const mask = options.mask;
    if (mask.length !== volume.data.length) {
      throw new IntensityError(`mask has ${mask.length} voxels, the volume [${volume.shape.join(', ')}] has ${volume.data.length}`);
    }
    const picked: number[] = [];
    for (let i = 0; i < mask.length; i++) if ((mask[i] as number) !== 0) picked.push(volume.data[i] as number);
    values = picked;
  }
  const [low, high] = percentiles(values, [lowerP, upperP]) as [number, number];
  return { volume: rescale(volume, low, high), low, high };
}

function rescale(volume: Volume, low: number, high: number): Volume<Float32Array> {
  const out = new Float32Array(volume.data.length);
  const range = high - low;
  const src = volume.data;
  for (let i = 0; i < src.length; i++) {
    const v = src[i] as number;
    out[i] = range > 0 ? (Math.min(Math.max(v, low), high) - low) / range : Number.isNaN(v) ? NaN : 0;
  }
  return makeVolume(out, volume.shape, volume);
}
