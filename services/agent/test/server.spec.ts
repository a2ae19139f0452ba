// Integration: the agent service over real gRPC (in-process servers on port 0,
// always shut down), with the real RL policies of @purify/rl.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionSpace, AgentServiceClient, PolicyStage, type ActRequest, type PolicySpec } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { agentService } from '../src';

const SPEC: PolicySpec = {
  actionSpace: ActionSpace.ACTION_SPACE_DISCRETE,
  weightLevels: [0, 0.25, 0.5, 0.75, 1],
  hiddenUnits: [16],
  featureSchemaVersion: 'v1',
  numFeatures: 3,
  seed: 11,
};

interface Running {
  server: RunningServer;
  client: AgentServiceClient;
  stop(): Promise<void>;
}

const running: Running[] = [];
async function start(artifactsDir: string, extra: string[] = []): Promise<Running> {
  const server = await startInProcess(agentService, ['--port', '0', '--artifacts-dir', artifactsDir, ...extra]);
  const client = createClient(AgentServiceClient, 'agent', { addresses: [server.address], defaultTimeoutMs: 20_000 });
  const r: Running = {
    server,
    client,
    stop: async () => {
      running.splice(running.indexOf(r), 1);
      client.close();
      await server.shutdown();
    },
  };
  running.push(r);
  return r;
}
afterAll(async () => {
  for (const r of [...running]) await r.stop();
});

const tmp = (): string => mkdtempSync(join(tmpdir(), 'agent-svc-'));
const rows = (n: number, seed = 0): number[] => Array.from({ length: n * 3 }, (_, i) => ((i * 7 + seed * 13) % 10) / 10);
const act = (override: Partial<ActRequest>): ActRequest => ({
  target: { $case: 'policy', policy: { name: 'p', version: 0 } },
  routingKey: 'job-1',
  observations: { schemaVersion: 'v1', numRows: 2, numFeatures: 3, values: [0, 0.5, 1, 0.2, 0.1, 0] },
  deterministic: false,
  context: {},
  ...override,
});

