import { MetricsError } from './errors';

/**
 * A label map as the metrics read it. Structurally compatible with `Volume` from
 * `@purify/imaging` (same field names and conventions) but declared here so this
 * package depends on nothing of ours.
 *
 *   - `data`: one integer label per voxel (any numeric array, typically a typed
 *     array), C-ordered with x fastest: index = (z * ny + y) * nx + x.
 *   - `shape`: [z, y, x], each a positive integer. A 2D image is [1, y, x].
 *   - `spacingXyzMm`: voxel spacing in millimetres in **(x, y, z)** order
 *     (ITK/NIfTI order — the reverse of `shape`), each finite and > 0.
 */
export interface LabelMap {
  readonly data: ArrayLike<number>;
  readonly shape: readonly [number, number, number];
  readonly spacingXyzMm: readonly [number, number, number];
}

/**
 * Two spacings agree when every component differs by at most this fraction of the
 * larger one (1e-5: absorbs float32 round trips through NIfTI headers, rejects any
 * real difference in geometry).
 */
export const SPACING_RELATIVE_TOLERANCE = 1e-5;

/** A validated grid: extents [nz, ny, nx] and spacing in (z, y, x) order, in mm. */
export interface Grid {
  readonly nz: number;
  readonly ny: number;
  readonly nx: number;
  readonly sz: number;
  readonly sy: number;
  readonly sx: number;
}

const fmt = (values: readonly number[]): string => `[${values.join(', ')}]`;

/**
 * Checks one label map (shape, data length, spacing) and returns its grid.
 * `what` names the map in messages ("pred", "gt", "mask").
 */
export function gridOf(map: LabelMap, what: string): Grid {
  const shape = map.shape as readonly number[];
  if (!Array.isArray(shape) || shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new MetricsError(`${what}: shape must be 3 positive integers [z, y, x], got ${Array.isArray(shape) ? fmt(shape) : String(shape)}`);
  }
  const spacing = map.spacingXyzMm as readonly number[];
  if (!Array.isArray(spacing) || spacing.length !== 3 || spacing.some((s) => typeof s !== 'number' || !Number.isFinite(s) || s <= 0)) {
    throw new MetricsError(
      `${what}: spacingXyzMm must be 3 finite positive mm values (x, y, z), got ${Array.isArray(spacing) ? fmt(spacing) : String(spacing)}`,
    );
  }
  const [nz, ny, nx] = shape as [number, number, number];
  const [sx, sy, sz] = spacing as [number, number, number];
  const count = nz * ny * nx;
  if (map.data.length !== count) {
    throw new MetricsError(`${what}: data has ${map.data.length} voxels but shape ${fmt(shape)} needs ${count}`);
  }
  return { nz, ny, nx, sz, sy, sx };
}

/**
 * Checks that prediction and ground truth share one grid: same shape, same spacing
 * (within SPACING_RELATIVE_TOLERANCE), each valid on its own. Returns the grid.
 */
export function commonGrid(pred: LabelMap, gt: LabelMap): Grid {
  const p = gridOf(pred, 'pred');
  const g = gridOf(gt, 'gt');
  if (p.nz !== g.nz || p.ny !== g.ny || p.nx !== g.nx) {
    throw new MetricsError(`shape mismatch: pred [z, y, x] ${fmt(pred.shape)} vs gt ${fmt(gt.shape)}`);
  }
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= SPACING_RELATIVE_TOLERANCE * Math.max(a, b);
  if (!close(p.sx, g.sx) || !close(p.sy, g.sy) || !close(p.sz, g.sz)) {
    throw new MetricsError(`spacing mismatch: pred spacingXyzMm ${fmt(pred.spacingXyzMm)} vs gt ${fmt(gt.spacingXyzMm)}`);
  }
  return p;
}

/** Throws unless `label` is an integer (labels are compared with `===` against voxel values). */
export function checkLabel(label: number, what = 'label'): void {
  if (typeof label !== 'number' || !Number.isInteger(label)) {
    throw new MetricsError(`${what} must be an integer, got ${String(label)}`);
  }
}

/**
 * The distinct values of a label map, ascending, after checking that it is one: every
 * voxel a finite integer ≥ 0. Integer arrays pass unless a value is negative; float
 * arrays pass when every value is a whole number (label maps saved as float by
 * nibabel or SimpleITK are common), so a float CT or MR image — or a NaN-filled
 * file — is refused instead of being scored as a segmentation. `what` names the map
 * in the message (a file path), which gives the first bad voxel `[z, y, x]` and its
 * value. Throws MetricsError.
 */
export function labelValues(map: LabelMap, what: string): number[] {
  const { ny, nx } = gridOf(map, what);
  const data = map.data;
  const values = new Set<number>();
  let last = Number.NaN;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (v === last) continue;
    if (!(Number.isInteger(v) && v >= 0)) {
      const z = Math.floor(i / (ny * nx));
      const y = Math.floor((i % (ny * nx)) / nx);
      throw new MetricsError(
        `${what}: voxel [z, y, x] = [${z}, ${y}, ${i % nx}] is ${v}, not a label: a label map holds integers ≥ 0 (an integer datatype, or float data whose values are all whole numbers)`,
      );
    }
    values.add(v);
    last = v;
  }
  return [...values].sort((a, b) => a - b);
}
