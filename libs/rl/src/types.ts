/**
 * The contract between the RL library (policies, PPO) and its users (the agent
 * service, the trainer's simulated-shift episodes). Observations are region
 * feature rows from the reliability feature schema; actions are supervision
 * weights in [0, 1].
 */

export const ActionSpace = { Discrete: 'discrete', Beta: 'beta' } as const;
export type ActionSpace = (typeof ActionSpace)[keyof typeof ActionSpace];

export interface PolicySpec {
  readonly actionSpace: ActionSpace;
  /** Discrete space: the weight of each level, ascending, each in [0, 1]. Ignored for Beta. */
  readonly weightLevels: readonly number[];
  /** Hidden layer widths of the MLP shared by all regions (actor and critic heads on top). */
  readonly hiddenUnits: readonly number[];
  /** Width of one observation row. */
  readonly numFeatures: number;
  /** Seed for initial weights and for sampling. */
  readonly seed: number;
}

/** Decisions for a batch of `n` observation rows (all arrays have length n). */
export interface ActResult {
  /** Supervision weight in [0, 1] per row. */
  readonly weights: Float32Array;
  /** Raw action: the level index (discrete) or the Beta sample in (0, 1). */
  readonly actions: Float32Array;
  /** log π(action | obs) under the policy that acted. */
  readonly logProbs: Float32Array;
  /** Critic's value estimate V(obs). */
  readonly values: Float32Array;
  /** Level index per row (discrete), -1 for Beta. */
  readonly levels: Int32Array;
}

/** One rewarded decision. */
export interface Transition {
  /** The observation row as the policy saw it (raw, before its normalisation). */
  readonly observation: Float32Array;
  readonly action: number;
  readonly logProb: number;
  readonly value: number;
  readonly reward: number;
  /** The episode ended after this step. */
  readonly done: boolean;
}

/**
 * Consecutive transitions of one trajectory, oldest first. GAE runs within a
 * trajectory; a trajectory that does not end with `done` is bootstrapped with
 * its last transition's value.
 */
export type Trajectory = readonly Transition[];

export interface PpoConfig {
  readonly learningRate: number;
  readonly clipRatio: number;
  readonly gamma: number;
  readonly gaeLambda: number;
  readonly entropyCoef: number;
  readonly valueCoef: number;
  readonly epochs: number;
  readonly minibatchSize: number;
  /** Stop the epochs early when the approximate KL exceeds this (0 = never). */
  readonly targetKl: number;
  /** Clip the global gradient norm to this before each Adam step (0 = no clipping). */
  readonly maxGradNorm: number;
  /**
   * Contract addition (optional, so existing literals stay valid): clip the
   * value prediction to within ±valueClip of the behaviour value in the value
   * loss, PPO2 style. 0 or absent = plain squared error.
   */
  readonly valueClip?: number;
}

export interface UpdateStats {
  /** Transitions in the update's batch. */
  readonly transitions: number;
  /** Mean over the minibatches evaluated (including one rejected by the KL check) of the clipped surrogate loss. */
  readonly policyLoss: number;
  /** Same mean of ½·(V − return)² (clipped when valueClip > 0). */
  readonly valueLoss: number;
  /** Same mean of the policy entropy (nats; differential entropy for Beta, so it can be negative). */
  readonly entropy: number;
  /** mean((ρ − 1) − ln ρ) of the NEW policy against the behaviour log-probabilities, over the whole batch. */
  readonly approxKl: number;
  /** Epochs in which at least one gradient step was taken (< epochs when the KL check stopped early). */
  readonly epochsRun: number;
}

export interface ActOptions {
  /**
   * A deterministic action instead of a sample (evaluation): the most probable
   * level (discrete; ties → lowest level) or the Beta distribution's mean
   * α / (α + β) (continuous).
   */
  readonly deterministic: boolean;
}

/**
 * A policy over region features. Implementations own tfjs tensors: call
 * dispose(). All methods are synchronous and run on the active TensorFlow.js
 * backend (wasm by default, cpu works too); bad input throws RlError.
 */
export interface Policy {
  readonly spec: PolicySpec;
  /**
   * Decides for `numRows` observation rows laid out row-major in `observations`
   * ([numRows, spec.numFeatures], float32). Sampling advances the policy's own
   * seeded generator, so a fixed seed gives a reproducible sequence.
   */
  act(observations: Float32Array, numRows: number, options: ActOptions): ActResult;
  /** Log-probabilities, entropies and values of given actions (for tests and analysis). */
  evaluate(observations: Float32Array, numRows: number, actions: Float32Array): { logProbs: Float32Array; entropies: Float32Array; values: Float32Array };
  /**
   * A new policy trained by PPO on `trajectories` starting from this one's
   * weights; this policy is left unchanged (versions are never mutated).
   * The new policy's observation normaliser has also seen the batch's
   * observations. Same policy state + same data → bit-identical result.
   */
  update(trajectories: readonly Trajectory[], config: PpoConfig): { policy: Policy; stats: UpdateStats };
  /** Weights, observation normaliser and sampling-generator state as versioned bytes (no optimiser state); see deserializePolicy. */
  serialize(): Uint8Array;
  dispose(): void;
}
