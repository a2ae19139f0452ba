import { BorderMode, type ResolvedOptions } from './config';

/**
 * The anchor grid of one image `[z, y, x]`. Every slice has the same grid:
 *
 * - **cells** tile the slice in `stride × stride` squares (the last row/column
 *   may be smaller): cell (i, j) = rows [i·s, min((i+1)·s, H)) × columns
 *   [j·s, min((j+1)·s, W)). Every pixel lies in exactly one cell.
 * - **anchors**: one patch of `P × P` pixels centred on each cell, top-left
 *   `t = ⌊(c0 + c1 − P) / 2⌋` per axis. With `shift` border handling edge
 *   anchors are clamped into [0, H − P] (duplicates removed); with `pad` they
 *   stay and the part of the patch outside the slice is zero-padded. Because
 *   `stride ≤ P`, each cell lies inside its own anchor's patch, so every pixel
 *   is predicted by at least one patch.
 */
export interface AnchorGrid {
  readonly shapeZyx: readonly [number, number, number];
  readonly patchSize: number;
  readonly stride: number;
  readonly borderMode: BorderMode;
  /** Cell boundaries along y: cell i = [cellEdgesY[i], cellEdgesY[i + 1]). */
  readonly cellEdgesY: readonly number[];
  readonly cellEdgesX: readonly number[];
  /** Patch top-left rows (may be negative with `pad`); anchors are the product anchorY × anchorX, x fastest. */
  readonly anchorY: readonly number[];
  readonly anchorX: readonly number[];
}

export function cellEdges(length: number, stride: number): number[] {
  const edges: number[] = [];
  for (let e = 0; e < length; e += stride) edges.push(e);
  edges.push(length);
  return edges;
}

function anchorsAlong(edges: readonly number[], length: number, patch: number, mode: BorderMode): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    let t = Math.floor(((edges[i] as number) + (edges[i + 1] as number) - patch) / 2);
    if (mode === BorderMode.Shift) t = Math.min(Math.max(t, 0), length - patch);
    if (out[out.length - 1] !== t) out.push(t);
  }
  return out;
}

export function buildGrid(shapeZyx: readonly [number, number, number], options: ResolvedOptions): AnchorGrid {
  const [, h, w] = shapeZyx;
  const cellEdgesY = cellEdges(h, options.stride);
  const cellEdgesX = cellEdges(w, options.stride);
  return {
    shapeZyx: [...shapeZyx] as [number, number, number],
    patchSize: options.patchSize,
    stride: options.stride,
    borderMode: options.borderMode,
    cellEdgesY,
    cellEdgesX,
    anchorY: anchorsAlong(cellEdgesY, h, options.patchSize, options.borderMode),
    anchorX: anchorsAlong(cellEdgesX, w, options.patchSize, options.borderMode),
  };
}

/** Anchors per slice. */
export function anchorsPerSlice(grid: AnchorGrid): number {
  return grid.anchorY.length * grid.anchorX.length;
}

/** Anchor centres of one slice as (y, x) pairs, anchors in grid order: centre = top-left + ⌊P/2⌋, clamped into the slice. */
export function anchorCentres(grid: AnchorGrid): number[] {
  const [, h, w] = grid.shapeZyx;
  const half = Math.floor(grid.patchSize / 2);
  const out: number[] = [];
  for (const ty of grid.anchorY) {
    for (const tx of grid.anchorX) out.push(Math.min(Math.max(ty + half, 0), h - 1), Math.min(Math.max(tx + half, 0), w - 1));
  }
  return out;
}

/** One region: a grid cell of one slice, optionally restricted to one pseudo-label class. */
export interface Region {
  readonly index: number;
  readonly slice: number;
  /** Cell bounds, half-open [y0, y1) × [x0, x1), pixels. */
  readonly y0: number;
  readonly y1: number;
  readonly x0: number;
  readonly x1: number;
  /** Class the region is restricted to; −1 when regions are not split by class. */
  readonly classIndex: number;
  readonly pixelCount: number;
}

export interface RegionSet {
  readonly regions: readonly Region[];
  /** Region index of every pixel, Int32Array `[z, y, x]`. */
  readonly regionOf: Int32Array;
}

/**
 * Regions of an image: grid cells in (slice, cell row, cell column) order; with
 * `splitByClass` each cell becomes one region per class present in `labels`
 * (the pseudo-label `[z, y, x]`), classes ascending.
 */
export function buildRegions(grid: AnchorGrid, labels: ArrayLike<number>, splitByClass: boolean): RegionSet {
  const [z, h, w] = grid.shapeZyx;
  const regionOf = new Int32Array(z * h * w);
  const regions: Region[] = [];
  const cy = grid.cellEdgesY;
  const cx = grid.cellEdgesX;
  for (let s = 0; s < z; s++) {
    for (let i = 0; i + 1 < cy.length; i++) {
      const y0 = cy[i] as number;
      const y1 = cy[i + 1] as number;
      for (let j = 0; j + 1 < cx.length; j++) {
        const x0 = cx[j] as number;
        const x1 = cx[j + 1] as number;
        if (!splitByClass) {
          const index = regions.length;
          for (let y = y0; y < y1; y++) regionOf.fill(index, s * h * w + y * w + x0, s * h * w + y * w + x1);
          regions.push({ index, slice: s, y0, y1, x0, x1, classIndex: -1, pixelCount: (y1 - y0) * (x1 - x0) });
          continue;
        }
        const counts = new Map<number, number>();
        for (let y = y0; y < y1; y++) {
          for (let x = x0; x < x1; x++) {
            const l = labels[s * h * w + y * w + x] as number;
            counts.set(l, (counts.get(l) ?? 0) + 1);
          }
        }
        const first = regions.length;
        const classes = [...counts.keys()].sort((a, b) => a - b);
        const indexOfClass = new Map(classes.map((c, k) => [c, first + k]));
        classes.forEach((c, k) => regions.push({ index: first + k, slice: s, y0, y1, x0, x1, classIndex: c, pixelCount: counts.get(c) as number }));
        for (let y = y0; y < y1; y++) {
          for (let x = x0; x < x1; x++) {
            const p = s * h * w + y * w + x;
            regionOf[p] = indexOfClass.get(labels[p] as number) as number;
          }
        }
      }
    }
  }
  return { regions, regionOf };
}
