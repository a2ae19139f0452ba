import * as tf from '@tensorflow/tfjs';

/** Per-row inputs of the PPO loss, all float32 tensors of shape [m]. */
export interface PpoLossInputs {
  /** log π_θ(a|s) under the policy being trained. */
  readonly logProbs: tf.Tensor1D;
  /** log π_old(a|s) recorded when acting. */
  readonly oldLogProbs: tf.Tensor1D;
  /** Advantages (already normalised if wanted). */
  readonly advantages: tf.Tensor1D;
  /** V_θ(s). */
  readonly values: tf.Tensor1D;
  /** V_old(s) recorded when acting (used by value clipping). */
  readonly oldValues: tf.Tensor1D;
  /** Value targets (GAE returns). */
  readonly returns: tf.Tensor1D;
  /** Entropy of π_θ(·|s). */
  readonly entropies: tf.Tensor1D;
}

export interface PpoLossSettings {
  readonly clipRatio: number;
  readonly valueCoef: number;
  readonly entropyCoef: number;
  /** 0 = unclipped value loss. */
  readonly valueClip: number;
}

/** Scalar terms of the PPO loss. */
export interface PpoLossTerms {
  /** policyLoss + valueCoef · valueLoss − entropyCoef · entropy (minimised). */
  readonly total: tf.Scalar;
  /** −mean(min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)), ρ = exp(logπ − logπ_old). */
  readonly policyLoss: tf.Scalar;
  /** ½·mean((V − R)²), or ½·mean(max((V − R)², (V_old + clip(V − V_old, ±c) − R)²)) when clipped. */
  readonly valueLoss: tf.Scalar;
  /** mean entropy. */
  readonly entropy: tf.Scalar;
  /** mean((ρ − 1) − log ρ), a non-negative estimator of KL(π_old ‖ π_θ). */
  readonly approxKl: tf.Scalar;
}

/** The clipped-surrogate PPO loss and its parts (call inside tf.tidy). */
export function ppoLoss(inputs: PpoLossInputs, settings: PpoLossSettings): PpoLossTerms {
  const logRatio = tf.sub(inputs.logProbs, inputs.oldLogProbs);
  const ratio = tf.exp(logRatio);
  const surrogate = tf.mul(ratio, inputs.advantages);
  const clippedSurrogate = tf.mul(tf.clipByValue(ratio, 1 - settings.clipRatio, 1 + settings.clipRatio), inputs.advantages);
  const policyLoss = tf.neg(tf.mean(tf.minimum(surrogate, clippedSurrogate)));

  let squaredError = tf.square(tf.sub(inputs.values, inputs.returns));
  if (settings.valueClip > 0) {
    const clippedValues = tf.add(inputs.oldValues, tf.clipByValue(tf.sub(inputs.values, inputs.oldValues), -settings.valueClip, settings.valueClip));
    squaredError = tf.maximum(squaredError, tf.square(tf.sub(clippedValues, inputs.returns)));
  }
  const valueLoss = tf.mul(0.5, tf.mean(squaredError));
  const entropy = tf.mean(inputs.entropies);
  const approxKl = tf.mean(tf.sub(tf.sub(ratio, 1), logRatio));
  const total = tf.sub(tf.add(policyLoss, tf.mul(settings.valueCoef, valueLoss)), tf.mul(settings.entropyCoef, entropy));
  return {
    total: total as tf.Scalar,
    policyLoss: policyLoss as tf.Scalar,
    valueLoss: valueLoss as tf.Scalar,
    entropy: entropy as tf.Scalar,
    approxKl: approxKl as tf.Scalar,
  };
}

/**
 * Scales `grads` so their global L2 norm is at most `maxNorm` (0 = unchanged).
 * Returns new tensors (call inside tf.tidy) and the norm before clipping.
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: tf.Scalar } {
  const norm = tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
  if (maxNorm <= 0) return { grads: [...grads], norm };
  // scale = min(1, maxNorm / (norm + 1e-6))
  const scale = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)));
  return { grads: grads.map((g) => tf.mul(g, scale)), norm };
}

/**
 * Adam (Kingma & Ba) over a list of parameter tensors, with bias correction:
 *   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  p ← p − lr·m̂/(√v̂ + ε).
 * Parameters are plain tensors (not tf.Variables), so nothing is registered
 * globally; `step` returns new parameter tensors and the caller disposes the old.
 * The optimiser owns its moment tensors: call dispose().
 */
export class Adam {
  private m: tf.Tensor[];
  private v: tf.Tensor[];
  private t = 0;

  constructor(
    params: readonly tf.Tensor[],
    private readonly learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = 1e-5,
  ) {
    this.m = params.map((p) => tf.zerosLike(p));
    this.v = params.map((p) => tf.zerosLike(p));
  }

  step(params: readonly tf.Tensor[], grads: readonly tf.Tensor[]): tf.Tensor[] {
    this.t += 1;
    const correction1 = 1 - Math.pow(this.beta1, this.t);
    const correction2 = 1 - Math.pow(this.beta2, this.t);
    const out = tf.tidy(() => {
      const m = params.map((_, i) => tf.add(tf.mul(this.beta1, this.m[i]!), tf.mul(1 - this.beta1, grads[i]!)));
      const v = params.map((_, i) => tf.add(tf.mul(this.beta2, this.v[i]!), tf.mul(1 - this.beta2, tf.square(grads[i]!))));
      const p = params.map((param, i) => {
        const mHat = tf.div(m[i]!, correction1);
        const vHat = tf.div(v[i]!, correction2);
        return tf.sub(param, tf.mul(this.learningRate, tf.div(mHat, tf.add(tf.sqrt(vHat), this.epsilon))));
      });
      return { m, v, p };
    });
    tf.dispose([...this.m, ...this.v]);
    // Kept, so the moments survive even when step() is called inside an enclosing tf.tidy.
    this.m = out.m.map((t) => tf.keep(t));
    this.v = out.v.map((t) => tf.keep(t));
    return out.p;
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
    this.m = [];
    this.v = [];
  }
}
