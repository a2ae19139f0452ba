import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentOptions } from './agent';
import { fakeFactory, FakePolicy, liveFakes, PPO, registryError, SPEC3, thrown } from './fake-policy.test-util';
import type { ActInput, ActOutput, RewardInput } from './types';

/** A test clock (ms since the epoch). */
let clock = 0;
const opened: Agent[] = [];

async function openAgent(root: string, extra: Partial<AgentOptions> = {}): Promise<Agent> {
  const agent = await Agent.open({ root, factory: fakeFactory, ppoDefaults: PPO, now: () => new Date(clock), ...extra });
  opened.push(agent);
  return agent;
}

async function fresh(extra: Partial<AgentOptions> = {}): Promise<{ root: string; agent: Agent }> {
  const root = mkdtempSync(join(tmpdir(), 'agent-'));
  const agent = await openAgent(root, extra);
  await agent.policies.register({ name: 'p', spec: SPEC3 });
  return { root, agent };
}

beforeEach(() => {
  clock = Date.UTC(2025, 0, 1);
});
afterEach(async () => {
  for (const a of opened.splice(0)) await a.close();
  // Every network the registry loaded was disposed on close.
  expect(liveFakes.size).toBe(0);
});

/** Act input for rows of 3 features. */
function act(rows: number[][], routingKey = 'job', target: ActInput['target'] = { policy: { name: 'p', version: 0 } }): ActInput {
  return { target, routingKey, observations: Float32Array.from(rows.flat()), numRows: rows.length, numFeatures: 3, schemaVersion: 'v1', deterministic: false, context: { round: '1' } };
}
const ids = (out: ActOutput): string[] => out.decisions.map((d) => d.decisionId);
const logOf = (root: string, replica = 'main'): string => readFileSync(join(root, 'buffers', replica, 'experience.log'), 'utf8');

describe('Agent.act', () => {
  it('decides per row with the promoted version and counts the decisions', async () => {
    const { agent } = await fresh();
    // Fake rule: level = clamp(floor(obs[0] * 5), 0, 4) → weights 0, 0.5, 1; value = row sum; log-prob = -ln 5.
    const out = await agent.act(act([[0.125, 0, 0], [0.5, 1, 1], [1, 0, 0.25]]));
    expect(out.policy).toEqual({ name: 'p', version: 1 });
    expect(out.decisions.map((d) => [d.weight, d.level, d.value])).toEqual([[0, 0, 0.125], [0.5, 2, 2.5], [1, 4, 1.25]]);
    expect(out.decisions[0]?.logProb).toBeCloseTo(-Math.log(5), 6);
    expect(new Set(ids(out)).size).toBe(3);
    expect(ids(out).every((id) => id.startsWith('main~'))).toBe(true);
    // Histogram bins of 0, 0.5, 1 over 10 equal bins: 0 → bin 0, 0.5 → bin 5, 1 → bin 9 (last bin is closed).
    expect(agent.metrics({ name: 'p', version: 1 })).toEqual({
      ref: { name: 'p', version: 1 },
      decisions: 3,
      rewarded: 0,
      meanReward: 0,
      weightHistogram: [1, 0, 0, 0, 0, 1, 0, 0, 0, 1],
      shadowDecisions: 0,
      pending: 3,
      buffered: 0,
    });
  });

  it.each([
    // [case, input change, code, exact message]
    ['4 features for a 3-feature policy', { observations: new Float32Array(8), numRows: 2, numFeatures: 4 }, 'INVALID_ARGUMENT', '`observations.num_features` must equal the num_features of policy p:1 (3), got 4'],
    ['another feature schema', { schemaVersion: 'v2' }, 'INVALID_ARGUMENT', '`observations.schema_version` must be the feature schema of policy p:1 ("v1"), got "v2"'],
    ['values not rows x features', { observations: new Float32Array(5) }, 'INVALID_ARGUMENT', '`observations.values` must hold num_rows * num_features = 6 values, got 5'],
    ['an infinite feature', { observations: Float32Array.from([0, 0, 0, 0, Infinity, 0]) }, 'INVALID_ARGUMENT', '`observations.values[4]` must be finite (row 1, feature 1), got "Infinity"'],
    ['unknown policy', { target: { policy: { name: 'q', version: 0 } } }, 'NOT_FOUND', 'policy "q" is not registered'],
    ['unknown experiment', { target: { experiment: 'nope' } }, 'NOT_FOUND', 'experiment "nope" does not exist'],
  ] as [string, Partial<ActInput>, string, string][])('refuses %s and records nothing', async (_name, change, code, message) => {
    const { root, agent } = await fresh();
    expect(await thrown(() => agent.act({ ...act([[0, 0, 0], [0, 0, 0]]), ...change }))).toEqual(registryError(code, message));
    expect(agent.metrics({ name: 'p', version: 1 }).decisions).toBe(0);
    expect(logOf(root)).toBe('');
  });

  it('refuses archived versions and a name without a promoted version', async () => {
    const { agent } = await fresh();
    await agent.policies.archive({ name: 'p', version: 1 });
    expect(await thrown(() => agent.act(act([[0, 0, 0]], 'k', { policy: { name: 'p', version: 1 } })))).toEqual(registryError('FAILED_PRECONDITION', 'policy p:1 is archived and refuses new decisions'));
    expect(await thrown(() => agent.act(act([[0, 0, 0]])))).toEqual(registryError('FAILED_PRECONDITION', 'policy "p" has no promoted version (promote one, or name a version)'));
  });
});

