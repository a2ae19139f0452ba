import { squaredDistanceToFeatures } from './edt';
import { MetricsError } from './errors';
import { checkLabel, commonGrid, type Grid, type LabelMap } from './label-map';
import { percentileSorted } from './percentile';
import { surfaceInto, type PresentAxes } from './surface';

/** Surface Dice tolerance used when none is given, in mm. Choose per organ for real reports. */
export const DEFAULT_SURFACE_TOLERANCE_MM = 1;

/**
 * Slack added to the surface Dice tolerance, in mm: a distance counts as within τ
 * when d ≤ τ + 1e-9. Distances are square roots of sums of squared spacings, so one
 * that equals τ exactly (e.g. 2 × 1.1 mm against τ = 2.2 mm) can come out a few ulps
 * above it; the slack keeps "≤ τ" meaning what it says.
 */
export const SURFACE_TOLERANCE_SLACK_MM = 1e-9;

export interface MetricsOptions {
  /** Tolerance τ of the surface Dice, in mm (finite, ≥ 0). Default DEFAULT_SURFACE_TOLERANCE_MM. */
  readonly surfaceToleranceMm?: number;
}

/**
 * Distances from every surface voxel of one mask to the nearest surface voxel of
 * the other, in mm. NaN when either mask is empty and the other is not.
 */
export interface DirectedDistances {
  /** Mean over the source surface voxels. */
  readonly meanMm: number;
  /** 95th percentile, type 7 (linear between order statistics). */
  readonly p95Mm: number;
  /** Maximum (the directed Hausdorff distance). */
  readonly maxMm: number;
}

/**
 * All metrics of one label in one case (P = prediction voxels with the label,
 * G = ground-truth voxels with the label). Distances in mm; NaN means "missing"
 * (exactly one of P, G empty) and is never averaged.
 */
export interface LabelMetrics {
  readonly label: number;
  /** 2|P∩G| / (|P| + |G|); 1 when both are empty, 0 when exactly one is. */
  readonly dice: number;
  /** Hausdorff distance: max of the two directed maxima. */
  readonly hdMm: number;
  /** Max of the two directed 95th percentiles (MONAI/DeepMind; medpy instead pools both directions). */
  readonly hd95Mm: number;
  /** Average symmetric surface distance: mean of the two directed means (each direction weighs ½). */
  readonly assdMm: number;
  /**
   * Surface Dice (normalised surface distance, Nikolov et al. 2021) at
   * `surfaceToleranceMm`, with surface voxels counted equally:
   * (|{p ∈ ∂P : d(p, ∂G) ≤ τ}| + |{g ∈ ∂G : d(g, ∂P) ≤ τ}|) / (|∂P| + |∂G|)
   * (≤ τ up to SURFACE_TOLERANCE_SLACK_MM). The original weights each surface
   * element by its area; here every surface voxel counts once.
   * 1 when both are empty, 0 when exactly one is.
   */
  readonly surfaceDice: number;
  readonly surfaceToleranceMm: number;
  /** |P|, |G|, |P∩G| in voxels. */
  readonly predVoxels: number;
  readonly gtVoxels: number;
  readonly intersectionVoxels: number;
  /** |∂P|, |∂G| in voxels. */
  readonly predSurfaceVoxels: number;
  readonly gtSurfaceVoxels: number;
  /** Both P and G empty: Dice 1, distances 0, surface Dice 1. */
  readonly bothEmpty: boolean;
  /** Exactly one of P, G empty: Dice 0, surface Dice 0, distances NaN (missing). */
  readonly oneEmpty: boolean;
  /** From ∂P to ∂G. */
  readonly predToGt: DirectedDistances;
  /** From ∂G to ∂P. */
  readonly gtToPred: DirectedDistances;
}

