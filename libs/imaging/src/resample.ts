/**
 * Resampling between voxel grids, and the grids used for preprocessing.
 *
 * Grid convention (consistent with origin = centre of voxel (0, 0, 0)): a grid covers
 * the box from half a voxel before its first voxel centre to half a voxel after its
 * last one. {@link resampledGrid} keeps that box exactly ("align corners = false",
 * as in skimage/PyTorch `align_corners=False`): along an axis with n voxels of
 * spacing s resampled to n' voxels, the new spacing is s' = n·s/n' and the new first
 * centre sits s'/2 inside the box start. So new index i' looks up old continuous index
 *   u = (i' + 0.5)·(n/n') − 0.5,
 * and resampling back with the old grid as target is the exact inverse mapping. With
 * an integer zoom factor f = n'/n, nearest-neighbour upsampling repeats every voxel f
 * times and resampling back returns the original labels exactly.
 *
 * Sampling: the target voxel centre is mapped to the source's continuous index
 * through both grids' full affines (any directions). Positions up to half a voxel
 * outside the source (inside its box) take the border voxel; farther out, `fill`.
 * Linear = trilinear (bilinear in-plane when z is unchanged: the z weight is then 0).
 */
import { indexToWorldLps, multiply4, worldLpsToIndex, type Grid } from './geometry';
import { makeVolume, type Vec3, type Volume, type VoxelArray } from './volume';

export const Interpolation = { linear: 'linear', nearest: 'nearest' } as const;
export type Interpolation = (typeof Interpolation)[keyof typeof Interpolation];

export class ResampleError extends Error {
  override readonly name = 'ResampleError';
}

export interface ResampleTarget {
  /** Target spacing (x, y, z) in mm; `undefined` for an axis keeps it. The size is rounded, so the spacing used is n·s/round(n·s/target). */
  readonly spacingXyzMm?: readonly [number | undefined, number | undefined, number | undefined];
  /** Target in-plane size (x, y) in voxels; wins over spacingXyzMm for x and y. */
  readonly sizeXy?: readonly [number, number];
}

/** The grid covering the same box as `grid` with the target spacing and/or in-plane size (see the module comment). */
export function resampledGrid(grid: Grid, target: ResampleTarget): Grid {
  const sizes: number[] = [];
  const spacing: number[] = [];
  const shift: number[] = [];
  for (let axis = 0; axis < 3; axis++) {
    const n = grid.shape[2 - axis] as number; // shape is [z, y, x]; axis 0 is x
    const s = grid.spacingXyzMm[axis] as number;
    let n2 = n;
    const size = axis < 2 ? target.sizeXy?.[axis] : undefined;
    const wanted = target.spacingXyzMm?.[axis];
    if (size !== undefined) {
      if (!Number.isInteger(size) || size < 1) throw new ResampleError(`sizeXy[${axis}] must be a positive integer, got ${size}`);
      n2 = size;
    } else if (wanted !== undefined) {
      if (!Number.isFinite(wanted) || wanted <= 0) throw new ResampleError(`spacingXyzMm[${axis}] must be a positive number of mm, got ${wanted}`);
      n2 = Math.max(1, Math.round((n * s) / wanted));
    }
    const s2 = n2 === n ? s : (n * s) / n2;
    sizes.push(n2);
    spacing.push(s2);
    shift.push((s2 - s) / 2);
  }
  const d = grid.directionLps;
  const origin = [0, 1, 2].map((r) => (grid.originLpsMm[r] as number) + [0, 1, 2].reduce((acc, c) => acc + (d[r * 3 + c] as number) * (shift[c] as number), 0));
  return {
    shape: [sizes[2], sizes[1], sizes[0]] as unknown as Vec3,
    spacingXyzMm: spacing as unknown as Vec3,
    originLpsMm: origin as unknown as Vec3,
    directionLps: [...d],
  };
}

export interface ResampleOptions {
  readonly interpolation: Interpolation;
  /** Value for target voxels outside the source box (default 0). */
  readonly fill?: number;
}