describe('Agent.feedback', () => {
  type Case = [string, (d: string[]) => RewardInput[], string, (d: string[]) => string];
  it.each([
    // [case, rewards (d = [d0 already rewarded, d1 pending]), code, exact message]
    ['an empty request', () => [], 'INVALID_ARGUMENT', () => '`rewards` must hold at least one reward, got []'],
    ['a NaN reward', (d) => [{ decisionId: d[1] as string, reward: Number.NaN, done: false }], 'INVALID_ARGUMENT', () => '`rewards[0].reward` must be a finite number, got NaN'],
    ['an infinite reward after a good one', (d) => [{ decisionId: d[1] as string, reward: 1, done: false }, { decisionId: 'main~x', reward: -Infinity, done: false }], 'INVALID_ARGUMENT', () => '`rewards[1].reward` must be a finite number, got -Infinity'],
    ['an empty id', () => [{ decisionId: '', reward: 1, done: false }], 'INVALID_ARGUMENT', () => '`rewards[0].decision_id` must be a decision id returned by Act, got ""'],
    ['the same id twice in one request', (d) => [1, 2].map((r) => ({ decisionId: d[1] as string, reward: r, done: false })), 'INVALID_ARGUMENT', (d) => `\`rewards[1].decision_id\` must be rewarded once per request (rewards[0] has the same id), got "${d[1]}"`],
    ['an unknown id next to a good one', (d) => [{ decisionId: d[1] as string, reward: 1, done: false }, { decisionId: 'main~unknown', reward: 1, done: false }], 'NOT_FOUND', () => 'unknown decision ids (never issued, expired without a reward, or consumed by an update): main~unknown'],
    ['a second reward for a decision', (d) => [{ decisionId: d[1] as string, reward: 1, done: false }, { decisionId: d[0] as string, reward: 5, done: true }], 'INVALID_ARGUMENT', (d) => `\`rewards[].decision_id\` must not be rewarded twice; already rewarded, got "${d[0]}"`],
    ['an id of another replica', () => [{ decisionId: 'r2~abc', reward: 1, done: false }], 'NOT_FOUND', () => 'decision ids issued by another agent replica (send feedback to the replica that decided; this is "main"): r2~abc'],
  ] as Case[])('refuses %s and changes nothing', async (_name, rewards, code, message) => {
    const { root, agent } = await fresh();
    const d = ids(await agent.act(act([[0, 0, 0], [0.5, 0, 0]])));
    await agent.feedback([{ decisionId: d[0] as string, reward: 2, done: false }]);
    const before = { metrics: agent.metrics({ name: 'p', version: 1 }), log: logOf(root) };
    expect(await thrown(() => agent.feedback(rewards(d)))).toEqual(registryError(code, message(d)));
    expect({ metrics: agent.metrics({ name: 'p', version: 1 }), log: logOf(root) }).toEqual(before);
    // The pending decision is still rewardable exactly once.
    await expect(agent.feedback([{ decisionId: d[1] as string, reward: 4, done: true }])).resolves.toEqual({ accepted: 1, buffered: { 'p:1': 2 }, updated: [] });
    expect(agent.metrics({ name: 'p', version: 1 })).toMatchObject({ rewarded: 2, meanReward: 3, pending: 0, buffered: 2 });
  });

  it('expires unrewarded decisions after the TTL (rewarded ones stay) and sweeps them from the log', async () => {
    const { root, agent } = await fresh({ decisionTtlMs: 1000 });
    const first = ids(await agent.act(act([[0, 0, 0], [0, 0, 0]])));
    await agent.feedback([{ decisionId: first[0] as string, reward: 1, done: false }]);
    clock += 1001;
    // 1001 ms later the unrewarded first[1] has expired: refused as unknown, nothing changes.
    expect(await thrown(() => agent.feedback([{ decisionId: first[1] as string, reward: 1, done: false }]))).toEqual(
      registryError('NOT_FOUND', `unknown decision ids (never issued, expired without a reward, or consumed by an update): ${first[1]}`),
    );
    await agent.act(act([[0, 0, 0]]));
    // The next Act sweeps it: 1 pending (the new one), 1 buffered (the rewarded one).
    expect(agent.metrics({ name: 'p', version: 1 })).toMatchObject({ decisions: 3, pending: 1, buffered: 1 });
    expect(logOf(root)).toContain(`{"k":"exp","ids":["${first[1]}"]}`);
  });

  it('keeps at most maxBufferedDecisions per version, dropping the oldest', async () => {
    const { agent } = await fresh({ maxBufferedDecisions: 3 });
    const a = ids(await agent.act(act([[0, 0, 0], [0, 0, 0]])));
    const b = ids(await agent.act(act([[0, 0, 0], [0, 0, 0]])));
    // 4 decisions, cap 3: a[0] dropped.
    expect(agent.metrics({ name: 'p', version: 1 })).toMatchObject({ decisions: 4, pending: 3 });
    expect(await thrown(() => agent.feedback([{ decisionId: a[0] as string, reward: 1, done: false }]))).toMatchObject({ code: 'NOT_FOUND' });
    await expect(agent.feedback([a[1], ...b].map((id) => ({ decisionId: id as string, reward: 1, done: false })))).resolves.toMatchObject({ accepted: 3 });
  });
});

