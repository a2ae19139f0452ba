import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { resolveUNetConfig, type UNetConfig } from '../config';
import { ModelConfigError, ModelInputError } from '../errors';
import { WEIGHT_SUM_EPSILON } from '../losses';
import { resolveAdamConfig, type AdamConfig, type AdamState } from '../optimizer';
import type { WeightSnapshot } from '../seg-model';
import type { TrainStepResult } from '../train';
import {
  abortBarrier,
  CTRL,
  crossEntropyNormaliser,
  exchangeLength,
  resetBarrier,
  splitBatch,
  UpdateMode,
  type ParallelLossOptions,
  type StepInput,
  type StepReply,
  type WorkerInit,
  type WorkerReply,
  type WorkerRequest,
  type WorkerTimings,
} from './shared';

/** Default number of workers: one per core of this machine (2 here). */
export const DEFAULT_PARALLEL_WORKERS = 2;

export interface DataParallelOptions {
  /** U-Net configuration of every replica (validated by `resolveUNetConfig`). */
  readonly config: Partial<UNetConfig>;
  /** Initial weights broadcast to every replica (e.g. `model.getWeights()`); default: the seeded initialisation of `config`, taken from worker 0. */
  readonly weights?: readonly WeightSnapshot[] | undefined;
  /** Worker threads (replicas), integer in [1, 64]; default {@link DEFAULT_PARALLEL_WORKERS}. */
  readonly workers?: number | undefined;
  readonly optimizer: AdamConfig;
  /** Loss terms; default CE + Dice over all classes (as `trainStep`). */
  readonly loss?: ParallelLossOptions | undefined;
  /** Clip the reduced gradient to this global norm before the update. */
  readonly clipNorm?: number | undefined;
  /** Keep an EMA teacher (on the last worker) with this momentum cap. */
  readonly ema?: { readonly alpha?: number } | undefined;
  /** TensorFlow.js backend of the workers; default 'wasm' (with our training kernels). 'cpu' is the slow reference. */
  readonly backend?: 'wasm' | 'cpu' | undefined;
  /** See {@link UpdateMode}; default 'replicated' (measured faster, docs/parallel-training.md). */
  readonly updateMode?: UpdateMode | undefined;
}

/**
 * A batch in host memory. Layouts: images `[N, H, W, C]` float32; labels an
 * int32 label map `[N, H, W]` or float32 probabilities `[N, H, W, K]`;
 * weights `[N, H, W]` float32 in [0, 1] (omitted = all 1).
 *
 * The loss is `ceWeight · Σ w·CE / Z + diceWeight · Dice`, with
 * `Z = max(Σ w, ε)` (or `N·H·W` without weights) unless `ceNormaliser` sets
 * it, and Dice over the pixels weighted by `diceWeights` when given (else by
 * `w` under `diceUsesWeights`, else all). Together these express a loss whose
 * groups of images are normalised separately, e.g. the adaptation loss
 * `CE_S + Dice_S + λ·Σ W·CE_T / Σ W` (`@purify/adaptation`): per-pixel CE
 * coefficients scaled into [0, 1], `ceNormaliser` the scale, Dice weights 1
 * on the source images only.
 */
export interface HostBatch {
  /** `[N, H, W, C]`. */
  readonly shape: readonly [number, number, number, number];
  readonly images: Float32Array;
  readonly labels: Int32Array | Float32Array;
  readonly weights?: Float32Array | undefined;
  /** `[N, H, W]` in [0, 1]: the Dice term's own pixel weights (the step then also reports `ceDiceWeighted`). */
  readonly diceWeights?: Float32Array | undefined;
  /** The CE normaliser `Z` (finite, > 0) instead of `max(Σ w, ε)`. */
  readonly ceNormaliser?: number | undefined;
}

/** A batch as tensors (read back to host memory once), as for `trainStep`. */
export interface TensorBatch {
  readonly images: tf.Tensor4D;
  readonly labels: tf.Tensor3D | tf.Tensor4D;
  readonly weights?: tf.Tensor3D | undefined;
}

/** Per-call overrides of the trainer's loss terms and clipping. */
export interface ParallelStepOptions {
  /** Loss terms; default the trainer's (`DataParallelOptions.loss`). */
  readonly loss?: ParallelLossOptions | undefined;
  /** Global-norm clip; default the trainer's. Pass `undefined` explicitly to turn clipping off for this step. */
  readonly clipNorm?: number | undefined;
}

