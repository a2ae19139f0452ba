import { MetricsError } from './errors';

/**
 * Percentile `q` (in [0, 100]) of values sorted ascending, interpolating linearly
 * between order statistics — Hyndman & Fan type 7, numpy's default:
 * h = (n − 1)·q/100, result = a[⌊h⌋] + (h − ⌊h⌋)·(a[⌊h⌋ + 1] − a[⌊h⌋]).
 * NaN for an empty array. The input must already be sorted.
 */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = ((n - 1) * q) / 100;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  if (lo + 1 >= n) return a;
  const b = sorted[lo + 1] as number;
  return a + (h - lo) * (b - a);
}

/**
 * Percentile `q` in [0, 100] of `values` (any order; not modified), type 7 as in
 * `percentileSorted`. NaN for no values. Throws MetricsError for q outside [0, 100].
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (typeof q !== 'number' || !(q >= 0 && q <= 100)) {
    throw new MetricsError(`percentile must be in [0, 100], got ${String(q)}`);
  }
  return percentileSorted(Float64Array.from(values).sort(), q);
}
