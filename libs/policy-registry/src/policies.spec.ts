import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeFactory, FakePolicy, SPEC3, registryError, thrown } from './fake-policy.test-util';
import { PolicyRegistry } from './policies';
import type { AgentPolicySpec } from './types';

const fresh = (): { root: string; reg: PolicyRegistry } => {
  const root = mkdtempSync(join(tmpdir(), 'policies-'));
  return { root, reg: new PolicyRegistry(root, fakeFactory, () => new Date('2025-01-02T03:04:05Z')) };
};

describe('PolicyRegistry', () => {
  it('numbers versions 1, 2, 3 per name, promotes the first automatically, keeps names apart', async () => {
    const { reg } = fresh();
    const a1 = await reg.register({ name: 'a', spec: SPEC3, provenance: { origin: 'test' } });
    const a2 = await reg.register({ name: 'a', spec: SPEC3 });
    const b1 = await reg.register({ name: 'b', spec: { ...SPEC3, numFeatures: 5 } });
    const a3 = await reg.register({ name: 'a', spec: SPEC3, promote: true });
    // versions: a → 1, 2, 3; b → 1. First of each name promoted; a3 asked to be promoted.
    expect([a1.version, a2.version, a3.version, b1.version]).toEqual([1, 2, 3, 1]);
    expect([a1.stage, a2.stage, b1.stage, a3.stage]).toEqual(['promoted', 'candidate', 'promoted', 'promoted']);
    expect(reg.list().map((r) => `${r.name}:${r.version}:${r.stage}`)).toEqual(['a:1:candidate', 'a:2:candidate', 'a:3:promoted', 'b:1:promoted']);
    expect(a1.provenance).toEqual({ origin: 'test' });
    expect(a1.createdAt.toISOString()).toBe('2025-01-02T03:04:05.000Z');
    expect(a1.parentVersion).toBe(0);
  });

  it('promote keeps exactly one promoted version; archive removes it from the default list and refuses promotion', async () => {
    const { reg } = fresh();
    for (let i = 0; i < 3; i++) await reg.register({ name: 'p', spec: SPEC3 });
    await reg.promote({ name: 'p', version: 2 });
    expect(reg.list({ name: 'p' }).map((r) => r.stage)).toEqual(['candidate', 'promoted', 'candidate']);
    expect(reg.get({ name: 'p', version: 0 }).version).toBe(2);
    await reg.archive({ name: 'p', version: 2 });
    // Archiving the promoted version leaves the name without one.
    expect(reg.list({ name: 'p' }).map((r) => r.version)).toEqual([1, 3]);
    expect(reg.list({ name: 'p', includeArchived: true }).map((r) => r.stage)).toEqual(['candidate', 'archived', 'candidate']);
    expect(await thrown(() => reg.get({ name: 'p', version: 0 }))).toEqual(registryError('FAILED_PRECONDITION', 'policy "p" has no promoted version (promote one, or name a version)'));
    expect(await thrown(() => reg.promote({ name: 'p', version: 2 }))).toEqual(registryError('FAILED_PRECONDITION', 'policy p:2 is archived and cannot be promoted'));
    // Archive is idempotent.
    expect((await reg.archive({ name: 'p', version: 2 })).stage).toBe('archived');
  });

  it('stores each version immutably: meta.json is untouched by stage changes; weights are the serialized bytes', async () => {
    const { root, reg } = fresh();
    const v1 = await reg.register({ name: 'p', spec: SPEC3 });
    const metaPath = join(root, 'policies', 'p', 'v1', 'meta.json');
    const before = readFileSync(metaPath, 'utf8');
    await reg.register({ name: 'p', spec: SPEC3, promote: true });
    await reg.archive({ name: 'p', version: 1 });
    expect(readFileSync(metaPath, 'utf8')).toBe(before);
    expect(readFileSync(join(root, 'policies', 'p', 'v1', 'weights.bin'), 'utf8')).toBe(JSON.stringify({ fake: 1, spec: { actionSpace: 'discrete', weightLevels: [0, 0.25, 0.5, 0.75, 1], hiddenUnits: [8], numFeatures: 3, seed: 7 }, generation: 0 }));
    expect(v1.spec).toEqual(SPEC3);
    // No temporary folders left behind.
    expect(readdirSync(join(root, 'policies', 'p')).sort()).toEqual(['state.json', 'v1', 'v2']);
  });

  it('records provenance of an update: parent, metrics, the given policy', async () => {
    const { root, reg } = fresh();
    await reg.register({ name: 'p', spec: SPEC3 });
    const trained = new FakePolicy(SPEC3, 4);
    const v2 = await reg.register({ name: 'p', spec: SPEC3, policy: trained, parentVersion: 1, provenance: { 'data.transitions': '12' }, metrics: [{ name: 'entropy', value: 1.5, split: 'ppo-update' }] });
    const again = new PolicyRegistry(root, fakeFactory);
    const loaded = again.get({ name: 'p', version: 2 });
    expect(loaded).toEqual({ ...v2 });
    expect(loaded.parentVersion).toBe(1);
    expect(loaded.metrics).toEqual([{ name: 'entropy', value: 1.5, split: 'ppo-update' }]);
    // The reloaded network is the one that was registered (generation 4).
    expect((again.policy(loaded) as FakePolicy).generation).toBe(4);
    again.close();
    reg.close();
  });

  it('two registries on one folder never hand out the same version (claimed by rename)', async () => {
    const { root, reg } = fresh();
    const other = new PolicyRegistry(root, fakeFactory);
    const all = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? reg : other).register({ name: 'p', spec: SPEC3 })));
    // 10 registrations through two instances: versions 1..10, each once.
    expect(all.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The other instance sees a promotion made through the first (state.json re-read when it changes).
    await reg.promote({ name: 'p', version: 7 });
    expect(other.get({ name: 'p', version: 0 }).version).toBe(7);
  });

  const base: AgentPolicySpec = SPEC3;
  it.each([
    // [case, spec, exact message]
    ['one level', { ...base, weightLevels: [1] }, '`spec.weight_levels` must list at least 2 weight levels for the discrete space, got [1]'],
    ['descending levels', { ...base, weightLevels: [0, 1, 0.5] }, '`spec.weight_levels` must be strictly ascending, got [0, 1, 0.5]'],
    ['level above 1', { ...base, weightLevels: [0, 1.5] }, '`spec.weight_levels[1]` must be in [0, 1], got 1.5'],
    ['beta with levels', { ...base, actionSpace: 'beta', weightLevels: [0, 1] }, '`spec.weight_levels` must be empty for the beta space, got [0, 1]'],
    ['no features', { ...base, numFeatures: 0 }, '`spec.num_features` must be an integer in [1, 4096], got 0'],
    ['no hidden layer', { ...base, hiddenUnits: [] }, '`spec.hidden_units` must list at least one hidden layer width, got []'],
    ['empty schema version', { ...base, featureSchemaVersion: '' }, '`spec.feature_schema_version` must be a non-empty string of at most 64 printable characters, got ""'],
  ] as [string, AgentPolicySpec, string][])('refuses a bad spec: %s', async (_name, spec, message) => {
    const { reg } = fresh();
    expect(await thrown(() => reg.register({ name: 'p', spec }))).toEqual(registryError('INVALID_ARGUMENT', message));
    expect(reg.list()).toEqual([]);
  });

  it.each([
    // [case, ref, code, exact message]
    ['unknown name', { name: 'nope', version: 1 }, 'NOT_FOUND', 'policy "nope" is not registered'],
    ['unknown version', { name: 'p', version: 9 }, 'NOT_FOUND', 'policy p:9 does not exist (versions 1..1)'],
    ['bad name', { name: '../x', version: 1 }, 'INVALID_ARGUMENT', '`ref.name` must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "../x"'],
  ])('get refuses %s', async (_name, ref, code, message) => {
    const { reg } = fresh();
    await reg.register({ name: 'p', spec: SPEC3 });
    expect(await thrown(() => reg.get(ref))).toEqual(registryError(code, message));
  });

  it('refuses imported weights whose network differs from the spec, and unreadable weights', async () => {
    const { reg } = fresh();
    const other = new FakePolicy({ ...SPEC3, numFeatures: 4 }).serialize();
    expect(await thrown(() => reg.register({ name: 'p', spec: SPEC3, weights: other }))).toEqual(
      registryError('INVALID_ARGUMENT', '`weights` must hold a policy with the given spec (discrete, 3 features, hidden [8], levels [0, 0.25, 0.5, 0.75, 1]), got "discrete, 4 features, hidden [8], levels [0, 0.25, 0.5, 0.75, 1]"'),
    );
    await expect(reg.register({ name: 'p', spec: SPEC3, weights: new Uint8Array([1, 2, 3]) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^`weights` must be serialized policy weights \(.+\), got "3 bytes"$/) });
    expect(reg.list()).toEqual([]);
  });
});
