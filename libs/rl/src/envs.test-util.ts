/**
 * Test environments with a known optimum, and a vectorised episode loop.
 * Environments draw their randomness from their own seeded generator.
 */
import { DEFAULT_PPO_CONFIG } from './config';
import { Rng } from './rng';
import type { Policy, PpoConfig, Trajectory, Transition, UpdateStats } from './types';

/** A batch of parallel episodes of a fixed-horizon environment. */
export interface Environment {
  readonly numFeatures: number;
  readonly horizon: number;
  /** Observations [numEpisodes, numFeatures] at `step`, given the weights chosen so far (weightsSoFar[s][e] for s < step). */
  observe(step: number, numEpisodes: number, weightsSoFar: readonly Float32Array[], rng: Rng): Float32Array;
  /** Rewards [numEpisodes] for the weights chosen at `step`. */
  reward(step: number, observations: Float32Array, weights: Float32Array, weightsSoFar: readonly Float32Array[]): Float32Array;
}

/**
 * Contextual bandit: context c ∈ {0, 1, 2} one-hot in features 0..2, feature 3
 * is uniform noise in [0, 1); reward = 1 − (w − w*(c))², w* = {0, 0.5, 1}.
 * The optimal expected reward is 1 (w* is reachable in [0, 1] and is a level of
 * {0, .25, .5, .75, 1}).
 */
export const BANDIT_OPTIMAL_WEIGHT = [0, 0.5, 1] as const;
export const bandit: Environment = {
  numFeatures: 4,
  horizon: 1,
  observe(_step, n, _w, rng) {
    const obs = new Float32Array(n * 4);
    for (let e = 0; e < n; e++) {
      obs[e * 4 + Math.floor(rng.uniform() * 3)] = 1;
      obs[e * 4 + 3] = rng.uniform();
    }
    return obs;
  },
  reward(_step, obs, weights) {
    return weights.map((w, e) => {
      const c = [0, 1, 2].find((k) => obs[e * 4 + k] === 1)!;
      return 1 - (w - BANDIT_OPTIMAL_WEIGHT[c]!) ** 2;
    });
  },
};

/**
 * Delayed reward, 3 steps. Features: one-hot step (0..2) and the first weight
 * w0 (0 at step 0). Step 0 pays 0.5·(1 − w0) at once — greedy says w0 = 0 —
 * step 1 pays 0, step 2 pays w0. Return with discount γ:
 * 0.5·(1 − w0) + γ²·w0, maximal at w0 = 1 when γ² > 0.5 (0.9801 for γ = 0.99),
 * against 0.5 for the greedy w0 = 0. Actions after step 0 do not matter.
 */
export const delayed: Environment = {
  numFeatures: 4,
  horizon: 3,
  observe(step, n, weightsSoFar) {
    const obs = new Float32Array(n * 4);
    for (let e = 0; e < n; e++) {
      obs[e * 4 + step] = 1;
      obs[e * 4 + 3] = step === 0 ? 0 : weightsSoFar[0]![e]!;
    }
    return obs;
  },
  reward(step, _obs, weights, weightsSoFar) {
    if (step === 0) return weights.map((w) => 0.5 * (1 - w));
    if (step === 1) return new Float32Array(weights.length);
    return Float32Array.from(weightsSoFar[0]!);
  },
};

/** Runs `numEpisodes` parallel episodes with `policy` and returns one trajectory per episode and the mean undiscounted return. */
export function rollout(env: Environment, policy: Policy, numEpisodes: number, rng: Rng, deterministic: boolean): { trajectories: Trajectory[]; meanReturn: number; firstWeights: Float32Array } {
  const steps: Transition[][] = Array.from({ length: numEpisodes }, () => []);
  const weightsSoFar: Float32Array[] = [];
  let total = 0;
  for (let step = 0; step < env.horizon; step++) {
    const obs = env.observe(step, numEpisodes, weightsSoFar, rng);
    const decision = policy.act(obs, numEpisodes, { deterministic });
    const rewards = env.reward(step, obs, decision.weights, weightsSoFar);
    weightsSoFar.push(decision.weights);
    for (let e = 0; e < numEpisodes; e++) {
      total += rewards[e]!;
      steps[e]!.push({
        observation: obs.slice(e * env.numFeatures, (e + 1) * env.numFeatures),
        action: decision.actions[e]!,
        logProb: decision.logProbs[e]!,
        value: decision.values[e]!,
        reward: rewards[e]!,
        done: step === env.horizon - 1,
      });
    }
  }
  return { trajectories: steps, meanReturn: total / numEpisodes, firstWeights: weightsSoFar[0]! };
}

/** `iterations` rounds of rollout + PPO update; disposes every intermediate policy and returns the last. */
export function train(env: Environment, initial: Policy, iterations: number, numEpisodes: number, config: Partial<PpoConfig>, seed: number): { policy: Policy; history: UpdateStats[] } {
  const rng = Rng.fromSeed(seed, 'environment');
  let policy = initial;
  const history: UpdateStats[] = [];
  for (let i = 0; i < iterations; i++) {
    const { trajectories } = rollout(env, policy, numEpisodes, rng, false);
    const next = policy.update(trajectories, { ...DEFAULT_PPO_CONFIG, ...config });
    if (policy !== initial) policy.dispose();
    policy = next.policy;
    history.push(next.stats);
  }
  return { policy, history };
}