describe('Agent.update', () => {
  /**
   * Decisions of key "job" rows 0/1 over three Acts (a, b, c) and key "other" row 0 (e):
   *   job,0: a0 r=1, b0 r=2 done, c0 r=3     → [a0 b0] (episode), [c0]
   *   job,1: a1 r=10, b1 (no reward), c1 r=30 → [a1], [c1]  (b1 breaks the chain)
   *   other,0: e0 r=5 done                   → [e0] (episode)
   * ordered by first decision: a0, a1, c0, c1, e0.
   */
  async function scenario(agent: Agent): Promise<Record<string, string>> {
    const [a, b, c] = [await agent.act(act([[0.125, 0, 0], [0.5, 0, 0]])), await agent.act(act([[0.25, 0, 0], [0.75, 0, 0]])), await agent.act(act([[0.375, 0, 0], [1, 0, 0]]))];
    const e = await agent.act(act([[0, 1, 0]], 'other'));
    const d = { a0: ids(a)[0], a1: ids(a)[1], b0: ids(b)[0], b1: ids(b)[1], c0: ids(c)[0], c1: ids(c)[1], e0: ids(e)[0] } as Record<string, string>;
    await agent.feedback([
      { decisionId: d['a0'] as string, reward: 1, done: false },
      { decisionId: d['a1'] as string, reward: 10, done: false },
      { decisionId: d['e0'] as string, reward: 5, done: true },
    ]);
    await agent.feedback([
      { decisionId: d['b0'] as string, reward: 2, done: true },
      { decisionId: d['c0'] as string, reward: 3, done: false },
      { decisionId: d['c1'] as string, reward: 30, done: false },
    ]);
    return d;
  }

  it('forms trajectories by (routing key, row) in decision order, registers a new version with provenance, consumes the data', async () => {
    const { agent } = await fresh();
    const d = await scenario(agent);
    const parent = agent.policies.policy({ name: 'p', version: 1 }) as FakePolicy;
    const out = await agent.update({ policy: { name: 'p', version: 0 }, config: { epochs: 2 } });
    const seen = parent.updates[0]?.trajectories ?? [];
    expect(seen.map((t) => t.map((x) => x.reward))).toEqual([[1, 2], [10], [3], [30], [5]]);
    expect(seen.map((t) => t.map((x) => x.done))).toEqual([[false, true], [false], [false], [false], [true]]);
    // Observations are the rows as sent; actions the fake's level (floor(0.125*5)=0, floor(0.25*5)=1).
    expect(seen[0]?.map((x) => [Array.from(x.observation), x.action, x.value])).toEqual([[[0.125, 0, 0], 0, 0.125], [[0.25, 0, 0], 1, 0.25]]);
    expect(parent.updates[0]?.config).toEqual({ ...PPO, epochs: 2 });
    expect(out.transitionsUsed).toBe(6);
    expect(out.record).toMatchObject({ name: 'p', version: 2, parentVersion: 1, stage: 'candidate' });
    // Mean of 1, 2, 10, 3, 30, 5 = 51 / 6 = 8.5.
    expect(out.record.provenance).toMatchObject({
      trigger: 'update',
      parent: 'p:1',
      'data.transitions': '6',
      'data.trajectories': '5',
      'data.episodes': '2',
      'data.reward_mean': '8.5',
      'data.reward_min': '1',
      'data.reward_max': '30',
      'data.routing_keys': '2',
      'ppo.epochs': '2',
      'ppo.clip_ratio': '0.2',
    });
    expect(out.record.metrics).toContainEqual({ name: 'epochs_run', value: 2, split: 'ppo-update' });
    // Consumed: nothing buffered; b1 still pending.
    expect(agent.metrics({ name: 'p', version: 1 })).toMatchObject({ buffered: 0, pending: 1, rewarded: 6 });
    expect(await thrown(() => agent.update({ policy: { name: 'p', version: 1 } }))).toEqual(
      registryError('FAILED_PRECONDITION', 'policy p:1 has 0 rewarded transitions buffered; the update needs at least 1 (min_transitions)'),
    );
    // Consumed decisions cannot be rewarded again.
    expect(await thrown(() => agent.feedback([{ decisionId: d['a0'] as string, reward: 1, done: false }]))).toEqual(
      registryError('NOT_FOUND', `unknown decision ids (never issued, expired without a reward, or consumed by an update): ${d['a0']}`),
    );
  });

  it('stores the caller\'s context in the new version\'s provenance beside its own keys', async () => {
    const { agent } = await fresh();
    await scenario(agent);
    const out = await agent.update({ policy: { name: 'p', version: 1 }, provenance: { job: 'rl-7', round: '2', phase: 'episodes' } });
    expect(out.record.provenance).toMatchObject({ job: 'rl-7', round: '2', phase: 'episodes', trigger: 'update', parent: 'p:1', 'data.transitions': '6' });
    // Stored with the version's metadata.
    expect(agent.policies.get({ name: 'p', version: 2 }, 'ref').provenance).toMatchObject({ job: 'rl-7', phase: 'episodes' });
  });

  it('promotes on request; Act on version 0 then uses the new version', async () => {
    const { agent } = await fresh();
    await scenario(agent);
    const out = await agent.update({ policy: { name: 'p', version: 1 }, promote: true });
    expect(out.record.stage).toBe('promoted');
    const next = await agent.act(act([[0.125, 0, 0]]));
    // Generation 1 shifts the level by one: 0 → 1 (weight 0.25).
    expect([next.policy, next.decisions[0]?.weight]).toEqual([{ name: 'p', version: 2 }, 0.25]);
  });

  it.each([
    // [case, update input, code, exact message]
    ['too few transitions', { policy: { name: 'p', version: 1 }, minTransitions: 7 }, 'FAILED_PRECONDITION', 'policy p:1 has 6 rewarded transitions buffered; the update needs at least 7 (min_transitions)'],
    ['a bad clip ratio', { policy: { name: 'p', version: 1 }, config: { clipRatio: 0 } }, 'INVALID_ARGUMENT', '`hyperparameters.clip_ratio` must be a number in (0, 1], got 0'],
    ['fractional epochs', { policy: { name: 'p', version: 1 }, config: { epochs: 1.5 } }, 'INVALID_ARGUMENT', '`hyperparameters.epochs` must be an integer in [1, 1000], got 1.5'],
    ['an unknown version', { policy: { name: 'p', version: 5 } }, 'NOT_FOUND', 'policy p:5 does not exist (versions 1..1)'],
    ['provenance keys the agent sets', { policy: { name: 'p', version: 1 }, provenance: { job: 'j', parent: 'p:9', 'ppo.epochs': '1' } }, 'INVALID_ARGUMENT', '`provenance` may not set the keys the agent records itself (trigger, parent, replica, data.*, ppo.*), got "parent, ppo.epochs"'],
  ])('refuses %s and keeps the buffer', async (_name, input, code, message) => {
    const { agent } = await fresh();
    await scenario(agent);
    expect(await thrown(() => agent.update(input))).toEqual(registryError(code, message));
    expect(agent.metrics({ name: 'p', version: 1 }).buffered).toBe(6);
    expect(agent.policies.list().map((r) => r.version)).toEqual([1]);
  });

  it('refuses to update an archived version', async () => {
    const { agent } = await fresh();
    await scenario(agent);
    await agent.policies.archive({ name: 'p', version: 1 });
    expect(await thrown(() => agent.update({ policy: { name: 'p', version: 1 } }))).toEqual(registryError('FAILED_PRECONDITION', 'policy p:1 is archived; updates start from a live version'));
  });

  it('updates automatically once a version buffers autoUpdateTransitions rewarded transitions', async () => {
    const { agent } = await fresh({ autoUpdateTransitions: 3 });
    const d = ids(await agent.act(act([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])));
    const reward = (i: number): RewardInput => ({ decisionId: d[i] as string, reward: i, done: false });
    // 2 < 3 rewarded: no update.
    await expect(agent.feedback([reward(0), reward(1)])).resolves.toEqual({ accepted: 2, buffered: { 'p:1': 2 }, updated: [] });
    // 3 rewarded: p:2 is created from p:1 and the buffer is consumed.
    await expect(agent.feedback([reward(2)])).resolves.toEqual({ accepted: 1, buffered: { 'p:1': 0 }, updated: [{ name: 'p', version: 2 }] });
    expect(agent.policies.get({ name: 'p', version: 2 })).toMatchObject({ stage: 'candidate', parentVersion: 1, provenance: expect.objectContaining({ trigger: 'auto-update', 'data.transitions': '3' }) });
  });
});

