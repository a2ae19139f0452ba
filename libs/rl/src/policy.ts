import * as tf from '@tensorflow/tfjs';
import { validatePolicySpec, validatePpoConfig } from './config';
import { RlError, show } from './errors';
import { computeGae } from './gae';
import { RunningNormalizer, type NormalizerState } from './normalizer';
import { Adam, clipByGlobalNorm, ppoLoss } from './ppo';
import { Rng, type RngState } from './rng';
import { decodePolicyFile, encodePolicyFile, type EncodedTensor } from './serialize';
import { betaTermsT } from './special';
import { ActionSpace, type ActOptions, type ActResult, type Policy, type PolicySpec, type PpoConfig, type Trajectory, type Transition, type UpdateStats } from './types';

/** Beta samples and actions are clamped to [BETA_EPS, 1 − BETA_EPS] so their log-density stays finite. */
export const BETA_EPS = 1e-6;

/**
 * Policy network, one MLP applied to every region row independently:
 *   x [n, F] → (dense + tanh) per hidden layer → h [n, H]
 *   actor head  h → [n, A]  (A = number of levels: logits; Beta: 2 pre-activations a, b
 *                            with α = softplus(a) + 1, β = softplus(b) + 1, so α, β > 1)
 *   critic head h → [n, 1]  (state value)
 * Parameters in this order: trunk.i.kernel [in, out], trunk.i.bias [out], …,
 * actor.kernel, actor.bias, critic.kernel, critic.bias.
 */
function parameterShapes(spec: PolicySpec): EncodedTensor[] {
  const shapes: EncodedTensor[] = [];
  let width = spec.numFeatures;
  spec.hiddenUnits.forEach((units, i) => {
    shapes.push({ name: `trunk.${i}.kernel`, shape: [width, units] }, { name: `trunk.${i}.bias`, shape: [units] });
    width = units;
  });
  const actorWidth = spec.actionSpace === ActionSpace.Discrete ? spec.weightLevels.length : 2;
  shapes.push(
    { name: 'actor.kernel', shape: [width, actorWidth] },
    { name: 'actor.bias', shape: [actorWidth] },
    { name: 'critic.kernel', shape: [width, 1] },
    { name: 'critic.bias', shape: [1] },
  );
  return shapes;
}

/**
 * Seeded orthogonal initialisation (as in the PPO literature): a Gaussian
 * matrix orthonormalised by modified Gram–Schmidt along its longer side,
 * times `gain`. Returns [rows, cols] row-major float32.
 */
function orthogonal(rng: Rng, rows: number, cols: number, gain: number): Float32Array {
  const tall = rows >= cols;
  const n = tall ? rows : cols; // length of each vector
  const k = tall ? cols : rows; // number of orthonormal vectors
  const vectors: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(n);
    for (;;) {
      for (let i = 0; i < n; i++) v[i] = rng.normal();
      for (const u of vectors) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += u[i]! * v[i]!;
        for (let i = 0; i < n; i++) v[i]! -= dot * u[i]!;
      }
      let norm = 0;
      for (let i = 0; i < n; i++) norm += v[i]! * v[i]!;
      norm = Math.sqrt(norm);
      if (norm > 1e-6) {
        for (let i = 0; i < n; i++) v[i]! /= norm;
        break;
      }
    }
    vectors.push(v);
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = gain * (tall ? vectors[c]![r]! : vectors[r]![c]!);
  return out;
}

function initialParameters(spec: PolicySpec): Float32Array[] {
  const rng = Rng.fromSeed(spec.seed, 'init');
  return parameterShapes(spec).map(({ name, shape }) => {
    if (shape.length === 1) return new Float32Array(shape[0]!); // biases start at 0
    // Hidden layers: gain √2; actor: 0.01 (a near-uniform initial policy); critic: 1.
    const gain = name.startsWith('trunk.') ? Math.SQRT2 : name === 'actor.kernel' ? 0.01 : 1;
    return orthogonal(rng, shape[0]!, shape[1]!, gain);
  });
}

