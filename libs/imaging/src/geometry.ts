/**
 * Voxel grids and the index ↔ world mapping shared by every module of this package.
 *
 * A grid is a Volume without its voxels: shape [z, y, x], spacing (x, y, z) in mm,
 * LPS origin (x, y, z) in mm = centre of voxel (0, 0, 0), and the row-major 3x3
 * direction whose column k is the LPS unit vector of index axis k (0 = x, 1 = y, 2 = z):
 *   world = origin + direction · diag(spacing) · (i, j, k)      (i along x, k along z).
 */
import type { Vec3, Volume } from './volume';

export interface Grid {
  /** [z, y, x]. */
  readonly shape: Vec3;
  /** (x, y, z) mm. */
  readonly spacingXyzMm: Vec3;
  /** (x, y, z) LPS mm, centre of voxel (0, 0, 0). */
  readonly originLpsMm: Vec3;
  /** Row-major 3x3, column k = LPS direction of index axis k (x, y, z). */
  readonly directionLps: readonly number[];
}

/** The grid of a volume (copies, never aliases). */
export function gridOf(volume: Grid | Volume): Grid {
  return {
    shape: [...volume.shape] as unknown as Vec3,
    spacingXyzMm: [...volume.spacingXyzMm] as unknown as Vec3,
    originLpsMm: [...volume.originLpsMm] as unknown as Vec3,
    directionLps: [...volume.directionLps],
  };
}

/**
 * The 4x4 row-major affine mapping index (i, j, k, 1) — i along x, k along z — to LPS
 * world millimetres: column k = direction column k × spacing k, last column = origin.
 */
export function indexToWorldLps(grid: Grid): number[] {
  const d = grid.directionLps;
  const s = grid.spacingXyzMm;
  const o = grid.originLpsMm;
  const m: number[] = new Array<number>(16).fill(0);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) m[r * 4 + c] = (d[r * 3 + c] as number) * (s[c] as number);
    m[r * 4 + 3] = o[r] as number;
  }
  m[15] = 1;
  return m;
}

/** Inverse of {@link indexToWorldLps}: LPS mm → continuous index (i, j, k) = (x, y, z). */
export function worldLpsToIndex(grid: Grid): number[] {
  // direction is orthonormal, so its inverse is its transpose.
  const d = grid.directionLps;
  const s = grid.spacingXyzMm;
  const o = grid.originLpsMm;
  const m: number[] = new Array<number>(16).fill(0);
  for (let r = 0; r < 3; r++) {
    let t = 0;
    for (let c = 0; c < 3; c++) {
      const v = (d[c * 3 + r] as number) / (s[r] as number);
      m[r * 4 + c] = v;
      t -= v * (o[c] as number);
    }
    m[r * 4 + 3] = t;
  }
  m[15] = 1;
  return m;
}

/** Product of two row-major 4x4 matrices, a · b. */
export function multiply4(a: readonly number[], b: readonly number[]): number[] {
  const m: number[] = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let v = 0;
      for (let k = 0; k < 4; k++) v += (a[r * 4 + k] as number) * (b[k * 4 + c] as number);
      m[r * 4 + c] = v;
    }
  }
  return m;
}

export interface GridTolerance {
  /** Largest allowed origin difference in mm (default 1e-3). */
  originMm?: number;
  /** Largest allowed relative spacing difference (default 1e-4). */
  spacingRelative?: number;
  /** Largest allowed difference of a direction cosine (default 1e-4). */
  direction?: number;
}

/**
 * Describes how grid `b` differs from grid `a` (shape, then spacing, origin,
 * direction), or returns undefined when they agree within tolerance.
 */
export function gridDifference(a: Grid, b: Grid, tolerance: GridTolerance = {}): string | undefined {
  const originMm = tolerance.originMm ?? 1e-3;
  const spacingRelative = tolerance.spacingRelative ?? 1e-4;
  const direction = tolerance.direction ?? 1e-4;
  const fmt = (v: readonly number[]): string => `[${v.map((x) => Number(x.toPrecision(6))).join(', ')}]`;
  if (a.shape.some((d, i) => d !== b.shape[i])) return `shape [z, y, x] ${fmt(b.shape)} differs from ${fmt(a.shape)}`;
  if (a.spacingXyzMm.some((s, i) => Math.abs(s - (b.spacingXyzMm[i] as number)) > spacingRelative * Math.max(s, b.spacingXyzMm[i] as number))) {
    return `spacing (x, y, z) ${fmt(b.spacingXyzMm)} mm differs from ${fmt(a.spacingXyzMm)} mm`;
  }
  if (a.originLpsMm.some((o, i) => Math.abs(o - (b.originLpsMm[i] as number)) > originMm)) {
    return `origin (LPS) ${fmt(b.originLpsMm)} mm differs from ${fmt(a.originLpsMm)} mm`;
  }
  if (a.directionLps.some((d, i) => Math.abs(d - (b.directionLps[i] as number)) > direction)) {
    return `direction ${fmt(b.directionLps)} differs from ${fmt(a.directionLps)}`;
  }
  return undefined;
}

/**
 * Orientation code of a grid in the DICOM/ITK letter convention used by
 * `purify data inspect`: letter k names the LPS axis the index axis k (x, y, z)
 * points *towards* most closely (e.g. "LPS" for the identity direction, "RAS" for
 * a grid whose x runs to the patient's right and y to anterior).
 */
export function orientationCode(grid: Pick<Grid, 'directionLps'>): string {
  const letters: readonly (readonly [string, string])[] = [
    ['L', 'R'],
    ['P', 'A'],
    ['S', 'I'],
  ];
  let code = '';
  for (let c = 0; c < 3; c++) {
    let best = 0;
    for (let r = 1; r < 3; r++) if (Math.abs(grid.directionLps[r * 3 + c] as number) > Math.abs(grid.directionLps[best * 3 + c] as number)) best = r;
    const pair = letters[best] as readonly [string, string];
    code += (grid.directionLps[best * 3 + c] as number) >= 0 ? pair[0] : pair[1];
  }
  return code;
}
