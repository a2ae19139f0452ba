/**
 * The library on both supported backends: wasm (the default) and the pure-JS
 * cpu backend. Each is deterministic on its own; across backends the results
 * agree to float32 rounding, not bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { Backend } from '@purify/models';
import { selectRlBackend } from './backend';
import { DEFAULT_PPO_CONFIG } from './config';
import { bandit, rollout } from './envs.test-util';
import { createPolicy, deserializePolicy } from './policy';
import { Rng } from './rng';
import type { PolicySpec } from './types';

const SPECS: PolicySpec[] = [
  { actionSpace: 'discrete', weightLevels: [0, 0.25, 0.5, 0.75, 1], hiddenUnits: [16, 16], numFeatures: 4, seed: 21 },
  { actionSpace: 'beta', weightLevels: [], hiddenUnits: [16, 16], numFeatures: 4, seed: 22 },
];

/** One act → update → act round on the active backend; returns what the second act decided and the new policy's bytes. */
function round(spec: PolicySpec) {
  const policy = createPolicy(spec);
  const data = rollout(bandit, policy, 64, Rng.fromSeed(1, 'data'), false).trajectories;
  const { policy: next, stats } = policy.update(data, { ...DEFAULT_PPO_CONFIG, epochs: 3, minibatchSize: 32, targetKl: 0 });
  const obs = bandit.observe(0, 30, [], Rng.fromSeed(2, 'obs'));
  const act = next.act(obs, 30, { deterministic: true });
  const bytes = next.serialize();
  policy.dispose();
  next.dispose();
  return { act, bytes, stats };
}

afterAll(async () => {
  await selectRlBackend();
});

describe.each(SPECS)('$actionSpace policy', (spec) => {
  it('is deterministic on cpu and on wasm, and the two backends agree to float32 rounding', async () => {
    const results: Record<string, ReturnType<typeof round>> = {};
    for (const backend of [Backend.Cpu, Backend.Wasm]) {
      await selectRlBackend(backend);
      expect(tf.getBackend()).toBe(backend);
      const first = round(spec);
      const second = round(spec);
      expect(Buffer.from(second.bytes).equals(Buffer.from(first.bytes))).toBe(true);
      results[backend] = first;
    }
    const cpu = results[Backend.Cpu]!;
    const wasm = results[Backend.Wasm]!;
    // The sampled training data is the same on both (same generator, near-identical probabilities), so the
    // updated policies are close: deterministic weights within 1e-3, values within 1e-3.
    cpu.act.weights.forEach((w, i) => expect(Math.abs(w - wasm.act.weights[i]!)).toBeLessThan(1e-3));
    cpu.act.values.forEach((v, i) => expect(Math.abs(v - wasm.act.values[i]!)).toBeLessThan(1e-3));
    expect(cpu.stats.transitions).toBe(wasm.stats.transitions);
  });

  it('a policy saved on one backend loads on the other', async () => {
    await selectRlBackend(Backend.Cpu);
    const saved = createPolicy(spec);
    const bytes = saved.serialize();
    const obs = bandit.observe(0, 10, [], Rng.fromSeed(3, 'obs'));
    const onCpu = saved.act(obs, 10, { deterministic: true });
    saved.dispose();
    await selectRlBackend(Backend.Wasm);
    const loaded = deserializePolicy(bytes);
    const onWasm = loaded.act(obs, 10, { deterministic: true });
    onCpu.values.forEach((v, i) => expect(onWasm.values[i]).toBeCloseTo(v, 5));
    loaded.dispose();
  });
});
