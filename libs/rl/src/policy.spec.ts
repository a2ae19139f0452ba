import * as tf from '@tensorflow/tfjs';
import { selectRlBackend } from './backend';
import { DEFAULT_PPO_CONFIG } from './config';
import { bandit, rollout } from './envs.test-util';
import { expectRlError } from './expect.test-util';
import { BETA_EPS, createPolicy } from './policy';
import { Rng } from './rng';
import type { Policy, PolicySpec, PpoConfig, Trajectory, Transition } from './types';

const LEVELS = [0, 0.25, 0.5, 0.75, 1];
const DISCRETE: PolicySpec = { actionSpace: 'discrete', weightLevels: LEVELS, hiddenUnits: [16, 16], numFeatures: 4, seed: 11 };
const BETA: PolicySpec = { ...DISCRETE, actionSpace: 'beta' };
const SPECS = [
  ['discrete', DISCRETE],
  ['beta', BETA],
] as const;
const CONFIG: PpoConfig = { ...DEFAULT_PPO_CONFIG, epochs: 3, minibatchSize: 32, learningRate: 3e-3, targetKl: 0 };

/** `n` observation rows [n, 4] from the bandit (one-hot context + noise), seeded. */
function observations(n: number, seed = 1): Float32Array {
  return bandit.observe(0, n, [], Rng.fromSeed(seed, 'obs'));
}

/** 64 one-step bandit episodes acted by `policy` (advances its generator). */
function episodes(policy: Policy, seed = 2): Trajectory[] {
  return rollout(bandit, policy, 64, Rng.fromSeed(seed, 'episodes'), false).trajectories;
}

beforeAll(async () => {
  await selectRlBackend();
});

describe.each(SPECS)('%s policy', (_name, spec) => {
  it('act() returns n weights in [0, 1], raw actions, finite log-probs and values, and evaluate() reproduces its log-probs exactly', () => {
    const policy = createPolicy(spec);
    const obs = observations(50);
    const r = policy.act(obs, 50, { deterministic: false });
    for (const a of [r.weights, r.actions, r.logProbs, r.values]) expect(a).toHaveLength(50);
    expect(r.levels).toHaveLength(50);
    r.weights.forEach((w, i) => {
      expect(w).toBeGreaterThanOrEqual(0);
      expect(w).toBeLessThanOrEqual(1);
      if (spec.actionSpace === 'discrete') {
        expect(r.levels[i]).toBe(r.actions[i]);
        expect(w).toBe(Math.fround(LEVELS[r.levels[i]!]!));
      } else {
        expect(r.levels[i]).toBe(-1);
        expect(w).toBe(r.actions[i]);
        expect(w).toBeGreaterThanOrEqual(Math.fround(BETA_EPS));
      }
    });
    expect(r.logProbs.every(Number.isFinite) && r.values.every(Number.isFinite)).toBe(true);
    const e = policy.evaluate(obs, 50, r.actions);
    expect(e.logProbs).toEqual(r.logProbs);
    expect(e.values).toEqual(r.values);
    policy.dispose();
  });

  it('acts reproducibly: the same seed gives bit-identical samples; another seed does not', () => {
    const obs = observations(40);
    const [a, b, c] = [spec, spec, { ...spec, seed: 12 }].map((s) => createPolicy(s));
    const first = [a!.act(obs, 40, { deterministic: false }), a!.act(obs, 40, { deterministic: false })];
    const second = [b!.act(obs, 40, { deterministic: false }), b!.act(obs, 40, { deterministic: false })];
    expect(second).toEqual(first);
    expect(first[1]!.actions).not.toEqual(first[0]!.actions); // the generator advances
    expect(c!.act(obs, 40, { deterministic: false }).actions).not.toEqual(first[0]!.actions);
    [a, b, c].forEach((p) => p!.dispose());
  });

  it('update() is deterministic: same seed + same data → bit-identical new weights (serialized bytes)', () => {
    const [a, b] = [createPolicy(spec), createPolicy(spec)];
    const data = episodes(a);
    episodes(b); // advance b's generator the same way
    const ua = a.update(data, CONFIG);
    const ub = b.update(data, CONFIG);
    expect(ub.stats).toEqual(ua.stats);
    expect(Buffer.from(ub.policy.serialize()).equals(Buffer.from(ua.policy.serialize()))).toBe(true);
    expect(Buffer.from(ua.policy.serialize()).equals(Buffer.from(a.serialize()))).toBe(false);
    [a, b, ua.policy, ub.policy].forEach((p) => p.dispose());
  });

  it('update() returns a new policy and leaves the original unchanged (outputs, bytes), each usable after the other is disposed', () => {
    const policy = createPolicy(spec);
    const data = episodes(policy);
    const obs = observations(30, 9);
    const before = { act: policy.act(obs, 30, { deterministic: true }), bytes: policy.serialize() };
    const { policy: next, stats } = policy.update(data, CONFIG);
    expect(stats.transitions).toBe(64);
    expect(stats.epochsRun).toBe(3);
    expect(next).not.toBe(policy);
    expect(policy.act(obs, 30, { deterministic: true })).toEqual(before.act);
    expect(Buffer.from(policy.serialize()).equals(Buffer.from(before.bytes))).toBe(true);
    expect(next.act(obs, 30, { deterministic: true }).values).not.toEqual(before.act.values);
    policy.dispose();
    expect(next.act(obs, 30, { deterministic: true }).values).toHaveLength(30);
    next.dispose();
  });

  it('leaves no tensors behind after act, evaluate, update (new policy disposed), serialize and dispose', () => {
    const before = tf.memory().numTensors;
    const policy = createPolicy(spec);
    const owned = tf.memory().numTensors - before; // the policy's own parameters
    const obs = observations(20);
    const r = policy.act(obs, 20, { deterministic: false });
    policy.act(obs, 20, { deterministic: true });
    policy.evaluate(obs, 20, r.actions);
    const { policy: next } = policy.update(episodes(policy), CONFIG);
    expect(tf.memory().numTensors).toBe(before + 2 * owned);
    next.serialize();
    next.dispose();
    expect(tf.memory().numTensors).toBe(before + owned);
    policy.dispose();
    policy.dispose(); // idempotent
    expect(tf.memory().numTensors).toBe(before);
  });

  it('KL early stop: targetKl 0 runs every epoch; a tiny targetKl stops before the first step', () => {
    const policy = createPolicy(spec);
    const data = episodes(policy);
    const full = policy.update(data, { ...CONFIG, epochs: 4, targetKl: 0 });
    const stopped = policy.update(data, { ...CONFIG, epochs: 4, targetKl: 1e-12 });
    expect(full.stats.epochsRun).toBe(4);
    expect(stopped.stats.epochsRun).toBe(0);
    expect(stopped.stats.approxKl).toBeLessThan(full.stats.approxKl);
    [policy, full.policy, stopped.policy].forEach((p) => p.dispose());
  });
});

