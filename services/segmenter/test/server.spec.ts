import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DType, SegmenterServiceClient, type SegmentRequest, type SegmentResponse, type VolumeHeader } from '@purify/proto';
import { Logger, createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { ModelRegistry } from '@purify/artifacts';
import { makeVolume, type Vec3, type Volume } from '@purify/imaging';
import { LoadedModel, bytesOfArray, chunksOf, ensureModelLoaded, segmentRemote, segmentVolume, volumeHeaderOf, type SegmentVolumeOptions } from '@purify/inference';
import { segmenterService } from '../src';
import { publishBytes, publishPointwise, publishUNet } from './test-models';

const root = mkdtempSync(join(tmpdir(), 'segmenter-'));
const registry = new ModelRegistry(root);
const SESSION = { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all', executionProvider: 'auto' } as const;
const MAX_VOLUME_BYTES = 200_000;
/** Two pointwise models that disagree: v1 favours class 2 on bright voxels, v2 class 0. */
const SWAP_V1 = { w: [[-2, 1.5, 3]], b: [1, 0, -1.2] };
const SWAP_V2 = { w: [[3, 1.5, -2]], b: [-1.2, 0, 1] };

let server: RunningServer;
let client: SegmenterServiceClient;
/** Every line the server logs (level debug: all it can write). */
const logLines: string[] = [];

beforeAll(async () => {
  // seg:1 — U-Net, 16×16 tile, trained (nominally) at 1 mm in-plane.
  await publishUNet(registry, 'seg', { depth: 2, numClasses: 3, seed: 21 }, { inputSizeYx: [16, 16], spacingXyMm: [1, 1] });
  await publishPointwise(registry, 'swap', SWAP_V1);
  await publishPointwise(registry, 'swap', SWAP_V2);
  await publishPointwise(registry, 'two', { w: [[1, -1], [0.5, 0.5]], b: [0, 0] }, { inputChannels: 2 });
  server = await startInProcess(segmenterService, [
    '--port', '0',
    '--artifacts-dir', root,
    '--intra-op-threads', '1',
    '--inter-op-threads', '1',
    '--max-volume-bytes', String(MAX_VOLUME_BYTES),
    '--chunk-bytes', '4096',
    '--batch-size', '4',
  ], new Logger('debug', {}, (line) => logLines.push(line)));
  client = createClient(SegmenterServiceClient, 'segmenter', { addresses: [server.address], defaultTimeoutMs: 20_000, maxAttempts: 1 });
  for (const name of ['seg', 'two']) await unaryCall(client, 'loadModel', { ref: { name, version: 0 } });
});
afterAll(async () => {
  client.close();
  await server.shutdown();
  rmSync(root, { recursive: true, force: true });
});

/** int16 CT-like voxels in [−300, 400] HU. */
function ctVolume(shape: Vec3, geometry: Parameters<typeof makeVolume>[2] = {}): Volume<Int16Array> {
  const data = Int16Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => Math.round(50 + 350 * Math.sin(i * 0.61) * Math.cos(i * 0.013 * (i % 7))));
  return makeVolume(data, shape, geometry);
}

const OBLIQUE = (() => {
  const [c, s] = [Math.cos(0.3), Math.sin(0.3)];
  // Rotation about the LPS y axis: slices are tilted, not axial.
  return [c, 0, s, 0, 1, 0, -s, 0, c];
})();

/** The same segmentation computed in this process with the same registry version and session settings. */
async function inProcess(name: string, version: number, volume: Volume, options: SegmentVolumeOptions) {
  const model = await LoadedModel.load(registry.get(name, version), SESSION);
  try {
    return await segmentVolume(model, volume, options);
  } finally {
    await model.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** Sends `messages` on a raw Segment stream; resolves with the status it ends with and the responses. */
function rawSegment(messages: SegmentRequest[]): Promise<{ code: number; details: string; responses: SegmentResponse[] }> {
  return new Promise((resolve) => {
    const responses: SegmentResponse[] = [];
    const call = client.segment({ deadline: Date.now() + 20_000 });
    call.on('data', (m: SegmentResponse) => responses.push(m));
    call.on('error', (err: { code: number; details: string }) => resolve({ code: err.code, details: err.details, responses }));
    call.on('end', () => resolve({ code: 0, details: '', responses }));
    messages.forEach((m) => call.write(m));
    call.end();
  });
}

const setupOf = (volume: VolumeHeader, model = { name: 'seg', version: 0 }, options = {}): SegmentRequest => ({ payload: { $case: 'setup', setup: { model, volume, options: { overlap: 0.5, flipTta: false, returnProbabilities: false, batchSize: 0, wholeSlice: false, ...options } } } });
const chunk = (byteOffset: number, data: Uint8Array): SegmentRequest => ({ payload: { $case: 'chunk', chunk: { byteOffset, data: Buffer.from(data) } } });

describe('segmenter service', () => {
  it('lists its service through reflection and reports its execution provider', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.SegmenterService');
    const info = await unaryCall(client, 'getInfo', {});
    // No CUDA provider library ships with onnxruntime-node here, so CPU serves.
    expect(info.capabilities).toMatchObject({ 'onnx.provider': 'cpu', 'onnx.providers_available': 'cpu', 'onnx.intra_op_threads': '1', 'onnx.graph_optimization': 'all' });
    expect(info.capabilities['onnx.cuda']).toMatch(/CUDA provider/);
    expect(info.capabilities['models.loaded']).toBe('seg:1@cpu,two:1@cpu');
  });

  it('LoadModel resolves version 0 to the latest and reports the model', async () => {
    const info = await unaryCall(client, 'loadModel', { ref: { name: 'swap', version: 0 } });
    const sha = createHash('sha256').update(readFileSync(join(root, 'models', 'swap', '2', 'model.onnx'))).digest('hex');
    expect(info).toMatchObject({ ref: { name: 'swap', version: 2 }, loaded: true, executionProvider: 'cpu', onnxSha256: sha, inputChannels: 1, inputSizeYx: [16, 16] });
    expect(info.classes.map((c) => c.name)).toEqual(['background', 'organ1', 'organ2']);
    const listed = await unaryCall(client, 'listModels', { includeRegistry: true, name: 'swap' });
    expect(listed.models.map((m) => [m.ref?.version, m.loaded])).toEqual([[1, false], [2, true]]);
  });

  it('Segment: an oblique, non-model-spacing volume comes back on its own grid, equal to in-process inference', async () => {
    // [5, 23, 37] int16 at (0.7, 0.8, 3) mm, tilted 0.3 rad; the model works at 1 mm: grid [5, 18, 26] → 2×2 tiles of 16 per slice.
    const volume = ctVolume([5, 23, 37], { spacingXyzMm: [0.7, 0.8, 3], originLpsMm: [-40, 12.5, 100], directionLps: OBLIQUE });
    const options = { overlap: 0.25, flipTta: true, returnProbabilities: true, batchSize: 3 };
    const got = await segmentRemote(client, volume, { model: { name: 'seg', version: 0 }, ...options, caseId: 'case-7', chunkBytes: 1000 });
    const expected = await inProcess('seg', 1, volume, options);
    expect(expected.modelGrid.shape).toEqual([5, 18, 26]);
    expect(got.result.model).toEqual({ name: 'seg', version: 1 });
    expect(got.result.labels).toEqual({ ...volumeHeaderOf(volume, { caseId: 'case-7' }), dtype: DType.DTYPE_UINT8 });
    expect(got.labels.shape).toEqual([5, 23, 37]);
    expect(got.labels.directionLps).toEqual(OBLIQUE);
    expect(Array.from(got.labels.data)).toEqual(Array.from(expected.labels.data));
    expect(new Set(got.labels.data).size).toBeGreaterThan(1);
    expect(got.probabilities?.shape).toEqual([3, 5, 23, 37]);
    expect(maxAbsDiff(got.probabilities!.data, expected.probabilities!)).toBeLessThan(1e-6);
    expect(got.result.classes).toHaveLength(3);
  });

  it('Segment with whole_slice: one window per slice, equal to in-process whole-slice inference and not to the tiled one', async () => {
    const volume = ctVolume([5, 23, 37], { spacingXyzMm: [0.7, 0.8, 3], originLpsMm: [-40, 12.5, 100], directionLps: OBLIQUE });
    const options = { overlap: 0.25, flipTta: false, returnProbabilities: true, batchSize: 3 };
    const got = await segmentRemote(client, volume, { model: { name: 'seg', version: 0 }, ...options, wholeSlice: true });
    const whole = await inProcess('seg', 1, volume, { ...options, wholeSlice: true });
    const tiled = await inProcess('seg', 1, volume, options);
    expect(whole.tilesPerSlice).toBe(1);
    expect(tiled.tilesPerSlice).toBe(4);
    expect(maxAbsDiff(got.probabilities!.data, whole.probabilities!)).toBeLessThan(1e-6);
    expect(maxAbsDiff(got.probabilities!.data, tiled.probabilities!)).toBeGreaterThan(1e-4);
  });

  it('logs a Segment call without the caller’s case id (a file name or DICOM UID may be in it)', async () => {
    const caseId = 'DOE^JANE-19610417.nii.gz';
    const before = logLines.length;
    const got = await segmentRemote(client, ctVolume([2, 16, 16]), { model: { name: 'seg', version: 0 }, caseId });
    expect(got.result.labels?.caseId).toBe(caseId);
    const lines = logLines.slice(before);
    expect(lines.filter((l) => (JSON.parse(l) as { msg: string }).msg === 'segmented')).toHaveLength(1);
    expect(lines.filter((l) => /DOE|JANE|19610417/.test(l))).toEqual([]);
  });

  it('PredictPatches equals predictBatch on the same crops', async () => {
    // 3 crops [3, 1, 8, 12], already normalised.
    const data = Float32Array.from({ length: 3 * 96 }, (_, i) => (Math.sin(i * 0.3) + 1) / 2);
    const res = await unaryCall(client, 'predictPatches', { model: { name: 'seg', version: 1 }, patches: { shape: [3, 1, 8, 12], dtype: DType.DTYPE_FLOAT32, data: Buffer.from(bytesOfArray(data)) } });
    expect(res.probabilities?.shape).toEqual([3, 3, 8, 12]);
    const got = new Float32Array(new Uint8Array(res.probabilities!.data).buffer);
    const model = await LoadedModel.load(registry.get('seg', 1), SESSION);
    try {
      const expected = await model.predictBatch({ data, shape: [3, 1, 8, 12] });
      expect(maxAbsDiff(got, expected.data)).toBeLessThan(1e-6);
    } finally {
      await model.dispose();
    }
  });

  it('hot swap: an in-flight Segment finishes on the version it started with; the next call uses the new one', async () => {
    await unaryCall(client, 'loadModel', { ref: { name: 'swap', version: 1 } });
    const volume = ctVolume([4, 24, 24]);
    const bytes = bytesOfArray(volume.data);
    const responses: SegmentResponse[] = [];
    const call = client.segment({ deadline: Date.now() + 20_000 });
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: SegmentResponse) => responses.push(m));
      call.on('error', reject);
      call.on('end', resolve);
    });
    // Setup and half of the voxels: the request now holds swap:1 …
    call.write(setupOf(volumeHeaderOf(volume), { name: 'swap', version: 0 }));
    call.write(chunk(0, bytes.subarray(0, 2304)));
    await new Promise((r) => setTimeout(r, 50));
    // … while LoadModel swaps to version 2.
    const swapped = await unaryCall(client, 'loadModel', { ref: { name: 'swap', version: 2 } });
    expect(swapped.ref?.version).toBe(2);
    call.write(chunk(2304, bytes.subarray(2304)));
    call.end();
    await done;
    const result = responses[0]?.payload?.$case === 'result' ? responses[0].payload.result : undefined;
    expect(result?.model).toEqual({ name: 'swap', version: 1 });
    const labels = Buffer.concat(responses.flatMap((m) => (m.payload?.$case === 'labels' ? [m.payload.labels.data] : [])));
    const v1 = await inProcess('swap', 1, volume, {});
    const v2 = await inProcess('swap', 2, volume, {});
    expect(Array.from(labels)).toEqual(Array.from(v1.labels.data));
    expect(Array.from(v1.labels.data)).not.toEqual(Array.from(v2.labels.data)); // the versions disagree, so the check means something
    const next = await segmentRemote(client, volume, { model: { name: 'swap', version: 0 } });
    expect(next.result.model).toEqual({ name: 'swap', version: 2 });
    expect(Array.from(next.labels.data)).toEqual(Array.from(v2.labels.data));
  });

  it('a failed LoadModel (corrupt model.onnx) leaves the previous version serving', async () => {
    await publishPointwise(registry, 'keep', SWAP_V1);
    await unaryCall(client, 'loadModel', { ref: { name: 'keep', version: 1 } });
    publishBytes(registry, 'keep', new TextEncoder().encode('not an onnx model'));
    await expect(unaryCall(client, 'loadModel', { ref: { name: 'keep', version: 0 } })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'loadModel failed: model keep:2: model.onnx is not an ONNX model (unsupported protobuf wire type 6 at byte 1)',
    });
    const volume = ctVolume([1, 16, 16]);
    const res = await segmentRemote(client, volume, { model: { name: 'keep', version: 0 } });
    expect(res.result.model).toEqual({ name: 'keep', version: 1 });
    expect(Array.from(res.labels.data)).toEqual(Array.from((await inProcess('keep', 1, volume, {})).labels.data));
  });

  it('ensureModelLoaded keeps the serving version for version 0 and loads what is not serving', async () => {
    await publishPointwise(registry, 'ensure', SWAP_V1);
    await unaryCall(client, 'loadModel', { ref: { name: 'ensure', version: 1 } });
    await publishPointwise(registry, 'ensure', SWAP_V2);
    // ensure:1 serves and version 0 is asked: no reload, even though ensure:2 is newer.
    expect((await ensureModelLoaded(client, { name: 'ensure', version: 0 })).ref).toEqual({ name: 'ensure', version: 1 });
    // An explicit other version is loaded (hot swap).
    expect((await ensureModelLoaded(client, { name: 'ensure', version: 2 })).ref).toEqual({ name: 'ensure', version: 2 });
    expect((await unaryCall(client, 'listModels', { includeRegistry: false, name: 'ensure' })).models.map((m) => m.ref?.version)).toEqual([2]);
  });

  it('UnloadModel stops serving; Segment then asks for LoadModel', async () => {
    await publishPointwise(registry, 'gone', SWAP_V1);
    await unaryCall(client, 'loadModel', { ref: { name: 'gone', version: 0 } });
    expect(await unaryCall(client, 'unloadModel', { ref: { name: 'gone', version: 0 } })).toEqual({ wasLoaded: true });
    expect(await unaryCall(client, 'unloadModel', { ref: { name: 'gone', version: 0 } })).toEqual({ wasLoaded: false });
    await expect(segmentRemote(client, ctVolume([1, 16, 16]), { model: { name: 'gone', version: 0 } })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'segment failed: model gone is not loaded; call LoadModel first',
    });
  });

  describe('bad input', () => {
    const int16 = (shape: number[]): VolumeHeader => ({ shapeZyx: shape, spacingXyzMm: [1, 1, 3], originLpsMm: [0, 0, 0], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1], dtype: DType.DTYPE_INT16, modality: 1, caseId: 'c' });
    const h = int16([1, 16, 16]); // 512 bytes
    const full = (offset = 0): SegmentRequest => chunk(offset, new Uint8Array(512));

    it.each([
      // [case, stream messages, grpc status, exact details]
      ['volume with a zero dim', [setupOf(int16([0, 128, 128]))], 3, '`setup.volume.shape_zyx` must have 3 positive dims [z, y, x], got [0, 128, 128]'],
      ['chunk before setup', [full()], 3, '`payload` must start with a `setup` message before any `chunk`, got "chunk"'],
      ['no model', [{ payload: { $case: 'setup', setup: { volume: h } } }], 3, '`setup.model` is required, got nothing'],
      ['unknown model', [setupOf(h, { name: 'nope', version: 0 }), full()], 5, `model "nope" is not in the registry at ${join(root, 'models')}`],
      ['unknown version', [setupOf(h, { name: 'seg', version: 9 }), full()], 5, 'model "seg" has no version 9 (versions: 1)'],
      ['a volume over the size limit', [setupOf(int16([2, 256, 256]))], 3, '`setup.volume` must hold at most 200000 bytes of voxels (the configured limit), got "262144 bytes for shape [2, 256, 256]"'],
      ['an unspecified dtype', [setupOf({ ...h, dtype: DType.DTYPE_UNSPECIFIED })], 3, '`setup.volume.dtype` must be one of DTYPE_UINT8, DTYPE_INT16, DTYPE_UINT16, DTYPE_INT32, DTYPE_FLOAT32, DTYPE_FLOAT64, got "DTYPE_UNSPECIFIED"'],
      ['a non-orthonormal direction', [setupOf({ ...h, directionLps: [1, 0, 0, 0, 2, 0, 0, 0, 1] })], 3, '`setup.volume.direction_lps` must be 9 values of an orthonormal row-major 3x3 matrix, got [1, 0, 0, 0, 2, 0, 0, 0, 1]'],
      ['a chunk at the wrong offset', [setupOf(h), chunk(4, new Uint8Array(8))], 3, '`chunk.byte_offset` must be 0 (the bytes received so far), got 4'],
      ['a chunk past the end', [setupOf(h), chunk(0, new Uint8Array(500)), chunk(500, new Uint8Array(20))], 3, '`chunk` runs past the 512 bytes of setup.volume (shape [1, 16, 16], DTYPE_INT16), got 20 bytes at offset 500'],
      ['a stream that ends early', [setupOf(h), chunk(0, new Uint8Array(100))], 3, '`chunk` stream ended after 100 of the 512 bytes of setup.volume (shape [1, 16, 16], DTYPE_INT16)'],
      ['a second setup', [setupOf(h), setupOf(h)], 3, '`payload` must be `chunk` after the `setup` message, got "setup"'],
      ['overlap of 1', [setupOf(h, undefined, { overlap: 1 }), full()], 3, '`setup.options.overlap` must be a number in [0, 1), got 1'],
      ['a batch size over the limit', [setupOf(h, undefined, { batchSize: 65 }), full()], 3, '`setup.options.batch_size` must be at most 64 (the configured limit; 0 = server default), got 65'],
      [
        'NaN voxels',
        [setupOf({ ...h, dtype: DType.DTYPE_FLOAT32, shapeZyx: [1, 1, 4] }), chunk(0, bytesOfArray(Float32Array.from([0, 1, NaN, 2])))],
        3,
        '`chunk.data` must hold finite voxels (no NaN or ±Inf) in setup.volume (shape [1, 1, 4], DTYPE_FLOAT32), got "NaN at voxel 2"',
      ],
      ['a volume for a 2-channel model', [setupOf(h, { name: 'two', version: 1 }), full()], 3, 'model two:1 takes 2 input channels; a volume gives 1 (use predictPatches with [n, 2, y, x] crops)'],
    ] as [string, SegmentRequest[], number, string][])('Segment refuses %s', async (_name, messages, code, details) => {
      const res = await rawSegment(messages);
      expect({ code: res.code, details: res.details }).toEqual({ code, details });
      expect(res.responses).toEqual([]);
    });

    it('Segment refuses probabilities over the configured limit', async () => {
      // seg has 3 classes: 3 × 16384 voxels × 4 bytes = 196608 bytes > 100000.
      const small = await startInProcess(segmenterService, ['--port', '0', '--artifacts-dir', root, '--max-probabilities-bytes', '100000']);
      const c2 = createClient(SegmenterServiceClient, 'segmenter', { addresses: [small.address], defaultTimeoutMs: 20_000, maxAttempts: 1 });
      try {
        await unaryCall(c2, 'loadModel', { ref: { name: 'seg', version: 1 } });
        await expect(segmentRemote(c2, ctVolume([4, 64, 64]), { model: { name: 'seg', version: 0 }, returnProbabilities: true })).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
          message: 'segment failed: `setup.options.return_probabilities` would stream 196608 bytes (3 classes × 16384 voxels × 4), over the configured limit of 100000, got true',
        });
      } finally {
        c2.close();
        await small.shutdown();
      }
    });

    it('Segment refuses a volume whose working memory exceeds the whole budget; over the concurrency limit a call waits its turn, and one more than the queue holds is refused', async () => {
      const small = await startInProcess(segmenterService, ['--port', '0', '--artifacts-dir', root, '--memory-budget-bytes', String(2 ** 20), '--max-concurrent-segments', '1', '--max-waiting-segments', '1', '--segment-wait-ms', '60000']);
      const c2 = createClient(SegmenterServiceClient, 'segmenter', { addresses: [small.address], defaultTimeoutMs: 20_000, maxAttempts: 1 });
      const model = { name: 'seg', version: 1 };
      try {
        await unaryCall(c2, 'loadModel', { ref: model });
        // int16 [16, 128, 128]: 512 KiB of voxels plus two float32 copies and the labels — over 1 MiB on its own.
        await expect(segmentRemote(c2, ctVolume([16, 128, 128]), { model })).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
          message: expect.stringMatching(/^segment failed: Segment of setup\.volume \(shape \[16, 128, 128\], DTYPE_INT16\) needs about \d+\.\d MiB of working memory, more than this server's whole budget of 1\.0 MiB \(--memory-budget-bytes\)/),
        });
        const fits = ctVolume([2, 32, 32]);
        expect((await segmentRemote(c2, fits, { model })).labels.shape).toEqual([2, 32, 32]);
        // A stream that sent its setup and no voxels holds the only slot.
        const held = c2.segment({ deadline: Date.now() + 20_000 });
        held.on('error', () => undefined);
        held.write(setupOf(volumeHeaderOf(fits), model));
        const outcome = async (): Promise<string> => segmentRemote(c2, fits, { model }).then(() => 'ok', (err: { code: string; message: string }) => `${err.code}: ${err.message}`);
        // The next call waits behind the held one; a third finds the one-place queue taken and is refused.
        const waiting = outcome();
        let refused = '';
        for (let i = 0; i < 50 && refused === ''; i++) {
          const o = await outcome();
          if (o !== 'ok') refused = o;
          else await new Promise((r) => setTimeout(r, 100));
        }
        expect(refused).toBe('RESOURCE_EXHAUSTED: segment failed: Segment of setup.volume (shape [2, 32, 32], DTYPE_INT16): 1 calls are running, the limit is 1 (--max-concurrent-segments); 1 calls wait, at most 1 for 60000 ms; retry later');
        // Cancelling the held stream releases its reservation: the waiting call runs.
        held.cancel();
        expect(await waiting).toBe('ok');
        expect(await outcome()).toBe('ok');
      } finally {
        c2.close();
        await small.shutdown();
      }
    });

    const patches = (shape: number[], dtype = DType.DTYPE_FLOAT32, bytes?: number) => ({
      model: { name: 'seg', version: 1 },
      patches: { shape, dtype, data: Buffer.alloc(bytes ?? shape.reduce((a, b) => a * b, 1) * 4) },
    });
    it.each([
      // [case, request, error code, exact message]
      ['a patch size that is not a multiple of 2', patches([1, 1, 8, 9]), 'INVALID_ARGUMENT', '`patches.shape` y and x must be multiples of 2 (the size multiple of model seg:1), got shape [1, 1, 8, 9]'],
      ['a channel mismatch', patches([2, 3, 8, 8]), 'INVALID_ARGUMENT', '`patches.shape` has 3 channels but model seg:1 takes 1, got shape [2, 3, 8, 8]'],
      ['a 3-D shape', patches([1, 8, 8]), 'INVALID_ARGUMENT', '`patches.shape` must be [n, c, y, x] with positive dims, got [1, 8, 8]'],
      ['float64 data', patches([1, 1, 8, 8], DType.DTYPE_FLOAT64), 'INVALID_ARGUMENT', '`patches.dtype` must be DTYPE_FLOAT32, got "DTYPE_FLOAT64"'],
      ['data of the wrong length', patches([1, 1, 8, 8], DType.DTYPE_FLOAT32, 100), 'INVALID_ARGUMENT', '`patches.data` must hold 256 bytes (float32 [1, 1, 8, 8]), got "100 bytes"'],
      ['an unknown model', { ...patches([1, 1, 8, 8]), model: { name: 'nope', version: 0 } }, 'NOT_FOUND', `model "nope" is not in the registry at ${join(root, 'models')}`],
    ])('PredictPatches refuses %s', async (_name, request, code, message) => {
      await expect(unaryCall(client, 'predictPatches', request)).rejects.toMatchObject({ code, message: `predictPatches failed: ${message}` });
    });

    it('LoadModel refuses a model folder missing model.onnx, a class-count mismatch and an unknown name', async () => {
      const missing = await publishPointwise(registry, 'broken', SWAP_V1);
      rmSync(join(missing.dir, 'model.onnx'));
      await publishUNet(registry, 'mismatch', { depth: 2, numClasses: 3 }, { metaClasses: 5 });
      const cases: [string, string, string][] = [
        // [model name, error code, exact message]
        ['broken', 'FAILED_PRECONDITION', `loadModel failed: model broken:1 is missing model.onnx in ${missing.dir}`],
        ['mismatch', 'FAILED_PRECONDITION', 'loadModel failed: model mismatch:1: class-count mismatch: meta.json lists 5 classes but model.onnx declares purify.num_classes = 3'],
        ['unknown', 'NOT_FOUND', `loadModel failed: model "unknown" is not in the registry at ${join(root, 'models')}`],
        ['../etc', 'INVALID_ARGUMENT', 'loadModel failed: `ref.name` must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "../etc"'],
      ];
      for (const [name, code, message] of cases) {
        await expect(unaryCall(client, 'loadModel', { ref: { name, version: 0 } })).rejects.toMatchObject({ code, message });
      }
    });
  });

  it('streams labels and probabilities in chunks of the configured size', async () => {
    // [2, 40, 40] uint8 labels = 3200 bytes < 4096: one label chunk; probabilities 3 × 3200 × 4 = 38400 bytes: 10 chunks of ≤ 4096.
    const volume = ctVolume([2, 40, 40], { spacingXyzMm: [1, 1, 2] });
    const res = await rawSegment([setupOf(volumeHeaderOf(volume), { name: 'seg', version: 0 }, { returnProbabilities: true }), ...[...chunksOf(bytesOfArray(volume.data), 5000)].map((c) => chunk(c.byteOffset, c.data))]);
    expect(res.code).toBe(0);
    const kinds = res.responses.map((m) => m.payload?.$case);
    expect(kinds).toEqual(['result', 'labels', ...Array<string>(10).fill('probabilities')]);
    const offsets = res.responses.flatMap((m) => (m.payload?.$case === 'probabilities' ? [m.payload.probabilities.byteOffset] : []));
    expect(offsets).toEqual(Array.from({ length: 10 }, (_, i) => i * 4096));
  });
});
