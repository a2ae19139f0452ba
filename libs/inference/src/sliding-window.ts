/**
 * Sliding-window inference over 2D slices with Gaussian blending, after nnU-Net
 * (`compute_steps_for_sliding_window`, Gaussian importance map with σ = ⅛ of the
 * tile) and MONAI (`sliding_window_inference`, mode "gaussian").
 *
 * A slice `[h, w]` is placed on a canvas of at least one tile per axis: along an
 * axis shorter than the tile the slice is centred and padded with 0 (the value
 * after normalisation, as MONAI's constant padding); along a longer axis tiles
 * start at evenly spaced positions from 0 to `length − tile` with a step of at
 * most `tile·(1 − overlap)`. Every tile's softmax output is weighted by the
 * importance map, summed, and divided by the summed weights, so a pixel covered
 * by a single tile gets exactly that tile's prediction, and a
 * translation-equivariant network gives the same output tiled or not. When
 * one tile covers a slice exactly (the usual case at the model's own size),
 * slices go to the network in batches as they are, without copies.
 */
import { InferenceError } from './errors';
import type { Nchw } from './model';

/** Runs a network on a batch `[n, c, h, w]` → probabilities `[n, K, h, w]`. */
export type BatchPredictor = (batch: Nchw) => Promise<Nchw>;

/** nnU-Net's default σ of the importance map, as a fraction of the tile size. */
export const DEFAULT_SIGMA_SCALE = 0.125;

/**
 * Tile start positions along an axis of `length` pixels with tiles of `tile`
 * pixels (length ≥ tile): n = ⌈(length − tile) / (tile·(1 − overlap))⌉ + 1 tiles,
 * starts round(i·(length − tile)/(n − 1)). With length ≤ tile: [0].
 */
export function tileStarts(length: number, tile: number, overlap: number): number[] {
  if (length <= tile) return [0];
  const step = tile * (1 - overlap);
  const count = Math.ceil((length - tile) / step) + 1;
  const actual = (length - tile) / (count - 1);
  return Array.from({ length: count }, (_, i) => Math.round(i * actual));
}

/** Where tiles go on a slice. */
export interface TilePlan {
  /** Tile [y, x] in pixels. */
  readonly tile: readonly [number, number];
  /** Canvas [y, x] = max(slice, tile) per axis. */
  readonly canvas: readonly [number, number];
  /** Position [y, x] of the slice's pixel (0, 0) on the canvas (centred when padded). */
  readonly offset: readonly [number, number];
  readonly startsY: readonly number[];
  readonly startsX: readonly number[];
}

export function planTiles(sliceYx: readonly [number, number], tileYx: readonly [number, number], overlap: number): TilePlan {
  const [h, w] = sliceYx;
  const [th, tw] = tileYx;
  const canvas: [number, number] = [Math.max(h, th), Math.max(w, tw)];
  return {
    tile: [th, tw],
    canvas,
    offset: [Math.floor((canvas[0] - h) / 2), Math.floor((canvas[1] - w) / 2)],
    startsY: tileStarts(canvas[0], th, overlap),
    startsX: tileStarts(canvas[1], tw, overlap),
  };
}

/**
 * The importance map `[th, tw]`: a separable Gaussian centred on the tile
 * ((t − 1)/2 per axis) with σ = sigmaScale·t per axis, scaled so its maximum is 1.
 */
export function gaussianImportance(tileYx: readonly [number, number], sigmaScale = DEFAULT_SIGMA_SCALE): Float32Array {
  const axis = (t: number): number[] => {
    const sigma = sigmaScale * t;
    const c = (t - 1) / 2;
    const g = Array.from({ length: t }, (_, i) => Math.exp(-((i - c) ** 2) / (2 * sigma * sigma)));
    const max = Math.max(...g);
    return g.map((v) => v / max);
  };
  const [th, tw] = tileYx;
  const gy = axis(th);
  const gx = axis(tw);
  const out = new Float32Array(th * tw);
  for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) out[y * tw + x] = (gy[y] as number) * (gx[x] as number);
  return out;
}

/** Flips an NCHW batch along x (`'x'`), y (`'y'`) or both (`'xy'`), into a new array. */
export function flipNchw(batch: Nchw, axes: 'x' | 'y' | 'xy'): Nchw {
  const [n, c, h, w] = batch.shape;
  const src = batch.data;
  const out = new Float32Array(src.length);
  const fx = axes !== 'y';
  const fy = axes !== 'x';
  for (let p = 0; p < n * c; p++) {
    const base = p * h * w;
    for (let y = 0; y < h; y++) {
      const sy = fy ? h - 1 - y : y;
      for (let x = 0; x < w; x++) out[base + y * w + x] = src[base + sy * w + (fx ? w - 1 - x : x)] as number;
    }
  }
  return { data: out, shape: batch.shape };
}

/**
 * Flip test-time augmentation: the mean of the predictions on the batch and on
 * its x-, y- and xy-flipped copies, each flipped back (4 network runs).
 */
export async function predictWithFlips(predict: BatchPredictor, batch: Nchw): Promise<Nchw> {
  const base = await predict(batch);
  const sum = new Float32Array(base.data);
  for (const axes of ['x', 'y', 'xy'] as const) {
    const back = flipNchw(await predict(flipNchw(batch, axes)), axes);
    for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (back.data[i] as number);
  }
  for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) / 4;
  return { data: sum, shape: base.shape };
}

