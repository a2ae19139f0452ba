/**
 * The slice data pipeline, part 2: a seeded batch sampler over pools of 2D
 * slices. A pool is e.g. the labelled source slices (weights 1) or target slices
 * with pseudo-labels and the agent's weight maps; each pool contributes a fixed
 * share of every batch, so one batch can mix both.
 *
 * Batch `step` depends only on (seed, step): a resumed run draws exactly the
 * batches an uninterrupted one would have, with no sampler state to save.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@purify/imaging';
import { augmentSample, resolveAugment, type AugmentConfig } from './augmentation';
import { TrainingConfigError } from './errors';
import type { SliceVolume } from './slice-data';

/** One 2D training slice; arrays `[h, w]`, x fastest. Arrays may be views into a volume (never modified). */
export interface TrainingSlice {
  /** Normalised image in [0, 1]. */
  readonly image: Float32Array;
  /** Class index per pixel (label or pseudo-label). */
  readonly label: Uint8Array | Int32Array;
  /** Supervision weight per pixel in [0, 1]; undefined = 1 everywhere. */
  readonly weight?: Float32Array | undefined;
  readonly shape: readonly [number, number];
  /** Label values present, ascending (drives foreground oversampling). */
  readonly classes: readonly number[];
  /** Where it came from, e.g. `ct_tr_000:17`. */
  readonly ref: string;
}

/** Axial slices of labelled volumes as {@link TrainingSlice}s (views, no copies). */
export function slicesOf(volumes: readonly SliceVolume[]): TrainingSlice[] {
  const out: TrainingSlice[] = [];
  for (const v of volumes) {
    if (v.label === undefined) throw new TrainingConfigError(`case ${v.id} has no label; only labelled volumes can be training slices`);
    const [nz, ny, nx] = v.shape;
    const n = ny * nx;
    for (let z = 0; z < nz; z++) {
      out.push({ image: v.image.subarray(z * n, (z + 1) * n), label: v.label.subarray(z * n, (z + 1) * n), shape: [ny, nx], classes: v.sliceClasses[z] ?? [], ref: `${v.id}:${z}` });
    }
  }
  return out;
}

export interface SlicePool {
  readonly slices: readonly TrainingSlice[];
  /** Relative share of each batch (default 1); counts per batch by largest remainder. */
  readonly share?: number;
  /**
   * Probability that a sample is drawn "foreground first": a random class ≥ 1
   * present in the pool, then a random slice containing it (default 0.5); otherwise
   * a uniformly random slice.
   */
  readonly foregroundFraction?: number;
  /** Augmentation for this pool's samples (default 'none'). */
  /** A preset (`AugmentLevel`, optionally `name@version`) or a full config. */
  readonly augment?: string | AugmentConfig;
}

export interface SamplerOptions {
  readonly batchSize: number;
  /** Network tile `[H, W]`: slices are centre-padded (image 0, label 0, weight 0) or randomly cropped to it. */
  readonly tileYx: readonly [number, number];
  readonly seed: number;
}

/** A batch as plain arrays: images `[N, H, W, 1]`, labels and weights `[N, H, W]`. */
export interface SliceBatch {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly weights: Float32Array;
  /** [N, H, W]. */
  readonly shape: readonly [number, number, number];
  /** `pool/slice ref` of each sample. */
  readonly refs: readonly string[];
}

/** A 32-bit seed for batch `step` of run `seed` (splitmix32 of both). */
export function stepSeed(seed: number, step: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step >>> 0, 0x85ebca6b) ^ 0x2545f491) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

interface ResolvedPool {
  readonly slices: readonly TrainingSlice[];
  readonly count: number;
  readonly foregroundFraction: number;
  readonly augment: AugmentConfig;
  /** class → indices of slices containing it (classes ≥ 1). */
  readonly byClass: ReadonlyMap<number, readonly number[]>;
}

/** Seeded batches from one or more pools of slices (see the module comment). */
export class BatchSampler {
  readonly options: SamplerOptions;
  private readonly pools: readonly ResolvedPool[];

  constructor(pools: readonly SlicePool[], options: SamplerOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new TrainingConfigError(`batchSize must be an integer ≥ 1, got ${JSON.stringify(options.batchSize)}`);
    if (options.tileYx.length !== 2 || options.tileYx.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new TrainingConfigError(`tileYx must be two positive integers [H, W], got [${options.tileYx.join(', ')}]`);
    }
    if (!Number.isInteger(options.seed)) throw new TrainingConfigError(`seed must be an integer, got ${JSON.stringify(options.seed)}`);
    if (pools.length === 0) throw new TrainingConfigError('at least one slice pool is needed');
    const shares = pools.map((p, i) => {
      const s = p.share ?? 1;
      if (!(s > 0) || !Number.isFinite(s)) throw new TrainingConfigError(`pools[${i}].share must be a finite number > 0, got ${JSON.stringify(s)}`);
      if (p.slices.length === 0) throw new TrainingConfigError(`pools[${i}] has no slices`);
      return s;
    });
    const counts = largestRemainder(shares, options.batchSize);
    this.pools = pools.map((p, i) => {
      const ff = p.foregroundFraction ?? 0.5;
      if (!(ff >= 0 && ff <= 1)) throw new TrainingConfigError(`pools[${i}].foregroundFraction must be in [0, 1], got ${JSON.stringify(ff)}`);
      const byClass = new Map<number, number[]>();
      p.slices.forEach((s, j) => {
        for (const k of s.classes) if (k > 0) byClass.set(k, [...(byClass.get(k) ?? []), j]);
      });
      return { slices: p.slices, count: counts[i] as number, foregroundFraction: ff, augment: resolveAugment(p.augment ?? 'none'), byClass };
    });
    this.options = { batchSize: options.batchSize, tileYx: [options.tileYx[0], options.tileYx[1]], seed: options.seed };
  }