/**
 * Resamples `volume` onto `grid`. Linear returns Float32Array; nearest keeps the
 * input's array type (labels stay labels). Returns a new volume with `grid`'s geometry.
 */
export function resampleToGrid(volume: Volume, grid: Grid, options: ResampleOptions): Volume {
  const [nz, ny, nx] = volume.shape;
  const [tz, ty, tx] = grid.shape;
  const fill = options.fill ?? 0;
  // m maps target index (i, j, k, 1) to source continuous index (u, v, w, 1).
  const m = multiply4(worldLpsToIndex(volume), indexToWorldLps(grid));
  const src = volume.data;
  const nearest = options.interpolation === 'nearest';
  const out: VoxelArray = nearest ? new (src.constructor as new (n: number) => VoxelArray)(tz * ty * tx) : new Float32Array(tz * ty * tx);
  const inBox = (u: number, n: number): boolean => u >= -0.5 - 1e-6 && u <= n - 0.5 + 1e-6;
  const clampIndex = (i: number, n: number): number => (i < 0 ? 0 : i >= n ? n - 1 : i);
  let o = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      for (let i = 0; i < tx; i++, o++) {
        const u = m[0]! * i + m[1]! * j + m[2]! * k + m[3]!;
        const v = m[4]! * i + m[5]! * j + m[6]! * k + m[7]!;
        const w = m[8]! * i + m[9]! * j + m[10]! * k + m[11]!;
        if (!inBox(u, nx) || !inBox(v, ny) || !inBox(w, nz)) {
          out[o] = fill;
          continue;
        }
        if (nearest) {
          const x0 = clampIndex(Math.floor(u + 0.5), nx);
          const y0 = clampIndex(Math.floor(v + 0.5), ny);
          const z0 = clampIndex(Math.floor(w + 0.5), nz);
          out[o] = src[(z0 * ny + y0) * nx + x0] as number;
          continue;
        }
        const uc = Math.min(Math.max(u, 0), nx - 1);
        const vc = Math.min(Math.max(v, 0), ny - 1);
        const wc = Math.min(Math.max(w, 0), nz - 1);
        const x0 = Math.floor(uc);
        const y0 = Math.floor(vc);
        const z0 = Math.floor(wc);
        const x1 = Math.min(x0 + 1, nx - 1);
        const y1 = Math.min(y0 + 1, ny - 1);
        const z1 = Math.min(z0 + 1, nz - 1);
        const fx = uc - x0;
        const fy = vc - y0;
        const fz = wc - z0;
        const at = (z: number, y: number, x: number): number => src[(z * ny + y) * nx + x] as number;
        const c00 = at(z0, y0, x0) * (1 - fx) + at(z0, y0, x1) * fx;
        const c01 = at(z0, y1, x0) * (1 - fx) + at(z0, y1, x1) * fx;
        const c10 = at(z1, y0, x0) * (1 - fx) + at(z1, y0, x1) * fx;
        const c11 = at(z1, y1, x0) * (1 - fx) + at(z1, y1, x1) * fx;
        out[o] = (c00 * (1 - fy) + c01 * fy) * (1 - fz) + (c10 * (1 - fy) + c11 * fy) * fz;
      }
    }
  }
  return makeVolume(out, grid.shape, grid, 'resampled volume');
}

export interface Resampled {
  readonly volume: Volume;
  /** The input's grid: resample back onto it with {@link resampleToGrid} to undo. */
  readonly originalGrid: Grid;
}

/** Resamples to a target spacing and/or in-plane size (see {@link resampledGrid}); returns the original grid for the inverse. */
export function resampleVolume(volume: Volume, target: ResampleTarget, interpolation: Interpolation): Resampled {
  const originalGrid: Grid = { shape: volume.shape, spacingXyzMm: volume.spacingXyzMm, originLpsMm: volume.originLpsMm, directionLps: volume.directionLps };
  return { volume: resampleToGrid(volume, resampledGrid(originalGrid, target), { interpolation }), originalGrid };
}