describe('discrete policy distribution', () => {
  it('the level probabilities sum to 1, the entropy is −Σ p ln p, and the deterministic action is the most probable level', () => {
    const policy = createPolicy(DISCRETE);
    const { policy: trained } = policy.update(episodes(policy), CONFIG); // move away from the near-uniform start
    const n = 6;
    const obs = observations(n, 4);
    const perLevel = LEVELS.map((_, l) => trained.evaluate(obs, n, new Float32Array(n).fill(l)));
    const greedy = trained.act(obs, n, { deterministic: true });
    for (let i = 0; i < n; i++) {
      const p = perLevel.map((e) => Math.exp(e.logProbs[i]!));
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(perLevel[0]!.entropies[i]).toBeCloseTo(-p.reduce((h, pi) => h + pi * Math.log(pi), 0), 5);
      expect(greedy.levels[i]).toBe(p.indexOf(Math.max(...p)));
    }
    [policy, trained].forEach((q) => q.dispose());
  });

  it('starts near uniform (actor head initialised with gain 0.01): every level has probability 0.2 ± 0.02', () => {
    const policy = createPolicy(DISCRETE);
    const e = policy.evaluate(observations(1), 1, new Float32Array([2]));
    expect(Math.abs(Math.exp(e.logProbs[0]!) - 0.2)).toBeLessThan(0.02);
    expect(e.entropies[0]).toBeCloseTo(Math.log(5), 2);
    policy.dispose();
  });
});

describe('Beta policy distribution', () => {
  it('the density integrates to 1, −∫ p ln p equals the reported entropy, and the deterministic action is the mean ∫ x p dx', () => {
    const policy = createPolicy(BETA);
    const { policy: trained } = policy.update(episodes(policy), CONFIG);
    const obs = observations(1, 6);
    // Midpoint rule on 20 000 cells of (0, 1), all rows the same observation.
    const cells = 20_000;
    const xs = Float32Array.from({ length: cells }, (_, i) => (i + 0.5) / cells);
    const rows = new Float32Array(cells * 4);
    for (let i = 0; i < cells; i++) rows.set(obs, i * 4);
    const e = trained.evaluate(rows, cells, xs);
    let mass = 0;
    let entropy = 0;
    let mean = 0;
    e.logProbs.forEach((lp, i) => {
      const p = Math.exp(lp);
      mass += p / cells;
      entropy -= (p * lp) / cells;
      mean += (xs[i]! * p) / cells;
    });
    expect(mass).toBeCloseTo(1, 3);
    expect(e.entropies[0]).toBeCloseTo(entropy, 3);
    expect(trained.act(obs, 1, { deterministic: true }).weights[0]).toBeCloseTo(mean, 3);
    [policy, trained].forEach((q) => q.dispose());
  });
});

