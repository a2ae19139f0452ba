import * as tf from '@tensorflow/tfjs';
import { ModelInputError } from './errors';

/**
 * Floor of the weight sum that normalises the weighted cross-entropy: the loss
 * is `Σ w·CE / max(Σ w, ε)`, so it is the exact weighted mean whenever Σw ≥ ε
 * and 0 (not NaN) when every weight is 0.
 */
export const WEIGHT_SUM_EPSILON = 1e-6;

/** Default smoothing of the soft Dice ratio `(2I + s) / (S + s)` (nnU-Net's value). */
export const DICE_SMOOTH = 1e-5;

/**
 * Segmentation targets: an int32 label map `[N, H, W]` with values in [0, K),
 * or float32 per-class target probabilities `[N, H, W, K]` (one-hot or soft).
 */
export type SegTarget = tf.Tensor3D | tf.Tensor4D;

function checkShapes(logits: tf.Tensor, target: tf.Tensor, weights: tf.Tensor | undefined, fn: string): void {
  const s = logits.shape;
  if (s.length !== 4 || s[3] < 2) throw new ModelInputError(`${fn}: logits must be [N, H, W, K] with K ≥ 2, got [${s.join(', ')}]`);
  const nhw = s.slice(0, 3);
  const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
  if (target.rank === 3) {
    if (!same(target.shape, nhw)) throw new ModelInputError(`${fn}: label map must be [${nhw.join(', ')}] like the logits, got [${target.shape.join(', ')}]`);
    if (target.dtype !== 'int32') throw new ModelInputError(`${fn}: label map must be int32, got ${target.dtype}`);
  } else if (target.rank === 4) {
    if (!same(target.shape, s)) throw new ModelInputError(`${fn}: target probabilities must be [${s.join(', ')}] like the logits, got [${target.shape.join(', ')}]`);
  } else {
    throw new ModelInputError(`${fn}: target must be a label map [N, H, W] or probabilities [N, H, W, K], got rank ${target.rank} [${target.shape.join(', ')}]`);
  }
  if (weights !== undefined && !same(weights.shape, nhw)) {
    throw new ModelInputError(`${fn}: weights must be [${nhw.join(', ')}] (one per pixel), got [${weights.shape.join(', ')}]`);
  }
}

/** Target as float32 `[N, H, W, K]`. */
function targetProbabilities(target: SegTarget, numClasses: number): tf.Tensor4D {
  return target.rank === 3 ? (tf.oneHot(target, numClasses).toFloat() as tf.Tensor4D) : (target.toFloat() as tf.Tensor4D);
}

/**
 * Per-pixel weighted cross-entropy, normalised by the weight sum:
 * `L = Σ_p w_p · CE_p / max(Σ_p w_p, ε)` with `CE_p = −Σ_k t_pk · log softmax(z_p)_k`
 * (computed with a stable log-softmax, so CE_p is finite and a pixel with
 * `w_p = 0` contributes exactly zero loss and zero gradient).
 * @param logits `[N, H, W, K]` class scores (before softmax).
 * @param target label map `[N, H, W]` int32 or target probabilities `[N, H, W, K]`.
 * @param weights `[N, H, W]` pixel weights in [0, 1]; omitted = all 1 (plain mean CE).
 * @returns scalar loss (nats per unit weight).
 */
export function weightedCrossEntropy(logits: tf.Tensor4D, target: SegTarget, weights?: tf.Tensor3D): tf.Scalar {
  checkShapes(logits, target, weights, 'weightedCrossEntropy');
  return tf.tidy(() => {
    const t = targetProbabilities(target, logits.shape[3]);
    const ce = tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(logits, -1)), -1)); // [N, H, W]
    if (weights === undefined) return tf.mean(ce);
    const w = weights.toFloat();
    return tf.div(tf.sum(tf.mul(w, ce)), tf.maximum(tf.sum(w), WEIGHT_SUM_EPSILON));
  });
}

export interface DiceOptions {
  /** `[N, H, W]` pixel weights in [0, 1] multiplying every pixel's terms; omitted = all 1. */
  readonly weights?: tf.Tensor3D | undefined;
  /** Leave class 0 out of the mean. Default false. */
  readonly ignoreBackground?: boolean | undefined;
  /** Smoothing `s` in `(2I + s) / (S + s)`; default {@link DICE_SMOOTH}. */
  readonly smooth?: number | undefined;
}

