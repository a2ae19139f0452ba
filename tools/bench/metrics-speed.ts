/**
 * Prints how long @purify/metrics takes on a 96×256×256 label-map pair.
 *
 *   npx tsx --conditions=@purify/source tools/bench/metrics-speed.ts
 *
 * Cases: (1) two large overlapping ellipsoids filling most of the volume (the
 * worst case: the cropped box is nearly the whole image); (2) four organ-sized
 * labels; (3) the bare distance transform of the whole volume. Anisotropic spacing
 * (0.8, 0.8, 2.5) mm. Median of several runs after a warm-up.
 */
import { performance } from 'node:perf_hooks';
import { computeCaseMetrics, euclideanDistanceTransform, type LabelMap } from '@purify/metrics';

const shape = [96, 256, 256] as const;
const spacingXyzMm = [0.8, 0.8, 2.5] as const;
const [nz, ny, nx] = shape;

/** Label map [z, y, x] with `label` inside each ellipsoid (centre zyx, radii zyx in voxels). */
function ellipsoids(parts: readonly { label: number; c: readonly number[]; r: readonly number[] }[]): LabelMap {
  const data = new Uint8Array(nz * ny * nx);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        for (const { label, c, r } of parts) {
          const dz = (z - (c[0] ?? 0)) / (r[0] ?? 1);
          const dy = (y - (c[1] ?? 0)) / (r[1] ?? 1);
          const dx = (x - (c[2] ?? 0)) / (r[2] ?? 1);
          if (dz * dz + dy * dy + dx * dx <= 1) data[(z * ny + y) * nx + x] = label;
        }
      }
    }
  }
  return { data, shape, spacingXyzMm };
}

function median(times: number[]): number {
  const s = [...times].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function time(name: string, runs: number, fn: () => unknown): void {
  fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  console.log(`${name.padEnd(58)} median ${median(times).toFixed(0).padStart(5)} ms  (min ${Math.min(...times).toFixed(0)}, ${runs} runs)`);
}

const bigPred = ellipsoids([{ label: 1, c: [48, 128, 128], r: [45, 120, 118] }]);
const bigGt = ellipsoids([{ label: 1, c: [47, 126, 131], r: [44, 117, 122] }]);
const organs = (shift: number): LabelMap =>
  ellipsoids([
    { label: 1, c: [48, 110 + shift, 90], r: [30, 60, 55] },
    { label: 2, c: [50, 120, 190 + shift], r: [15, 25, 20] },
    { label: 3, c: [40 + shift, 170, 80], r: [12, 20, 15] },
    { label: 4, c: [40, 170 - shift, 180], r: [12, 20, 15] },
  ]);
const organPred = organs(3);
const organGt = organs(0);

console.log(`@purify/metrics on [z, y, x] = [${shape.join(', ')}], spacing (x, y, z) = (${spacingXyzMm.join(', ')}) mm`);
time('1 label, ellipsoids filling the volume (worst case)', 5, () => computeCaseMetrics(bigPred, bigGt, [1]));
time('4 organ-sized labels (1–4)', 5, () => computeCaseMetrics(organPred, organGt, [1, 2, 3, 4]));
time('euclideanDistanceTransform of the whole volume', 5, () => euclideanDistanceTransform(bigGt));
