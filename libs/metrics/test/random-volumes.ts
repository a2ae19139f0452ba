/** Seeded random label maps for the oracle tests (test-only). */
import { mulberry32 } from '../src/paired';

/** The seeded generator of the oracle tests: `mulberry32` of the library. */
export const rng = mulberry32;

/**
 * Smoothed uniform noise on [z, y, x] (C order): `passes` box blurs of radius `radius`
 * along each axis (edges clamped), then standardised to mean 0 and std 1 — so
 * thresholds are in standard deviations and give blobs of a predictable size.
 */
export function smoothNoise(shape: readonly [number, number, number], random: () => number, radius = 2, passes = 2): Float64Array {
  const [nz, ny, nx] = shape;
  let a = Float64Array.from({ length: nz * ny * nx }, () => random());
  const strides = [ny * nx, nx, 1];
  for (let pass = 0; pass < passes; pass++) {
    for (let axis = 0; axis < 3; axis++) {
      const n = shape[axis] as number;
      const stride = strides[axis] as number;
      if (n === 1) continue;
      const b = new Float64Array(a.length);
      for (let i = 0; i < a.length; i++) {
        const c = Math.floor(i / stride) % n;
        let sum = 0;
        for (let k = -radius; k <= radius; k++) {
          const j = Math.min(n - 1, Math.max(0, c + k));
          sum += a[i + (j - c) * stride] as number;
        }
        b[i] = sum / (2 * radius + 1);
      }
      a = b;
    }
  }
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
  return a.map((v) => (v - mean) / std);
}

/** Label map from a field: label k (1-based) where field > thresholds[k-1] and ≤ thresholds[k]; 0 below the first. */
export function threshold(field: Float64Array, thresholds: readonly number[]): Uint8Array {
  const out = new Uint8Array(field.length);
  for (let i = 0; i < field.length; i++) {
    let label = 0;
    for (let k = 0; k < thresholds.length; k++) if ((field[i] as number) > (thresholds[k] as number)) label = k + 1;
    out[i] = label;
  }
  return out;
}
