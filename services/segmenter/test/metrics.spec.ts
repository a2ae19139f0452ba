// The segmenter's own metrics on its Prometheus endpoint (--metrics-port), after
// real calls over gRPC: voxels and passes per model version, and the version of
// each model name that serves (LoadModel, load on first call, hot swap, unload).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DType, SegmenterServiceClient } from '@purify/proto';
import { createClient, freeLoopbackPort, Logger, scrape, scrapeText, startInProcess, unaryCall, valuesOf, type RunningServer } from '@purify/runtime';
import { ModelRegistry } from '@purify/artifacts';
import { makeVolume, type Vec3 } from '@purify/imaging';
import { bytesOfArray, segmentRemote } from '@purify/inference';
import { segmenterService } from '../src';
import { publishPointwise } from './test-models';

const root = mkdtempSync(join(tmpdir(), 'segmenter-metrics-'));
const registry = new ModelRegistry(root);
/** Must never reach a metric label. */
const CASE_ID = 'case-DOE-19610417';

let server: RunningServer;
let client: SegmenterServiceClient;

beforeAll(async () => {
  // pw:1, pw:2 and lazy:1 — one 1×1 convolution each (3 classes, any slice size).
  await publishPointwise(registry, 'pw', { w: [[-2, 1.5, 3]], b: [1, 0, -1.2] });
  await publishPointwise(registry, 'pw', { w: [[3, 1.5, -2]], b: [-1.2, 0, 1] });
  await publishPointwise(registry, 'lazy', { w: [[1, 0, -1]], b: [0, 0, 0] });
  server = await startInProcess(
    segmenterService,
    ['--port', '0', '--host', '127.0.0.1', '--metrics-port', String(await freeLoopbackPort()), '--artifacts-dir', root, '--intra-op-threads', '1', '--inter-op-threads', '1'],
    new Logger('silent'),
  );
  client = createClient(SegmenterServiceClient, 'segmenter', { addresses: [server.address], defaultTimeoutMs: 20_000, maxAttempts: 1 });
}, 60_000);
afterAll(async () => {
  client?.close();
  await server?.shutdown();
  rmSync(root, { recursive: true, force: true });
});

/** int16 voxels in [−100, 200] of `shape` [z, y, x]. */
function volume(shape: Vec3) {
  return makeVolume(Int16Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => (i * 37) % 300 - 100), shape);
}

const segment = (name: string, version: number, shape: Vec3) => segmentRemote(client, volume(shape), { model: { name, version }, caseId: CASE_ID, timeoutMs: 20_000 });

/** `count` float32 patches [count, 1, h, w] through PredictPatches. */
function predictPatches(name: string, version: number, count: number, h: number, w: number) {
  const data = Float32Array.from({ length: count * h * w }, (_, i) => (i % 10) / 10);
  return unaryCall(client, 'predictPatches', { model: { name, version }, patches: { shape: [count, 1, h, w], dtype: DType.DTYPE_FLOAT32, data: Buffer.from(bytesOfArray(data)) } });
}

describe('segmenter metrics', () => {
  it('counts the voxels of every inference pass by the model version that ran, and reports the serving version of each model', async () => {
    await unaryCall(client, 'loadModel', { ref: { name: 'pw', version: 1 } });
    // pw:1 serves: Segment [2, 16, 16] + Segment [3, 10, 12] + 3 patches of 8 × 12.
    await segment('pw', 0, [2, 16, 16]);
    await segment('pw', 1, [3, 10, 12]);
    await predictPatches('pw', 1, 3, 8, 12);
    // Hot swap to pw:2, then one Segment [2, 16, 16] on it.
    await unaryCall(client, 'loadModel', { ref: { name: 'pw', version: 2 } });
    await segment('pw', 0, [2, 16, 16]);
    // lazy:1 was never loaded: the call loads it, then segments [1, 8, 8].
    await segment('lazy', 1, [1, 8, 8]);
    // A version that does not exist runs nothing.
    await expect(segment('pw', 7, [1, 8, 8])).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const all = await scrape(server.metricsAddress as string);
    const pw1 = { purify_model_name: 'pw', purify_model_version: '1' };
    const pw2 = { purify_model_name: 'pw', purify_model_version: '2' };
    const lazy1 = { purify_model_name: 'lazy', purify_model_version: '1' };
    // [metric, labels, expected values]
    const expectations: [string, Record<string, string>, number[]][] = [
      ['purify_inference_voxels_total', pw1, [2 * 16 * 16 + 3 * 10 * 12 + 3 * 8 * 12]], // 512 + 360 + 288
      ['purify_inference_throughput_count', pw1, [3]],
      ['purify_inference_voxels_total', pw2, [2 * 16 * 16]],
      ['purify_inference_throughput_count', pw2, [1]],
      ['purify_inference_voxels_total', lazy1, [8 * 8]],
      ['purify_inference_throughput_count', lazy1, [1]],
      ['purify_inference_voxels_total', { purify_model_version: '7' }, []],
      ['purify_loaded_version', { purify_kind: 'model', purify_name: 'pw' }, [2]],
      ['purify_loaded_version', { purify_kind: 'model', purify_name: 'lazy' }, [1]],
    ];
    for (const [name, labels, expected] of expectations) {
      expect([name, labels, valuesOf(all, name, labels)]).toEqual([name, labels, expected]);
    }
    // Exactly these model series: nothing else labelled, and no label carries the case id.
    const series = all.filter((s) => s.name === 'purify_inference_voxels_total').map((s) => `${s.labels['purify_model_name']}:${s.labels['purify_model_version']}`);
    expect(series.sort()).toEqual(['lazy:1', 'pw:1', 'pw:2']);
    expect((await scrapeText(server.metricsAddress as string)).includes(CASE_ID)).toBe(false);
  });

  it('reports version 0 for a model name once it is unloaded', async () => {
    expect(await unaryCall(client, 'unloadModel', { ref: { name: 'lazy', version: 0 } })).toEqual({ wasLoaded: true });
    const all = await scrape(server.metricsAddress as string);
    expect(valuesOf(all, 'purify_loaded_version', { purify_kind: 'model', purify_name: 'lazy' })).toEqual([0]);
    expect(valuesOf(all, 'purify_loaded_version', { purify_kind: 'model', purify_name: 'pw' })).toEqual([2]);
  });
});
