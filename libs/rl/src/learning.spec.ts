/**
 * PPO on environments with a known optimum (fixed seeds, deterministic on a
 * given backend). Sizes are chosen to finish in a few seconds each.
 */
import { selectRlBackend } from './backend';
import { BANDIT_OPTIMAL_WEIGHT, bandit, delayed, rollout, train } from './envs.test-util';
import { createPolicy } from './policy';
import { Rng } from './rng';
import type { Policy, PolicySpec, PpoConfig } from './types';

const LEVELS = [0, 0.25, 0.5, 0.75, 1];
const spec = (actionSpace: 'discrete' | 'beta'): PolicySpec => ({ actionSpace, weightLevels: LEVELS, hiddenUnits: [32, 32], numFeatures: 4, seed: 7 });
const CONFIG: Partial<PpoConfig> = { learningRate: 3e-3, epochs: 6, minibatchSize: 128, gamma: 0.99, gaeLambda: 0.95 };

/**
 * Expected bandit reward of the deterministic policy: contexts are uniform over
 * {0, 1, 2} (exact), the noise feature uniform on [0, 1) (midpoints of 20 cells).
 */
function banditExpectedReward(policy: Policy): number {
  const rows = 3 * 20;
  const obs = new Float32Array(rows * 4);
  for (let c = 0; c < 3; c++) {
    for (let k = 0; k < 20; k++) {
      obs[(c * 20 + k) * 4 + c] = 1;
      obs[(c * 20 + k) * 4 + 3] = (k + 0.5) / 20;
    }
  }
  const { weights } = policy.act(obs, rows, { deterministic: true });
  let total = 0;
  weights.forEach((w, i) => (total += 1 - (w - BANDIT_OPTIMAL_WEIGHT[Math.floor(i / 20)]!) ** 2));
  return total / rows;
}

beforeAll(async () => {
  await selectRlBackend();
});

describe('contextual bandit: reward 1 − (w − w*(c))², w* = {0, 0.5, 1}, optimal expected reward 1', () => {
  it.each([
    // [action space, iterations of 256 episodes]; the untrained policy scores ≈ 0.75–0.8 (w ≈ 0.5 everywhere)
    ['discrete', 12],
    ['beta', 15],
  ] as const)('%s policy reaches ≥ 95 %% of the optimum with its deterministic action', (actionSpace, iterations) => {
    const initial = createPolicy(spec(actionSpace));
    const before = banditExpectedReward(initial);
    const { policy } = train(bandit, initial, iterations, 256, CONFIG, 3);
    const after = banditExpectedReward(policy);
    expect(before).toBeLessThan(0.9);
    expect(after).toBeGreaterThanOrEqual(0.95);
    initial.dispose();
    policy.dispose();
  });
});

describe('delayed reward: step 0 pays 0.5·(1 − w0) now, step 2 pays w0 (optimum w0 = 1, return 1; greedy w0 = 0, return 0.5)', () => {
  /** Deterministic first weight and undiscounted return (the environment itself is deterministic). */
  function score(policy: Policy): { w0: number; ret: number } {
    const r = rollout(delayed, policy, 1, Rng.fromSeed(0, 'unused'), true);
    return { w0: r.firstWeights[0]!, ret: r.meanReturn };
  }

  it.each([
    ['discrete', 12],
    ['beta', 20],
  ] as const)('%s policy with γ = 0.99 learns to forgo the immediate reward', (actionSpace, iterations) => {
    const initial = createPolicy(spec(actionSpace));
    const { policy } = train(delayed, initial, iterations, 128, CONFIG, 5);
    const { w0, ret } = score(policy);
    expect(w0).toBeGreaterThanOrEqual(0.9);
    expect(ret).toBeGreaterThanOrEqual(0.95);
    initial.dispose();
    policy.dispose();
  });

  it('control: the same learner with γ = 0 (myopic) takes the greedy action instead', () => {
    // Shows the delayed-reward test can fail: without discounting the future in, the optimum is w0 = 0.
    const initial = createPolicy(spec('discrete'));
    const { policy } = train(delayed, initial, 12, 128, { ...CONFIG, gamma: 0 }, 5);
    const { w0, ret } = score(policy);
    expect(w0).toBeLessThanOrEqual(0.25);
    expect(ret).toBeLessThanOrEqual(0.65);
    initial.dispose();
    policy.dispose();
  });
});
