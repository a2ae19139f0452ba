import * as tf from '@tensorflow/tfjs';

/** Keyword arguments tfjs passes to `Layer.call` (`training`, `mask`). */
type Kwargs = Record<string, unknown>;

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  const x = Array.isArray(inputs) ? inputs[0] : inputs;
  if (x === undefined) throw new Error('expected one input tensor, got none');
  return x;
}

export interface InstanceNormalizationArgs {
  name?: string;
  /** Added to the variance before the square root (ONNX `epsilon`). Default 1e-5. */
  epsilon?: number;
}

/**
 * Instance normalisation for NHWC feature maps `[N, H, W, C]`: each sample's
 * each channel is normalised over its own H×W pixels with the biased variance,
 * then scaled and shifted per channel:
 * `y = gamma[c] · (x − mean_{n,c}) / sqrt(var_{n,c} + epsilon) + beta[c]`.
 * Same formula in training and inference (no running statistics), which is
 * exactly ONNX `InstanceNormalization`; the exporter maps it 1:1.
 * Weights: `gamma` `[C]` (init 1), `beta` `[C]` (init 0).
 */
export class InstanceNormalization extends tf.layers.Layer {
  static className = 'PurifyInstanceNormalization';
  readonly epsilon: number;
  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;

  constructor(args: InstanceNormalizationArgs = {}) {
    super(args.name === undefined ? {} : { name: args.name });
    this.epsilon = args.epsilon ?? 1e-5;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (shape.length !== 4 || channels == null) {
      throw new Error(`InstanceNormalization '${this.name}' expects [N, H, W, C] input with known C, got [${shape.join(', ')}]`);
    }
    this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs) as tf.Tensor4D;
      const { mean, variance } = tf.moments(x, [1, 2], true); // [N, 1, 1, C] each
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.epsilon)));
      return tf.add(tf.mul(normed, this.gamma!.read()), this.beta!.read());
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

export interface SeededDropoutArgs {
  name?: string;
  /** Fraction of units dropped in training, in [0, 1). */
  rate: number;
  /** Draws the seed of each training-time mask; this is what makes runs (and resumed runs) reproducible. */
  seedSource?: () => number;
}

/**
 * Element-wise dropout (inverted: kept units are scaled by 1/(1 − rate)) whose
 * masks come from a seed drawn per call from `seedSource` — unlike
 * `tf.layers.dropout`, whose masks come from `Math.random` or repeat a fixed
 * seed forever. Identity at inference; the ONNX exporter drops it.
 */
export class SeededDropout extends tf.layers.Layer {
  static className = 'PurifySeededDropout';
  readonly rate: number;
  private readonly seedSource: (() => number) | undefined;

