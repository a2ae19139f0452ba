import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelRegistry } from '@purify/artifacts';
import { InferenceError } from './errors';
import { ModelPool } from './model-pool';
import { publishPointwise } from './test-models.test-util';

const config = { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'basic', executionProvider: 'cpu' } as const;

/** A pointwise model whose class-1 probability at input 0 is σ(b) (2 classes: logits (0, b)). */
const withBias = (b: number) => ({ w: [[0, 0]], b: [0, b] });

describe('ModelPool', () => {
  let root: string;
  let registry: ModelRegistry;
  let pool: ModelPool;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'inference-pool-'));
    registry = new ModelRegistry(root);
    await publishPointwise(registry, 'm', withBias(1));
    await publishPointwise(registry, 'm', withBias(-1));
    pool = new ModelPool(registry, config);
  });
  afterEach(async () => {
    await pool.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Class-1 probability of the leased model on a zero pixel: σ(1) ≈ 0.731 for v1, σ(−1) ≈ 0.269 for v2. */
  async function p1(name: string, version: number): Promise<number> {
    const lease = pool.acquire(name, version);
    try {
      return (await lease.model.predictBatch({ data: new Float32Array(1), shape: [1, 1, 1, 1] })).data[1] as number;
    } finally {
      lease.release();
    }
  }

  it('resolves version 0 to the latest at load time and to the serving version at acquire time', async () => {
    const outcome = await pool.load('m', 0);
    expect(outcome).toMatchObject({ info: { key: { name: 'm', version: 2 } }, replaced: undefined, changed: true });
    expect(await p1('m', 0)).toBeCloseTo(1 / (1 + Math.E), 6); // σ(−1)
    expect(await p1('m', 2)).toBeCloseTo(1 / (1 + Math.E), 6);
    // Loading the serving version again changes nothing.
    expect(await pool.load('m', 2)).toMatchObject({ changed: false });
  });

  it('hot swap: a lease taken before the swap keeps the old session until released', async () => {
    await pool.load('m', 1);
    const lease = pool.acquire('m', 0);
    const outcome = await pool.load('m', 2);
    expect(outcome.replaced).toEqual({ name: 'm', version: 1 });
    // The in-flight holder still runs version 1 …
    expect(lease.model.key.version).toBe(1);
    const out = await lease.model.predictBatch({ data: new Float32Array(1), shape: [1, 1, 1, 1] });
    expect(out.data[1]).toBeCloseTo(Math.E / (1 + Math.E), 6); // σ(1)
    expect(pool.retiredInUse).toBe(1);
    // … new requests get version 2.
    expect(await p1('m', 0)).toBeCloseTo(1 / (1 + Math.E), 6);
    lease.release();
    lease.release(); // a second release is ignored
    expect(pool.retiredInUse).toBe(0);
    expect(lease.model.isDisposed).toBe(true);
  });

  it('a failed load leaves the previous version serving', async () => {
    await pool.load('m', 1);
    const v3 = await publishPointwise(registry, 'm', withBias(5));
    writeFileSync(join(v3.dir, 'model.onnx'), 'corrupt');
    await expect(pool.load('m', 3)).rejects.toMatchObject({ kind: 'failed-precondition' });
    expect(pool.servingVersion('m')).toBe(1);
    expect(await p1('m', 0)).toBeCloseTo(Math.E / (1 + Math.E), 6);
  });

  it.each([
    // [case, action, kind, message]
    ['acquire of an unknown model', (p: ModelPool) => p.acquire('nope', 0), 'not-found', (r: string) => `model "nope" is not in the registry at ${r}`],
    ['acquire of an unknown version', (p: ModelPool) => p.acquire('m', 9), 'not-found', () => 'model "m" has no version 9 (versions: 1, 2)'],
    ['acquire of a model nobody loaded', (p: ModelPool) => p.acquire('m', 0), 'failed-precondition', () => 'model m is not loaded; call LoadModel first'],
    ['acquire of a version that is not the serving one', async (p: ModelPool) => (await p.load('m', 2), p.acquire('m', 1)), 'failed-precondition', () => 'model m:1 is not loaded (m:2 is serving); call LoadModel first'],
    ['load of an unknown version', (p: ModelPool) => p.load('m', 4), 'not-found', () => 'model "m" has no version 4 (versions: 1, 2)'],
  ])('%s', async (_case, action, kind, message) => {
    let caught: unknown;
    try {
      await action(pool);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InferenceError);
    expect(caught).toMatchObject({ kind, message: message(registry.root) });
  });

  it('unload lets leased requests finish, then releases the session', async () => {
    await pool.load('m', 1);
    const lease = pool.acquire('m', 1);
    expect(await pool.unload('m', 2)).toBe(false); // not the serving version
    expect(await pool.unload('m', 0)).toBe(true);
    expect(pool.loaded()).toEqual([]);
    expect(lease.model.isDisposed).toBe(false);
    lease.release();
    expect(lease.model.isDisposed).toBe(true);
  });

  it('acquireLoading loads a registered version that does not serve (another replica took the LoadModel), never for version 0', async () => {
    // Nothing serves: version 0 still asks for LoadModel; version 1 is loaded on the spot.
    await expect(pool.acquireLoading('m', 0)).rejects.toMatchObject({ kind: 'failed-precondition', message: 'model m is not loaded; call LoadModel first' });
    const first = await pool.acquireLoading('m', 1);
    expect([first.lease.model.key.version, first.loaded?.info.key.version, first.loaded?.replaced]).toEqual([1, 1, undefined]);
    first.lease.release();
    // Version 1 serves: no load. Version 2 swaps it in, as LoadModel would.
    const again = await pool.acquireLoading('m', 1);
    expect(again.loaded).toBeUndefined();
    again.lease.release();
    const swapped = await pool.acquireLoading('m', 2);
    expect([swapped.lease.model.key.version, swapped.loaded?.replaced]).toEqual([2, { name: 'm', version: 1 }]);
    swapped.lease.release();
    expect(await p1('m', 0)).toBeCloseTo(1 / (1 + Math.E), 6); // σ(−1): version 2 serves
    // An unknown version is still NOT_FOUND.
    await expect(pool.acquireLoading('m', 7)).rejects.toMatchObject({ kind: 'not-found', message: 'model "m" has no version 7 (versions: 1, 2)' });
  });

  it('serialises concurrent loads of one name: the last requested version wins', async () => {
    const [a, b] = await Promise.all([pool.load('m', 1), pool.load('m', 2)]);
    expect([a.info.key.version, b.info.key.version, b.replaced?.version]).toEqual([1, 2, 1]);
    expect(pool.servingVersion('m')).toBe(2);
  });
});
