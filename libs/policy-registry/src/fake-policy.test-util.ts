// A small, deterministic stand-in for an RL policy (tests only; excluded from the build).
import type { ActOptions, ActResult, Policy, PolicySpec, PpoConfig, Trajectory, UpdateStats } from '@purify/rl';
import type { AgentPolicySpec, PolicyFactory } from './types';

/** Live FakePolicy instances (created and not disposed), to check nothing leaks. */
export const liveFakes = new Set<FakePolicy>();

/**
 * Decides level index `(floor(obs[row, 0] * L) + generation) mod L` of its L
 * weight levels (clamped to [0, L-1] before the shift), log-prob -ln L, value
 * = sum of the row. Beta specs act as levels {0, 0.5, 1}. `update` returns a
 * policy one generation on and remembers what it was trained on.
 */
export class FakePolicy implements Policy {
  /** Trajectories of every update called on this policy. */
  readonly updates: { trajectories: readonly Trajectory[]; config: PpoConfig }[] = [];

  constructor(
    readonly spec: PolicySpec,
    readonly generation = 0,
  ) {
    liveFakes.add(this);
  }

  private levels(): readonly number[] {
    return this.spec.actionSpace === 'discrete' ? this.spec.weightLevels : [0, 0.5, 1];
  }

  act(observations: Float32Array, numRows: number, _options: ActOptions): ActResult {
    const levels = this.levels();
    const f = this.spec.numFeatures;
    const out = { weights: new Float32Array(numRows), actions: new Float32Array(numRows), logProbs: new Float32Array(numRows), values: new Float32Array(numRows), levels: new Int32Array(numRows) };
    for (let i = 0; i < numRows; i++) {
      const first = observations[i * f] ?? 0;
      const base = Math.min(levels.length - 1, Math.max(0, Math.floor(first * levels.length)));
      const level = (base + this.generation) % levels.length;
      out.weights[i] = levels[level] ?? 0;
      out.actions[i] = level;
      out.logProbs[i] = -Math.log(levels.length);
      let sum = 0;
      for (let j = 0; j < f; j++) sum += observations[i * f + j] ?? 0;
      out.values[i] = sum;
      out.levels[i] = this.spec.actionSpace === 'discrete' ? level : -1;
    }
    return out;
  }

  evaluate(_observations: Float32Array, numRows: number, _actions: Float32Array): { logProbs: Float32Array; entropies: Float32Array; values: Float32Array } {
    return { logProbs: new Float32Array(numRows), entropies: new Float32Array(numRows), values: new Float32Array(numRows) };
  }

  update(trajectories: readonly Trajectory[], config: PpoConfig): { policy: Policy; stats: UpdateStats } {
    this.updates.push({ trajectories, config });
    const transitions = trajectories.reduce((n, t) => n + t.length, 0);
    return {
      policy: new FakePolicy(this.spec, this.generation + 1),
      stats: { transitions, policyLoss: -0.5, valueLoss: 0.25, entropy: 1.5, approxKl: 0.01, epochsRun: config.epochs },
    };
  }

  serialize(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ fake: 1, spec: this.spec, generation: this.generation }));
  }

  dispose(): void {
    liveFakes.delete(this);
  }
}

export const fakeFactory: PolicyFactory = {
  create: (spec) => new FakePolicy(spec),
  deserialize: (bytes) => {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { fake?: number; spec: PolicySpec; generation: number };
    if (parsed.fake !== 1) throw new Error('not fake policy bytes');
    return new FakePolicy(parsed.spec, parsed.generation);
  },
};

export const PPO: PpoConfig = { learningRate: 3e-4, clipRatio: 0.2, gamma: 0.99, gaeLambda: 0.95, entropyCoef: 0.01, valueCoef: 0.5, epochs: 4, minibatchSize: 64, targetKl: 0.02, maxGradNorm: 0.5 };

/** 3 features, levels {0, .25, .5, .75, 1}. */
export const SPEC3: AgentPolicySpec = { actionSpace: 'discrete', weightLevels: [0, 0.25, 0.5, 0.75, 1], hiddenUnits: [8], numFeatures: 3, seed: 7, featureSchemaVersion: 'v1' };

/** What `fn` threw (sync or async) as {type, code, message}, so one assertion pins all three. */
export async function thrown(fn: () => unknown): Promise<{ type: string; code: unknown; message: string }> {
  try {
    await fn();
  } catch (err) {
    const e = err as Error & { code?: unknown };
    return { type: e.constructor.name, code: e.code, message: e.message };
  }
  throw new Error('expected an error, nothing was thrown');
}

/** The expected value of {@link thrown} for a RegistryError. */
export function registryError(code: string, message: string): { type: string; code: string; message: string } {
  return { type: 'RegistryError', code, message };
}