export interface ParallelStepResult extends TrainStepResult {
  /** With `diceWeights`: the part of `ce` from pixels with Dice weight, `Σ w·d·CE / Z`. */
  readonly ceDiceWeighted?: number;
  /** Per worker: where its time went (ms). */
  readonly timings: readonly WorkerTimings[];
  /** Main-thread wall time of the step, ms (includes messaging). */
  readonly wallMs: number;
}

/** Whole-batch gradient (no update), in trainable-variable order with prefix-free names. */
export interface ParallelGradients {
  readonly loss: number;
  readonly ce: number;
  readonly ceDiceWeighted?: number;
  readonly dice: number;
  readonly gradNorm: number;
  readonly gradients: readonly { readonly name: string; readonly shape: readonly number[]; readonly values: Float32Array }[];
}

/** A worker failed; `message` is the worker's, prefixed by its index. */
export class ParallelWorkerError extends Error {
  override readonly name = 'ParallelWorkerError';
  /** Name of the error the worker threw (e.g. `ModelInputError`). */
  readonly workerErrorName: string;
  constructor(message: string, workerErrorName: string) {
    super(message);
    this.workerErrorName = workerErrorName;
  }
}

interface Pending {
  readonly replies: unknown[];
  readonly errors: { index: number; name: string; message: string; aborted: boolean }[];
  remaining: number;
  readonly resolve: (values: unknown[]) => void;
  readonly reject: (err: Error) => void;
}

/** The worker entry and the node flags it needs: TypeScript sources run through tsx (tests, `--conditions=@purify/source`), builds run the `.js`. */
function workerEntry(): { file: string; execArgv: string[] } {
  const ts = __filename.endsWith('.ts');
  const file = join(__dirname, ts ? 'worker.ts' : 'worker.js');
  if (!ts) return { file, execArgv: [] };
  // tsx's CommonJS hook (`--import tsx` is not applied inside worker threads on Node 20).
  return { file, execArgv: ['--require', require.resolve('tsx/cjs'), '--conditions=@purify/source'] };
}

/**
 * Data-parallel training of one U-Net over `worker_threads`: N replicas (same
 * configuration, same initial weights), each on its own TensorFlow.js backend
 * (wasm + our kernels by default: tfjs' wasm is single-threaded under Node, so
 * workers are how a second core helps). A step splits the batch `[N, H, W, C]`
 * into contiguous shards as equal as possible, every worker computes its
 * shard's part of the **whole-batch** loss gradient (the CE term divided by the
 * whole batch's weight sum, the Dice term through a two-phase reduction of the
 * Dice sums — see `shared.ts`/`worker.ts`), the gradients are summed, and every
 * replica clips and applies the same Adam update (so replicas stay identical).
 * Without BatchNorm and dropout one step equals `trainStep` on the whole batch
 * within float tolerance; BatchNorm uses per-shard batch statistics (as
 * PyTorch DataParallel) and the running statistics are averaged over shards.
 *
 * Create with {@link DataParallelTrainer.create}; always {@link dispose} (it
 * terminates the threads). One call at a time (calls are queued).
 */
export class DataParallelTrainer {
  readonly config: UNetConfig;
  readonly workers: number;
  /** Trainable values per replica. */
  readonly numParams: number;
  private readonly threads: Worker[];
  private readonly control: Int32Array;
  private readonly hasTeacher: boolean;
  private readonly defaults: ParallelStepOptions;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private queue: Promise<unknown> = Promise.resolve();
  private input: SharedArrayBuffer | undefined;
  private live: number;
  private failure: Error | undefined;
  private disposed = false;
  private readonly exited: Promise<void>[];

  private constructor(config: UNetConfig, threads: Worker[], control: Int32Array, numParams: number, hasTeacher: boolean, defaults: ParallelStepOptions) {
    this.config = config;
    this.defaults = defaults;
    this.workers = threads.length;
    this.threads = threads;
    this.control = control;
    this.numParams = numParams;
    this.hasTeacher = hasTeacher;
    this.live = threads.length;
    this.exited = threads.map((t, index) => new Promise<void>((resolve) => t.once('exit', () => {
      this.live -= 1;
      if (!this.disposed) this.fail(new ParallelWorkerError(`worker ${index} exited unexpectedly`, 'Exit'));
      resolve();
    })));
    threads.forEach((t, index) => {
      t.on('message', (reply: WorkerReply) => this.onReply(index, reply));
      t.on('error', (err) => this.fail(new ParallelWorkerError(`worker ${index}: ${err.message}`, err.name)));
    });
  }