/** Forward pass (call inside tf.tidy). x: [n, F] normalised observations. */
function forward(params: readonly tf.Tensor[], numHidden: number, x: tf.Tensor2D): { head: tf.Tensor2D; value: tf.Tensor1D } {
  let h: tf.Tensor2D = x;
  for (let i = 0; i < numHidden; i++) h = tf.tanh(tf.add(tf.matMul(h, params[2 * i] as tf.Tensor2D), params[2 * i + 1]!)) as tf.Tensor2D; // [n, hidden_i]
  const a = 2 * numHidden;
  const head = tf.add<tf.Tensor2D>(tf.matMul(h, params[a] as tf.Tensor2D), params[a + 1]!); // [n, A]
  const value = tf.reshape<tf.Rank.R1>(tf.add(tf.matMul(h, params[a + 2] as tf.Tensor2D), params[a + 3]!), [-1]); // [n]
  return { head, value };
}

/** α, β (each [n]) from the Beta actor head [n, 2]. */
function betaParameters(head: tf.Tensor2D): { alpha: tf.Tensor1D; beta: tf.Tensor1D } {
  const [a, b] = tf.split(head, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
  return { alpha: tf.add(tf.softplus(tf.reshape(a, [-1])), 1), beta: tf.add(tf.softplus(tf.reshape(b, [-1])), 1) };
}

/** Log-probabilities, entropies and values of `actions` ([n]) under the given parameters (call inside tf.tidy). */
function distributionTerms(
  spec: PolicySpec,
  params: readonly tf.Tensor[],
  x: tf.Tensor2D,
  actions: tf.Tensor1D,
): { logProbs: tf.Tensor1D; entropies: tf.Tensor1D; values: tf.Tensor1D } {
  const { head, value } = forward(params, spec.hiddenUnits.length, x);
  if (spec.actionSpace === ActionSpace.Discrete) {
    const logPmf = tf.logSoftmax(head); // [n, L]
    const oneHot = tf.oneHot(tf.cast(actions, 'int32'), spec.weightLevels.length); // [n, L]
    return {
      logProbs: tf.sum<tf.Tensor1D>(tf.mul(logPmf, oneHot), 1),
      entropies: tf.neg(tf.sum(tf.mul(tf.exp(logPmf), logPmf), 1)) as tf.Tensor1D,
      values: value,
    };
  }
  const { alpha, beta } = betaParameters(head);
  const { logProb, entropy } = betaTermsT(alpha, beta, tf.clipByValue(actions, BETA_EPS, 1 - BETA_EPS));
  return { logProbs: logProb as tf.Tensor1D, entropies: entropy as tf.Tensor1D, values: value };
}

function checkRowCount(numRows: number): void {
  if (!Number.isInteger(numRows) || numRows < 0) throw new RlError(`numRows must be an integer >= 0, got ${show(numRows)}`);
}

/** Checks a [numRows, numFeatures] block of observations: size and finiteness. */
function checkObservations(observations: Float32Array, numRows: number, numFeatures: number): void {
  checkRowCount(numRows);
  // Array-likes are accepted (no instanceof: typed arrays from another realm, e.g. a jest vm context, must pass too).
  if (typeof observations?.length !== 'number') throw new RlError(`observations must be a Float32Array [numRows, numFeatures] row-major, got ${show(observations)}`);
  if (observations.length !== numRows * numFeatures) {
    throw new RlError(
      `observations must hold numRows × numFeatures = ${numRows} × ${numFeatures} = ${numRows * numFeatures} values ([numRows, numFeatures] row-major), got ${observations.length}` +
        (numRows > 0 && observations.length % numRows === 0 ? ` (rows of width ${observations.length / numRows}; the policy expects spec.numFeatures = ${numFeatures})` : ''),
    );
  }
  for (let i = 0; i < observations.length; i++) {
    const v = observations[i]!;
    if (!Number.isFinite(v)) throw new RlError(`observations[row ${Math.floor(i / numFeatures)}, feature ${i % numFeatures}] must be finite, got ${v}`);
  }
}

/** Checks actions (discrete: level indices; Beta: weights in [0, 1]). */
function checkAction(spec: PolicySpec, action: number, where: string): void {
  if (spec.actionSpace === ActionSpace.Discrete) {
    if (!Number.isInteger(action) || action < 0 || action >= spec.weightLevels.length) {
      throw new RlError(`${where} must be a level index in 0..${spec.weightLevels.length - 1}, got ${show(action)}`);
    }
  } else if (!(action >= 0 && action <= 1)) {
    throw new RlError(`${where} must be a Beta action in [0, 1], got ${show(action)}`);
  }
}

/** Trajectories flattened to row-major arrays, in order, oldest first. */
interface Batch {
  readonly size: number;
  readonly observations: Float32Array; // [N, F]
  readonly actions: Float32Array; // [N]
  readonly logProbs: Float32Array; // [N]
  readonly values: Float32Array; // [N]
}

function flattenTrajectories(spec: PolicySpec, trajectories: readonly Trajectory[]): Batch {
  if (!Array.isArray(trajectories)) throw new RlError(`trajectories must be an array of trajectories, got ${show(trajectories)}`);
  if (trajectories.length === 0) throw new RlError('trajectories must hold at least one trajectory, got 0');
  let size = 0;
  trajectories.forEach((trajectory, i) => {
    if (!Array.isArray(trajectory) || trajectory.length === 0) throw new RlError(`trajectories[${i}] must hold at least one transition, got ${Array.isArray(trajectory) ? 0 : show(trajectory)}`);
    size += trajectory.length;
  });
  const width = spec.numFeatures;
  const batch: Batch = {
    size,
    observations: new Float32Array(size * width),
    actions: new Float32Array(size),
    logProbs: new Float32Array(size),
    values: new Float32Array(size),
  };
  let row = 0;
  trajectories.forEach((trajectory: Trajectory, i) => {
    trajectory.forEach((step: Transition, t) => {
      const where = `trajectories[${i}][${t}]`;
      const obs = step.observation;
      if (obs === undefined || obs === null || typeof obs.length !== 'number') throw new RlError(`${where}.observation must be a Float32Array of ${width} features, got ${show(obs)}`);
      if (obs.length !== width) throw new RlError(`${where}.observation has ${obs.length} features, the policy expects spec.numFeatures = ${width}`);
      for (let f = 0; f < width; f++) {
        if (!Number.isFinite(obs[f])) throw new RlError(`${where}.observation[${f}] must be finite, got ${show(obs[f])}`);
      }
      for (const field of ['reward', 'logProb', 'value'] as const) {
        if (typeof step[field] !== 'number' || !Number.isFinite(step[field])) throw new RlError(`${where}.${field} must be a finite number, got ${show(step[field])}`);
      }
      if (typeof step.done !== 'boolean') throw new RlError(`${where}.done must be a boolean, got ${show(step.done)}`);
      checkAction(spec, step.action, `${where}.action`);
      batch.observations.set(obs, row * width);
      batch.actions[row] = step.action;
      batch.logProbs[row] = step.logProb;
      batch.values[row] = step.value;
      row += 1;
    });
  });
  return batch;
}

function pick(source: Float32Array, indices: Int32Array, start: number, end: number, width = 1): Float32Array {
  const out = new Float32Array((end - start) * width);
  for (let k = start; k < end; k++) out.set(source.subarray(indices[k]! * width, (indices[k]! + 1) * width), (k - start) * width);
  return out;
}

interface PolicyState {
  readonly spec: PolicySpec;
  /** Owned by the policy; disposed by dispose(). */
  readonly params: tf.Tensor[];
  readonly normalizer: RunningNormalizer;
  readonly rng: Rng;
}

/** An MLP policy (discrete levels or Beta) with PPO training. See {@link Policy}. */
class MlpPolicy implements Policy {
  readonly spec: PolicySpec;
  private params: tf.Tensor[];
  private readonly normalizer: RunningNormalizer;
  private readonly rng: Rng;
  private disposed = false;

  constructor(state: PolicyState) {
    this.spec = state.spec;
    this.params = state.params;
    this.normalizer = state.normalizer;
    this.rng = state.rng;
  }

  private live(): tf.Tensor[] {
    if (this.disposed) throw new RlError('the policy has been disposed');
    return this.params;
  }

  act(observations: Float32Array, numRows: number, options: ActOptions): ActResult {
    const params = this.live();
    const { spec } = this;
    checkObservations(observations, numRows, spec.numFeatures);
    const deterministic = options?.deterministic === true;
    const weights = new Float32Array(numRows);
    const actions = new Float32Array(numRows);
    const logProbs = new Float32Array(numRows);
    const levels = new Int32Array(numRows).fill(-1);
    if (numRows === 0) return { weights, actions, logProbs, values: new Float32Array(0), levels };
    const x = this.normalizer.normalize(observations, numRows);

    if (spec.actionSpace === ActionSpace.Discrete) {
      const numLevels = spec.weightLevels.length;
      const [logPmf, values] = tf.tidy(() => {
        const { head, value } = forward(params, spec.hiddenUnits.length, tf.tensor2d(x, [numRows, spec.numFeatures]));
        return [tf.logSoftmax(head).dataSync() as Float32Array, value.dataSync() as Float32Array]; // [n, L], [n]
      });
      for (let r = 0; r < numRows; r++) {
        let level = 0;
        if (deterministic) {
          for (let l = 1; l < numLevels; l++) if (logPmf[r * numLevels + l]! > logPmf[r * numLevels + level]!) level = l;
        } else {
          // Inverse CDF; float rounding can leave the sum a hair under 1, hence the last-level fallback.
          const u = this.rng.uniform();
          let cumulative = 0;
          level = numLevels - 1;
          for (let l = 0; l < numLevels; l++) {
            cumulative += Math.exp(logPmf[r * numLevels + l]!);
            if (u < cumulative) {
              level = l;
              break;
            }
          }
        }
        levels[r] = level;
        actions[r] = level;
        weights[r] = spec.weightLevels[level]!;
        logProbs[r] = logPmf[r * numLevels + level]!;
      }
      return { weights, actions, logProbs, values, levels };
    }

    const [alphas, betas, values] = tf.tidy(() => {
      const { head, value } = forward(params, spec.hiddenUnits.length, tf.tensor2d(x, [numRows, spec.numFeatures]));
      const { alpha, beta } = betaParameters(head);
      return [alpha.dataSync() as Float32Array, beta.dataSync() as Float32Array, value.dataSync() as Float32Array];
    });
    for (let r = 0; r < numRows; r++) {
      const a = alphas[r]!;
      const b = betas[r]!;
      const sample = deterministic ? a / (a + b) : this.rng.beta(a, b);
      actions[r] = Math.min(Math.max(sample, BETA_EPS), 1 - BETA_EPS);
      weights[r] = actions[r]!;
    }
    // The same ops as evaluate() on the same float32 α, β, so both report identical log-probabilities.
    logProbs.set(tf.tidy(() => betaTermsT(tf.tensor1d(alphas), tf.tensor1d(betas), tf.clipByValue(tf.tensor1d(actions), BETA_EPS, 1 - BETA_EPS)).logProb.dataSync()));
    return { weights, actions, logProbs, values, levels };
  }

  evaluate(observations: Float32Array, numRows: number, actions: Float32Array): { logProbs: Float32Array; entropies: Float32Array; values: Float32Array } {
    const params = this.live();
    const { spec } = this;
    checkObservations(observations, numRows, spec.numFeatures);
    if (typeof actions?.length !== 'number' || actions.length !== numRows) {
      throw new RlError(`actions must be a Float32Array of numRows = ${numRows} values, got ${typeof actions?.length === 'number' ? `${actions.length} values` : show(actions)}`);
    }
    actions.forEach((a, i) => checkAction(spec, a, `actions[${i}]`));
    if (numRows === 0) return { logProbs: new Float32Array(0), entropies: new Float32Array(0), values: new Float32Array(0) };
    const x = this.normalizer.normalize(observations, numRows);
    return tf.tidy(() => {
      const terms = distributionTerms(spec, params, tf.tensor2d(x, [numRows, spec.numFeatures]), tf.tensor1d(actions));
      return {
        logProbs: terms.logProbs.dataSync() as Float32Array,
        entropies: terms.entropies.dataSync() as Float32Array,
        values: terms.values.dataSync() as Float32Array,
      };
    });
  }

  /**
   * PPO on `trajectories`:
   * 1. GAE(γ, λ) advantages and returns per trajectory (see computeGae), then
   *    advantages normalised over the whole batch to mean 0, std 1.
   * 2. The observation normaliser is merged with the batch's observations; the
   *    new policy is trained (and later acts) with the merged statistics.
   * 3. `epochs` passes over the batch in seeded-shuffled minibatches: clipped
   *    surrogate + valueCoef·value loss − entropyCoef·entropy, gradients clipped
   *    to maxGradNorm (global norm), one Adam step per minibatch (fresh Adam
   *    state per update). Before each step the minibatch's approximate KL to the
   *    behaviour policy is checked; above targetKl the update stops there.
   * The old policy's parameters, normaliser and generator are not touched.
   */
  update(trajectories: readonly Trajectory[], config: PpoConfig): { policy: Policy; stats: UpdateStats } {
    const oldParams = this.live();
    const { spec } = this;
    const cfg = validatePpoConfig(config);
    const batch = flattenTrajectories(spec, trajectories);
    const width = spec.numFeatures;
    const n = batch.size;

    // Rewards are checked by flattenTrajectories; GAE in float64.
    const gae = computeGae(trajectories, cfg.gamma, cfg.gaeLambda);
    let mean = 0;
    for (const a of gae.advantages) mean += a;
    mean /= n;
    let variance = 0;
    for (const a of gae.advantages) variance += (a - mean) * (a - mean);
    const std = Math.sqrt(variance / n);
    const advantages = Float32Array.from(gae.advantages, (a) => (a - mean) / (std + 1e-8));
    const returns = Float32Array.from(gae.returns);

    const normalizer = this.normalizer.merged(batch.observations, n);
    const x = normalizer.normalize(batch.observations, n);
    const rng = this.rng.fork('ppo-update');
    const lossSettings = { clipRatio: cfg.clipRatio, valueCoef: cfg.valueCoef, entropyCoef: cfg.entropyCoef, valueClip: cfg.valueClip };

    // Copies share the old tensors' (immutable) data; each step makes new tensors, so the old policy never changes.
    let params = oldParams.map((p) => tf.clone(p));
    const adam = new Adam(params, cfg.learningRate);
    const sums = { policyLoss: 0, valueLoss: 0, entropy: 0, measured: 0 };
    let epochsRun = 0;
    let stopped = false;
    try {
      for (let epoch = 0; epoch < cfg.epochs && !stopped; epoch++) {
        const order = rng.permutation(n);
        let stepsThisEpoch = 0;
        for (let start = 0; start < n; start += cfg.minibatchSize) {
          const end = Math.min(n, start + cfg.minibatchSize);
          const m = end - start;
          const current = params;
          const result = tf.tidy(() => {
            const xb = tf.tensor2d(pick(x, order, start, end, width), [m, width]);
            const actionsB = tf.tensor1d(pick(batch.actions, order, start, end));
            const inputs = {
              oldLogProbs: tf.tensor1d(pick(batch.logProbs, order, start, end)),
              advantages: tf.tensor1d(pick(advantages, order, start, end)),
              oldValues: tf.tensor1d(pick(batch.values, order, start, end)),
              returns: tf.tensor1d(pick(returns, order, start, end)),
            };
            let statsTensor: tf.Tensor | undefined;
            const { grads } = tf.valueAndGrads((...ps: tf.Tensor[]) => {
              const terms = distributionTerms(spec, ps, xb, actionsB);
              const loss = ppoLoss({ ...inputs, ...terms }, lossSettings);
              statsTensor = tf.keep(tf.stack([loss.policyLoss, loss.valueLoss, loss.entropy, loss.approxKl]));
              return loss.total;
            })(current);
            const stats = statsTensor!.dataSync() as Float32Array; // [policyLoss, valueLoss, entropy, approxKl]
            statsTensor!.dispose();
            if (cfg.targetKl > 0 && stats[3]! > cfg.targetKl) return { stats, stop: true, grads: [] };
            return { stats, stop: false, grads: clipByGlobalNorm(grads, cfg.maxGradNorm).grads };
          });
          sums.policyLoss += result.stats[0]!;
          sums.valueLoss += result.stats[1]!;
          sums.entropy += result.stats[2]!;
          sums.measured += 1;
          if (result.stop) {
            stopped = true;
            break;
          }
          // Adam's moments must outlive the tidy above, so the step runs outside it.
          params = adam.step(current, result.grads);
          tf.dispose([...current, ...result.grads]);
          stepsThisEpoch += 1;
        }
        if (stepsThisEpoch > 0) epochsRun += 1;
      }
    } catch (err) {
      tf.dispose(params);
      throw err;
    } finally {
      adam.dispose();
    }

    // KL(behaviour ‖ new) over the whole batch, with the new normaliser.
    const approxKl = tf.tidy(() => {
      const terms = distributionTerms(spec, params, tf.tensor2d(x, [n, width]), tf.tensor1d(batch.actions));
      const logRatio = tf.sub(terms.logProbs, tf.tensor1d(batch.logProbs));
      return tf.mean(tf.sub(tf.sub(tf.exp(logRatio), 1), logRatio)).dataSync()[0]!;
    });
    const policy = new MlpPolicy({ spec, params, normalizer, rng: rng.fork('policy') });
    const stats: UpdateStats = {
      transitions: n,
      policyLoss: sums.policyLoss / sums.measured,
      valueLoss: sums.valueLoss / sums.measured,
      entropy: sums.entropy / sums.measured,
      approxKl,
      epochsRun,
    };
    return { policy, stats };
  }

  serialize(): Uint8Array {
    const params = this.live();
    const shapes = parameterShapes(this.spec);
    return encodePolicyFile({
      header: {
        format: 'purify-rl-policy',
        spec: this.spec,
        normalizer: this.normalizer.state,
        rng: this.rng.state,
        tensors: shapes,
      },
      data: params.map((p) => p.dataSync() as Float32Array),
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.params);
    this.params = [];
  }
}

/** A new policy with seeded orthogonal initial weights and an empty observation normaliser. */
export function createPolicy(spec: PolicySpec): Policy {
  const checked = validatePolicySpec(spec);
  const params = initialParameters(checked).map((values, i) => tf.tensor(values, parameterShapes(checked)[i]!.shape as number[]));
  return new MlpPolicy({ spec: checked, params, normalizer: RunningNormalizer.empty(checked.numFeatures), rng: Rng.fromSeed(checked.seed, 'act') });
}

function specMismatch(stored: PolicySpec, expected: Partial<PolicySpec>): string | undefined {
  for (const key of Object.keys(expected) as (keyof PolicySpec)[]) {
    const want = expected[key];
    if (want === undefined) continue;
    const have = stored[key];
    if (JSON.stringify(have) !== JSON.stringify(want)) return `spec.${key} is ${show(have)}, expected ${show(want)}`;
  }
  return undefined;
}

/**
 * Restores a policy from {@link Policy.serialize} bytes: weights, observation
 * normaliser and sampling-generator state, so it acts exactly as the original
 * would next. With `expected`, every given spec field must match the stored
 * spec. Throws {@link RlError} for corrupt bytes, an unsupported version, a
 * header inconsistent with its spec, or a spec mismatch.
 */
export function deserializePolicy(bytes: Uint8Array, expected?: Partial<PolicySpec>): Policy {
  const file = decodePolicyFile(bytes);
  const header = file.header as { format?: unknown; spec?: PolicySpec; normalizer?: NormalizerState; rng?: RngState; tensors: readonly EncodedTensor[] };
  if (header.format !== 'purify-rl-policy') throw new RlError(`policy header.format must be "purify-rl-policy", got ${show(header.format)}`);
  let spec: PolicySpec;
  try {
    spec = validatePolicySpec(header.spec as PolicySpec);
  } catch (err) {
    throw new RlError(`policy header holds an invalid spec: ${err instanceof Error ? err.message : String(err)}`);
  }
  const mismatch = expected ? specMismatch(spec, expected) : undefined;
  if (mismatch) throw new RlError(`policy spec mismatch: ${mismatch}`);
  const shapes = parameterShapes(spec);
  const describe = (ts: readonly EncodedTensor[]): string => ts.map((t) => `${t.name}[${t.shape.join(', ')}]`).join(', ');
  if (describe(shapes) !== describe(header.tensors)) {
    throw new RlError(`policy tensors do not match the spec: stored ${describe(header.tensors)}; the spec implies ${describe(shapes)}`);
  }
  const norm = header.normalizer;
  const validNorm =
    norm !== undefined &&
    Number.isInteger(norm.count) &&
    norm.count >= 0 &&
    [norm.mean, norm.m2].every((a) => Array.isArray(a) && a.length === spec.numFeatures && a.every((v) => Number.isFinite(v)));
  if (!validNorm) throw new RlError(`policy header.normalizer must hold count and ${spec.numFeatures} finite mean and m2 values, got ${show(norm)}`);
  const rngState = header.rng;
  if (!Array.isArray(rngState) || rngState.length !== 4 || !rngState.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
    throw new RlError(`policy header.rng must be 4 uint32 words, got ${show(rngState)}`);
  }
  file.data.forEach((d, i) => {
    const bad = d.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new RlError(`policy tensor ${shapes[i]!.name} holds a non-finite value at index ${bad}: ${d[bad]}`);
  });
  const params = file.data.map((d, i) => tf.tensor(d, shapes[i]!.shape as number[]));
  return new MlpPolicy({ spec, params, normalizer: RunningNormalizer.fromState(norm), rng: Rng.fromState(rngState) });
}