/**
 * Soft Dice loss over the whole batch ("batch Dice"), per class then averaged:
 * with `P = softmax(logits)`, target `T`, weights `w`,
 * `I_k = Σ_p w_p P_pk T_pk`, `S_k = Σ_p w_p (P_pk + T_pk)`,
 * `dice_k = (2 I_k + s) / (S_k + s)`, loss `= 1 − mean_k dice_k` over the
 * classes kept (all, or 1..K−1 with `ignoreBackground`). A class absent from
 * both target and prediction scores dice 1; all weights 0 give loss 0.
 * @param logits `[N, H, W, K]`; @param target label map `[N, H, W]` or probabilities `[N, H, W, K]`.
 */
export function softDiceLoss(logits: tf.Tensor4D, target: SegTarget, options: DiceOptions = {}): tf.Scalar {
  const { weights, ignoreBackground = false, smooth = DICE_SMOOTH } = options;
  checkShapes(logits, target, weights, 'softDiceLoss');
  if (!(smooth >= 0) || !Number.isFinite(smooth)) throw new ModelInputError(`softDiceLoss: smooth must be a finite number ≥ 0, got ${smooth}`);
  const k = logits.shape[3];
  return tf.tidy(() => {
    let p = tf.softmax(logits, -1); // [N, H, W, K]
    let t = targetProbabilities(target, k);
    if (ignoreBackground) {
      p = tf.slice(p, [0, 0, 0, 1], [-1, -1, -1, k - 1]);
      t = tf.slice(t, [0, 0, 0, 1], [-1, -1, -1, k - 1]);
    }
    const w = weights === undefined ? undefined : tf.expandDims(weights.toFloat(), -1); // [N, H, W, 1]
    const pw = w === undefined ? p : tf.mul(p, w);
    const tw = w === undefined ? t : tf.mul(t, w);
    const intersection = tf.sum(tf.mul(pw, t), [0, 1, 2]); // [K']
    const total = tf.add(tf.sum(pw, [0, 1, 2]), tf.sum(tw, [0, 1, 2])); // [K']
    const dice = tf.div(tf.add(tf.mul(intersection, 2), smooth), tf.add(total, smooth));
    return tf.sub(1, tf.mean(dice));
  });
}

export interface SegLossOptions {
  /** `[N, H, W]` pixel weights in [0, 1]; omitted = all 1. */
  readonly weights?: tf.Tensor3D | undefined;
  /** Factor of the cross-entropy term; default 1. */
  readonly ceWeight?: number | undefined;
  /** Factor of the Dice term; default 1 (0 = cross-entropy only). */
  readonly diceWeight?: number | undefined;
  /** Apply the pixel weights to the Dice term too (default true; the agent's weights then gate both terms). */
  readonly diceUsesWeights?: boolean | undefined;
  readonly ignoreBackground?: boolean | undefined;
  readonly smooth?: number | undefined;
}

export interface SegLoss {
  /** `ceWeight · ce + diceWeight · dice` */
  readonly total: tf.Scalar;
  readonly ce: tf.Scalar;
  readonly dice: tf.Scalar;
}

/** Weighted cross-entropy + soft Dice (see {@link weightedCrossEntropy}, {@link softDiceLoss}). The caller disposes the three scalars. */
export function segmentationLoss(logits: tf.Tensor4D, target: SegTarget, options: SegLossOptions = {}): SegLoss {
  const { weights, ceWeight = 1, diceWeight = 1, diceUsesWeights = true } = options;
  for (const [field, v] of [['ceWeight', ceWeight], ['diceWeight', diceWeight]] as const) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new ModelInputError(`segmentationLoss: ${field} must be a finite number ≥ 0, got ${v}`);
  }
  const ce = weightedCrossEntropy(logits, target, weights);
  const dice = softDiceLoss(logits, target, {
    weights: diceUsesWeights ? weights : undefined,
    ignoreBackground: options.ignoreBackground,
    smooth: options.smooth,
  });
  const total = tf.tidy(() => tf.add<tf.Scalar>(tf.mul(ce, ceWeight), tf.mul(dice, diceWeight)));
  return { total, ce, dice };
}
