import { ReliabilityError } from './errors';
import { anchorsPerSlice, type AnchorGrid } from './grid';
import { gaussianWeights } from './measures';
import type { ResolvedOptions } from './config';

/**
 * Predicts a batch of patches, each on its own. `patches` is float32
 * `[n, c, P, P]` in the model's normalised intensity units; the result must be
 * float32 `[n, K, P, P]` class probabilities (softmax over K).
 */
export type PatchPredictor = (patches: Float32Array, shape: readonly [number, number, number, number]) => Promise<Float32Array>;

/** The stitched patch predictions of a whole image. */
export interface Composition {
  readonly numClasses: number;
  /** Gaussian-weighted mean of the overlapping patch probabilities, float32 `[K, z, y, x]`. */
  readonly probabilities: Float32Array;
  /**
   * Per pixel: the weighted variance (same Gaussian weights, population form)
   * of each class probability across the patches covering the pixel, averaged
   * over the K classes; float32 `[z, y, x]`, in [0, 0.25]; 0 where one patch covers.
   */
  readonly variance: Float32Array;
  /** Patches covering each pixel, Uint16Array `[z, y, x]`. */
  readonly coverage: Uint16Array;
  /** Patches predicted and `predict` calls made. */
  readonly patchCount: number;
  readonly calls: number;
}

export interface DecomposeOptions {
  /** Checked between batches; an aborted signal stops the work with its reason. */
  readonly signal?: AbortSignal;
  /** Expected K; when given, a predictor answering another K is refused. */
  readonly numClasses?: number;
}

/**
 * Copies the patches `[first, first + n)` (global index = slice · A + anchor)
 * from `image` float32 `[z, c, y, x]` into one float32 `[n, c, P, P]` batch;
 * pixels outside the slice (only with `pad` border handling) are 0.
 */
export function extractPatches(image: Float32Array, channels: number, grid: AnchorGrid, first: number, n: number): Float32Array {
  const [, h, w] = grid.shapeZyx;
  const p = grid.patchSize;
  const perSlice = anchorsPerSlice(grid);
  const nx = grid.anchorX.length;
  const out = new Float32Array(n * channels * p * p);
  for (let b = 0; b < n; b++) {
    const g = first + b;
    const s = Math.floor(g / perSlice);
    const a = g % perSlice;
    const ty = grid.anchorY[Math.floor(a / nx)] as number;
    const tx = grid.anchorX[a % nx] as number;
    const xStart = Math.max(0, -tx);
    const xEnd = Math.min(p, w - tx);
    for (let c = 0; c < channels; c++) {
      const src = (s * channels + c) * h * w;
      const dst = (b * channels + c) * p * p;
      for (let py = 0; py < p; py++) {
        const y = ty + py;
        if (y < 0 || y >= h || xEnd <= xStart) continue;
        out.set(image.subarray(src + y * w + tx + xStart, src + y * w + tx + xEnd), dst + py * p + xStart);
      }
    }
  }
  return out;
}

/**
 * Stitches the patch predictions of one slice, `store` float32 `[A, K, P, P]`
 * (anchors in grid order), into `probabilities` `[K, z, y, x]` and `variance`
 * `[z, y, x]` at slice `s`, with a weighted running mean/variance (West 1979)
 * in float64: when every patch predicts the same value at a pixel, the mean is
 * that value exactly and the variance exactly 0.
 */
export function composeSlice(
  store: Float32Array,
  grid: AnchorGrid,
  k: number,
  weights: Float64Array,
  s: number,
  out: { probabilities: Float32Array; variance: Float32Array; coverage: Uint16Array },
): void {
  const [z, h, w] = grid.shapeZyx;
  const p = grid.patchSize;
  const hw = h * w;
  const mean = new Float64Array(k * hw);
  const m2 = new Float64Array(k * hw);
  const wsum = new Float64Array(hw);
  const count = new Uint16Array(hw);
  let a = 0;
  for (const ty of grid.anchorY) {
    for (const tx of grid.anchorX) {
      for (let py = Math.max(0, -ty); py < Math.min(p, h - ty); py++) {
        for (let px = Math.max(0, -tx); px < Math.min(p, w - tx); px++) {
          const pix = (ty + py) * w + tx + px;
          const wt = weights[py * p + px] as number;
          const wOld = wsum[pix] as number;
          const wNew = wOld + wt;
          wsum[pix] = wNew;
          count[pix] = (count[pix] as number) + 1;
          for (let c = 0; c < k; c++) {
            const x = store[((a * k + c) * p + py) * p + px] as number;
            const idx = c * hw + pix;
            if (wOld === 0) {
              mean[idx] = x;
              continue;
            }
            const delta = x - (mean[idx] as number);
            const r = (delta * wt) / wNew;
            mean[idx] = (mean[idx] as number) + r;
            m2[idx] = (m2[idx] as number) + wOld * delta * r;
          }
        }
      }
      a++;
    }
  }
  for (let pix = 0; pix < hw; pix++) {
    let v = 0;
    for (let c = 0; c < k; c++) {
      const idx = c * hw + pix;
      out.probabilities[(c * z + s) * hw + pix] = mean[idx] as number;
      v += (m2[idx] as number) / (wsum[pix] as number);
    }
    out.variance[s * hw + pix] = Math.max(0, v / k);
    out.coverage[s * hw + pix] = count[pix] as number;
  }
}

