/**
 * The volume type of purify.
 *
 * Layout and conventions (the same as the wire format in proto/purify/v1/common.proto):
 *   - `data` is C-ordered with x fastest: index = (z * ny + y) * nx + x, shape [z, y, x].
 *   - Geometry follows ITK/SimpleITK: `spacingXyzMm` and `originLpsMm` are (x, y, z);
 *     world coordinates are DICOM patient coordinates (LPS, millimetres);
 *     `directionLps` is the row-major 3x3 matrix whose column k is the LPS unit vector
 *     of voxel index axis k (k = 0: x/i, 1: y/j, 2: z/k):
 *       world = origin + direction · diag(spacing) · (i, j, k).
 *   - `originLpsMm` is the centre of voxel (0, 0, 0).
 * Ownership: a Volume owns its `data` buffer; functions that return a new Volume
 * never alias the input's buffer unless their doc comment says so.
 */

export type VoxelArray = Uint8Array | Int16Array | Uint16Array | Int32Array | Float32Array | Float64Array;

export type Vec3 = readonly [number, number, number];

export interface Volume<T extends VoxelArray = VoxelArray> {
  readonly data: T;
  /** [z, y, x], each > 0. */
  readonly shape: Vec3;
  /** Voxel spacing (x, y, z) in mm, each > 0. */
  readonly spacingXyzMm: Vec3;
  /** LPS world position (x, y, z) in mm of the centre of voxel (0, 0, 0). */
  readonly originLpsMm: Vec3;
  /** Row-major 3x3; column k is the LPS direction of index axis k (x, y, z). */
  readonly directionLps: readonly number[];
}

export const IDENTITY_DIRECTION: readonly number[] = Object.freeze([1, 0, 0, 0, 1, 0, 0, 0, 1]);

export class VolumeError extends Error {
  override readonly name = 'VolumeError';
}

/** Number of voxels of a [z, y, x] shape. */
export function voxelCount(shape: Vec3): number {
  return shape[0] * shape[1] * shape[2];
}

/**
 * Builds a Volume after checking that the buffer length matches the shape and
 * the geometry is finite, positive and orthonormal. `what` names the volume in
 * error messages (e.g. a file path).
 */
export function makeVolume<T extends VoxelArray>(
  data: T,
  shape: Vec3,
  geometry: Partial<Pick<Volume, 'spacingXyzMm' | 'originLpsMm' | 'directionLps'>> = {},
  what = 'volume',
): Volume<T> {
  if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new VolumeError(`${what}: shape must be 3 positive integers [z, y, x], got [${shape.join(', ')}]`);
  }
  if (data.length !== voxelCount(shape)) {
    throw new VolumeError(`${what}: data has ${data.length} voxels but shape [${shape.join(', ')}] needs ${voxelCount(shape)}`);
  }
  const spacingXyzMm = geometry.spacingXyzMm ?? [1, 1, 1];
  const originLpsMm = geometry.originLpsMm ?? [0, 0, 0];
  const directionLps = geometry.directionLps ?? IDENTITY_DIRECTION;
  if (spacingXyzMm.length !== 3 || spacingXyzMm.some((s) => !Number.isFinite(s) || s <= 0)) {
    throw new VolumeError(`${what}: spacing must be 3 finite positive mm values (x, y, z), got [${spacingXyzMm.join(', ')}]`);
  }
  if (originLpsMm.length !== 3 || originLpsMm.some((o) => !Number.isFinite(o))) {
    throw new VolumeError(`${what}: origin must be 3 finite mm values, got [${originLpsMm.join(', ')}]`);
  }
  if (directionLps.length !== 9 || !isOrthonormal(directionLps)) {
    throw new VolumeError(`${what}: direction must be an orthonormal 3x3 matrix, got [${directionLps.join(', ')}]`);
  }
  return { data, shape: [...shape] as unknown as Vec3, spacingXyzMm: [...spacingXyzMm] as unknown as Vec3, originLpsMm: [...originLpsMm] as unknown as Vec3, directionLps: [...directionLps] };
}

/** True when the columns of a row-major 3x3 matrix are orthonormal within `tolerance`. */
export function isOrthonormal(m: readonly number[], tolerance = 1e-4): boolean {
  if (m.length !== 9 || m.some((v) => !Number.isFinite(v))) return false;
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      let dot = 0;
      for (let r = 0; r < 3; r++) dot += (m[r * 3 + a] as number) * (m[r * 3 + b] as number);
      if (Math.abs(dot - (a === b ? 1 : 0)) > tolerance) return false;
    }
  }
  return true;
}