describe('bad input', () => {
  let policy: Policy;
  let beta: Policy;
  beforeAll(() => {
    policy = createPolicy(DISCRETE);
    beta = createPolicy(BETA);
  });
  const ok: Transition = { observation: new Float32Array([1, 0, 0, 0.5]), action: 2, logProb: -1.6, value: 0.1, reward: 1, done: true };
  afterAll(() => {
    policy.dispose();
    beta.dispose();
  });

  it.each([
    // [case, call, expected message]
    [
      'rows of the wrong width',
      () => policy.act(new Float32Array(10), 2, { deterministic: true }),
      'observations must hold numRows × numFeatures = 2 × 4 = 8 values ([numRows, numFeatures] row-major), got 10 (rows of width 5; the policy expects spec.numFeatures = 4)',
    ],
    ['a NaN feature', () => policy.act(new Float32Array([1, 0, 0, 0, 0, 1, Number.NaN, 0]), 2, { deterministic: true }), 'observations[row 1, feature 2] must be finite, got NaN'],
    ['an infinite feature', () => policy.evaluate(new Float32Array([Infinity, 0, 0, 0]), 1, new Float32Array([0])), 'observations[row 0, feature 0] must be finite, got Infinity'],
    ['a negative row count', () => policy.act(new Float32Array(0), -1, { deterministic: true }), 'numRows must be an integer >= 0, got -1'],
    ['a level index out of range', () => policy.evaluate(new Float32Array(4), 1, new Float32Array([5])), 'actions[0] must be a level index in 0..4, got 5'],
    ['a Beta action outside [0, 1]', () => beta.evaluate(new Float32Array(4), 1, new Float32Array([1.5])), 'actions[0] must be a Beta action in [0, 1], got 1.5'],
    ['too few actions', () => policy.evaluate(new Float32Array(8), 2, new Float32Array([0])), 'actions must be a Float32Array of numRows = 2 values, got 1 values'],
    ['no trajectories', () => policy.update([], CONFIG), 'trajectories must hold at least one trajectory, got 0'],
    ['an empty trajectory', () => policy.update([[ok], []], CONFIG), 'trajectories[1] must hold at least one transition, got 0'],
    ['a NaN reward', () => policy.update([[ok, { ...ok, reward: Number.NaN }]], CONFIG), 'trajectories[0][1].reward must be a finite number, got NaN'],
    ['an infinite value', () => policy.update([[{ ...ok, value: -Infinity }]], CONFIG), 'trajectories[0][0].value must be a finite number, got -Infinity'],
    [
      'an observation of the wrong width',
      () => policy.update([[ok], [ok, { ...ok, observation: new Float32Array(3) }]], CONFIG),
      'trajectories[1][1].observation has 3 features, the policy expects spec.numFeatures = 4',
    ],
    ['a NaN observation', () => policy.update([[{ ...ok, observation: new Float32Array([0, Number.NaN, 0, 0]) }]], CONFIG), 'trajectories[0][0].observation[1] must be finite, got NaN'],
    ['a fractional level', () => policy.update([[{ ...ok, action: 1.5 }]], CONFIG), 'trajectories[0][0].action must be a level index in 0..4, got 1.5'],
    ['an invalid PPO config', () => policy.update([[ok]], { ...CONFIG, clipRatio: -1 }), 'PpoConfig.clipRatio must be a finite number > 0, got -1'],
  ])('%s', (_name, call, message) => {
    expectRlError(call, message);
  });

  it('a disposed policy refuses to act', () => {
    const p = createPolicy(DISCRETE);
    p.dispose();
    expectRlError(() => p.act(new Float32Array(4), 1, { deterministic: true }), 'the policy has been disposed');
  });

  it('zero rows give empty results', () => {
    const r = policy.act(new Float32Array(0), 0, { deterministic: false });
    expect(r.weights).toHaveLength(0);
    expect(policy.evaluate(new Float32Array(0), 0, new Float32Array(0)).values).toHaveLength(0);
  });
});
