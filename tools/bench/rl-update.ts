/**
 * Benchmark (not a test): one PPO update of realistic size — 4096 transitions
 * × 16 features, MLP 2×64, 10 epochs × minibatches of 256 — and a 4096-row
 * act(), on each requested TensorFlow.js backend. Prints wall-clock figures.
 *
 *   npx tsx --conditions=@purify/source tools/bench/rl-update.ts [cpu] [wasm]
 */
import * as tf from '@tensorflow/tfjs';
import { Backend, isBackend } from '@purify/models';
import { ActionSpace, createPolicy, DEFAULT_PPO_CONFIG, selectRlBackend, type PolicySpec, type Trajectory } from '@purify/rl';

const ROWS = 4096;
const FEATURES = 16;

function syntheticTrajectories(spec: PolicySpec): Trajectory[] {
  const policy = createPolicy(spec);
  const obs = new Float32Array(ROWS * FEATURES);
  let s = 12345;
  for (let i = 0; i < obs.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    obs[i] = s / 2 ** 32;
  }
  const r = policy.act(obs, ROWS, { deterministic: false });
  policy.dispose();
  // 64 trajectories of 64 steps.
  const trajectories: Trajectory[] = [];
  for (let t = 0; t < 64; t++) {
    const steps = [];
    for (let k = 0; k < 64; k++) {
      const i = t * 64 + k;
      steps.push({
        observation: obs.slice(i * FEATURES, (i + 1) * FEATURES),
        action: r.actions[i]!,
        logProb: r.logProbs[i]!,
        value: r.values[i]!,
        reward: 1 - (r.weights[i]! - obs[i * FEATURES]!) ** 2,
        done: k === 63,
      });
    }
    trajectories.push(steps);
  }
  return trajectories;
}

async function main(): Promise<void> {
  const requested = process.argv.slice(2).filter(isBackend);
  for (const backend of requested.length > 0 ? requested : [Backend.Cpu, Backend.Wasm]) {
    const choice = await selectRlBackend(backend);
    for (const actionSpace of [ActionSpace.Discrete, ActionSpace.Beta]) {
      const spec: PolicySpec = { actionSpace, weightLevels: [0, 0.25, 0.5, 0.75, 1], hiddenUnits: [64, 64], numFeatures: FEATURES, seed: 1 };
      const data = syntheticTrajectories(spec);
      const policy = createPolicy(spec);
      const obs = new Float32Array(ROWS * FEATURES).fill(0.5);
      let t0 = performance.now();
      for (let i = 0; i < 5; i++) policy.act(obs, ROWS, { deterministic: false });
      const actMs = (performance.now() - t0) / 5;
      t0 = performance.now();
      const { policy: next, stats } = policy.update(data, { ...DEFAULT_PPO_CONFIG, targetKl: 0, epochs: 10, minibatchSize: 256 });
      const updateMs = performance.now() - t0;
      console.log(
        `${choice.backend.padEnd(5)} ${actionSpace.padEnd(8)} act(4096 rows) ${actMs.toFixed(1)} ms   update(4096 × 16, 2×64, 10 epochs × 16 minibatches) ${updateMs.toFixed(0)} ms   (${(updateMs / 160).toFixed(1)} ms/step, kl ${stats.approxKl.toExponential(2)})`,
      );
      next.dispose();
      policy.dispose();
    }
  }
  console.log(`tensors alive at exit: ${tf.memory().numTensors}`);
}

void main();
