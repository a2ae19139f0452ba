import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelRegistry, type ModelVersion } from '@purify/artifacts';
import { InferenceError } from './errors';
import { LoadedModel } from './model';
import { readOnnxHeader } from './onnx-metadata';
import { predictPatches } from './segment';
import { publishBytes, publishPointwise, publishUNet } from './test-models.test-util';

const config = { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all', executionProvider: 'auto' } as const;
const root = mkdtempSync(join(tmpdir(), 'inference-model-'));
const registry = new ModelRegistry(root);
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function loadError(version: ModelVersion): Promise<InferenceError> {
  try {
    const m = await LoadedModel.load(version, config);
    await m.dispose();
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceError);
    return err as InferenceError;
  }
  throw new Error('expected the load to fail');
}

describe('readOnnxHeader', () => {
  it('reads IR version, opsets and purify metadata of an exported U-Net', async () => {
    // docs/models.md: IR 8, opset 17 (default domain), size multiple 2^(depth−1) = 4 for depth 3, 3 classes
    const v = await publishUNet(registry, 'header', { depth: 3, numClasses: 3 });
    const header = readOnnxHeader(readFileSync(join(v.dir, 'model.onnx')));
    expect(header).toMatchObject({ irVersion: 8, opsets: { '': 17 }, hasGraph: true });
    expect(header.metadata).toMatchObject({ 'purify.size_multiple': '4', 'purify.num_classes': '3' });
  });

  it.each([
    // [case, bytes, message]
    ['truncated varint', [0x08, 0x80], 'truncated varint at byte 2'],
    ['field running past the end', [0x3a, 0x05, 0x01], 'field of 5 bytes at byte 2 runs past the end (3)'],
    ['no graph', [0x08, 0x08], 'no graph (ModelProto field 7)'],
  ])('refuses %s', (_case, bytes, message) => {
    expect(() => readOnnxHeader(Uint8Array.from(bytes))).toThrow(message);
  });
});