  /** Batch number `step` (0-based); the same (seed, step) always gives the same batch. */
  batch(step: number): SliceBatch {
    if (!Number.isInteger(step) || step < 0) throw new TrainingConfigError(`step must be an integer ≥ 0, got ${step}`);
    const rng = new Rng(stepSeed(this.options.seed, step));
    const [h, w] = this.options.tileYx;
    const n = this.options.batchSize;
    const images = new Float32Array(n * h * w);
    const labels = new Int32Array(n * h * w);
    const weights = new Float32Array(n * h * w);
    const refs: string[] = [];
    let b = 0;
    this.pools.forEach((pool, p) => {
      for (let k = 0; k < pool.count; k++, b++) {
        const index = pickSlice(pool, rng);
        const slice = pool.slices[index] as TrainingSlice;
        // Each sample gets its own stream, so its augmentation does not shift the next sample's draws.
        const sampleRng = new Rng(rng.nextUint32());
        const tile = toTile(slice, [h, w], sampleRng);
        const out = augmentSample(tile, [h, w], pool.augment, sampleRng);
        images.set(out.image, b * h * w);
        labels.set(out.label, b * h * w);
        weights.set(out.weight, b * h * w);
        refs.push(`${p}/${slice.ref}`);
      }
    });
    return { images, labels, weights, shape: [n, h, w], refs };
  }
}

function pickSlice(pool: ResolvedPool, rng: Rng): number {
  if (pool.byClass.size > 0 && rng.bool(pool.foregroundFraction)) {
    const classes = [...pool.byClass.keys()].sort((a, b) => a - b);
    const list = pool.byClass.get(classes[rng.int(0, classes.length)] as number) as readonly number[];
    return list[rng.int(0, list.length)] as number;
  }
  return rng.int(0, pool.slices.length);
}

/** Copies a slice onto a tile `[H, W]`: centred when smaller (padding: image 0, label 0, weight 0), a random window when larger. */
function toTile(slice: TrainingSlice, tile: readonly [number, number], rng: Rng): { image: Float32Array; label: Int32Array; weight: Float32Array } {
  const [sh, sw] = slice.shape;
  const [th, tw] = tile;
  const image = new Float32Array(th * tw);
  const label = new Int32Array(th * tw);
  const weight = new Float32Array(th * tw);
  // Offset of the slice inside the tile (≥ 0 when padding, ≤ 0 when cropping).
  const oy = sh <= th ? Math.floor((th - sh) / 2) : -rng.int(0, sh - th + 1);
  const ox = sw <= tw ? Math.floor((tw - sw) / 2) : -rng.int(0, sw - tw + 1);
  for (let y = Math.max(0, oy); y < Math.min(th, oy + sh); y++) {
    const sy = y - oy;
    for (let x = Math.max(0, ox); x < Math.min(tw, ox + sw); x++) {
      const s = sy * sw + (x - ox);
      const t = y * tw + x;
      image[t] = slice.image[s] as number;
      label[t] = slice.label[s] as number;
      weight[t] = slice.weight === undefined ? 1 : (slice.weight[s] as number);
    }
  }
  return { image, label, weight };
}

/** Integer counts summing to `total`, proportional to `shares` (largest remainder; ties to the earlier pool). */
export function largestRemainder(shares: readonly number[], total: number): number[] {
  const sum = shares.reduce((a, b) => a + b, 0);
  const exact = shares.map((s) => (s / sum) * total);
  const counts = exact.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ r: e - Math.floor(e), i })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left-- <= 0) break;
    counts[i]!++;
  }
  return counts;
}

/** The batch as tensors for `trainStep`: images `[N, H, W, 1]` float32, labels `[N, H, W]` int32, weights `[N, H, W]` float32. The caller disposes them. */
export function batchTensors(batch: SliceBatch): { images: tf.Tensor4D; labels: tf.Tensor3D; weights: tf.Tensor3D } {
  const [n, h, w] = batch.shape;
  return {
    images: tf.tensor4d(batch.images, [n, h, w, 1], 'float32'),
    labels: tf.tensor3d(batch.labels, [n, h, w], 'int32'),
    weights: tf.tensor3d(batch.weights, [n, h, w], 'float32'),
  };
}