  /** Starts the workers, builds the replicas and broadcasts the initial weights. Rejects (and stops every thread) if any worker fails to start. */
  static async create(options: DataParallelOptions): Promise<DataParallelTrainer> {
    const config = resolveUNetConfig(options.config);
    const workers = options.workers ?? DEFAULT_PARALLEL_WORKERS;
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new ModelConfigError(`DataParallelOptions.workers must be an integer in [1, 64], got ${JSON.stringify(workers)}`);
    resolveAdamConfig(options.optimizer);
    const defaults = checkStepOptions({ loss: options.loss, clipNorm: options.clipNorm }, 'DataParallelOptions');
    const emaAlpha = options.ema === undefined ? undefined : options.ema.alpha ?? 0.999;
    if (emaAlpha !== undefined && !(emaAlpha >= 0 && emaAlpha < 1)) throw new ModelConfigError(`DataParallelOptions.ema.alpha must be a number in [0, 1), got ${JSON.stringify(emaAlpha)}`);
    const backend = options.backend ?? 'wasm';
    if (backend !== 'wasm' && backend !== 'cpu') throw new ModelConfigError(`DataParallelOptions.backend must be 'wasm' or 'cpu', got ${JSON.stringify(backend)}`);
    const updateMode = options.updateMode ?? UpdateMode.Replicated;
    if (!Object.values(UpdateMode).includes(updateMode)) throw new ModelConfigError(`DataParallelOptions.updateMode must be 'replicated' or 'broadcast', got ${JSON.stringify(updateMode)}`);

    const control = new SharedArrayBuffer(CTRL.Length * 4);
    const entry = workerEntry();
    const threads: Worker[] = [];
    const ready: Promise<{ params: number; buffers: number }>[] = [];
    for (let index = 0; index < workers; index++) {
      const init: WorkerInit = { index, workers, config, backend, adam: options.optimizer, emaAlpha, updateMode, control };
      const t = new Worker(entry.file, { workerData: init, execArgv: entry.execArgv });
      threads.push(t);
      ready.push(
        new Promise((resolve, reject) => {
          const onMessage = (m: WorkerReply): void => {
            if (m.type === 'ready') resolve({ params: m.params, buffers: m.buffers });
            else if (m.type === 'error') reject(new ParallelWorkerError(`worker ${index}: ${m.message}`, m.name));
            else return;
            t.off('message', onMessage);
          };
          t.on('message', onMessage);
          t.once('error', (err) => reject(new ParallelWorkerError(`worker ${index}: ${err.message}`, err.name)));
          t.once('exit', (code) => reject(new ParallelWorkerError(`worker ${index} exited with code ${code} while starting`, 'Exit')));
        }),
      );
    }
    let sizes: { params: number; buffers: number }[];
    try {
      sizes = await Promise.all(ready);
    } catch (err) {
      await Promise.all(threads.map((t) => t.terminate()));
      throw err;
    }
    const { params, buffers } = sizes[0]!;
    const trainer = new DataParallelTrainer(config, threads, new Int32Array(control), params, emaAlpha !== undefined, defaults);
    const exchange = new SharedArrayBuffer(4 * exchangeLength({ workers, numClasses: config.numClasses, params, buffers }));
    try {
      // Worker 0 first: it supplies the initial weights when the caller gave none.
      const [initial] = (await trainer.request([0], (id) => ({ id, type: 'setup', exchange, weights: options.weights }))) as [WeightSnapshot[]];
      if (workers > 1) await trainer.request(range(1, workers), (id) => ({ id, type: 'setup', exchange, weights: options.weights ?? initial }));
    } catch (err) {
      await trainer.dispose();
      throw err;
    }
    trainer.idle();
    return trainer;
  }

  /** Number of worker threads still running (0 after {@link dispose}). */
  get liveWorkers(): number {
    return this.live;
  }