/**
 * Metrics of every label in `labels` for one case, in the order given.
 *
 * `pred` and `gt` are label maps on the same grid (C-ordered [z, y, x], x fastest;
 * spacing in mm in (x, y, z) order). A voxel belongs to label L when its value
 * `=== L`. Surfaces and distances follow DESIGN.md §6: surface = mask minus its
 * face-connected erosion, outside the image is background, distances between voxel
 * centres via an exact anisotropic Euclidean distance transform. An axis of extent
 * 1 is absent (a 2D image is [1, y, x] and uses the in-plane 4-neighbourhood).
 *
 * Throws MetricsError on a shape or spacing mismatch, bad shape/spacing/data length,
 * a non-integer or repeated label, or a bad tolerance.
 */
export function computeCaseMetrics(
  pred: LabelMap,
  gt: LabelMap,
  labels: readonly number[],
  options: MetricsOptions = {},
): LabelMetrics[] {
  const grid = commonGrid(pred, gt);
  const tol = toleranceOf(options);
  const seen = new Set<number>();
  for (const label of labels) {
    checkLabel(label);
    if (seen.has(label)) throw new MetricsError(`labels must be unique, got ${label} twice in [${labels.join(', ')}]`);
    seen.add(label);
  }
  return labels.map((label) => labelMetricsOnGrid(pred.data, gt.data, grid, label, tol));
}

/** Metrics of one label for one case; see computeCaseMetrics for layout and conventions. */
export function computeLabelMetrics(pred: LabelMap, gt: LabelMap, label: number, options: MetricsOptions = {}): LabelMetrics {
  const grid = commonGrid(pred, gt);
  const tol = toleranceOf(options);
  checkLabel(label);
  return labelMetricsOnGrid(pred.data, gt.data, grid, label, tol);
}

function toleranceOf(options: MetricsOptions): number {
  const tol = options.surfaceToleranceMm ?? DEFAULT_SURFACE_TOLERANCE_MM;
  if (typeof tol !== 'number' || !Number.isFinite(tol) || tol < 0) {
    throw new MetricsError(`surfaceToleranceMm must be a finite number ≥ 0 (mm), got ${String(tol)}`);
  }
  return tol;
}

const ZERO: DirectedDistances = Object.freeze({ meanMm: 0, p95Mm: 0, maxMm: 0 });
const MISSING: DirectedDistances = Object.freeze({ meanMm: NaN, p95Mm: NaN, maxMm: NaN });

