/**
 * One optimisation step of the student (DESIGN.md §4 step 6):
 *
 *   L = L_sup(source) + λ · Σ W·CE(student(x_t), ŷ) / Σ W
 *
 * with L_sup = CE + soft Dice on the labelled source slices, and the target
 * term the pixel-weighted cross-entropy of the pseudo-labels (all weights 0 →
 * the term is 0 with zero gradient). Source and target slices go through one
 * forward pass (concatenated on N), so BatchNorm sees both domains.
 */
import * as tf from '@tensorflow/tfjs';
import { clipByGlobalNorm, globalNorm, segmentationLoss, weightedCrossEntropy, type Adam, type EmaTeacher, type SegModel } from '@purify/models';
import { AdaptationConfigError } from './errors';

export interface DualBatch {
  /** Source images `[nS, H, W, 1]` and labels `[nS, H, W]` int32. */
  readonly source: { readonly images: tf.Tensor4D; readonly labels: tf.Tensor3D };
  /** Target images `[nT, H, W, 1]`, pseudo-labels `[nT, H, W]` int32, pixel weights `[nT, H, W]` in [0, 1]. */
  readonly target?: { readonly images: tf.Tensor4D; readonly labels: tf.Tensor3D; readonly weights: tf.Tensor3D } | undefined;
}

export interface DualStepOptions {
  readonly optimizer: Adam;
  /** λ, the factor of the target term (≥ 0). */
  readonly targetWeight: number;
  readonly clipNorm?: number | undefined;
  readonly ema?: EmaTeacher | undefined;
}

export interface DualStepResult {
  readonly loss: number;
  readonly sourceLoss: number;
  /** The weighted target cross-entropy before λ (0 without a target batch). */
  readonly targetLoss: number;
  readonly gradNorm: number;
  readonly learningRate: number;
  /** Updates applied by the optimiser including this one. */
  readonly step: number;
}

/** Synchronous; disposes every tensor it creates (the caller disposes the batch). */
export function adaptationStep(model: SegModel, batch: DualBatch, options: DualStepOptions): DualStepResult {
  if (!(options.targetWeight >= 0) || !Number.isFinite(options.targetWeight)) {
    throw new AdaptationConfigError('targetWeight', `targetWeight must be a finite number ≥ 0, got ${options.targetWeight}`);
  }
  const nS = batch.source.images.shape[0];
  const vars = model.trainableVariables();
  let srcLoss: tf.Scalar | undefined;
  let tgtLoss: tf.Scalar | undefined;
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap | undefined;
  let clipped: tf.Tensor[] | undefined;
  let norm: tf.Scalar | undefined;
  try {
    ({ value, grads } = tf.variableGrads(() => {
      const t = batch.target;
      const images = t === undefined ? batch.source.images : tf.concat([batch.source.images, t.images], 0);
      const logits = model.logits(images, true); // [nS + nT, H, W, K]
      const [n, h, w, k] = logits.shape;
      const srcLogits = t === undefined ? logits : tf.slice(logits, [0, 0, 0, 0], [nS, h, w, k]);
      const sup = segmentationLoss(srcLogits, batch.source.labels);
      srcLoss = tf.keep(sup.total);
      if (t === undefined) {
        tgtLoss = tf.keep(tf.scalar(0));
        return sup.total;
      }
      const tgtLogits = tf.slice(logits, [nS, 0, 0, 0], [n - nS, h, w, k]);
      const ce = weightedCrossEntropy(tgtLogits, t.labels, t.weights);
      tgtLoss = tf.keep(ce);
      return tf.add(sup.total, tf.mul(ce, options.targetWeight));
    }, vars));
    const gradList = vars.map((v) => {
      const g = grads![v.name];
      if (g === undefined) throw new Error(`adaptationStep: no gradient for variable '${v.name}'`);
      return g;
    });
    if (options.clipNorm !== undefined && options.clipNorm > 0) ({ clipped, norm } = clipByGlobalNorm(gradList, options.clipNorm));
    else norm = globalNorm(gradList);
    const learningRate = options.optimizer.apply(clipped ?? gradList);
    options.ema?.update(model);
    const scalars = tf.stack([value, srcLoss!, tgtLoss!, norm]);
    const [loss, s, t, g] = scalars.dataSync();
    scalars.dispose();
    return { loss: loss!, sourceLoss: s!, targetLoss: t!, gradNorm: g!, learningRate, step: options.optimizer.step };
  } finally {
    tf.dispose([value, srcLoss, tgtLoss, norm, ...(clipped ?? []), ...(grads ? Object.values(grads) : [])].filter((x): x is tf.Tensor => x !== undefined));
  }
}
