/**
 * The slice data pipeline, part 1: labelled volumes → normalised volumes on the
 * in-plane working grid, cut into axial slices.
 *
 * Layouts: volumes `[z, y, x]` C-ordered (x fastest), slices `[y, x]`; spacing in
 * mm as (x, y). Only the in-plane axes are resampled (z is kept: training works on
 * axial 2D slices), images linearly, labels by nearest neighbour.
 */
import { existsSync } from 'node:fs';
import type { NormalizationSpec } from '@purify/artifacts';
import { gridDifference, gridOf, resampledGrid, resampleToGrid, type Dataset, type DatasetCase, type Grid, type Volume } from '@purify/imaging';
import { TrainingConfigError, TrainingDataError } from './errors';
import { normalizeVolume } from './normalization';

/** Relative spacing difference below which no resampling happens. */
const SPACING_EPSILON = 1e-6;

/** One case on the working grid. */
export interface SliceVolume {
  readonly id: string;
  /** Normalised image `[z, h, w]` float32 in [0, 1] on {@link workingGrid}. */
  readonly image: Float32Array;
  /** Label map `[z, h, w]` (class indices) on {@link workingGrid}; undefined for unlabelled cases. */
  readonly label: Uint8Array | undefined;
  /** `[z, h, w]` = workingGrid.shape. */
  readonly shape: readonly [number, number, number];
  /** The in-plane resampled grid the arrays live on (z as in the file). */
  readonly workingGrid: Grid;
  /** The grid of the file, to map predictions back. */
  readonly originalGrid: Grid;
  /** The label volume as read from the file (original grid), kept for validation on the original grid. */
  readonly originalLabel: Volume | undefined;
  /** Per axial slice z: the label values present, ascending (empty without labels). */
  readonly sliceClasses: readonly (readonly number[])[];
}

export interface LoadSliceVolumeOptions {
  readonly normalization: NormalizationSpec;
  /** In-plane working spacing (x, y) in mm; undefined keeps each file's own spacing. */
  readonly spacingXyMm?: readonly [number, number] | undefined;
  /** Number of classes K: label values must be in [0, K). */
  readonly numClasses: number;
  /** Refuse a case without a label file (default true). */
  readonly requireLabel?: boolean;
  /** Keep the original-grid label volume (needed for validation; default true). */
  readonly keepOriginalLabel?: boolean;
}

/**
 * Checks that the dataset declares its classes as 0..K−1 with 0 = background and
 * returns them in order; throws {@link TrainingDataError} naming dataset.json.
 */
export function datasetClasses(dataset: Dataset): { index: number; name: string }[] {
  const where = dataset.jsonPath ?? dataset.root;
  if (dataset.labels.size === 0) {
    throw new TrainingDataError(`${where}: the dataset declares no labels (a labelled dataset.json with "labels" such as {"background": 0, "liver": 1} is needed for training)`);
  }
  const values = [...dataset.labels.keys()].sort((a, b) => a - b);
  if (values.some((v, i) => v !== i) || values.length < 2) {
    throw new TrainingDataError(`${where}: "labels" must be the consecutive values 0..K−1 with 0 = background and K ≥ 2, got ${values.join(', ')}`);
  }
  return values.map((index) => ({ index, name: dataset.labels.get(index) as string }));
}

/** The labelled training cases of a dataset (split train or val); throws when none has a label file. */
export function labelledCases(dataset: Dataset): DatasetCase[] {
  const cases = dataset.cases.filter((c) => c.split !== 'test');
  if (cases.length === 0) throw new TrainingDataError(`${dataset.root}: the dataset has no training cases (imagesTr/ is empty or missing)`);
  if (cases.every((c) => c.labelPath === undefined)) {
    throw new TrainingDataError(`${dataset.root}: the training cases have no labels (no labelsTr/ folder); train-source needs a labelled dataset`);
  }
  return cases;
}

/**
 * Loads one case: reads the image (channel 0) and label, checks they share a
 * grid, normalises the image, resamples both in-plane to `spacingXyMm` and
 * records which classes each axial slice contains.
 */
