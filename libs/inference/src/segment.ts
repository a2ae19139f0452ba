/**
 * Whole-volume segmentation with a loaded model: the model's own
 * normalisation, in-plane resampling to the model's spacing, 2D axial slices
 * in batches through a sliding window, optional flip TTA, and the result mapped
 * back onto the input's own grid.
 */
import type { ModelMeta } from '@purify/artifacts';
import { gridOf, makeVolume, resampledGrid, type Grid, type Volume } from '@purify/imaging';
import { InferenceError } from './errors';
import type { ModelKey, Nchw } from './model';
import { normalizeVolume } from './normalize';
import { resampleSlicesBilinear } from './resample-inplane';
import { DEFAULT_SIGMA_SCALE, slidingWindowPredict } from './sliding-window';

/** What segmentation needs of a model ({@link LoadedModel} is one). */
export interface SegmentationModel {
  readonly key: ModelKey;
  readonly meta: ModelMeta;
  readonly numClasses: number;
  readonly sizeMultiple: number;
  /** float32 `[n, c, h, w]` → softmax probabilities `[n, K, h, w]`. */
  predictBatch(batch: Nchw): Promise<Nchw>;
}

export interface SegmentVolumeOptions {
  /** Sliding-window overlap as a fraction of the tile, [0, 1) (default 0.5). */
  readonly overlap?: number;
  /** Average over x/y/xy flips (4× the network runs; default false). */
  readonly flipTta?: boolean;
  /** Tiles per network call (default 8). Slices are processed in slabs of this many. */
  readonly batchSize?: number;
  /** Also return the probabilities `[K, z, y, x]` on the input grid (default false). */
  readonly returnProbabilities?: boolean;
  /** σ of the Gaussian importance map as a fraction of the tile (default 0.125). */
  readonly sigmaScale?: number;
  /**
   * One window per slice instead of the model's tile (default false): the
   * slice on the model grid, padded to the graph's size multiple, goes through
   * the fully convolutional network whole — no overlapping tiles, no blending.
   * Slices are then batched so that a call holds no more pixels than
   * `batchSize` tiles would. Slices smaller than the tile still use the tile.
   */
  readonly wholeSlice?: boolean;
  /** Checked between batches; its reason is thrown when aborted. */
  readonly signal?: AbortSignal;
}

export const DEFAULT_SEGMENT_OPTIONS = Object.freeze({ overlap: 0.5, flipTta: false, batchSize: 8, returnProbabilities: false, sigmaScale: DEFAULT_SIGMA_SCALE, wholeSlice: false });

/** Milliseconds per phase, and work counts. */
export interface SegmentTimings {
  normalizeMs: number;
  resampleMs: number;
  /** Time inside the network (all runs, TTA included). */
  inferenceMs: number;
  /** Tile assembly, Gaussian weighting and normalisation of the blend. */
  blendMs: number;
  resampleBackMs: number;
  argmaxMs: number;
  totalMs: number;
  tiles: number;
  batches: number;
}

export interface SegmentVolumeResult {
  readonly model: ModelKey;
  /** uint8 label map `[z, y, x]` on the input's grid (argmax; ties go to the lower class index). */
  readonly labels: Volume<Uint8Array>;
  /** float32 `[K, z, y, x]` class probabilities on the input's grid, when requested. */
  readonly probabilities: Float32Array | undefined;
  readonly numClasses: number;
  /** The grid the network saw (the input's, or resampled in-plane to the model's spacing). */
  readonly modelGrid: Grid;
  readonly tilesPerSlice: number;
  readonly timings: SegmentTimings;
}

/**
 * The grid a model runs on for `grid`: in-plane resampled to `meta.spacingXyMm`
 * (same box, z untouched; see `resampledGrid` in @purify/imaging), or `grid`
 * itself when the model has no spacing or the size would not change.
 */
export function modelGridFor(grid: Grid, meta: Pick<ModelMeta, 'spacingXyMm'>): Grid {
  if (meta.spacingXyMm === undefined) return gridOf(grid);
  const g = resampledGrid(grid, { spacingXyzMm: [meta.spacingXyMm[0], meta.spacingXyMm[1], undefined] });
  return g.shape[1] === grid.shape[1] && g.shape[2] === grid.shape[2] ? gridOf(grid) : g;
}

