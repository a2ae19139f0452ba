/**
 * Foreground crop with a margin, and its inverse (paste back into the full grid).
 * Boxes are in voxel indices `[z, y, x]`, start inclusive, end exclusive.
 */
import type { Grid } from './geometry';
import { makeVolume, type Vec3, type Volume, type VoxelArray } from './volume';

export interface Box {
  /** [z, y, x], inclusive. */
  readonly start: Vec3;
  /** [z, y, x], exclusive. */
  readonly end: Vec3;
}

export interface ForegroundOptions {
  /** A voxel is foreground when its value is > threshold (default 0). */
  threshold?: number;
  /** Margin added on each side, in voxels: one number or [z, y, x] (default 0); clipped to the volume. */
  marginVoxels?: number | Vec3;
}

/** Bounding box of the foreground of a `[z, y, x]` volume plus a margin, or undefined when nothing is foreground. */
export function foregroundBox(volume: Pick<Volume, 'data' | 'shape'>, options: ForegroundOptions = {}): Box | undefined {
  const threshold = options.threshold ?? 0;
  const m = options.marginVoxels ?? 0;
  const margin: Vec3 = typeof m === 'number' ? [m, m, m] : m;
  const [nz, ny, nx] = volume.shape;
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  let n = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, n++) {
        if (!((volume.data[n] as number) > threshold)) continue;
        if (z < lo[0]!) lo[0] = z;
        if (z > hi[0]!) hi[0] = z;
        if (y < lo[1]!) lo[1] = y;
        if (y > hi[1]!) hi[1] = y;
        if (x < lo[2]!) lo[2] = x;
        if (x > hi[2]!) hi[2] = x;
      }
    }
  }
  if (hi[0]! < 0) return undefined;
  const start = [0, 1, 2].map((a) => Math.max(0, lo[a]! - margin[a]!)) as unknown as Vec3;
  const end = [0, 1, 2].map((a) => Math.min(volume.shape[a]!, hi[a]! + 1 + margin[a]!)) as unknown as Vec3;
  return { start, end };
}

function checkBox(box: Box, shape: Vec3): void {
  for (let a = 0; a < 3; a++) {
    if (!(Number.isInteger(box.start[a]) && Number.isInteger(box.end[a]) && box.start[a]! >= 0 && box.end[a]! <= shape[a]! && box.start[a]! < box.end[a]!)) {
      throw new RangeError(`box [${box.start.join(', ')}]..[${box.end.join(', ')}] does not fit in the shape [z, y, x] = [${shape.join(', ')}]`);
    }
  }
}

/** The sub-volume inside `box` (a copy); its origin is the world position of voxel `box.start`. */
export function cropVolume<T extends VoxelArray>(volume: Volume<T>, box: Box): Volume<T> {
  checkBox(box, volume.shape);
  const [, ny, nx] = volume.shape;
  const shape = [0, 1, 2].map((a) => box.end[a]! - box.start[a]!) as unknown as Vec3;
  const out = new (volume.data.constructor as new (n: number) => T)(shape[0] * shape[1] * shape[2]);
  let o = 0;
  for (let z = box.start[0]; z < box.end[0]; z++) {
    for (let y = box.start[1]; y < box.end[1]; y++) {
      const from = (z * ny + y) * nx + box.start[2];
      out.set(volume.data.subarray(from, from + shape[2]), o);
      o += shape[2];
    }
  }
  // start (z, y, x) → index (i, j, k) = (x, y, z)
  const ijk = [box.start[2], box.start[1], box.start[0]];
  const d = volume.directionLps;
  const origin = [0, 1, 2].map(
    (r) => volume.originLpsMm[r]! + [0, 1, 2].reduce((acc, c) => acc + d[r * 3 + c]! * volume.spacingXyzMm[c]! * ijk[c]!, 0),
  ) as unknown as Vec3;
  return makeVolume(out, shape, { spacingXyzMm: volume.spacingXyzMm, originLpsMm: origin, directionLps: d }, 'cropped volume');
}

/** Inverse of {@link cropVolume}: a volume on `grid` that holds `cropped` inside `box` and `fill` elsewhere. */
export function pasteVolume<T extends VoxelArray>(cropped: Volume<T>, box: Box, grid: Grid, fill = 0): Volume<T> {
  checkBox(box, grid.shape);
  const [nz, ny, nx] = grid.shape;
  const shape = [0, 1, 2].map((a) => box.end[a]! - box.start[a]!);
  if (shape.some((d, a) => d !== cropped.shape[a])) {
    throw new RangeError(`cropped shape [${cropped.shape.join(', ')}] does not match the box size [${shape.join(', ')}]`);
  }
  const out = new (cropped.data.constructor as new (n: number) => T)(nz * ny * nx);
  if (fill !== 0) out.fill(fill);
  let o = 0;
  for (let z = box.start[0]; z < box.end[0]; z++) {
    for (let y = box.start[1]; y < box.end[1]; y++) {
      out.set(cropped.data.subarray(o, o + shape[2]!), (z * ny + y) * nx + box.start[2]);
      o += shape[2]!;
    }
  }
  return makeVolume(out, grid.shape, grid, 'pasted volume');
}
