import * as tf from '@tensorflow/tfjs';
import type { EmaTeacher } from './ema';
import { ModelInputError } from './errors';
import { segmentationLoss, type SegLossOptions, type SegTarget } from './losses';
import { Adam, clipByGlobalNorm, globalNorm, type AdamConfig } from './optimizer';
import type { SegModel } from './seg-model';

export interface TrainBatch {
  /** `[N, H, W, C]` float32 images (H, W multiples of 2^(depth−1)). */
  readonly images: tf.Tensor4D;
  /** Label map `[N, H, W]` int32 in [0, K), or target probabilities `[N, H, W, K]`. */
  readonly labels: SegTarget;
  /** `[N, H, W]` float32 pixel weights in [0, 1] (the agent's supervision weights); omitted = all 1. */
  readonly weights?: tf.Tensor3D | undefined;
}

export interface TrainStepOptions {
  /** The optimiser bound to this model's trainable variables (see {@link createAdam}). */
  readonly optimizer: Adam;
  /** Loss terms (the pixel weights come from the batch). Default: CE + Dice, all classes. */
  readonly loss?: Omit<SegLossOptions, 'weights'>;
  /** Clip gradients to this global norm before the update; omitted = no clipping. */
  readonly clipNorm?: number | undefined;
  /** EMA teacher to update after the step. */
  readonly ema?: EmaTeacher | undefined;
  /**
   * Check label values are in [0, K) and weights in [0, 1] (two small reads
   * from the backend); default true.
   */
  readonly validate?: boolean | undefined;
}

export interface TrainStepResult {
  /** The minimised loss `ceWeight·ce + diceWeight·dice`. */
  readonly loss: number;
  readonly ce: number;
  readonly dice: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Learning rate of this update. */
  readonly learningRate: number;
  /** Updates applied by the optimiser including this one. */
  readonly step: number;
  /** α_t of the EMA update, when an EMA teacher was given. */
  readonly emaAlpha?: number;
}

/** An Adam optimiser bound to `model`'s trainable variables. */
export function createAdam(model: SegModel, config: AdamConfig): Adam {
  return new Adam(model.trainableVariables(), config);
}

function checkBatch(model: SegModel, batch: TrainBatch, validate: boolean): void {
  model.checkImages(batch.images, 'batch.images');
  const [n, h, w] = batch.images.shape;
  const k = model.config.numClasses;
  const { labels, weights } = batch;
  const want = labels.rank === 3 ? [n, h, w] : [n, h, w, k];
  if (labels.rank !== want.length || labels.shape.some((d, i) => d !== want[i])) {
    throw new ModelInputError(`batch.labels must be [${[n, h, w].join(', ')}] (int32 label map) or [${[n, h, w, k].join(', ')}] (probabilities), got [${labels.shape.join(', ')}]`);
  }
  if (labels.rank === 3 && labels.dtype !== 'int32') throw new ModelInputError(`batch.labels as a label map must be int32, got ${labels.dtype}`);
  if (weights !== undefined && (weights.rank !== 3 || weights.shape.some((d, i) => d !== [n, h, w][i]))) {
    throw new ModelInputError(`batch.weights must be [${[n, h, w].join(', ')}], got [${weights.shape.join(', ')}]`);
  }
  if (!validate) return;
  const ranges = tf.tidy(() => tf.stack([tf.min(labels).toFloat(), tf.max(labels).toFloat(), ...(weights ? [tf.min(weights), tf.max(weights)] : [])]));
  const [lo, hi, wlo, whi] = ranges.dataSync();
  ranges.dispose();
  if (labels.rank === 3 && (lo! < 0 || hi! >= k)) throw new ModelInputError(`batch.labels values must be in [0, ${k - 1}], got range [${lo}, ${hi}]`);
  if (labels.rank === 4 && (lo! < 0 || hi! > 1)) throw new ModelInputError(`batch.labels probabilities must be in [0, 1], got range [${lo}, ${hi}]`);
  if (weights && !(wlo! >= 0 && whi! <= 1)) throw new ModelInputError(`batch.weights must be in [0, 1], got range [${wlo}, ${whi}]`);
}

/**
 * One optimisation step: forward in training mode (BatchNorm batch statistics,
 * dropout), loss (weighted CE + soft Dice), gradients of every trainable
 * variable, optional clipping by global norm, the Adam update, then the optional
 * EMA update. Disposes every tensor it creates (the number of live tensors is
 * unchanged afterwards). Synchronous; reads four scalars back at the end.
 */
export function trainStep(model: SegModel, batch: TrainBatch, options: TrainStepOptions): TrainStepResult {
  checkBatch(model, batch, options.validate ?? true);
  const vars = model.trainableVariables();
  let ce: tf.Scalar | undefined;
  let dice: tf.Scalar | undefined;
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap | undefined;
  let clipped: tf.Tensor[] | undefined;
  let norm: tf.Scalar | undefined;
  try {
    ({ value, grads } = tf.variableGrads(() => {
      const logits = model.logits(batch.images, true); // [N, H, W, K]
      const l = segmentationLoss(logits, batch.labels, { ...options.loss, weights: batch.weights });
      ce = tf.keep(l.ce);
      dice = tf.keep(l.dice);
      return l.total;
    }, vars));
    const gradList = vars.map((v) => {
      const g = grads![v.name];
      if (g === undefined) throw new Error(`trainStep: no gradient for variable '${v.name}'`);
      return g;
    });
    if (options.clipNorm !== undefined) {
      ({ clipped, norm } = clipByGlobalNorm(gradList, options.clipNorm));
    } else {
      norm = globalNorm(gradList);
    }
    const learningRate = options.optimizer.apply(clipped ?? gradList);
    const emaAlpha = options.ema?.update(model);
    const scalars = tf.stack([value, ce!, dice!, norm]);
    const [loss, ceValue, diceValue, gradNorm] = scalars.dataSync();
    scalars.dispose();
    return {
      loss: loss!,
      ce: ceValue!,
      dice: diceValue!,
      gradNorm: gradNorm!,
      learningRate,
      step: options.optimizer.step,
      ...(emaAlpha === undefined ? {} : { emaAlpha }),
    };
  } finally {
    tf.dispose([value, ce, dice, norm, ...(clipped ?? []), ...(grads ? Object.values(grads) : [])].filter((t): t is tf.Tensor => t !== undefined));
  }
}