  /**
   * One optimisation step on the whole batch (see the class comment): returns
   * the whole-batch loss terms, the gradient norm before clipping, the
   * learning rate and step count (as `trainStep`), plus per-worker timings.
   */
  async step(batch: HostBatch | TensorBatch, options: ParallelStepOptions = {}): Promise<ParallelStepResult> {
    const t0 = performance.now();
    const replies = (await this.runStep(batch, true, options)) as StepReply[];
    const r0 = replies[0]!;
    const emaAlpha = this.hasTeacher ? replies[this.workers - 1]!.emaAlpha : undefined;
    return {
      loss: r0.loss,
      ce: r0.ce,
      ...(r0.ceDiceWeighted === undefined ? {} : { ceDiceWeighted: r0.ceDiceWeighted }),
      dice: r0.dice,
      gradNorm: r0.gradNorm,
      learningRate: r0.learningRate,
      step: r0.step,
      ...(emaAlpha === undefined ? {} : { emaAlpha }),
      timings: replies.map((r) => r.timings),
      wallMs: performance.now() - t0,
    };
  }

  /** The whole-batch loss and gradient (summed over shards) without updating anything (BatchNorm running statistics do move, as in any training-mode forward pass). */
  async gradients(batch: HostBatch | TensorBatch, options: Pick<ParallelStepOptions, 'loss'> = {}): Promise<ParallelGradients> {
    const replies = (await this.runStep(batch, false, options)) as StepReply[];
    const r0 = replies[0]!;
    return { loss: r0.loss, ce: r0.ce, ...(r0.ceDiceWeighted === undefined ? {} : { ceDiceWeighted: r0.ceDiceWeighted }), dice: r0.dice, gradNorm: r0.gradNorm, gradients: r0.gradients ?? [] };
  }

  /** Weights of replica `replica` (default 0; all replicas hold the same weights), prefix-free names as `SegModel.getWeights()`. */
  async getWeights(replica = 0): Promise<WeightSnapshot[]> {
    this.checkReplica(replica);
    const [w] = (await this.serial(() => this.request([replica], (id) => ({ id, type: 'getWeights', teacher: false })))) as [WeightSnapshot[]];
    return w;
  }

  /** The EMA teacher's weights (the trainer must have been created with `ema`). */
  async getTeacherWeights(): Promise<WeightSnapshot[]> {
    if (!this.hasTeacher) throw new ModelInputError('getTeacherWeights: this trainer has no EMA teacher (create it with `ema`)');
    const [w] = (await this.serial(() => this.request([this.workers - 1], (id) => ({ id, type: 'getWeights', teacher: true })))) as [WeightSnapshot[]];
    return w;
  }

  /** Overwrites the weights of every replica (or of the teacher). */
  async setWeights(weights: readonly WeightSnapshot[], options: { teacher?: boolean } = {}): Promise<void> {
    const teacher = options.teacher ?? false;
    if (teacher && !this.hasTeacher) throw new ModelInputError('setWeights: this trainer has no EMA teacher (create it with `ema`)');
    await this.serial(() => this.request(range(0, this.workers), (id) => ({ id, type: 'setWeights', weights, teacher })));
  }

  /** Adam state (moments, step) and the EMA update count, for checkpoints. */
  async getOptimizerState(): Promise<{ adam: AdamState; emaUpdates: number | undefined }> {
    const replies = (await this.serial(() => this.request([0, this.workers - 1], (id) => ({ id, type: 'getOptimizerState' })))) as { adam: AdamState; emaUpdates: number | undefined }[];
    return { adam: replies[0]!.adam, emaUpdates: replies[replies.length - 1]!.emaUpdates };
  }

  /** Restores Adam state on every replica (and the EMA update count). */
  async setOptimizerState(adam: AdamState, emaUpdates?: number): Promise<void> {
    await this.serial(() => this.request(range(0, this.workers), (id) => ({ id, type: 'setOptimizerState', state: adam, emaUpdates })));
  }

  /** The dropout-mask generator state of every replica (replica order), for exact resume of a model with dropout. */
  async getRngStates(): Promise<number[]> {
    return (await this.serial(() => this.request(range(0, this.workers), (id) => ({ id, type: 'getRngState' })))) as number[];
  }

  /** Restores the replicas' dropout-mask generator states (one uint32 per replica, as {@link getRngStates} returned). */
  async setRngStates(states: readonly number[]): Promise<void> {
    if (states.length !== this.workers || !states.every((s) => Number.isInteger(s) && s >= 0 && s <= 0xffffffff)) {
      throw new ModelInputError(`setRngStates: states must be ${this.workers} integers in [0, 2^32 − 1] (one per replica), got ${JSON.stringify(states)}`);
    }
    await this.serial(() => this.request(range(0, this.workers), (id, index) => ({ id, type: 'setRngState', state: states[index]! })));
  }