function labelMetricsOnGrid(
  predData: ArrayLike<number>,
  gtData: ArrayLike<number>,
  grid: Grid,
  label: number,
  tol: number,
): LabelMetrics {
  const { nz, ny, nx } = grid;

  // One pass: voxel counts and the bounding box of P ∪ G. Everything outside the
  // box is background for both masks, so surfaces and surface-to-surface distances
  // computed inside the box are exactly those of the whole image.
  let nP = 0;
  let nG = 0;
  let nPG = 0;
  let z0 = nz;
  let z1 = -1;
  let y0 = ny;
  let y1 = -1;
  let x0 = nx;
  let x1 = -1;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = (z * ny + y) * nx;
      let rowMin = nx;
      let rowMax = -1;
      for (let x = 0; x < nx; x++) {
        const p = predData[row + x] === label;
        const g = gtData[row + x] === label;
        if (p || g) {
          if (p) nP++;
          if (g) nG++;
          if (p && g) nPG++;
          if (x < rowMin) rowMin = x;
          rowMax = x;
        }
      }
      if (rowMax >= 0) {
        if (rowMin < x0) x0 = rowMin;
        if (rowMax > x1) x1 = rowMax;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        if (z < z0) z0 = z;
        z1 = z;
      }
    }
  }

  const base = {
    label,
    surfaceToleranceMm: tol,
    predVoxels: nP,
    gtVoxels: nG,
    intersectionVoxels: nPG,
  };
  if (nP === 0 && nG === 0) {
    return {
      ...base,
      dice: 1,
      hdMm: 0,
      hd95Mm: 0,
      assdMm: 0,
      surfaceDice: 1,
      predSurfaceVoxels: 0,
      gtSurfaceVoxels: 0,
      bothEmpty: true,
      oneEmpty: false,
      predToGt: ZERO,
      gtToPred: ZERO,
    };
  }
  const dice = (2 * nPG) / (nP + nG);

  // Masks cropped to the box, then their surfaces. An axis is present when the
  // *image* has extent > 1 along it (a box of extent 1 along a present axis still
  // has background on both sides).
  const cz = z1 - z0 + 1;
  const cy = y1 - y0 + 1;
  const cx = x1 - x0 + 1;
  const cropped = cz * cy * cx;
  const pMask = new Uint8Array(cropped);
  const gMask = new Uint8Array(cropped);
  for (let z = 0; z < cz; z++) {
    for (let y = 0; y < cy; y++) {
      const src = ((z + z0) * ny + (y + y0)) * nx + x0;
      const dst = (z * cy + y) * cx;
      for (let x = 0; x < cx; x++) {
        if (predData[src + x] === label) pMask[dst + x] = 1;
        if (gtData[src + x] === label) gMask[dst + x] = 1;
      }
    }
  }
  const axes: PresentAxes = { z: nz > 1, y: ny > 1, x: nx > 1 };
  const pSurf = new Uint8Array(cropped);
  const gSurf = new Uint8Array(cropped);
  const nSP = surfaceInto(pMask, cz, cy, cx, axes, pSurf);
  const nSG = surfaceInto(gMask, cz, cy, cx, axes, gSurf);

  if (nP === 0 || nG === 0) {
    return {
      ...base,
      dice: 0,
      hdMm: NaN,
      hd95Mm: NaN,
      assdMm: NaN,
      surfaceDice: 0,
      predSurfaceVoxels: nSP,
      gtSurfaceVoxels: nSG,
      bothEmpty: false,
      oneEmpty: true,
      predToGt: MISSING,
      gtToPred: MISSING,
    };
  }

  const box: Grid = { nz: cz, ny: cy, nx: cx, sz: grid.sz, sy: grid.sy, sx: grid.sx };
  const d2 = squaredDistanceToFeatures(gSurf, box, undefined, pSurf);
  const predToGt = gather(d2, pSurf, nSP);
  squaredDistanceToFeatures(pSurf, box, d2, gSurf);
  const gtToPred = gather(d2, gSurf, nSG);

  const a = directed(predToGt);
  const b = directed(gtToPred);
  const limit = tol + SURFACE_TOLERANCE_SLACK_MM;
  const within = countAtMost(predToGt, limit) + countAtMost(gtToPred, limit);
  return {
    ...base,
    dice,
    hdMm: Math.max(a.maxMm, b.maxMm),
    hd95Mm: Math.max(a.p95Mm, b.p95Mm),
    assdMm: (a.meanMm + b.meanMm) / 2,
    surfaceDice: within / (nSP + nSG),
    predSurfaceVoxels: nSP,
    gtSurfaceVoxels: nSG,
    bothEmpty: false,
    oneEmpty: false,
    predToGt: a,
    gtToPred: b,
  };
}

/** Distances in mm (√ of the squared EDT) at the voxels where `where` is 1, sorted ascending. */
function gather(d2: Float64Array, where: Uint8Array, count: number): Float64Array {
  const out = new Float64Array(count);
  let k = 0;
  for (let i = 0; i < where.length; i++) {
    if (where[i] !== 0) out[k++] = Math.sqrt(d2[i] as number);
  }
  return out.sort();
}

function directed(sorted: Float64Array): DirectedDistances {
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i] as number;
  return {
    meanMm: sum / sorted.length,
    p95Mm: percentileSorted(sorted, 95),
    maxMm: sorted[sorted.length - 1] as number,
  };
}

/** Number of values ≤ limit in an ascending array (binary search). */
function countAtMost(sorted: Float64Array, limit: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) <= limit) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
