/**
 * Pieces shared by the data-parallel trainer (main thread) and its workers:
 * batch sharding, the loss normaliser, the shared-memory layout and a
 * sense-counting barrier over `Atomics` that an abort flag can break.
 */
import type { SegLossOptions } from '../losses';
import type { AdamConfig, AdamState } from '../optimizer';
import type { UNetConfig } from '../config';
import type { WeightSnapshot } from '../seg-model';

/** A contiguous run of images `[start, start + count)` of the batch (count may be 0). */
export interface Shard {
  readonly start: number;
  readonly count: number;
}

/**
 * Splits `batchSize` images over `workers` shards as evenly as possible: the
 * first `batchSize mod workers` shards get one image more. With more workers
 * than images the trailing shards are empty.
 */
export function splitBatch(batchSize: number, workers: number): Shard[] {
  const base = Math.floor(batchSize / workers);
  const extra = batchSize % workers;
  const shards: Shard[] = [];
  let start = 0;
  for (let i = 0; i < workers; i++) {
    const count = base + (i < extra ? 1 : 0);
    shards.push({ start, count });
    start += count;
  }
  return shards;
}

/**
 * The whole batch's cross-entropy normaliser: `max(Σ_p w_p, ε)` over every
 * pixel of every image (the weighted CE is `Σ w·CE / max(Σ w, ε)`), or the
 * pixel count `N·H·W` when there are no weights (plain mean). Pixel weights do
 * not depend on the network, so this is a constant of the step: each shard
 * divides its own `Σ w·CE` by it and the shard losses (and gradients) *add up*
 * to the whole-batch loss (and gradient). Summed in float64.
 * @param weights `[N, H, W]` pixel weights, or undefined.
 */
export function crossEntropyNormaliser(weights: Float32Array | undefined, pixels: number, epsilon: number): number {
  if (weights === undefined) return pixels;
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += weights[i]!;
  return Math.max(sum, epsilon);
}

/**
 * Gradient of the soft Dice loss `1 − mean_k (2 I_k + s)/(S_k + s)` with
 * respect to the batch totals `I_k` and `S_k` (K' classes kept):
 * `∂L/∂I_k = −2 / (K'(S_k + s))`, `∂L/∂S_k = (2 I_k + s) / (K'(S_k + s)²)`.
 * Every shard's `I_k`, `S_k` are partial sums of the totals, so the whole
 * batch's Dice gradient is `Σ_shards Σ_k (∂L/∂I_k · ∇I_k^s + ∂L/∂S_k · ∇S_k^s)`.
 * Also returns the loss value.
 */
export function diceTotalsGradient(intersection: Float64Array, total: Float64Array, smooth: number): { dI: Float32Array; dS: Float32Array; loss: number } {
  const k = intersection.length;
  const dI = new Float32Array(k);
  const dS = new Float32Array(k);
  let meanDice = 0;
  for (let c = 0; c < k; c++) {
    const den = total[c]! + smooth;
    const num = 2 * intersection[c]! + smooth;
    meanDice += num / den / k;
    dI[c] = -2 / (k * den);
    dS[c] = num / (k * den * den);
  }
  return { dI, dS, loss: 1 - meanDice };
}

// ---------------------------------------------------------------------------
// Shared memory.

/** Indices into the control `Int32Array`. */
export const CTRL = {
  /** Non-zero once any party failed: barriers throw {@link BarrierAbortedError}. */
  Abort: 0,
  /** Parties arrived at the current barrier. */
  Count: 1,
  /** Barrier generation; bumped when the last party arrives (waiters wait on it). */
  Generation: 2,
  Length: 4,
} as const;

export class BarrierAbortedError extends Error {
  override readonly name = 'BarrierAbortedError';
}

/**
 * Blocks until `parties` threads have called it (same generation). Polls the
 * abort flag every `pollMs` while waiting, and throws {@link BarrierAbortedError}
 * once it is set (a failed worker or the main thread set it). Only workers
 * call it: the main thread must never block.
 */
export function barrier(ctrl: Int32Array, parties: number, pollMs = 50): void {
  if (Atomics.load(ctrl, CTRL.Abort) !== 0) throw new BarrierAbortedError('step aborted: another worker failed');
  const generation = Atomics.load(ctrl, CTRL.Generation);
  if (Atomics.add(ctrl, CTRL.Count, 1) === parties - 1) {
    Atomics.store(ctrl, CTRL.Count, 0);
    Atomics.add(ctrl, CTRL.Generation, 1);
    Atomics.notify(ctrl, CTRL.Generation);
    return;
  }
  while (Atomics.load(ctrl, CTRL.Generation) === generation) {
    if (Atomics.load(ctrl, CTRL.Abort) !== 0) throw new BarrierAbortedError('step aborted: another worker failed');
    Atomics.wait(ctrl, CTRL.Generation, generation, pollMs);
  }
}

/** Sets the abort flag and wakes every waiter. */
export function abortBarrier(ctrl: Int32Array): void {
  Atomics.store(ctrl, CTRL.Abort, 1);
  Atomics.notify(ctrl, CTRL.Generation);
}

/** Clears the abort flag and the arrival count (only while no worker is inside a step). */
export function resetBarrier(ctrl: Int32Array): void {
  Atomics.store(ctrl, CTRL.Count, 0);
  Atomics.store(ctrl, CTRL.Abort, 0);
}

/**
 * Float32 layout of the exchange buffer (all counts in floats):
 * `stats`: per worker `2·K` values (Dice `I_k` then `S_k`, K' ≤ K used);
 * `grads`: per worker `GRAD_HEADER + P + B` values (the shard's CE term, its
 * part on Dice-weighted pixels, the P trainable gradients in variable order,
 * the B BatchNorm running statistics after the shard's forward pass);
 * `weights`: `P + B` values for the broadcast update mode.
 */