  /** Terminates every worker and resolves once all threads have exited. Idempotent. */
  async dispose(): Promise<void> {
    if (!this.disposed) {
      this.disposed = true;
      abortBarrier(this.control); // release any worker blocked at a barrier
      this.fail(new ModelInputError('DataParallelTrainer has been disposed'));
      await Promise.all(this.threads.map((t) => t.terminate()));
    }
    await Promise.all(this.exited);
  }

  // -------------------------------------------------------------------------

  private checkReplica(replica: number): void {
    if (!Number.isInteger(replica) || replica < 0 || replica >= this.workers) {
      throw new ModelInputError(`replica must be an integer in [0, ${this.workers - 1}], got ${JSON.stringify(replica)}`);
    }
  }

  /** Runs `fn` after every earlier call finished (one request in flight keeps the shared buffers consistent). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(
      () => fn(),
      () => fn(),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async runStep(batch: HostBatch | TensorBatch, update: boolean, options: ParallelStepOptions): Promise<unknown[]> {
    const opts = checkStepOptions(options, 'step options');
    const loss = opts.loss ?? this.defaults.loss ?? {};
    const clipNorm = 'clipNorm' in options ? opts.clipNorm : this.defaults.clipNorm;
    const host = toHost(batch);
    const shape = checkHostBatch(host, this.config);
    return this.serial(async () => {
      const [n, h, w, c] = shape;
      const labelKind = host.labels.length === n * h * w ? 'map' : 'probabilities';
      const imagesLen = n * h * w * c;
      const labelsLen = host.labels.length;
      const weightsLen = host.weights ? n * h * w : 0;
      const diceWeightsLen = host.diceWeights ? n * h * w : 0;
      const bytes = 4 * (imagesLen + labelsLen + weightsLen + diceWeightsLen);
      if (this.input === undefined || this.input.byteLength < bytes) this.input = new SharedArrayBuffer(bytes);
      const f32 = new Float32Array(this.input);
      f32.set(host.images, 0);
      if (labelKind === 'map') new Int32Array(this.input).set(host.labels, imagesLen);
      else f32.set(host.labels, imagesLen);
      if (host.weights) f32.set(host.weights, imagesLen + labelsLen);
      if (host.diceWeights) f32.set(host.diceWeights, imagesLen + labelsLen + weightsLen);
      const input: StepInput = {
        buffer: this.input,
        shape,
        labelKind,
        hasWeights: host.weights !== undefined,
        imagesAt: 0,
        labelsAt: imagesLen,
        weightsAt: imagesLen + labelsLen,
        hasDiceWeights: host.diceWeights !== undefined,
        diceWeightsAt: imagesLen + labelsLen + weightsLen,
        normaliser: host.ceNormaliser ?? crossEntropyNormaliser(host.weights, n * h * w, WEIGHT_SUM_EPSILON),
      };
      const shards = splitBatch(n, this.workers);
      return this.request(range(0, this.workers), (id, index) => ({ id, type: 'step', input, shard: shards[index]!, update, loss, clipNorm }));
    });
  }

  /** Sends one request per listed worker and gathers the replies (in that order); rejects with the first real (non-abort) error. */
  private request(targets: readonly number[], make: (id: number, index: number) => WorkerRequest): Promise<unknown[]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<unknown[]>((resolve, reject) => {
      const replies = new Array<unknown>(this.workers);
      this.pending.set(id, { replies, errors: [], remaining: targets.length, resolve: (all) => resolve(targets.map((t) => all[t])), reject });
      for (const t of this.threads) t.ref();
      for (const index of targets) this.threads[index]!.postMessage(make(id, index));
    }).finally(() => this.idle());
  }

  private onReply(index: number, reply: WorkerReply): void {
    if (reply.type === 'ready') return;
    const p = reply.id === null ? undefined : this.pending.get(reply.id);
    if (reply.type === 'error' && reply.id === null) {
      this.fail(new ParallelWorkerError(`worker ${index}: ${reply.message}`, reply.name));
      return;
    }
    if (p === undefined) return;
    if (reply.type === 'result') p.replies[index] = reply.value;
    else p.errors.push({ index, name: reply.name, message: reply.message, aborted: reply.aborted });
    p.remaining -= 1;
    if (p.remaining > 0) return;
    this.pending.delete(reply.id!);
    if (p.errors.length === 0) {
      p.resolve(p.replies);
      return;
    }
    // Every worker has answered, so none is inside a barrier: the control block can be reset.
    resetBarrier(this.control);
    const first = p.errors.find((e) => !e.aborted) ?? p.errors[0]!;
    p.reject(new ParallelWorkerError(`worker ${first.index}: ${first.message}`, first.name));
  }

  /** A worker crashed or the trainer was disposed: reject everything in flight and every later call. */
  private fail(err: Error): void {
    this.failure ??= err;
    abortBarrier(this.control);
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(this.failure);
    }
  }

  /** Idle workers do not keep the process alive (a forgotten dispose() cannot hang a CLI). */
  private idle(): void {
    if (this.pending.size === 0) for (const t of this.threads) t.unref();
  }
}

