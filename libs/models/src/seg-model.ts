import * as tf from '@tensorflow/tfjs';
import type { UNetConfig } from './config';
import { ModelConfigError, ModelInputError } from './errors';
import type { Rng } from './rng';

/** One weight array of a model, in the model's fixed order. */
export interface WeightSnapshot {
  /** Variable name without the model's name prefix, e.g. `enc0_conv1/kernel` — stable across models. */
  readonly name: string;
  /** tfjs layout: conv kernels `[kh, kw, in, out]`, transposed-conv kernels `[kh, kw, out, in]`, vectors `[C]`. */
  readonly shape: readonly number[];
  /** False for BatchNorm running statistics (`moving_mean`, `moving_variance`). */
  readonly trainable: boolean;
  readonly values: Float32Array;
}

/** The tfjs networks a {@link SegModel} wraps; built by `buildUNet`. */
export interface SegNetworks {
  /** Image `[N, H, W, C]` → class probabilities `[N, H, W, K]` (softmax over the last axis). */
  readonly probabilities: tf.LayersModel;
  /** Same layers, stopping before the softmax: logits `[N, H, W, K]`. */
  readonly logits: tf.LayersModel;
}

/** Name prefixes of live (not yet disposed) models; tfjs variable names are process-global. */
const livePrefixes = new Set<string>();

export function claimPrefix(prefix: string): void {
  if (livePrefixes.has(prefix)) {
    throw new ModelConfigError(`model name prefix '${prefix}' is in use by a live model in this process; dispose it or pass another namePrefix`);
  }
  livePrefixes.add(prefix);
}

export function releasePrefix(prefix: string): void {
  livePrefixes.delete(prefix);
}

export function isPrefixLive(prefix: string): boolean {
  return livePrefixes.has(prefix);
}

/**
 * A segmentation network with its configuration. Images are `[N, H, W, C]`
 * float32 (NHWC), H and W divisible by 2^(depth − 1); outputs are `[N, H, W, K]`.
 * Owns its tfjs variables: call {@link dispose} when done.
 */
export class SegModel {
  readonly config: UNetConfig;
  /** Prefix of every layer and variable name of this model (unique among live models). */
  readonly namePrefix: string;
  /** Source of the dropout masks' seeds; its state is saved in checkpoints. */
  readonly rng: Rng;
  readonly networks: SegNetworks;
  private disposed = false;

  constructor(config: UNetConfig, namePrefix: string, rng: Rng, networks: SegNetworks) {
    this.config = config;
    this.namePrefix = namePrefix;
    this.rng = rng;
    this.networks = networks;
  }

  /** Spatial multiple every input side must be (2^(depth − 1)). */
  get sizeMultiple(): number {
    return 2 ** (this.config.depth - 1);
  }

  /** Number of trainable parameters. */
  get numParams(): number {
    return this.networks.probabilities.trainableWeights.reduce((n, w) => n + sizeOf(w.shape), 0);
  }

  /** Number of non-trainable values (BatchNorm running mean and variance). */
  get numNonTrainableParams(): number {
    return this.networks.probabilities.nonTrainableWeights.reduce((n, w) => n + sizeOf(w.shape), 0);
  }

  /** Checks `images` is a float32 `[N, H, W, C]` tensor this model accepts; throws {@link ModelInputError} otherwise. */
  checkImages(images: tf.Tensor, what = 'images'): asserts images is tf.Tensor4D {
    this.assertLive();
    const s = images.shape;
    const m = this.sizeMultiple;
    if (s.length !== 4 || s[3] !== this.config.inputChannels || s[0] < 1 || s[1] < m || s[2] < m || s[1] % m !== 0 || s[2] % m !== 0) {
      throw new ModelInputError(
        `${what} must be [N, H, W, ${this.config.inputChannels}] with N ≥ 1 and H, W positive multiples of ${m} (2^(depth−1)), got [${s.join(', ')}]`,
      );
    }
    if (images.dtype !== 'float32') throw new ModelInputError(`${what} must be float32, got ${images.dtype}`);
  }

  /** Class probabilities `[N, H, W, K]` at inference (BatchNorm running statistics, no dropout). The caller disposes the result. */
  predict(images: tf.Tensor4D): tf.Tensor4D {
    this.checkImages(images);
    return tf.tidy(() => this.networks.probabilities.apply(images, { training: false }) as tf.Tensor4D);
  }

  /**
   * Logits `[N, H, W, K]`. With `training`, BatchNorm uses (and updates its
   * running statistics from) the batch, and dropout draws masks from {@link rng}.
   */
  logits(images: tf.Tensor4D, training: boolean): tf.Tensor4D {
    this.checkImages(images);
    return tf.tidy(() => this.networks.logits.apply(images, { training }) as tf.Tensor4D);
  }

  /** The trainable tfjs variables, in the model's fixed order. */
  trainableVariables(): tf.Variable[] {
    this.assertLive();
    return this.networks.probabilities.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Every variable (trainable, then BatchNorm statistics in layer order), with its prefix-free name. */
  variables(): { name: string; trainable: boolean; variable: tf.Variable }[] {
    this.assertLive();
    return this.networks.probabilities.weights.map((w) => ({
      name: this.stripPrefix(w.originalName),
      trainable: w.trainable,
      variable: w.read() as tf.Variable,
    }));
  }

  /** Copies of all weights (downloads them from the backend). */
  getWeights(): WeightSnapshot[] {
    return this.variables().map(({ name, trainable, variable }) => ({
      name,
      shape: [...variable.shape],
      trainable,
      values: new Float32Array(variable.dataSync()),
    }));
  }

  /**
   * Overwrites all weights. `weights` must list every weight of this model with
   * the same names and shapes (order free), e.g. another model's
   * {@link getWeights} of the same configuration.
   */
  setWeights(weights: readonly WeightSnapshot[]): void {
    const byName = new Map(weights.map((w) => [w.name, w]));
    const vars = this.variables();
    for (const { name, variable } of vars) {
      const w = byName.get(name);
      if (w === undefined) throw new ModelInputError(`setWeights: weight '${name}' is missing (received ${weights.length} weights)`);
      if (w.shape.length !== variable.shape.length || w.shape.some((d, i) => d !== variable.shape[i])) {
        throw new ModelInputError(`setWeights: weight '${name}' must have shape [${variable.shape.join(', ')}], got [${w.shape.join(', ')}]`);
      }
      if (w.values.length !== variable.size) {
        throw new ModelInputError(`setWeights: weight '${name}' must have ${variable.size} values, got ${w.values.length}`);
      }
    }
    if (weights.length !== vars.length) {
      const known = new Set(vars.map((v) => v.name));
      const extra = weights.find((w) => !known.has(w.name));
      throw new ModelInputError(`setWeights: expected ${vars.length} weights, got ${weights.length}${extra ? ` (unknown weight '${extra.name}')` : ''}`);
    }
    for (const { name, variable } of vars) {
      const w = byName.get(name)!;
      tf.tidy(() => variable.assign(tf.tensor(w.values, variable.shape, 'float32')));
    }
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees every variable of the model. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // The logits network shares every layer with the probabilities network and owns no variables of its own.
    this.networks.probabilities.dispose();
    releasePrefix(this.namePrefix);
  }

  private stripPrefix(name: string): string {
    return name.startsWith(this.namePrefix) ? name.slice(this.namePrefix.length) : name;
  }

  private assertLive(): void {
    if (this.disposed) throw new ModelInputError(`model '${this.namePrefix}' has been disposed`);
  }
}

function sizeOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((n, d) => n * (d ?? 0), 1);
}
