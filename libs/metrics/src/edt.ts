import { gridOf, type Grid, type LabelMap } from './label-map';

/**
 * Exact Euclidean distance transform, separable and linear in the number of voxels
 * (Felzenszwalb & Huttenlocher 2012, "Distance transforms of sampled functions";
 * the same lower-envelope-of-parabolas idea as Meijster et al. 2000).
 *
 * Pass 1 (z) is a two-sided scan giving the 1D distance to the nearest feature in
 * each z-column, done plane by plane so memory is read contiguously. Passes 2 (y)
 * and 3 (x) take the lower envelope of the parabolas f(q) + (w·(p − q))², w the
 * axis spacing in mm, so anisotropic spacing is exact, not approximated. Axes of
 * extent 1 need no pass.
 */

/**
 * Squared distance in mm² from each voxel centre to the nearest feature voxel
 * centre (`features[i] !== 0`); 0 on features, +Infinity everywhere when there is
 * no feature. `features` and the result are C-ordered [z, y, x] with x fastest.
 *
 * `out` (length nz·ny·nx) is reused when given, so repeated calls need not
 * allocate; it may not alias `features`. With `query` (same layout), only voxels
 * where `query[i] !== 0` are guaranteed to hold the final value (the last pass
 * skips the others) — all the surface metrics need, at about half the last pass.
 */
export function squaredDistanceToFeatures(
  features: ArrayLike<number>,
  grid: Grid,
  out?: Float64Array,
  query?: Uint8Array,
): Float64Array {
  const { nz, ny, nx, sz, sy, sx } = grid;
  const plane = ny * nx;
  const count = nz * plane;
  const d2 = out && out.length === count ? out : new Float64Array(count);

  // Pass 1 — along z: distance to the nearest feature in each z-column, by a
  // forward and a backward sweep over whole planes (contiguous memory), keeping
  // the last / next feature plane of every column.
  const near = new Int32Array(plane).fill(-1);
  for (let z = 0; z < nz; z++) {
    const base = z * plane;
    for (let i = 0; i < plane; i++) {
      if (features[base + i] !== 0) {
        near[i] = z;
        d2[base + i] = 0;
      } else {
        const last = near[i] as number;
        const d = (z - last) * sz;
        d2[base + i] = last < 0 ? Infinity : d * d;
      }
    }
  }
  near.fill(-1);
  for (let z = nz - 1; z >= 0; z--) {
    const base = z * plane;
    for (let i = 0; i < plane; i++) {
      if (features[base + i] !== 0) {
        near[i] = z;
      } else {
        const next = near[i] as number;
        if (next >= 0) {
          const d = (next - z) * sz;
          const dd = d * d;
          if (dd < (d2[base + i] as number)) d2[base + i] = dd;
        }
      }
    }
  }

  const longest = Math.max(ny, nx);
  const scratch: Scratch = {
    pos: new Float64Array(longest),
    val: new Float64Array(longest),
    bound: new Float64Array(longest + 1),
  };
  // Pass 2 — along y (stride nx, within one plane, which stays in cache).
  if (ny > 1) {
    for (let z = 0; z < nz; z++) {
      for (let x = 0; x < nx; x++) envelope1d(d2, z * plane + x, nx, ny, sy, scratch);
    }
  }
  // Pass 3 — along x (contiguous). With a query mask, rows without a query voxel
  // are skipped and only query voxels are written.
  if (nx > 1) {
    for (let row = 0; row < nz * ny; row++) {
      const base = row * nx;
      if (query !== undefined) {
        let any = false;
        for (let x = 0; x < nx && !any; x++) any = query[base + x] !== 0;
        if (!any) continue;
      }
      envelope1d(d2, base, 1, nx, sx, scratch, query);
    }
  }
  return d2;
}

/** Scratch for envelope1d: the envelope's parabolas (vertex in mm, value) and boundaries. */
interface Scratch {
  readonly pos: Float64Array;
  readonly val: Float64Array;
  readonly bound: Float64Array;
}

/**
 * In place on the line d2[start + k·stride], k < n: d2(p) ← min_q d2(q) + (w·(p − q))².
 * The lower envelope of the parabolas y = f(q) + (t − w·q)² (t in mm along the
 * line) is built left to right; parabola k is lowest on [bound[k], bound[k+1]].
 * Infinite entries (no feature seen yet) are not parabolas and are skipped; a line
 * with none stays infinite. With `query`, only entries where query[i] !== 0 are written.
 */
function envelope1d(
  d2: Float64Array,
  start: number,
  stride: number,
  n: number,
  w: number,
  scratch: Scratch,
  query?: Uint8Array,
): void {
  const { pos, val, bound } = scratch;
  let k = -1;
  for (let q = 0, i = start; q < n; q++, i += stride) {
    const fq = d2[i] as number;
    if (fq === Infinity) continue;
    const tq = q * w;
    const hq = fq + tq * tq;
    // Where the new parabola crosses the top one; pop those it hides completely.
    let s = -Infinity;
    while (k >= 0) {
      const tk = pos[k] as number;
      s = (hq - ((val[k] as number) + tk * tk)) / (2 * (tq - tk));
      if (s > (bound[k] as number)) break;
      k--;
    }
    k++;
    pos[k] = tq;
    val[k] = fq;
    bound[k] = k === 0 ? -Infinity : s;
  }
  if (k < 0) return; // no feature on this line: every entry is already +Infinity
  bound[k + 1] = Infinity;
  let j = 0;
  for (let p = 0, i = start; p < n; p++, i += stride) {
    if (query !== undefined && query[i] === 0) continue;
    const tp = p * w;
    while ((bound[j + 1] as number) < tp) j++;
    const d = tp - (pos[j] as number);
    d2[i] = (val[j] as number) + d * d;
  }
}

/**
 * Euclidean distance in mm from each voxel centre to the nearest non-zero voxel of
 * `mask` (0 on non-zero voxels, +Infinity everywhere if `mask` has none).
 * Layout: `mask.data` and the result are C-ordered [z, y, x], x fastest; spacing is
 * `mask.spacingXyzMm` in (x, y, z) order. Equivalent to scipy's
 * `distance_transform_edt(mask == 0, sampling=(sz, sy, sx))`.
 */
export function euclideanDistanceTransform(mask: LabelMap): Float64Array {
  const grid = gridOf(mask, 'mask');
  const d = squaredDistanceToFeatures(mask.data, grid);
  for (let i = 0; i < d.length; i++) d[i] = Math.sqrt(d[i] as number);
  return d;
}