  constructor(args: SeededDropoutArgs) {
    super(args.name === undefined ? {} : { name: args.name });
    this.rate = args.rate;
    this.seedSource = args.seedSource;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = single(inputs);
    if (kwargs['training'] !== true || this.rate === 0) return tf.clone(x);
    return tf.dropout(x, this.rate, undefined, this.seedSource?.());
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}

/** ×2 bilinear upsampling of `x` `[N, H, W, C]` along `axis` (1 = H, 2 = W) with half-pixel centres and edge clamping. */
function upsampleAxis2x(x: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D {
  const n = x.shape[axis];
  const size = (from: number, count: number): [number[], number[]] => {
    const begin = [0, 0, 0, 0];
    const sz = [-1, -1, -1, -1];
    begin[axis] = from;
    sz[axis] = count;
    return [begin, sz];
  };
  const part = (from: number, count: number): tf.Tensor4D => tf.slice(x, ...size(from, count));
  // prev[i] = x[max(i − 1, 0)], next[i] = x[min(i + 1, n − 1)]
  const prev = n === 1 ? x : tf.concat([part(0, 1), part(0, n - 1)], axis);
  const next = n === 1 ? x : tf.concat([part(1, n - 1), part(n - 1, 1)], axis);
  // Output 2i samples source i − 1/4, output 2i + 1 samples source i + 1/4.
  const even = tf.add(tf.mul(x, 0.75), tf.mul(prev, 0.25));
  const odd = tf.add(tf.mul(x, 0.75), tf.mul(next, 0.25));
  const shape = [...x.shape] as [number, number, number, number];
  shape[axis] = 2 * n;
  return tf.reshape(tf.stack([even, odd], axis + 1), shape); // interleave even/odd along `axis`
}

/**
 * ×2 bilinear upsampling of `[N, H, W, C]` → `[N, 2H, 2W, C]` with half-pixel
 * centres (source = (target + ½)/2 − ½, clamped at the edges): PyTorch's
 * `interpolate(scale_factor=2, mode='bilinear', align_corners=False)` and ONNX
 * `Resize` (linear, `half_pixel`). Built from slices and weighted sums, so its
 * gradient is exact on every backend (tfjs' `resizeBilinear` gradient ignores
 * half-pixel centres, and its cpu kernel swaps H and W of non-square inputs).
 */
export class BilinearUpsampling2D extends tf.layers.Layer {
  static className = 'PurifyBilinearUpsampling2D';

  constructor(args: { name?: string } = {}) {
    super(args.name === undefined ? {} : { name: args.name });
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => upsampleAxis2x(upsampleAxis2x(single(inputs) as tf.Tensor4D, 1), 2));
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [s[0] ?? null, s[1] == null ? null : 2 * s[1], s[2] == null ? null : 2 * s[2], s[3] ?? null];
  }
}

tf.serialization.registerClass(InstanceNormalization);
tf.serialization.registerClass(BilinearUpsampling2D);
tf.serialization.registerClass(SeededDropout);

/** The BatchNormalization fields this file reads (declared private in tfjs-layers' typings). */
interface BatchNormInternals {
  readonly axis: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly gamma: tf.LayerVariable | null;
  readonly beta: tf.LayerVariable | null;
  readonly movingMean: tf.LayerVariable;
  readonly movingVariance: tf.LayerVariable;
}

/** tfjs-layers' BatchNormalization class (exported only through its factory). */
const KerasBatchNormalization = tf.layers.batchNormalization({}).constructor as new (args: Parameters<typeof tf.layers.batchNormalization>[0]) => tf.layers.Layer;

/**
 * Batch-statistics normalisation of NHWC `x` with one fused gradient:
 * `y = gamma · (x − mean) / sqrt(var + ε) + beta`, mean and var over N, H, W.
 * The backward pass is the closed form
 *   dbeta = Σ dy,  dgamma = Σ dy·x̂,  dx = gamma/sqrt(var + ε) · (dy − dbeta/M − x̂·dgamma/M)
 * (M = N·H·W pixels, x̂ the normalised input) — about ten tensor ops where the
 * gradient taken through `tf.moments` and `tf.batchNorm` is about forty.
 * `mean` and `variance` are those of `x`, computed by the caller.
 */
function batchNormInTraining(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, mean: tf.Tensor1D, variance: tf.Tensor1D, epsilon: number): tf.Tensor4D {
  const axes = [0, 1, 2];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    save([xi, g, mean, variance]);
    return {
      value: tf.batchNorm(xi, mean, variance, b, g, epsilon),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs, m, v] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const pixels = xs.size / xs.shape[3];
        const invStd = tf.rsqrt(tf.add(v, epsilon));
        const xhat = tf.mul(tf.sub(xs, m), invStd);
        const dbeta = tf.sum(dy, axes);
        const dgamma = tf.sum(tf.mul(dy, xhat), axes);
        const centred = tf.sub(tf.sub(dy, tf.div(dbeta, pixels)), tf.mul(xhat, tf.div(dgamma, pixels)));
        return [tf.mul(centred, tf.mul(gs, invStd)), dgamma, dbeta];
      },
    };
  });
  return op(x, gamma, beta);
}

/**
 * tf.layers.BatchNormalization with a fused training-mode gradient
 * ({@link batchNormInTraining}); the same class name, weights, running
 * statistics update and inference path, so checkpoints, the ONNX exporter and
 * a model loaded through tfjs-layers' own class see no difference. Cases the
 * fused path does not cover (not NHWC on the last axis, no centre or scale)
 * run the inherited code.
 */
export class FusedBatchNormalization extends KerasBatchNormalization {
  /**
   * While set, a training-mode call normalises with the batch statistics,
   * reports them here and leaves the running statistics alone (AdaBN's
   * re-estimation pass, `reestimateBatchNorm`).
   */
  statisticsSink: ((mean: Float32Array, variance: Float32Array, count: number) => void) | undefined;

  /** The layer's running-statistics variables (for re-estimation). */
  get runningStatistics(): { mean: tf.LayerVariable; variance: tf.LayerVariable } {
    const bn = this as unknown as BatchNormInternals;
    return { mean: bn.movingMean, variance: bn.movingVariance };
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const bn = this as unknown as BatchNormInternals;
    const x = single(inputs);
    const sink = this.statisticsSink;
    if (sink !== undefined && kwargs['training'] === true && x.rank === 4 && (bn.axis === -1 || bn.axis === 3)) {
      return tf.tidy(() => {
        const { mean, variance } = tf.moments(x, [0, 1, 2]);
        sink(mean.dataSync() as Float32Array, variance.dataSync() as Float32Array, x.size / (x.shape[3] ?? 1));
        return tf.batchNorm(x as tf.Tensor4D, mean as tf.Tensor1D, variance as tf.Tensor1D, bn.beta?.read() as tf.Tensor1D | undefined, bn.gamma?.read() as tf.Tensor1D | undefined, bn.epsilon);
      });
    }
    const fused = kwargs['training'] === true && x.rank === 4 && (bn.axis === -1 || bn.axis === 3) && bn.center && bn.scale;
    if (!fused) return super.call(inputs, kwargs);
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      const y = batchNormInTraining(x as tf.Tensor4D, bn.gamma!.read() as tf.Tensor1D, bn.beta!.read() as tf.Tensor1D, mean as tf.Tensor1D, variance as tf.Tensor1D, bn.epsilon);
      // The running statistics, updated as tfjs-layers does: v ← v − (v − batch)·(1 − momentum).
      for (const [variable, batch] of [
        [bn.movingMean, mean],
        [bn.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const current = variable.read();
          variable.write(tf.sub(current, tf.mul(tf.sub(current, batch), 1 - bn.momentum)));
        });
      }
      return y;
    });
  }
}