export interface SlidingWindowOptions {
  /** Tile [y, x]: the model's input size. */
  readonly tileYx: readonly [number, number];
  /** Overlap of neighbouring tiles as a fraction of the tile, [0, 1). */
  readonly overlap: number;
  /** Tiles per network call. */
  readonly batchSize: number;
  readonly flipTta?: boolean;
  readonly sigmaScale?: number;
  readonly signal?: AbortSignal;
  /** Accumulates milliseconds spent in the network and in blending. */
  readonly timings?: { inferenceMs: number; blendMs: number; tiles: number; batches: number };
}

/**
 * Predicts slices `[n, c, h, w]` (float32, normalised) tile by tile and returns
 * the blended probabilities `[n, K, h, w]`. See the module comment for tiling,
 * padding and blending.
 */
export async function slidingWindowPredict(predict: BatchPredictor, slices: Nchw, options: SlidingWindowOptions): Promise<Nchw> {
  const [n, c, h, w] = slices.shape;
  const { overlap, batchSize } = options;
  if (!(Number.isFinite(overlap) && overlap >= 0 && overlap < 1)) throw InferenceError.invalidArgument(`overlap must be in [0, 1), got ${overlap}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw InferenceError.invalidArgument(`batch size must be a positive integer, got ${batchSize}`);
  const plan = planTiles([h, w], options.tileYx, overlap);
  const [th, tw] = plan.tile;
  const [oy, ox] = plan.offset;
  const importance = gaussianImportance(plan.tile, options.sigmaScale);
  const timings = options.timings;

  // Summed importance per image pixel (identical for every slice).
  const weightSum = new Float32Array(h * w);
  for (const ty of plan.startsY) {
    for (const tx of plan.startsX) {
      for (let py = 0; py < th; py++) {
        const y = ty + py - oy;
        if (y < 0 || y >= h) continue;
        for (let px = 0; px < tw; px++) {
          const x = tx + px - ox;
          if (x >= 0 && x < w) weightSum[y * w + x] = (weightSum[y * w + x] as number) + (importance[py * tw + px] as number);
        }
      }
    }
  }

  // One tile covering each slice exactly: the blend is the identity, so batches
  // are consecutive slices fed and collected without copies or weighting.
  if (plan.startsY.length === 1 && plan.startsX.length === 1 && th === h && tw === w) {
    let out: Float32Array | undefined;
    let k = 0;
    for (let s0 = 0; s0 < n; s0 += batchSize) {
      options.signal?.throwIfAborted();
      const count = Math.min(batchSize, n - s0);
      const t0 = performance.now();
      const batchIn: Nchw = { data: slices.data.subarray(s0 * c * h * w, (s0 + count) * c * h * w), shape: [count, c, h, w] };
      const res = options.flipTta ? await predictWithFlips(predict, batchIn) : await predict(batchIn);
      const t1 = performance.now();
      k = res.shape[1];
      out ??= new Float32Array(n * k * h * w);
      out.set(res.data, s0 * k * h * w);
      if (timings) {
        timings.inferenceMs += t1 - t0;
        timings.blendMs += performance.now() - t1;
        timings.tiles += count;
        timings.batches += 1;
      }
    }
    return { data: out ?? new Float32Array(0), shape: [n, k, h, w] };
  }

  const tiles: { s: number; ty: number; tx: number }[] = [];
  for (let s = 0; s < n; s++) for (const ty of plan.startsY) for (const tx of plan.startsX) tiles.push({ s, ty, tx });

  let acc: Float32Array | undefined;
  let classes = 0;
  for (let b0 = 0; b0 < tiles.length; b0 += batchSize) {
    options.signal?.throwIfAborted();
    const batch = tiles.slice(b0, b0 + batchSize);
    const input = new Float32Array(batch.length * c * th * tw); // zero = padding
    batch.forEach(({ s, ty, tx }, b) => {
      for (let ch = 0; ch < c; ch++) {
        const dst = (b * c + ch) * th * tw;
        const src = (s * c + ch) * h * w;
        for (let py = 0; py < th; py++) {
          const y = ty + py - oy;
          if (y < 0 || y >= h) continue;
          for (let px = 0; px < tw; px++) {
            const x = tx + px - ox;
            if (x >= 0 && x < w) input[dst + py * tw + px] = slices.data[src + y * w + x] as number;
          }
        }
      }
    });
    const t0 = performance.now();
    const batchIn: Nchw = { data: input, shape: [batch.length, c, th, tw] };
    const out = options.flipTta ? await predictWithFlips(predict, batchIn) : await predict(batchIn);
    const t1 = performance.now();
    if (acc === undefined) {
      classes = out.shape[1];
      acc = new Float32Array(n * classes * h * w);
    }
    batch.forEach(({ s, ty, tx }, b) => {
      for (let k = 0; k < classes; k++) {
        const src = (b * classes + k) * th * tw;
        const dst = (s * classes + k) * h * w;
        for (let py = 0; py < th; py++) {
          const y = ty + py - oy;
          if (y < 0 || y >= h) continue;
          for (let px = 0; px < tw; px++) {
            const x = tx + px - ox;
            if (x >= 0 && x < w) acc![dst + y * w + x] = (acc![dst + y * w + x] as number) + (importance[py * tw + px] as number) * (out.data[src + py * tw + px] as number);
          }
        }
      }
    });
    if (timings) {
      timings.inferenceMs += t1 - t0;
      timings.blendMs += performance.now() - t1;
      timings.tiles += batch.length;
      timings.batches += 1;
    }
  }
  const t2 = performance.now();
  const result = acc ?? new Float32Array(0);
  for (let p = 0; p < n * classes; p++) {
    const base = p * h * w;
    for (let i = 0; i < h * w; i++) result[base + i] = (result[base + i] as number) / (weightSum[i] as number);
  }
  if (timings) timings.blendMs += performance.now() - t2;
  return { data: result, shape: [n, classes, h, w] };
}
