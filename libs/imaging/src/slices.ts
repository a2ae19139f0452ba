/**
 * Volume ↔ axial slice stacks. A volume `[z, y, x]` (x fastest) and a stack of axial
 * slices `[n, y, x]` with n = z have the same memory layout; these helpers copy so
 * that each result owns its buffer.
 */
import { makeVolume, type Vec3, type Volume, type VoxelArray } from './volume';
import type { Grid } from './geometry';

export interface SliceStack<T extends VoxelArray = VoxelArray> {
  /** C-ordered `[n, y, x]`, x fastest. */
  readonly data: T;
  /** [n, y, x]. */
  readonly shape: Vec3;
}

export interface Slice<T extends VoxelArray = VoxelArray> {
  /** C-ordered `[y, x]`, x fastest. */
  readonly data: T;
  /** [y, x]. */
  readonly shape: readonly [number, number];
}

function copyOf<T extends VoxelArray>(a: T): T {
  return a.slice() as T;
}

/** Axial slices `[n = z, y, x]` of a volume (a copy). */
export function toAxialSlices<T extends VoxelArray>(volume: Volume<T>): SliceStack<T> {
  return { data: copyOf(volume.data), shape: [...volume.shape] as unknown as Vec3 };
}

/** A volume `[z = n, y, x]` from axial slices (a copy) with the geometry of `grid` (whose shape must match). */
export function fromAxialSlices<T extends VoxelArray>(stack: SliceStack<T>, grid: Grid): Volume<T> {
  if (stack.shape.some((d, i) => d !== grid.shape[i])) {
    throw new RangeError(`slice stack [n, y, x] = [${stack.shape.join(', ')}] does not match the grid [z, y, x] = [${grid.shape.join(', ')}]`);
  }
  return makeVolume(copyOf(stack.data), stack.shape, grid, 'slice stack');
}

/** Axial slice z of a volume, `[y, x]` (a copy). */
export function axialSlice<T extends VoxelArray>(volume: Volume<T>, z: number): Slice<T> {
  const [nz, ny, nx] = volume.shape;
  if (!Number.isInteger(z) || z < 0 || z >= nz) throw new RangeError(`slice index z must be an integer in [0, ${nz - 1}], got ${z}`);
  return { data: volume.data.slice(z * ny * nx, (z + 1) * ny * nx) as T, shape: [ny, nx] };
}