/**
 * Decomposition and composition: crops every anchor patch of every slice of
 * `image` (float32 `[z, c, y, x]`, normalised), predicts them independently in
 * batches of `options.batchSize` with up to `options.concurrency` calls in
 * flight, and stitches each slice as soon as all its patches are back.
 */
export async function decomposeAndCompose(
  image: Float32Array,
  channels: number,
  grid: AnchorGrid,
  predict: PatchPredictor,
  options: ResolvedOptions,
  extra: DecomposeOptions = {},
): Promise<Composition> {
  const [z, h, w] = grid.shapeZyx;
  if (!Number.isSafeInteger(channels) || channels < 1) throw new ReliabilityError('channels', `\`channels\` must be an integer ≥ 1, got ${channels}`);
  if (image.length !== z * channels * h * w) {
    throw new ReliabilityError('image', `\`image\` must hold [z, c, y, x] = [${z}, ${channels}, ${h}, ${w}] = ${z * channels * h * w} values, got ${image.length}`);
  }
  const p = grid.patchSize;
  const perSlice = anchorsPerSlice(grid);
  const total = z * perSlice;
  const batchSize = options.batchSize;
  const batches = Math.ceil(total / batchSize);
  const weights = gaussianWeights(p, options.sigmaFraction);
  let k = extra.numClasses ?? 0;
  let out: { probabilities: Float32Array; variance: Float32Array; coverage: Uint16Array } | undefined;
  const stores = new Map<number, { data: Float32Array; received: number }>();
  let nextBatch = 0;
  let calls = 0;
  let failed = false;

  const accept = (first: number, n: number, probs: Float32Array): void => {
    const per = p * p;
    if (k === 0) {
      if (probs.length === 0 || probs.length % (n * per) !== 0) {
        throw new ReliabilityError('predict', `the patch predictor must return [n, K, P, P] = [${n}, K, ${p}, ${p}] values, got ${probs.length}`);
      }
      k = probs.length / (n * per);
    }
    if (probs.length !== n * k * per) {
      throw new ReliabilityError('predict', `the patch predictor must return [n, K, P, P] = [${n}, ${k}, ${p}, ${p}] = ${n * k * per} values, got ${probs.length}`);
    }
    out ??= { probabilities: new Float32Array(k * z * h * w), variance: new Float32Array(z * h * w), coverage: new Uint16Array(z * h * w) };
    for (let b = 0; b < n; b++) {
      const g = first + b;
      const s = Math.floor(g / perSlice);
      const a = g % perSlice;
      let store = stores.get(s);
      if (!store) {
        store = { data: new Float32Array(perSlice * k * per), received: 0 };
        stores.set(s, store);
      }
      store.data.set(probs.subarray(b * k * per, (b + 1) * k * per), a * k * per);
      if (++store.received === perSlice) {
        composeSlice(store.data, grid, k, weights, s, out);
        stores.delete(s);
      }
    }
  };

  const worker = async (): Promise<void> => {
    try {
      for (;;) {
        // Once one call failed, the others stop taking batches.
        if (failed) return;
        if (extra.signal?.aborted) throw extra.signal.reason;
        const b = nextBatch++;
        if (b >= batches) return;
        const first = b * batchSize;
        const n = Math.min(batchSize, total - first);
        const patches = extractPatches(image, channels, grid, first, n);
        calls++;
        const probs = await predict(patches, [n, channels, p, p]);
        if (!failed) accept(first, n, probs);
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, batches) }, worker));
  if (!out) throw new ReliabilityError('image', '`image` produced no patches');
  return { numClasses: k, ...out, patchCount: total, calls };
}