function checkOptions(options: SegmentVolumeOptions): Required<Omit<SegmentVolumeOptions, 'signal'>> {
  const o = { ...DEFAULT_SEGMENT_OPTIONS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Required<SegmentVolumeOptions>;
  if (!(Number.isFinite(o.overlap) && o.overlap >= 0 && o.overlap < 1)) throw InferenceError.invalidArgument(`overlap must be a number in [0, 1), got ${o.overlap}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw InferenceError.invalidArgument(`batchSize must be a positive integer, got ${o.batchSize}`);
  if (!(Number.isFinite(o.sigmaScale) && o.sigmaScale > 0)) throw InferenceError.invalidArgument(`sigmaScale must be a positive number, got ${o.sigmaScale}`);
  return o;
}

/**
 * The window and the slices per network call: the model's tile and
 * `batchSize`, or with `wholeSlice` the model-grid slice rounded up to the
 * size multiple (never below the tile), with as many slices per call as fit in
 * the pixels of `batchSize` tiles (at least 1).
 */
export function windowOf(model: Pick<SegmentationModel, 'meta' | 'sizeMultiple'>, sliceYx: readonly [number, number], o: { batchSize: number; wholeSlice: boolean }): { tileYx: readonly [number, number]; slab: number } {
  const tile = model.meta.inputSizeYx;
  if (!o.wholeSlice) return { tileYx: tile, slab: o.batchSize };
  const m = model.sizeMultiple;
  const up = (n: number, t: number): number => Math.max(t, Math.ceil(n / m) * m);
  const tileYx: [number, number] = [up(sliceYx[0], tile[0]), up(sliceYx[1], tile[1])];
  const slab = Math.max(1, Math.floor((o.batchSize * tile[0] * tile[1]) / (tileYx[0] * tileYx[1])));
  return { tileYx, slab };
}

/**
 * An upper bound of the bytes {@link segmentVolume} holds for one volume on
 * `grid` besides the model's session — what a server reserves before it
 * accepts the voxels: the raw input (`inputBytes`), its float32 normalised
 * copy and model-grid copy ({@link modelGridFor}), the labels, every probability when they are returned, and
 * a slab's probabilities three times over (blend, per-class planes, the
 * resampling back).
 */
export function segmentMemoryBytes(
  grid: Grid,
  inputBytes: number,
  model: Pick<SegmentationModel, 'meta' | 'numClasses' | 'sizeMultiple'>,
  options: { readonly returnProbabilities: boolean; readonly batchSize: number; readonly wholeSlice: boolean },
): number {
  const [z, y, x] = grid.shape;
  const voxels = z * y * x;
  const [, my, mx] = modelGridFor(grid, model.meta).shape;
  const { tileYx, slab } = windowOf(model, [my, mx], options);
  const canvas = Math.max(my, tileYx[0]) * Math.max(mx, tileYx[1]);
  const k = model.numClasses;
  const slabBytes = 3 * Math.min(slab, z) * k * canvas * 4;
  return inputBytes + voxels * 4 + z * my * mx * 4 + voxels + (options.returnProbabilities ? k * voxels * 4 : 0) + slabBytes;
}

/**
 * Segments a volume `[z, y, x]` (any voxel type; geometry honoured) with `model`:
 *
 *  1. normalise intensities as the model's meta says, on the input grid;
 *  2. when the model has a spacing, resample in-plane (bilinear, same box, z
 *     untouched) to it — the network sees axial slices along the volume's own
 *     index axes, whatever its direction;
 *  3. predict the slices in slabs of `batchSize` through a Gaussian-blended
 *     sliding window of the model's tile (see sliding-window.ts), or with
 *     `wholeSlice` one window per slice ({@link windowOf}), with optional
 *     flip TTA;
 *  4. resample the probabilities back onto the input grid (bilinear per class;
 *     the exact inverse mapping of step 2, see resample-inplane.ts), then take
 *     the argmax.
 *
 * Memory is bounded by one slab of probabilities plus the normalised volume,
 * unless `returnProbabilities` asks for all of them.
 */
export async function segmentVolume(model: SegmentationModel, volume: Volume, options: SegmentVolumeOptions = {}): Promise<SegmentVolumeResult> {
  const started = performance.now();
  const o = checkOptions(options);
  const signal = options.signal;
  const meta = model.meta;
  if (meta.inputChannels !== 1) {
    throw InferenceError.invalidArgument(
      `model ${model.key.name}:${model.key.version} takes ${meta.inputChannels} input channels; a volume gives 1 (use predictPatches with [n, ${meta.inputChannels}, y, x] crops)`,
    );
  }
  const timings: SegmentTimings = { normalizeMs: 0, resampleMs: 0, inferenceMs: 0, blendMs: 0, resampleBackMs: 0, argmaxMs: 0, totalMs: 0, tiles: 0, batches: 0 };
  let t = performance.now();
  const normalised = normalizeVolume(volume, meta.normalization);
  timings.normalizeMs = performance.now() - t;

  const inputGrid = gridOf(volume);
  const modelGrid = modelGridFor(inputGrid, meta);
  const resampled = modelGrid.shape[1] !== inputGrid.shape[1] || modelGrid.shape[2] !== inputGrid.shape[2];
  t = performance.now();
  const [nz, ny, nx] = volume.shape;
  const [, my, mx] = modelGrid.shape;
  const onModelGrid = resampled ? resampleSlicesBilinear(normalised.data, [nz, ny, nx], [my, mx]) : normalised.data;
  timings.resampleMs = performance.now() - t;

  const K = model.numClasses;
  const labels = new Uint8Array(nz * ny * nx);
  const probabilities = o.returnProbabilities ? new Float32Array(K * nz * ny * nx) : undefined;
  const { tileYx, slab } = windowOf(model, [my, mx], o);
  const inPlane = ny * nx;
  let tilesPerSlice = 0;

  for (let k0 = 0; k0 < nz; k0 += slab) {
    signal?.throwIfAborted();
    const count = Math.min(slab, nz - k0);
    const slices: Nchw = { data: onModelGrid.subarray(k0 * my * mx, (k0 + count) * my * mx), shape: [count, 1, my, mx] };
    const before = timings.tiles;
    const blended = await slidingWindowPredict((b) => model.predictBatch(b), slices, {
      tileYx,
      overlap: o.overlap,
      batchSize: slab,
      flipTta: o.flipTta,
      sigmaScale: o.sigmaScale,
      ...(signal ? { signal } : {}),
      timings,
    });
    tilesPerSlice = (timings.tiles - before) / count;

    // Per class, the slab [count, ny, nx] on the input grid.
    t = performance.now();
    const perClass: Float32Array[] = [];
    for (let k = 0; k < K; k++) {
      const plane = new Float32Array(count * my * mx);
      for (let s = 0; s < count; s++) plane.set(blended.data.subarray((s * K + k) * my * mx, (s * K + k + 1) * my * mx), s * my * mx);
      if (!resampled) {
        perClass.push(plane);
        continue;
      }
      perClass.push(resampleSlicesBilinear(plane, [count, my, mx], [ny, nx]));
    }
    timings.resampleBackMs += performance.now() - t;

    t = performance.now();
    const offset = k0 * inPlane;
    const n = count * inPlane;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bestP = (perClass[0] as Float32Array)[i] as number;
      for (let k = 1; k < K; k++) {
        const p = (perClass[k] as Float32Array)[i] as number;
        if (p > bestP) {
          bestP = p;
          best = k;
        }
      }
      labels[offset + i] = best;
    }
    if (probabilities) for (let k = 0; k < K; k++) probabilities.set(perClass[k] as Float32Array, k * nz * inPlane + offset);
    timings.argmaxMs += performance.now() - t;
  }
  timings.totalMs = performance.now() - started;
  return {
    model: model.key,
    labels: makeVolume(labels, volume.shape, volume, 'label map'),
    probabilities,
    numClasses: K,
    modelGrid,
    tilesPerSlice,
    timings,
  };
}

export interface PredictPatchesResult {
  /** float32 `[n, K, y, x]` softmax probabilities, one crop at a time in effect. */
  readonly probabilities: Nchw;
  readonly inferenceMs: number;
}

/**
 * Predicts independent crops `[n, c, y, x]` (already normalised as the model's
 * meta says; y and x multiples of the model's size multiple) in network calls of
 * at most `batchSize` crops. The network has no cross-sample operations at
 * inference, so each crop's output depends on that crop only.
 */
export async function predictPatches(model: SegmentationModel & { checkBatch?(shape: readonly number[], field?: string): void }, patches: Nchw, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<PredictPatchesResult> {
  const started = performance.now();
  const batchSize = options.batchSize ?? DEFAULT_SEGMENT_OPTIONS.batchSize;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw InferenceError.invalidArgument(`batchSize must be a positive integer, got ${batchSize}`);
  model.checkBatch?.(patches.shape, 'patches');
  const [n, c, h, w] = patches.shape;
  const K = model.numClasses;
  const out = new Float32Array(n * K * h * w);
  for (let b0 = 0; b0 < n; b0 += batchSize) {
    options.signal?.throwIfAborted();
    const count = Math.min(batchSize, n - b0);
    const res = await model.predictBatch({ data: patches.data.subarray(b0 * c * h * w, (b0 + count) * c * h * w), shape: [count, c, h, w] });
    out.set(res.data, b0 * K * h * w);
  }
  return { probabilities: { data: out, shape: [n, K, h, w] }, inferenceMs: performance.now() - started };
}