describe('agent service', () => {
  let svc: Running;
  beforeAll(async () => {
    svc = await start(tmp());
  });

  it('lists its service through reflection', async () => {
    expect(await listServices(svc.server.address)).toContain('purify.v1.AgentService');
  });

  it('runs an episode loop: Register → Act → Feedback → Update → new version → Promote → Act uses it', async () => {
    const c = svc.client;
    const v1 = await unaryCall(c, 'registerPolicy', { name: 'ep', spec: SPEC, provenance: { origin: 'test' }, weights: Buffer.alloc(0) });
    expect([v1.ref, v1.stage, v1.parentVersion]).toEqual([{ name: 'ep', version: 1 }, PolicyStage.POLICY_STAGE_PROMOTED, 0]);
    // Three episodes of 2 steps, 4 regions each: 24 rewarded transitions; reward = chosen weight.
    for (let episode = 0; episode < 3; episode++) {
      for (let step = 0; step < 2; step++) {
        const out = await unaryCall(c, 'act', act({ target: { $case: 'policy', policy: { name: 'ep', version: 0 } }, routingKey: `case-${episode}`, observations: { schemaVersion: 'v1', numRows: 4, numFeatures: 3, values: rows(4, step) } }));
        expect(out.policy).toEqual({ name: 'ep', version: 1 });
        expect(out.decisions).toHaveLength(4);
        for (const d of out.decisions) expect(d.weight).toBe(SPEC.weightLevels[d.level]);
        const fb = await unaryCall(c, 'feedback', { rewards: out.decisions.map((d) => ({ decisionId: d.decisionId, reward: d.weight, done: step === 1 })) });
        expect(fb).toEqual({ accepted: 4, buffered: { 'ep:1': episode * 8 + step * 4 + 4 }, updated: [] });
      }
    }
    const metrics = await unaryCall(c, 'getPolicyMetrics', { ref: { name: 'ep', version: 1 } });
    expect([metrics.decisions, metrics.rewarded, metrics.weightHistogram.reduce((a, b) => a + b, 0)]).toEqual([24, 24, 24]);

    const up = await unaryCall(c, 'update', { policy: { name: 'ep', version: 0 }, hyperparameters: { learningRate: 0, clipRatio: 0, gamma: 0, gaeLambda: 0, entropyCoef: 0, valueCoef: 0, epochs: 2, minibatchSize: 8, targetKl: 0, maxGradNorm: 0 }, minTransitions: 24, promote: false, provenance: { job: 'job-7', phase: 'episodes' } });
    expect(up.transitionsUsed).toBe(24);
    expect(up.epochsRun).toBeGreaterThanOrEqual(1);
    expect(up.policy?.ref).toEqual({ name: 'ep', version: 2 });
    expect(up.policy?.parentVersion).toBe(1);
    expect(up.policy?.stage).toBe(PolicyStage.POLICY_STAGE_CANDIDATE);
    // 3 keys × 4 rows = 12 trajectories of 2 steps, all ending with done.
    expect(up.policy?.provenance).toMatchObject({ job: 'job-7', phase: 'episodes', trigger: 'update', parent: 'ep:1', 'data.transitions': '24', 'data.trajectories': '12', 'data.episodes': '12', 'ppo.epochs': '2', 'ppo.minibatch_size': '8' });
    // The experience was consumed.
    await expect(unaryCall(c, 'update', { policy: { name: 'ep', version: 1 }, minTransitions: 0, promote: false, provenance: {} })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'update failed: policy ep:1 has 0 rewarded transitions buffered; the update needs at least 1 (min_transitions)',
    });

    await unaryCall(c, 'promotePolicy', { ref: { name: 'ep', version: 2 } });
    const after = await unaryCall(c, 'act', act({ target: { $case: 'policy', policy: { name: 'ep', version: 0 } }, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0.1, 0.2, 0.3] } }));
    expect(after.policy).toEqual({ name: 'ep', version: 2 });
    const listed = await unaryCall(c, 'listPolicies', { name: 'ep', includeArchived: false });
    expect(listed.policies.map((p) => [p.ref?.version, p.stage])).toEqual([
      [1, PolicyStage.POLICY_STAGE_CANDIDATE],
      [2, PolicyStage.POLICY_STAGE_PROMOTED],
    ]);
  });

  it('splits an A/B experiment within 4σ, keeps each key on its arm, and logs the shadow arm', async () => {
    const c = svc.client;
    for (const seed of [1, 2, 3]) await unaryCall(c, 'registerPolicy', { name: 'ab', spec: { ...SPEC, seed }, provenance: {}, weights: Buffer.alloc(0) });
    const exp = await unaryCall(c, 'createExperiment', {
      name: 'split',
      arms: [
        { name: 'control', policy: { name: 'ab', version: 1 }, weight: 0.7, shadow: false },
        { name: 'treatment', policy: { name: 'ab', version: 2 }, weight: 0.3, shadow: false },
        { name: 'candidate', policy: { name: 'ab', version: 3 }, weight: 0, shadow: true },
      ],
    });
    expect(exp.salt).toMatch(/^[0-9a-f]{16}$/);
    const n = 400;
    const arms: string[] = [];
    for (let i = 0; i < n; i++) {
      const out = await unaryCall(c, 'act', act({ target: { $case: 'experiment', experiment: 'split' }, routingKey: `case-${i}`, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0.5, 0.5, 0.5] } }));
      expect([out.experiment, out.shadowPolicy, out.policy?.version]).toEqual(['split', { name: 'ab', version: 3 }, out.arm === 'control' ? 1 : 2]);
      arms.push(out.arm);
    }
    // σ = sqrt(0.7 · 0.3 / 400) = 0.0229; 4σ = 0.092.
    const share = arms.filter((a) => a === 'control').length / n;
    expect(Math.abs(share - 0.7)).toBeLessThan(4 * Math.sqrt((0.7 * 0.3) / n));
    for (let i = 0; i < 40; i++) {
      const again = await unaryCall(c, 'act', act({ target: { $case: 'experiment', experiment: 'split' }, routingKey: `case-${i}`, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0.5, 0.5, 0.5] } }));
      expect(again.arm).toBe(arms[i]);
    }
    const shadow = await unaryCall(c, 'getPolicyMetrics', { ref: { name: 'ab', version: 3 } });
    expect([shadow.decisions, shadow.shadowDecisions]).toEqual([0, n + 40]);
    const control = await unaryCall(c, 'getPolicyMetrics', { ref: { name: 'ab', version: 1 } });
    const treatment = await unaryCall(c, 'getPolicyMetrics', { ref: { name: 'ab', version: 2 } });
    expect(control.decisions + treatment.decisions).toBe(n + 40);

    // Re-weighting to 50/50: keys only move from control to treatment.
    await unaryCall(c, 'updateExperiment', {
      name: 'split',
      active: true,
      arms: [
        { name: 'control', policy: { name: 'ab', version: 1 }, weight: 0.5, shadow: false },
        { name: 'treatment', policy: { name: 'ab', version: 2 }, weight: 0.5, shadow: false },
      ],
    });
    for (let i = 0; i < 100; i++) {
      const out = await unaryCall(c, 'act', act({ target: { $case: 'experiment', experiment: 'split' }, routingKey: `case-${i}`, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0.5, 0.5, 0.5] } }));
      if (arms[i] === 'treatment') expect(out.arm).toBe('treatment');
    }
  });

  it.each([
    // [case, rpc, request, code, exact message]
    ['Act: no target', 'act', act({ target: undefined }), 'INVALID_ARGUMENT', 'act failed: `target` must name a `policy` or an `experiment`, got nothing'],
    ['Act: 2 rows x 3 features but 5 values', 'act', act({ observations: { schemaVersion: 'v1', numRows: 2, numFeatures: 3, values: [1, 2, 3, 4, 5] } }), 'INVALID_ARGUMENT', 'act failed: `observations.values` must hold num_rows * num_features = 6 values, got 5'],
    ['Act: NaN at row 1, column 2', 'act', act({ observations: { schemaVersion: 'v1', numRows: 2, numFeatures: 3, values: [0, 0, 0, 0, 0, Number.NaN] } }), 'INVALID_ARGUMENT', 'act failed: `observations.values[5]` must be finite (row 1, feature 2), got "NaN"'],
    ['Act: unknown policy', 'act', act({}), 'NOT_FOUND', 'act failed: policy "p" is not registered'],
    ['Act: 4 features for a 3-feature policy', 'act', act({ target: { $case: 'policy', policy: { name: 'bad', version: 1 } }, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 4, values: [0, 0, 0, 0] } }), 'INVALID_ARGUMENT', 'act failed: `observations.num_features` must equal the num_features of policy bad:1 (3), got 4'],
    ['Act: archived version', 'act', act({ target: { $case: 'policy', policy: { name: 'bad', version: 2 } } }), 'FAILED_PRECONDITION', 'act failed: policy bad:2 is archived and refuses new decisions'],
    ['Act: unknown experiment', 'act', act({ target: { $case: 'experiment', experiment: 'nope' } }), 'NOT_FOUND', 'act failed: experiment "nope" does not exist'],
    ['Feedback: infinite reward', 'feedback', { rewards: [{ decisionId: 'd1', reward: 1, done: false }, { decisionId: 'd2', reward: Infinity, done: true }] }, 'INVALID_ARGUMENT', 'feedback failed: `rewards[1].reward` must be a finite number in [-Infinity, Infinity], got Infinity'],
    ['Feedback: unknown decision', 'feedback', { rewards: [{ decisionId: 'main~nope', reward: 1, done: false }] }, 'NOT_FOUND', 'feedback failed: unknown decision ids (never issued, expired without a reward, or consumed by an update): main~nope'],
    ['Update: nothing buffered', 'update', { policy: { name: 'bad', version: 1 }, minTransitions: 5, promote: false, provenance: {} }, 'FAILED_PRECONDITION', 'update failed: policy bad:1 has 0 rewarded transitions buffered; the update needs at least 5 (min_transitions)'],
    ['Register: no action space', 'registerPolicy', { name: 'x', spec: { ...SPEC, actionSpace: ActionSpace.ACTION_SPACE_UNSPECIFIED }, provenance: {}, weights: Buffer.alloc(0) }, 'INVALID_ARGUMENT', 'registerPolicy failed: `spec.action_space` must be ACTION_SPACE_DISCRETE or ACTION_SPACE_BETA, got "ACTION_SPACE_UNSPECIFIED"'],
    ['Register: corrupt weights', 'registerPolicy', { name: 'x', spec: SPEC, provenance: {}, weights: Buffer.from('garbage') }, 'INVALID_ARGUMENT', /^registerPolicy failed: `weights` must be serialized policy weights \(.+\), got "7 bytes"$/],
    ['Experiment: weights sum to 0.9', 'createExperiment', { name: 'e', arms: [{ name: 'a', policy: { name: 'bad', version: 1 }, weight: 0.6, shadow: false }, { name: 'b', policy: { name: 'bad', version: 1 }, weight: 0.3, shadow: false }] }, 'INVALID_ARGUMENT', 'createExperiment failed: `arms[].weight` of the live arms must sum to 1 (±0.000001), got "0.8999999999999999 (a=0.6 + b=0.3)"'],
    ['GetPolicy: unknown version', 'getPolicy', { ref: { name: 'bad', version: 9 } }, 'NOT_FOUND', 'getPolicy failed: policy bad:9 does not exist (versions 1..2)'],
  ] as [string, 'act', ActRequest, string, string | RegExp][])('%s', async (_name, rpc, request, code, message) => {
    const c = svc.client;
    if ((await unaryCall(c, 'listPolicies', { name: 'bad', includeArchived: true })).policies.length === 0) {
      await unaryCall(c, 'registerPolicy', { name: 'bad', spec: SPEC, provenance: {}, weights: Buffer.alloc(0) });
      await unaryCall(c, 'registerPolicy', { name: 'bad', spec: SPEC, provenance: {}, weights: Buffer.alloc(0) });
      await unaryCall(c, 'archivePolicy', { ref: { name: 'bad', version: 2 } });
    }
    await expect(unaryCall(c, rpc, request)).rejects.toMatchObject({ code, message });
  });
});

