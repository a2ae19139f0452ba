import * as tf from '@tensorflow/tfjs';
import { ModelConfigError, ModelInputError } from './errors';
import { FUSED_ADAM_KERNEL, type FusedAdamAttrs } from './kernels/native';
import { learningRateAt, resolveLrSchedule, type LrSchedule } from './schedule';

export interface AdamConfig {
  /** A constant rate, or a schedule (see {@link LrSchedule}). */
  readonly learningRate: number | (Partial<LrSchedule> & { baseLr: number });
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly epsilon?: number;
  /** Decoupled weight decay (AdamW) per unit learning rate; default 0. */
  readonly weightDecay?: number;
}

export interface ResolvedAdamConfig {
  readonly schedule: LrSchedule;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
}

/** Everything an Adam optimiser carries between updates (saved in checkpoints). */
export interface AdamState {
  /** Updates applied so far. */
  readonly step: number;
  /** First moments, one per variable, in the variables' order. */
  readonly m: readonly Float32Array[];
  /** Second moments, one per variable. */
  readonly v: readonly Float32Array[];
}

export function resolveAdamConfig(c: AdamConfig): ResolvedAdamConfig {
  const r = {
    schedule: resolveLrSchedule(c.learningRate),
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    epsilon: c.epsilon ?? 1e-8,
    weightDecay: c.weightDecay ?? 0,
  };
  for (const f of ['beta1', 'beta2'] as const) {
    if (!(r[f] >= 0 && r[f] < 1)) throw new ModelConfigError(`AdamConfig.${f} must be a number in [0, 1), got ${JSON.stringify(r[f])}`);
  }
  if (!(r.epsilon > 0) || !Number.isFinite(r.epsilon)) throw new ModelConfigError(`AdamConfig.epsilon must be a finite number > 0, got ${JSON.stringify(r.epsilon)}`);
  if (!(r.weightDecay >= 0) || !Number.isFinite(r.weightDecay)) {
    throw new ModelConfigError(`AdamConfig.weightDecay must be a finite number ≥ 0, got ${JSON.stringify(r.weightDecay)}`);
  }
  return Object.freeze(r);
}

/**
 * Adam (AdamW when `weightDecay` > 0) bound to a fixed list of variables, with
 * PyTorch's update rule: for update t = step + 1,
 * `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`, `θ ← θ − lr·wd·θ`,
 * `θ ← θ − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε)`,
 * with `lr` from the schedule at `step`. Its moments are allocated up front, so a
 * training step allocates nothing that outlives it. Call {@link dispose} when done.
 */
export class Adam {
  readonly config: ResolvedAdamConfig;
  private readonly vars: readonly tf.Variable[];
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private stepCount = 0;

  constructor(variables: readonly tf.Variable[], config: AdamConfig) {
    this.config = resolveAdamConfig(config);
    this.vars = [...variables];
    this.m = this.vars.map((x) => tf.tidy(() => tf.variable(tf.zerosLike(x), false)));
    this.v = this.vars.map((x) => tf.tidy(() => tf.variable(tf.zerosLike(x), false)));
  }

  /** Updates applied so far. */
  get step(): number {
    return this.stepCount;
  }

  /** The rate the next update will use. */
  get learningRate(): number {
    return learningRateAt(this.config.schedule, this.stepCount);
  }

  /** Applies one update from `grads` (same order and shapes as the variables); returns the learning rate used. */
  apply(grads: readonly tf.Tensor[]): number {
    if (grads.length !== this.vars.length) throw new ModelInputError(`Adam.apply: expected ${this.vars.length} gradients, got ${grads.length}`);
    const { beta1, beta2, epsilon, weightDecay } = this.config;
    const lr = this.learningRate;
    const t = this.stepCount + 1;
    const stepSize = lr / (1 - beta1 ** t);
    const sqrtBc2 = Math.sqrt(1 - beta2 ** t);
    // The native fused kernel where the active backend has it (wasm with the addon), else the op sequence.
    const fused = tf.getKernel(FUSED_ADAM_KERNEL, tf.getBackend()) != null;
    const attrs: FusedAdamAttrs = { beta1, beta2, decay: weightDecay > 0 ? 1 - lr * weightDecay : 1, stepSize, sqrtBc2, epsilon };
    tf.tidy(() => {
      this.vars.forEach((x, i) => {
        const g = grads[i]!;
        const m = this.m[i]!;
        const v = this.v[i]!;
        if (fused) {
          const [xNext, mNext, vNext] = tf.engine().runKernel<tf.Tensor[]>(FUSED_ADAM_KERNEL, { x, m, v, g }, attrs as unknown as tf.NamedAttrMap);
          m.assign(mNext!);
          v.assign(vNext!);
          x.assign(xNext!);
          return;
        }
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const decayed = weightDecay > 0 ? tf.mul(x, 1 - lr * weightDecay) : x;
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), epsilon);
        x.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
      });
    });
    this.stepCount = t;
    return lr;
  }

  getState(): AdamState {
    return {
      step: this.stepCount,
      m: this.m.map((x) => new Float32Array(x.dataSync())),
      v: this.v.map((x) => new Float32Array(x.dataSync())),
    };
  }

  /** Restores moments and step; lengths must match the variables. */
  setState(state: AdamState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new ModelInputError(`AdamState.step must be an integer ≥ 0, got ${state.step}`);
    for (const [key, arrays] of [['m', state.m], ['v', state.v]] as const) {
      if (arrays.length !== this.vars.length) throw new ModelInputError(`AdamState.${key} must hold ${this.vars.length} arrays, got ${arrays.length}`);
      arrays.forEach((a, i) => {
        if (a.length !== this.vars[i]!.size) throw new ModelInputError(`AdamState.${key}[${i}] must have ${this.vars[i]!.size} values, got ${a.length}`);
      });
    }
    this.vars.forEach((x, i) => {
      tf.tidy(() => {
        this.m[i]!.assign(tf.tensor(state.m[i]!, x.shape, 'float32'));
        this.v[i]!.assign(tf.tensor(state.v[i]!, x.shape, 'float32'));
      });
    });
    this.stepCount = state.step;
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/** `sqrt(Σ_i ||g_i||²)` over all tensors. */
export function globalNorm(tensors: readonly tf.Tensor[]): tf.Scalar {
  if (tensors.length === 0) return tf.scalar(0);
  return tf.tidy(() => tf.sqrt(tf.addN(tensors.map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

/**
 * Clipping by global norm (TensorFlow's `clip_by_global_norm`):
 * `g_i ← g_i · maxNorm / max(norm, maxNorm)`, i.e. unchanged when the global
 * norm is at most `maxNorm`, else scaled so it equals `maxNorm`.
 * Returns new tensors and the norm before clipping; the caller disposes them.
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { clipped: tf.Tensor[]; norm: tf.Scalar } {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new ModelInputError(`clipByGlobalNorm: maxNorm must be a finite number > 0, got ${maxNorm}`);
  const norm = globalNorm(grads);
  const clipped = tf.tidy(() => {
    const scale = tf.div(maxNorm, tf.maximum(norm, maxNorm));
    return grads.map((g) => tf.mul(g, scale));
  });
  return { clipped, norm };
}