describe('experiments through the agent', () => {
  async function withExperiment(): Promise<{ root: string; agent: Agent }> {
    const { root, agent } = await fresh();
    await agent.policies.register({ name: 'p', spec: SPEC3, policy: new FakePolicy(SPEC3, 1) });
    await agent.policies.register({ name: 'p', spec: SPEC3, policy: new FakePolicy(SPEC3, 2) });
    await agent.experiments.create('ab', [
      { name: 'control', policy: { name: 'p', version: 1 }, weight: 0.7, shadow: false },
      { name: 'treatment', policy: { name: 'p', version: 2 }, weight: 0.3, shadow: false },
      { name: 'candidate', policy: { name: 'p', version: 3 }, weight: 0, shadow: true },
    ]);
    return { root, agent };
  }

  it('splits keys 70/30 within 4σ, the same key always meets the same arm, also on another replica', async () => {
    const { root, agent } = await withExperiment();
    const target = { experiment: 'ab' };
    const n = 1000;
    const first: string[] = [];
    for (let i = 0; i < n; i++) first.push((await agent.act(act([[0, 0, 0]], `case-${i}`, target))).arm as string);
    // σ = sqrt(0.7 · 0.3 / 1000) = 0.0145; 4σ = 0.058 (the 10 000-key split is in routing.spec.ts).
    const share = first.filter((a) => a === 'control').length / n;
    expect(Math.abs(share - 0.7)).toBeLessThan(4 * Math.sqrt((0.7 * 0.3) / n));
    const replica = await openAgent(root, { replicaId: 'r2' });
    for (let i = 0; i < 100; i++) {
      const again = await agent.act(act([[0, 0, 0]], `case-${i}`, target));
      const elsewhere = await replica.act(act([[0, 0, 0]], `case-${i}`, target));
      expect([again.arm, elsewhere.arm]).toEqual([first[i], first[i]]);
      // The arm's policy decided: control = p:1, treatment = p:2.
      expect(again.policy.version).toBe(first[i] === 'control' ? 1 : 2);
    }
  });

  it('shadow arm decides on every request, is logged and rewardable, but never returned or trained on', async () => {
    const { agent } = await withExperiment();
    const out = await agent.act(act([[0.125, 0, 0], [0.5, 0, 0]], 'case-1', { experiment: 'ab' }));
    expect(out.shadowPolicy).toEqual({ name: 'p', version: 3 });
    // Returned decisions are the live arm's: generation g shifts level 0 → g, level 2 → 2 + g.
    const g = out.policy.version - 1;
    expect(out.decisions.map((d) => d.level)).toEqual([g, 2 + g]);
    expect(agent.metrics({ name: 'p', version: 3 })).toMatchObject({ decisions: 0, shadowDecisions: 2, pending: 2 });
    // Generation 2 (p:3) chose levels 2 and 4 → weights 0.5 and 1 → bins 5 and 9.
    expect(agent.metrics({ name: 'p', version: 3 }).weightHistogram).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    const shadowIds = ids(out).map((id) => `${id}.shadow`);
    await agent.feedback([{ decisionId: shadowIds[0] as string, reward: 0.5, done: true }]);
    expect(agent.metrics({ name: 'p', version: 3 })).toMatchObject({ rewarded: 1, meanReward: 0.5, buffered: 0, pending: 1 });
    expect(await thrown(() => agent.update({ policy: { name: 'p', version: 3 } }))).toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it('refuses an inactive experiment and a missing routing key', async () => {
    const { agent } = await withExperiment();
    expect(await thrown(() => agent.act(act([[0, 0, 0]], '', { experiment: 'ab' })))).toEqual(
      registryError('INVALID_ARGUMENT', '`routing_key` must be non-empty when the target is an experiment (it decides the arm), got ""'),
    );
    await agent.experiments.update('ab', { arms: [], active: false });
    expect(await thrown(() => agent.act(act([[0, 0, 0]], 'k', { experiment: 'ab' })))).toEqual(registryError('FAILED_PRECONDITION', 'experiment "ab" is not active'));
  });
});

describe('persistence and concurrency', () => {
  it('a new instance on the same folder has every acknowledged decision, reward, version, promotion and experiment', async () => {
    const { root, agent } = await fresh();
    await agent.policies.register({ name: 'p', spec: SPEC3 });
    await agent.policies.promote({ name: 'p', version: 2 });
    await agent.experiments.create('ab', [{ name: 'only', policy: { name: 'p', version: 1 }, weight: 1, shadow: false }]);
    const d = ids(await agent.act(act([[0.125, 0, 0], [0.5, 0, 0], [1, 0, 0]], 'k', { experiment: 'ab' })));
    await agent.feedback([{ decisionId: d[0] as string, reward: 3, done: false }]);
    const before = { metrics: agent.metrics({ name: 'p', version: 1 }), list: agent.policies.list(), experiment: agent.experiments.get('ab') };
    await agent.close();
    opened.splice(opened.indexOf(agent), 1);

    const again = await openAgent(root);
    expect({ metrics: again.metrics({ name: 'p', version: 1 }), list: again.policies.list(), experiment: again.experiments.get('ab') }).toEqual(before);
    expect(await thrown(() => again.feedback([{ decisionId: d[0] as string, reward: 1, done: false }]))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    await again.feedback([{ decisionId: d[1] as string, reward: 4, done: true }]);
    const parent = again.policies.policy({ name: 'p', version: 1 }) as FakePolicy;
    await again.update({ policy: { name: 'p', version: 1 } });
    // d0 (3) then d1 (4, done) are rows 0 and 1: two trajectories of one step each.
    expect(parent.updates[0]?.trajectories.map((t) => t.map((x) => [x.reward, x.done]))).toEqual([[[3, false]], [[4, true]]]);
  });

  it('drops a torn last record (a crash mid-write), compacts, and keeps counters through the compaction', async () => {
    const { root, agent } = await fresh();
    const d = ids(await agent.act(act([[0.125, 0, 0], [0.5, 0, 0]])));
    await agent.feedback([{ decisionId: d[0] as string, reward: 2, done: false }]);
    const metrics = agent.metrics({ name: 'p', version: 1 });
    await agent.close();
    opened.splice(opened.indexOf(agent), 1);
    appendFileSync(join(root, 'buffers', 'main', 'experience.log'), `{"k":"fb","r":[["${d[1]}",`);

    const second = await openAgent(root);
    expect(second.metrics({ name: 'p', version: 1 })).toEqual(metrics);
    expect(logOf(root)).not.toContain('"k":"fb"');
    await second.close();
    opened.splice(opened.indexOf(second), 1);
    // The compacted log (counter baseline + live decisions) replays to the same state.
    const third = await openAgent(root);
    expect(third.metrics({ name: 'p', version: 1 })).toEqual(metrics);
    await expect(third.feedback([{ decisionId: d[1] as string, reward: 6, done: true }])).resolves.toMatchObject({ buffered: { 'p:1': 2 } });
    expect(third.metrics({ name: 'p', version: 1 })).toMatchObject({ decisions: 2, rewarded: 2, meanReward: 4 });
  });

  it('keeps counts exact under many concurrent Act and Feedback calls, and the log replays to the same state', async () => {
    const { root, agent } = await fresh();
    // 40 Acts of 3 rows at once.
    const firstWave = await Promise.all(Array.from({ length: 40 }, (_, i) => agent.act(act([[0, 0, 0], [0.5, 0, 0], [1, 0, 0]], `job-${i % 7}`))));
    // Then, interleaved: feedback for each of those Acts (rewards 1..120) and 40 more Acts.
    const all = firstWave.flatMap(ids);
    const results = await Promise.all([
      ...firstWave.map((out, i) => agent.feedback(ids(out).map((id, j) => ({ decisionId: id, reward: i * 3 + j + 1, done: j === 2 })))),
      ...Array.from({ length: 40 }, (_, i) => agent.act(act([[0.25, 0, 0]], `job-${i}`))),
    ]);
    expect(results).toHaveLength(80);
    // Two concurrent rewards for one decision: exactly one wins.
    const extra = ids(await agent.act(act([[0, 0, 0]])))[0] as string;
    const race = await Promise.allSettled([1, 2].map((r) => agent.feedback([{ decisionId: extra, reward: r, done: false }])));
    expect(race.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    // decisions 120 + 40 + 1; rewards 1..120 (sum 7260) plus the race winner (1 or 2).
    const m = agent.metrics({ name: 'p', version: 1 });
    const winner = race.findIndex((r) => r.status === 'fulfilled') + 1;
    expect(m).toMatchObject({ decisions: 161, rewarded: 121, pending: 40, buffered: 121 });
    expect(m.meanReward).toBeCloseTo((7260 + winner) / 121, 10);
    expect(new Set(all).size).toBe(120);
    await agent.close();
    opened.splice(opened.indexOf(agent), 1);
    const again = await openAgent(root);
    expect(again.metrics({ name: 'p', version: 1 })).toEqual(m);
  });
});

describe('Agent metric hooks', () => {
  it('onReward: once per accepted reward, with the version whose decision it rewards; nothing for a refused request', async () => {
    const calls: [string, number][] = [];
    const { agent } = await fresh({ onReward: (policy, reward) => calls.push([`${policy.name}:${policy.version}`, reward]) });
    await agent.policies.register({ name: 'p', spec: SPEC3 }); // p:2, a candidate
    const v1 = ids(await agent.act(act([[0, 0, 0], [0.5, 0, 0]])));
    const v2 = ids(await agent.act(act([[1, 0, 0]], 'job', { policy: { name: 'p', version: 2 } })));
    await agent.feedback([
      { decisionId: v1[0] as string, reward: 0.5, done: false },
      { decisionId: v2[0] as string, reward: 2, done: true },
      { decisionId: v1[1] as string, reward: -1, done: true },
    ]);
    // Refused as a whole (one id unknown): no calls.
    await expect(agent.feedback([{ decisionId: 'main~nope', reward: 9, done: false }])).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(calls).toEqual([['p:1', 0.5], ['p:2', 2], ['p:1', -1]]);
  });

  it('onPromoted: every promoted version at open, then each change seen here or made by another replica (0 = none)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'agent-'));
    const seen: string[] = [];
    const agent = await openAgent(root, { onPromoted: (p) => seen.push(`${p.name}:${p.version}`) });
    const other = await openAgent(root, { replicaId: 'b' });
    // [step, what it does, promoted versions reported by `agent` during it]
    const steps: [string, () => Promise<unknown>, string[]][] = [
      ['register p (first version: promoted)', () => agent.policies.register({ name: 'p', spec: SPEC3 }), ['p:1']],
      ['register p:2 as a candidate', () => agent.policies.register({ name: 'p', spec: SPEC3 }), []],
      ['register q:1', () => agent.policies.register({ name: 'q', spec: SPEC3 }), ['q:1']],
      ['promote p:2', () => agent.policies.promote({ name: 'p', version: 2 }), ['p:2']],
      ['promote p:2 again', () => agent.policies.promote({ name: 'p', version: 2 }), []],
      ['archive p:2 (p has no promoted version)', () => agent.policies.archive({ name: 'p', version: 2 }), ['p:0']],
      ['replica b promotes p:1; this agent acts on p:1', async () => {
        await other.policies.promote({ name: 'p', version: 1 });
        return agent.act(act([[0, 0, 0]], 'job', { policy: { name: 'p', version: 0 } }));
      }, ['p:1']],
    ];
    for (const [step, run, expected] of steps) {
      const before = seen.length;
      await run();
      expect([step, seen.slice(before)]).toEqual([step, expected]);
    }
    // A new process reports every name's promoted version when it opens.
    const reopened: string[] = [];
    await openAgent(root, { replicaId: 'c', onPromoted: (p) => reopened.push(`${p.name}:${p.version}`) });
    expect(reopened.sort()).toEqual(['p:1', 'q:1']);
  });
});
