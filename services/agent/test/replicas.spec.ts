/**
 * Two agent replicas on ONE artifacts directory (in-process servers on port 0,
 * `--replica-id a` and `b`), as two pods on a shared volume, plus a client that
 * balances round-robin over both. The consistency model under test (see
 * docs/agent.md, docs/deploying.md): policies and experiments live in the
 * shared store and every read re-checks the files it depends on, so a change
 * made through one replica is served by the other at its next request; arm
 * assignment is a pure function of (salt, arms, key), so a key meets the same
 * policy version on every replica; experience stays with the replica that
 * decided.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionSpace, AgentServiceClient, PolicyStage, type ActRequest, type ActResponse, type PolicySpec } from '@purify/proto';
import { createClient, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { agentService } from '../src';

const SPEC: PolicySpec = {
  actionSpace: ActionSpace.ACTION_SPACE_DISCRETE,
  weightLevels: [0, 0.5, 1],
  hiddenUnits: [8],
  featureSchemaVersion: 'v1',
  numFeatures: 3,
  seed: 1,
};
const KEYS = Array.from({ length: 120 }, (_, i) => `case-${i}`);

const dir = mkdtempSync(join(tmpdir(), 'agent-replicas-'));
const servers: RunningServer[] = [];
let a: AgentServiceClient;
let b: AgentServiceClient;
let both: AgentServiceClient;

beforeAll(async () => {
  for (const id of ['a', 'b']) servers.push(await startInProcess(agentService, ['--port', '0', '--artifacts-dir', dir, '--replica-id', id]));
  const [sa, sb] = servers as [RunningServer, RunningServer];
  a = createClient(AgentServiceClient, 'agent', { addresses: [sa.address], defaultTimeoutMs: 20_000 });
  b = createClient(AgentServiceClient, 'agent', { addresses: [sb.address], defaultTimeoutMs: 20_000 });
  both = createClient(AgentServiceClient, 'agent', { addresses: [sa.address, sb.address], defaultTimeoutMs: 20_000 });
}, 60_000);

afterAll(async () => {
  [a, b, both].forEach((c) => c?.close());
  await Promise.all(servers.map((s) => s.shutdown()));
  rmSync(dir, { recursive: true, force: true });
});

const actOn = (c: AgentServiceClient, target: ActRequest['target'], routingKey: string): Promise<ActResponse> =>
  unaryCall(c, 'act', { target, routingKey, observations: { schemaVersion: 'v1', numRows: 1, numFeatures: 3, values: [0.2, 0.5, 0.8] }, deterministic: true, context: {} });

/**
 * The documented assignment, computed here from its definition (docs/agent.md):
 * u = (first 52 bits of SHA-256(salt ␀ arm ␀ key) + ½) / 2^52, score = ln(u) / weight,
 * the highest score wins (arms with weight 0 never do).
 */
function expectedArm(salt: string, arms: readonly { name: string; weight: number }[], key: string): string {
  let best = '';
  let bestScore = -Infinity;
  for (const arm of arms) {
    if (arm.weight <= 0) continue;
    const hex = createHash('sha256').update(`${salt}\u0000${arm.name}\u0000${key}`).digest('hex').slice(0, 13); // 13 hex digits = 52 bits
    const u = (Number.parseInt(hex, 16) + 0.5) / 2 ** 52;
    const score = Math.log(u) / arm.weight;
    if (score > bestScore) [best, bestScore] = [arm.name, score];
  }
  return best;
}

