import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExperimentStore } from './experiments';
import { fakeFactory, registryError, SPEC3, thrown } from './fake-policy.test-util';
import { PolicyRegistry } from './policies';
import type { ExperimentArm } from './types';

async function setup(): Promise<{ root: string; reg: PolicyRegistry; store: ExperimentStore }> {
  const root = mkdtempSync(join(tmpdir(), 'experiments-'));
  const reg = new PolicyRegistry(root, fakeFactory);
  // p:1 (promoted), p:2, p:3 (archived), wide:1 (5 features)
  for (let i = 0; i < 3; i++) await reg.register({ name: 'p', spec: SPEC3 });
  await reg.archive({ name: 'p', version: 3 });
  await reg.register({ name: 'wide', spec: { ...SPEC3, numFeatures: 5 } });
  return { root, reg, store: new ExperimentStore(root, reg) };
}

const arm = (name: string, version: number, weight: number, shadow = false): ExperimentArm => ({ name, policy: { name: 'p', version }, weight, shadow });

describe('ExperimentStore', () => {
  it('creates an experiment with a salt, active, and reads it back from another instance', async () => {
    const { root, reg, store } = await setup();
    const e = await store.create('ab', [arm('control', 1, 0.7), arm('treat', 2, 0.3), arm('cand', 0, 0, true)]);
    expect(e.active).toBe(true);
    expect(e.salt).toMatch(/^[0-9a-f]{16}$/);
    expect(new ExperimentStore(root, reg).get('ab')).toEqual(e);
  });

  it('accepts live weights summing to 1 within floating-point rounding (0.1 + 0.2 + 0.7)', async () => {
    const { store } = await setup();
    // 0.1 + 0.2 + 0.7 = 0.9999999999999999 in doubles: within 1e-6 of 1.
    await expect(store.create('f', [arm('a', 1, 0.1), arm('b', 2, 0.2), arm('c', 0, 0.7)])).resolves.toMatchObject({ name: 'f' });
  });

  it.each([
    // [case, arms, code, exact message]
    ['no arms', [], 'INVALID_ARGUMENT', '`arms` must list at least one arm, got []'],
    ['weights sum to 0.9', [arm('a', 1, 0.6), arm('b', 2, 0.3)], 'INVALID_ARGUMENT', '`arms[].weight` of the live arms must sum to 1 (±0.000001), got "0.8999999999999999 (a=0.6 + b=0.3)"'],
    ['weights sum to 1.000002 (1 + 2e-6 in doubles)', [arm('a', 1, 0.5), arm('b', 2, 0.500002)], 'INVALID_ARGUMENT', '`arms[].weight` of the live arms must sum to 1 (±0.000001), got "1.0000019999999998 (a=0.5 + b=0.500002)"'],
    ['weight above 1', [arm('a', 1, 1.5)], 'INVALID_ARGUMENT', '`arms[0].weight` must be a finite number in [0, 1], got 1.5'],
    ['NaN weight', [arm('a', 1, Number.NaN)], 'INVALID_ARGUMENT', '`arms[0].weight` must be a finite number in [0, 1], got NaN'],
    ['duplicate arm name', [arm('a', 1, 0.5), arm('a', 2, 0.5)], 'INVALID_ARGUMENT', '`arms[1].name` must be unique (arms[0] has the same name), got "a"'],
    ['two shadow arms', [arm('a', 1, 1), arm('s1', 2, 0, true), arm('s2', 0, 0, true)], 'INVALID_ARGUMENT', '`arms[2].shadow` must be false: only one shadow arm is allowed (arms[1] is one), got true'],
    ['only a shadow arm', [arm('s', 1, 1, true)], 'INVALID_ARGUMENT', '`arms` must have at least one live (non-shadow) arm, got "1 shadow arm(s)"'],
    ['archived policy', [arm('a', 3, 1)], 'FAILED_PRECONDITION', '`arms[0].policy` names policy p:3, which is archived'],
    ['unknown version', [arm('a', 9, 1)], 'NOT_FOUND', 'policy p:9 does not exist (versions 1..3)'],
    [
      'arms reading different features',
      [arm('a', 1, 0.5), { name: 'w', policy: { name: 'wide', version: 1 }, weight: 0.5, shadow: false }],
      'INVALID_ARGUMENT',
      '`arms[1].policy` must read the same observations as arms[0] (schema "v1", 3 features), got "wide:1 with schema \\"v1\\", 5 features"',
    ],
  ] as [string, ExperimentArm[], string, string][])('refuses %s and stores nothing', async (_name, arms, code, message) => {
    const { store } = await setup();
    expect(await thrown(() => store.create('x', arms))).toEqual(registryError(code, message));
    expect(store.list()).toEqual([]);
  });

  it('refuses a second experiment of the same name and an unknown one', async () => {
    const { store } = await setup();
    await store.create('ab', [arm('a', 1, 1)]);
    expect(await thrown(() => store.create('ab', [arm('a', 1, 1)]))).toEqual(registryError('ALREADY_EXISTS', 'experiment "ab" already exists (change it with UpdateExperiment)'));
    expect(await thrown(() => store.get('nope'))).toEqual(registryError('NOT_FOUND', 'experiment "nope" does not exist'));
  });

  it('updates weights and active, keeps salt and creation time; empty arms keep the arms; another instance sees the change', async () => {
    let t = 1_000_000;
    const { root, reg } = await setup();
    const store = new ExperimentStore(root, reg, () => new Date(t));
    const other = new ExperimentStore(root, reg);
    const e0 = await store.create('ab', [arm('a', 1, 0.7), arm('b', 2, 0.3)]);
    expect(other.get('ab').arms.map((a) => a.weight)).toEqual([0.7, 0.3]);
    t += 5000;
    const e1 = await store.update('ab', { arms: [arm('a', 1, 0.5), arm('b', 2, 0.5)], active: true });
    expect([e1.salt, e1.createdAt, e1.updatedAt.getTime()]).toEqual([e0.salt, e0.createdAt, 1_005_000]);
    // The other instance re-reads the file because its inode/mtime changed.
    expect(other.get('ab').arms.map((a) => a.weight)).toEqual([0.5, 0.5]);
    const e2 = await store.update('ab', { arms: [], active: false });
    expect([e2.active, e2.arms]).toEqual([false, e1.arms]);
    // A refused update changes nothing.
    expect(await thrown(() => store.update('ab', { arms: [arm('a', 1, 0.2)], active: true }))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(store.get('ab')).toEqual(e2);
  });
});