describe('LoadedModel', () => {
  it('loads a U-Net, reports the provider and its size multiple, and predicts softmax probabilities', async () => {
    const v = await publishUNet(registry, 'unet', { depth: 2, numClasses: 3, seed: 3 }, { inputSizeYx: [8, 8] });
    const model = await LoadedModel.load(v, config);
    try {
      expect(model.executionProvider).toBe('cpu'); // no CUDA provider library on this machine
      expect(model.sizeMultiple).toBe(2);
      expect(model.numClasses).toBe(3);
      const input = Float32Array.from({ length: 2 * 8 * 6 }, (_, i) => Math.cos(i));
      const out = await model.predictBatch({ data: input, shape: [2, 1, 8, 6] });
      expect(out.shape).toEqual([2, 3, 8, 6]);
      // Softmax over classes: every pixel sums to 1.
      for (let b = 0; b < 2; b++) for (let p = 0; p < 48; p++) expect((out.data[b * 144 + p] as number) + (out.data[b * 144 + 48 + p] as number) + (out.data[b * 144 + 96 + p] as number)).toBeCloseTo(1, 5);
    } finally {
      await model.dispose();
    }
  });

  it('predictPatches equals predicting each crop alone (crops are independent), also from a sub-array', async () => {
    const v = await publishUNet(registry, 'patches', { depth: 2, numClasses: 2, seed: 5 }, { numClasses: 2, inputSizeYx: [8, 8] });
    const model = await LoadedModel.load(v, config);
    try {
      // 3 crops [3, 1, 4, 6] cut from a larger buffer at offset 10 (a view with a byte offset).
      const buffer = Float32Array.from({ length: 10 + 3 * 24 }, (_, i) => Math.sin(i * 0.7));
      const patches = { data: buffer.subarray(10), shape: [3, 1, 4, 6] as const };
      const got = await predictPatches(model, patches, { batchSize: 2 });
      for (let i = 0; i < 3; i++) {
        const alone = await model.predictBatch({ data: Float32Array.from(buffer.subarray(10 + i * 24, 10 + (i + 1) * 24)), shape: [1, 1, 4, 6] });
        const slice = got.probabilities.data.subarray(i * 48, (i + 1) * 48);
        expect(Math.max(...Array.from(slice, (p, j) => Math.abs(p - (alone.data[j] as number))))).toBeLessThan(1e-6);
      }
    } finally {
      await model.dispose();
    }
  });

  it.each([
    // [case, shape, message]
    ['wrong channel count', [1, 2, 4, 4], 'patches has 2 channels but model bad-patch:1 takes 1, got shape [1, 2, 4, 4]'],
    ['size not a multiple of 2', [1, 1, 4, 5], 'patches y and x must be multiples of 2 (the size multiple of model bad-patch:1), got shape [1, 1, 4, 5]'],
    ['not 4-D', [1, 4, 4], 'patches must be [n, c, y, x] with positive dims, got [1, 4, 4]'],
  ])('predictPatches refuses %s', async (_case, shape, message) => {
    const v = registry.versions('bad-patch').length ? registry.get('bad-patch', 1) : await publishUNet(registry, 'bad-patch', { depth: 2 }, { inputSizeYx: [8, 8] });
    const model = await LoadedModel.load(v, config);
    try {
      await expect(predictPatches(model, { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape: shape as unknown as [number, number, number, number] })).rejects.toMatchObject({ kind: 'invalid-argument', message });
    } finally {
      await model.dispose();
    }
  });

  it('refuses a model.onnx that does not match the sha256 in meta.json', async () => {
    const v = await publishUNet(registry, 'tampered', { depth: 2 }, { inputSizeYx: [8, 8] });
    const path = join(v.dir, 'model.onnx');
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
    writeFileSync(path, bytes);
    const err = await loadError(v);
    expect(err.kind).toBe('failed-precondition');
    expect(err.message).toMatch(/^model tampered:1: model\.onnx does not match meta\.json \(sha256 recorded [0-9a-f]{64}, file has [0-9a-f]{64}\): the file is corrupt or was replaced$/);
  });

  it.each([
    // [case, publish, exact message]
    // 'n' = 0x6e is the tag of field 13 with wire type 6, which protobuf does not have.
    ['text that is not ONNX', () => publishBytes(registry, 'garbage', new TextEncoder().encode('not an onnx model')), 'model garbage:1: model.onnx is not an ONNX model (unsupported protobuf wire type 6 at byte 1)'],
    [
      'a graph onnxruntime cannot parse',
      // ModelProto with ir_version 8 and a graph field holding junk bytes.
      () => publishBytes(registry, 'junk-graph', Uint8Array.from([0x08, 0x08, 0x3a, 0x02, 0xff, 0xff])),
      /^model junk-graph:1: onnxruntime cannot load model\.onnx: /,
    ],
    ['meta.json with 2 classes, graph declaring 3', () => publishUNet(registry, 'classes-declared', { depth: 2, numClasses: 3 }, { metaClasses: 2, inputSizeYx: [8, 8] }), 'model classes-declared:1: class-count mismatch: meta.json lists 2 classes but model.onnx declares purify.num_classes = 3'],
    [
      'meta.json with 4 classes, a graph (no purify metadata) that outputs 2',
      () => publishPointwise(registry, 'classes-probed', { w: [[1, -1]], b: [0, 0] }, { metaClasses: 4 }),
      'model classes-probed:1: class-count mismatch: meta.json lists 4 classes but model.onnx outputs 2 (dim 1 of "probabilities")',
    ],
    ['a tile that is not a multiple of the size multiple', () => publishUNet(registry, 'tile', { depth: 3 }, { inputSizeYx: [10, 12] }), "model tile:1: meta.json `inputSizeYx` must be multiples of the graph's size multiple 4, got [10, 12]"],
    ['meta.json input channels different from the graph', () => publishUNet(registry, 'channels', { depth: 2, inputChannels: 1 }, { inputChannels: 2, inputSizeYx: [8, 8] }), 'model channels:1: meta.json `inputChannels` is 2 but graph input "image" takes 1 channels'],
    ['a single class', () => publishUNet(registry, 'one-class', { depth: 2 }, { metaClasses: 1 }), 'model one-class:1: meta.json `classes` must list 2 to 256 classes (background first), got "1 classes"'],
  ])('refuses %s (FAILED_PRECONDITION)', async (_case, publish, message) => {
    const err = await loadError(await publish());
    expect(err.kind).toBe('failed-precondition');
    if (typeof message === 'string') expect(err.message).toBe(message);
    else expect(err.message).toMatch(message);
  });
});
