import { ORGAN_NAMES } from './anatomy';

/**
 * Per-organ intensity statistics of generated images: evidence that the domain
 * shift is real (the ordering of organ intensities changes between domains).
 * Values are in the stored units (HU for ct/cbct, MR units for mr).
 */
export interface IntensityStats {
  label: number;
  name: string;
  voxels: number;
  mean: number;
  std: number;
  p5: number;
  p50: number;
  p95: number;
}

/** Collects voxel values per label over many cases (reservoir-free: keeps a strided sample). */
export class IntensityAccumulator {
  private readonly samples = new Map<number, number[]>();
  private readonly sums = new Map<number, { n: number; sum: number; sumSq: number }>();

  /** `image` and `labels` share one [z, y, x] layout. `stride` subsamples voxels for percentiles. */
  update(image: ArrayLike<number>, labels: ArrayLike<number>, stride = 7): void {
    if (image.length !== labels.length) throw new Error(`image has ${image.length} voxels but labels ${labels.length}`);
    for (let i = 0; i < image.length; i++) {
      const label = labels[i] as number;
      const v = image[i] as number;
      let s = this.sums.get(label);
      if (!s) {
        s = { n: 0, sum: 0, sumSq: 0 };
        this.sums.set(label, s);
        this.samples.set(label, []);
      }
      s.n += 1;
      s.sum += v;
      s.sumSq += v * v;
      if (i % stride === 0) (this.samples.get(label) as number[]).push(v);
    }
  }

  /** Statistics per label present, ascending by label; std is the population std. */
  aggregate(): IntensityStats[] {
    return [...this.sums.entries()]
      .sort(([a], [b]) => a - b)
      .map(([label, s]) => {
        const sorted = Float64Array.from(this.samples.get(label) ?? []).sort();
        const mean = s.sum / s.n;
        return {
          label,
          name: ORGAN_NAMES[label] ?? `label_${label}`,
          voxels: s.n,
          mean,
          std: Math.sqrt(Math.max(0, s.sumSq / s.n - mean * mean)),
          p5: quantile(sorted, 0.05),
          p50: quantile(sorted, 0.5),
          p95: quantile(sorted, 0.95),
        };
      });
  }
}

/** Linear-interpolated quantile (numpy "linear") of an ascending array; NaN when empty. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return (sorted[lo] as number) + (pos - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
}