export async function loadSliceVolume(c: DatasetCase, options: LoadSliceVolumeOptions): Promise<SliceVolume> {
  const imagePath = c.imagePaths[0];
  if (imagePath === undefined || !existsSync(imagePath)) throw new TrainingDataError(`case ${c.id}: image file ${imagePath ?? '(channel 0)'} does not exist`);
  const requireLabel = options.requireLabel ?? true;
  if (requireLabel && (c.labelPath === undefined || !existsSync(c.labelPath))) {
    throw new TrainingDataError(`case ${c.id}: label file ${c.labelPath ?? '(none named by the dataset)'} does not exist`);
  }
  const raw = await c.loadImage(0);
  const rawLabel = c.labelPath !== undefined && existsSync(c.labelPath) ? await c.loadLabel() : undefined;
  if (rawLabel !== undefined) {
    const diff = gridDifference(raw, rawLabel);
    if (diff !== undefined) throw new TrainingDataError(`case ${c.id}: label ${c.labelPath} is not on the image's grid (${imagePath}): ${diff}`);
    checkLabelValues(rawLabel, options.numClasses, c.labelPath as string);
  }
  const normalized = normalizeVolume(raw, options.normalization);
  const originalGrid = gridOf(raw);
  const workingGrid = workingGridOf(originalGrid, options.spacingXyMm);
  const same = workingGrid.shape.every((d, i) => d === originalGrid.shape[i]);
  const image = same ? normalized.data : (resampleToGrid(normalized, workingGrid, { interpolation: 'linear' }).data as Float32Array);
  let label: Uint8Array | undefined;
  if (rawLabel !== undefined) {
    const onGrid = same ? rawLabel : resampleToGrid(rawLabel, workingGrid, { interpolation: 'nearest' });
    label = Uint8Array.from(onGrid.data);
  }
  const [nz, ny, nx] = workingGrid.shape;
  const sliceClasses: number[][] = [];
  for (let z = 0; z < nz; z++) {
    const present = new Set<number>();
    if (label !== undefined) for (let i = z * ny * nx; i < (z + 1) * ny * nx; i++) present.add(label[i] as number);
    sliceClasses.push([...present].sort((a, b) => a - b));
  }
  return {
    id: c.id,
    image,
    label,
    shape: [nz, ny, nx],
    workingGrid,
    originalGrid,
    originalLabel: options.keepOriginalLabel === false ? undefined : rawLabel,
    sliceClasses,
  };
}

/** The grid with in-plane spacing `spacingXyMm` covering the same box as `grid` (see `resampledGrid`); `grid` itself when the spacing already matches. */
export function workingGridOf(grid: Grid, spacingXyMm: readonly [number, number] | undefined): Grid {
  if (spacingXyMm === undefined) return grid;
  if (spacingXyMm.some((s) => !Number.isFinite(s) || s <= 0)) throw new TrainingConfigError(`spacingXyMm must be two positive mm values (x, y), got [${spacingXyMm.join(', ')}]`);
  const same = [0, 1].every((a) => Math.abs((grid.spacingXyzMm[a] as number) / (spacingXyMm[a] as number) - 1) < SPACING_EPSILON);
  return same ? grid : resampledGrid(grid, { spacingXyzMm: [spacingXyMm[0], spacingXyMm[1], undefined] });
}

/**
 * The in-plane spacing (x, y) in mm that maps a grid's field of view onto
 * `sizeYx` pixels: spacing = n·s / size per axis.
 */
export function spacingForSize(grid: Grid, sizeYx: readonly [number, number]): [number, number] {
  const [, ny, nx] = grid.shape;
  return [(nx * grid.spacingXyzMm[0]) / sizeYx[1], (ny * grid.spacingXyzMm[1]) / sizeYx[0]];
}

function checkLabelValues(label: Volume, numClasses: number, path: string): void {
  const data = label.data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
      const [, ny, nx] = label.shape;
      const z = Math.floor(i / (ny * nx));
      const y = Math.floor((i % (ny * nx)) / nx);
      throw new TrainingDataError(`${path}: label value ${v} at voxel [z, y, x] = [${z}, ${y}, ${i % nx}] is not a class index in [0, ${numClasses - 1}] (dataset.json declares ${numClasses} classes)`);
    }
  }
}