describe('two agent replicas on one shared store', () => {
  it('the same routing key meets the same arm and policy version on both replicas, as the documented hash says', async () => {
    // Registered and the experiment created through replica a only.
    for (const seed of [1, 2]) await unaryCall(a, 'registerPolicy', { name: 'ab', spec: { ...SPEC, seed }, provenance: {}, weights: Buffer.alloc(0) });
    const arms = [
      { name: 'control', policy: { name: 'ab', version: 1 }, weight: 0.6, shadow: false },
      { name: 'treatment', policy: { name: 'ab', version: 2 }, weight: 0.4, shadow: false },
    ];
    const created = await unaryCall(a, 'createExperiment', { name: 'split', arms });
    // Replica b reads the same experiment (same salt) from the store.
    expect(await unaryCall(b, 'getExperiment', { name: 'split' })).toEqual(created);

    const target: ActRequest['target'] = { $case: 'experiment', experiment: 'split' };
    const seen = { control: 0, treatment: 0 } as Record<string, number>;
    for (const key of KEYS) {
      const [onA, onB, viaEither, again] = await Promise.all([actOn(a, target, key), actOn(b, target, key), actOn(both, target, key), actOn(both, target, key)]);
      const arm = expectedArm(created.salt, arms, key);
      const version = arm === 'control' ? 1 : 2;
      for (const out of [onA, onB, viaEither, again]) expect([key, out.arm, out.policy]).toEqual([key, arm, { name: 'ab', version }]);
      seen[arm] = (seen[arm] ?? 0) + 1;
    }
    // Both arms serve traffic (120 keys at 60/40: 4σ ≈ 0.18 either way).
    expect(seen['control']! / KEYS.length).toBeGreaterThan(0.6 - 0.18);
    expect(seen['treatment']! / KEYS.length).toBeGreaterThan(0.4 - 0.18);
    // Each replica recorded decisions of its own (4 Acts per key, two of them round-robin).
    const decided = servers.map((s) => s.requestCounts()['Act']?.['OK'] ?? 0);
    expect(decided.every((n) => n >= KEYS.length)).toBe(true);
    expect(decided.reduce((x, y) => x + y, 0)).toBe(4 * KEYS.length);
  });

  it('a version registered, promoted or re-weighted through one replica is served by the other at its next request', async () => {
    // Through b: a new version, then promoted.
    const v3 = await unaryCall(b, 'registerPolicy', { name: 'ab', spec: { ...SPEC, seed: 3 }, provenance: { via: 'b' }, weights: Buffer.alloc(0) });
    expect(v3.ref).toEqual({ name: 'ab', version: 3 });
    expect((await unaryCall(a, 'getPolicy', { ref: { name: 'ab', version: 3 } })).provenance).toEqual({ via: 'b' });
    const promoted: ActRequest['target'] = { $case: 'policy', policy: { name: 'ab', version: 0 } };
    expect((await actOn(a, promoted, 'k')).policy).toEqual({ name: 'ab', version: 1 });
    await unaryCall(b, 'promotePolicy', { ref: { name: 'ab', version: 3 } });
    expect((await actOn(a, promoted, 'k')).policy).toEqual({ name: 'ab', version: 3 });
    expect((await unaryCall(a, 'listPolicies', { name: 'ab', includeArchived: false })).policies.map((p) => [p.ref?.version, p.stage])).toEqual([
      [1, PolicyStage.POLICY_STAGE_CANDIDATE],
      [2, PolicyStage.POLICY_STAGE_CANDIDATE],
      [3, PolicyStage.POLICY_STAGE_PROMOTED],
    ]);

    // Through a: all traffic of the experiment to a treatment arm running v3; b routes every key there at once.
    await unaryCall(a, 'updateExperiment', {
      name: 'split',
      active: true,
      arms: [
        { name: 'control', policy: { name: 'ab', version: 1 }, weight: 0, shadow: false },
        { name: 'treatment', policy: { name: 'ab', version: 3 }, weight: 1, shadow: false },
      ],
    });
    for (const key of KEYS.slice(0, 30)) expect(await actOn(b, { $case: 'experiment', experiment: 'split' }, key)).toMatchObject({ arm: 'treatment', policy: { name: 'ab', version: 3 } });
  });

  it('concurrent registrations through both replicas claim distinct, consecutive version numbers', async () => {
    const register = (c: AgentServiceClient, seed: number) => unaryCall(c, 'registerPolicy', { name: 'race', spec: { ...SPEC, seed }, provenance: {}, weights: Buffer.alloc(0) });
    const made = await Promise.all(Array.from({ length: 10 }, (_, i) => register(i % 2 === 0 ? a : b, i + 1)));
    expect(made.map((p) => p.ref!.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const c of [a, b]) expect((await unaryCall(c, 'listPolicies', { name: 'race', includeArchived: false })).policies.map((p) => p.ref!.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('experience stays with the replica that decided: feedback through the other one is refused', async () => {
    const out = await actOn(a, { $case: 'policy', policy: { name: 'ab', version: 3 } }, 'k');
    const id = out.decisions[0]!.decisionId;
    expect(id.startsWith('a~')).toBe(true);
    await expect(unaryCall(b, 'feedback', { rewards: [{ decisionId: id, reward: 1, done: true }] })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: `feedback failed: decision ids issued by another agent replica (send feedback to the replica that decided; this is "b"): ${id}`,
    });
    expect(await unaryCall(a, 'feedback', { rewards: [{ decisionId: id, reward: 1, done: true }] })).toEqual({ accepted: 1, buffered: { 'ab:3': 1 }, updated: [] });
  });
});