export interface ExchangeLayout {
  readonly workers: number;
  readonly numClasses: number;
  /** Trainable values. */
  readonly params: number;
  /** Non-trainable values (BatchNorm running statistics). */
  readonly buffers: number;
}

export function statsOffset(l: ExchangeLayout, worker: number): number {
  return worker * 2 * l.numClasses;
}

/** Scalars ahead of each worker's gradients: the shard's CE term and its part on Dice-weighted pixels. */
export const GRAD_HEADER = 2;

export function gradsOffset(l: ExchangeLayout, worker: number): number {
  return l.workers * 2 * l.numClasses + worker * (GRAD_HEADER + l.params + l.buffers);
}

export function broadcastOffset(l: ExchangeLayout): number {
  return gradsOffset(l, l.workers);
}

export function exchangeLength(l: ExchangeLayout): number {
  return broadcastOffset(l) + l.params + l.buffers;
}

// ---------------------------------------------------------------------------
// Messages.

/**
 * How the optimiser update reaches every replica. `replicated`: every worker
 * clips and applies Adam to the same reduced gradient (identical arithmetic,
 * so identical weights); `broadcast`: worker 0 updates and the others copy its
 * weights through shared memory.
 */
export const UpdateMode = { Replicated: 'replicated', Broadcast: 'broadcast' } as const;
export type UpdateMode = (typeof UpdateMode)[keyof typeof UpdateMode];

/** Loss settings of a data-parallel step (the pixel weights come with the batch). */
export type ParallelLossOptions = Omit<SegLossOptions, 'weights'>;

export interface WorkerInit {
  readonly index: number;
  readonly workers: number;
  readonly config: UNetConfig;
  readonly backend: 'wasm' | 'cpu';
  readonly adam: AdamConfig;
  /** EMA momentum cap when this worker holds the teacher. */
  readonly emaAlpha: number | undefined;
  readonly updateMode: UpdateMode;
  readonly control: SharedArrayBuffer;
}

/** Where a step's inputs sit in the shared input buffer (float/int offsets in elements). */
export interface StepInput {
  readonly buffer: SharedArrayBuffer;
  /** `[N, H, W, C]` of the whole batch. */
  readonly shape: readonly [number, number, number, number];
  /** Labels: `map` = int32 `[N, H, W]`, `probabilities` = float32 `[N, H, W, K]`. */
  readonly labelKind: 'map' | 'probabilities';
  readonly hasWeights: boolean;
  /** Element offsets (4-byte units) of images, labels and weights in `buffer`. */
  readonly imagesAt: number;
  readonly labelsAt: number;
  readonly weightsAt: number;
  /** Separate pixel weights `[N, H, W]` of the Dice term (see `HostBatch.diceWeights`) at `diceWeightsAt`. */
  readonly hasDiceWeights: boolean;
  readonly diceWeightsAt: number;
  /** The whole batch's CE normaliser (see {@link crossEntropyNormaliser}). */
  readonly normaliser: number;
}

export type WorkerRequest =
  | { readonly id: number; readonly type: 'setup'; readonly exchange: SharedArrayBuffer; readonly weights: readonly WeightSnapshot[] | undefined }
  | {
      readonly id: number;
      readonly type: 'step';
      readonly input: StepInput;
      readonly shard: Shard;
      readonly update: boolean;
      readonly loss: ParallelLossOptions;
      readonly clipNorm: number | undefined;
    }
  | { readonly id: number; readonly type: 'getWeights'; readonly teacher: boolean }
  | { readonly id: number; readonly type: 'setWeights'; readonly weights: readonly WeightSnapshot[]; readonly teacher: boolean }
  | { readonly id: number; readonly type: 'getOptimizerState' }
  | { readonly id: number; readonly type: 'setOptimizerState'; readonly state: AdamState; readonly emaUpdates: number | undefined }
  | { readonly id: number; readonly type: 'getRngState' }
  | { readonly id: number; readonly type: 'setRngState'; readonly state: number };

/** Per-worker timings of a step, milliseconds. */
export interface WorkerTimings {
  /** Building the shard's tensors from shared memory. */
  readonly inputMs: number;
  /** Forward + backward (excluding barrier waits). */
  readonly computeMs: number;
  /** Waiting at barriers (load imbalance + synchronisation). */
  readonly waitMs: number;
  /** Reducing the gradients from shared memory. */
  readonly reduceMs: number;
  /** Clip, Adam, BatchNorm statistics, EMA (and the broadcast copy). */
  readonly updateMs: number;
}

export interface StepReply {
  readonly loss: number;
  readonly ce: number;
  /** With Dice weights: the part of `ce` from pixels with Dice weight, `Σ w·d·CE / normaliser`. */
  readonly ceDiceWeighted?: number;
  readonly dice: number;
  readonly gradNorm: number;
  readonly learningRate: number;
  readonly step: number;
  readonly emaAlpha?: number;
  readonly timings: WorkerTimings;
  /** Reduced gradients (only from worker 0 of an `update: false` step), in trainable-variable order. */
  readonly gradients?: { readonly name: string; readonly shape: readonly number[]; readonly values: Float32Array }[];
}

export type WorkerReply =
  | { readonly type: 'ready'; readonly params: number; readonly buffers: number }
  | { readonly type: 'result'; readonly id: number; readonly value: unknown }
  | { readonly type: 'error'; readonly id: number | null; readonly name: string; readonly message: string; readonly aborted: boolean };