function checkStepOptions(o: ParallelStepOptions, where: string): ParallelStepOptions {
  if (o.clipNorm !== undefined && !(o.clipNorm > 0 && Number.isFinite(o.clipNorm))) {
    throw new ModelConfigError(`${where}.clipNorm must be a finite number > 0, got ${JSON.stringify(o.clipNorm)}`);
  }
  const loss = o.loss ?? {};
  for (const f of ['ceWeight', 'diceWeight', 'smooth'] as const) {
    const v = loss[f];
    if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new ModelConfigError(`${where}.loss.${f} must be a finite number ≥ 0, got ${JSON.stringify(v)}`);
  }
  return o;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function toHost(batch: HostBatch | TensorBatch): HostBatch {
  if (!(batch.images instanceof tf.Tensor)) return batch as HostBatch;
  const b = batch as TensorBatch;
  const s = b.images.shape;
  if (s.length !== 4) throw new ModelInputError(`batch.images must be [N, H, W, C], got [${s.join(', ')}]`);
  if (b.labels.rank === 3 && b.labels.dtype !== 'int32') throw new ModelInputError(`batch.labels as a label map must be int32, got ${b.labels.dtype}`);
  return {
    shape: [s[0], s[1], s[2], s[3]],
    images: b.images.dataSync() as Float32Array,
    labels: b.labels.rank === 3 ? (b.labels.dataSync() as Int32Array) : (b.labels.dataSync() as Float32Array),
    weights: b.weights === undefined ? undefined : (b.weights.dataSync() as Float32Array),
  };
}

/** Shape checks of a host batch (value ranges are checked by each worker on its shard). */
function checkHostBatch(b: HostBatch, config: UNetConfig): [number, number, number, number] {
  const [n, h, w, c] = b.shape;
  const m = 2 ** (config.depth - 1);
  if (b.shape.length !== 4 || !b.shape.every((d) => Number.isInteger(d)) || n < 1 || c !== config.inputChannels || h < m || w < m || h % m !== 0 || w % m !== 0) {
    throw new ModelInputError(
      `batch.shape must be [N, H, W, ${config.inputChannels}] with N ≥ 1 and H, W positive multiples of ${m} (2^(depth−1)), got [${b.shape.join(', ')}]`,
    );
  }
  if (!(b.images instanceof Float32Array) || b.images.length !== n * h * w * c) {
    throw new ModelInputError(`batch.images must be a Float32Array of ${n * h * w * c} values ([${n}, ${h}, ${w}, ${c}]), got ${b.images.constructor.name} of ${b.images.length}`);
  }
  const k = config.numClasses;
  const isMap = b.labels instanceof Int32Array && b.labels.length === n * h * w;
  const isProb = b.labels instanceof Float32Array && b.labels.length === n * h * w * k;
  if (!isMap && !isProb) {
    throw new ModelInputError(
      `batch.labels must be an Int32Array label map of ${n * h * w} values ([${n}, ${h}, ${w}]) or a Float32Array of probabilities of ${n * h * w * k} values ([${n}, ${h}, ${w}, ${k}]), got ${b.labels.constructor.name} of ${b.labels.length}`,
    );
  }
  for (const [field, v] of [
    ['weights', b.weights],
    ['diceWeights', b.diceWeights],
  ] as const) {
    if (v !== undefined && (!(v instanceof Float32Array) || v.length !== n * h * w)) {
      throw new ModelInputError(`batch.${field} must be a Float32Array of ${n * h * w} values ([${n}, ${h}, ${w}]), got ${v.constructor.name} of ${v.length}`);
    }
  }
  if (b.ceNormaliser !== undefined && !(b.ceNormaliser > 0 && Number.isFinite(b.ceNormaliser))) {
    throw new ModelInputError(`batch.ceNormaliser must be a finite number > 0, got ${JSON.stringify(b.ceNormaliser)}`);
  }
  return [n, h, w, c];
}