describe('agent service restart', () => {
  it('keeps policies, experiments, metrics and buffered experience across a restart on the same artifacts dir', async () => {
    const dir = tmp();
    const first = await start(dir);
    const c = first.client;
    await unaryCall(c, 'registerPolicy', { name: 'r', spec: SPEC, provenance: {}, weights: Buffer.alloc(0) });
    await unaryCall(c, 'registerPolicy', { name: 'r', spec: { ...SPEC, seed: 5 }, provenance: {}, weights: Buffer.alloc(0) });
    await unaryCall(c, 'createExperiment', { name: 'x', arms: [{ name: 'a', policy: { name: 'r', version: 1 }, weight: 0.5, shadow: false }, { name: 'b', policy: { name: 'r', version: 2 }, weight: 0.5, shadow: false }] });
    const out = await unaryCall(c, 'act', act({ target: { $case: 'policy', policy: { name: 'r', version: 1 } }, observations: { schemaVersion: 'v1', numRows: 3, numFeatures: 3, values: rows(3) } }));
    const [d0, d1, d2] = out.decisions.map((d) => d.decisionId) as [string, string, string];
    await unaryCall(c, 'feedback', { rewards: [{ decisionId: d0, reward: 1, done: false }] });
    const before = {
      policies: await unaryCall(c, 'listPolicies', { name: '', includeArchived: true }),
      experiment: await unaryCall(c, 'getExperiment', { name: 'x' }),
      metrics: await unaryCall(c, 'getPolicyMetrics', { ref: { name: 'r', version: 1 } }),
      arms: await Promise.all([0, 1, 2, 3, 4].map(async (i) => (await unaryCall(c, 'act', act({ target: { $case: 'experiment', experiment: 'x' }, routingKey: `k${i}`, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0, 0, 0] } }))).arm)),
    };
    await first.stop();

    const second = await start(dir);
    const c2 = second.client;
    expect(await unaryCall(c2, 'listPolicies', { name: '', includeArchived: true })).toEqual(before.policies);
    expect(await unaryCall(c2, 'getExperiment', { name: 'x' })).toEqual(before.experiment);
    // The 5 experiment Acts above were counted too (they hit r:1 or r:2); compare r:1 after them.
    const metricsAfter = await unaryCall(c2, 'getPolicyMetrics', { ref: { name: 'r', version: 1 } });
    expect(metricsAfter.rewarded).toBe(before.metrics.rewarded);
    expect(metricsAfter.decisions).toBe(before.metrics.decisions + before.arms.filter((a) => a === 'a').length);
    const arms = await Promise.all([0, 1, 2, 3, 4].map(async (i) => (await unaryCall(c2, 'act', act({ target: { $case: 'experiment', experiment: 'x' }, routingKey: `k${i}`, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0, 0, 0] } }))).arm));
    expect(arms).toEqual(before.arms);
    // d0 was rewarded before the restart; d1 and d2 are still pending.
    await expect(unaryCall(c2, 'feedback', { rewards: [{ decisionId: d0, reward: 2, done: false }] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: `feedback failed: \`rewards[].decision_id\` must not be rewarded twice; already rewarded, got "${d0}"` });
    await expect(unaryCall(c2, 'feedback', { rewards: [{ decisionId: d1, reward: 1, done: true }, { decisionId: d2, reward: 0, done: true }] })).resolves.toEqual({ accepted: 2, buffered: { 'r:1': 3 }, updated: [] });
    const up = await unaryCall(c2, 'update', { policy: { name: 'r', version: 1 }, minTransitions: 3, promote: true, provenance: {} });
    expect([up.transitionsUsed, up.policy?.ref, up.policy?.stage]).toEqual([3, { name: 'r', version: 3 }, PolicyStage.POLICY_STAGE_PROMOTED]);
    await second.stop();
  });
});
