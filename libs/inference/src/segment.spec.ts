import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelRegistry } from '@purify/artifacts';
import { makeVolume, type Vec3 } from '@purify/imaging';
import { LoadedModel, type Nchw } from './model';
import { normalizeVolume } from './normalize';
import { segmentMemoryBytes, segmentVolume, windowOf } from './segment';
import { publishPointwise, publishUNet, runPythonJson } from './test-models.test-util';

const config = { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all', executionProvider: 'cpu' } as const;
const root = mkdtempSync(join(tmpdir(), 'inference-segment-'));
const registry = new ModelRegistry(root);
const WINDOW = { kind: 'ct-window', lowHu: -100, highHu: 200 } as const;
/** Pointwise model, 1 channel → 3 classes: logits = (−2x + 1, 1.5x, 3x − 1.2); on [0, 1] every class wins somewhere. */
const POINTWISE = { w: [[-2, 1.5, 3]], b: [1, 0, -1.2] };

let unet: LoadedModel;
let pointwise: LoadedModel;
let pointwiseSpaced: LoadedModel;

beforeAll(async () => {
  unet = await LoadedModel.load(await publishUNet(registry, 'unet', { depth: 2, numClasses: 3, seed: 11 }, { inputSizeYx: [8, 8], normalization: WINDOW }), config);
  pointwise = await LoadedModel.load(await publishPointwise(registry, 'pointwise', POINTWISE, { inputSizeYx: [16, 16], normalization: WINDOW }), config);
  pointwiseSpaced = await LoadedModel.load(await publishPointwise(registry, 'spaced', POINTWISE, { inputSizeYx: [8, 8], normalization: WINDOW, spacingXyMm: [1, 1] }), config);
});
afterAll(async () => {
  await Promise.all([unet.dispose(), pointwise.dispose(), pointwiseSpaced.dispose()]);
  rmSync(root, { recursive: true, force: true });
});

/** An int16 CT-like volume [z, y, x] with values in [−300, 400] HU. */
function ctVolume(shape: Vec3, geometry: Parameters<typeof makeVolume>[2] = {}) {
  const data = Int16Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => Math.round(50 + 350 * Math.sin(i * 0.61) * Math.cos(i * 0.13)));
  return makeVolume(data, shape, geometry);
}

/** (clamp(v, −100, 200) + 100) / 300, by hand. */
function windowed(data: Int16Array): Float32Array {
  return Float32Array.from(data, (v) => (Math.min(Math.max(v, -100), 200) + 100) / 300);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** [n, K, y, x] → [K, n, y, x]. */
function classMajor({ data, shape: [n, k, h, w] }: Nchw): Float32Array {
  const out = new Float32Array(data.length);
  for (let s = 0; s < n; s++) for (let c = 0; c < k; c++) out.set(data.subarray((s * k + c) * h * w, (s * k + c + 1) * h * w), (c * n + s) * h * w);
  return out;
}

/** Argmax over classes of [K, voxels], ties to the lower index. */
function argmax(probs: Float32Array, k: number): number[] {
  const n = probs.length / k;
  return Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let c = 1; c < k; c++) if ((probs[c * n + i] as number) > (probs[best * n + i] as number)) best = c;
    return best;
  });
}

describe('segmentVolume', () => {
  it('on tile-sized slices equals the network on the hand-normalised slices, labels = argmax', async () => {
    // [3, 8, 8] int16, U-Net tile 8×8, no spacing: one tile per slice, no padding, no resampling.
    const volume = ctVolume([3, 8, 8], { spacingXyzMm: [0.9, 0.9, 3] });
    const res = await segmentVolume(unet, volume, { returnProbabilities: true, batchSize: 2 });
    const direct = await unet.predictBatch({ data: windowed(volume.data), shape: [3, 1, 8, 8] });
    const expected = classMajor(direct);
    expect(maxAbsDiff(res.probabilities!, expected)).toBeLessThan(1e-5);
    expect(Array.from(res.labels.data)).toEqual(argmax(expected, 3));
    expect(res.labels.spacingXyzMm).toEqual([0.9, 0.9, 3]);
    expect(res.tilesPerSlice).toBe(1);
    expect(res.timings).toMatchObject({ tiles: 3, batches: 2 }); // slabs of 2 slices: 2 + 1
  });

  it('tiles a translation-equivariant model exactly like one untiled pass (slices larger than the tile)', async () => {
    // [2, 37, 53] with a 16×16 tile and overlap 0.5: y starts 0, 7, 14, 21 (4) × x starts 0, 7, …, 37 (6) = 24 tiles per slice.
    const volume = ctVolume([2, 37, 53]);
    const res = await segmentVolume(pointwise, volume, { returnProbabilities: true, overlap: 0.5, batchSize: 5 });
    expect(res.tilesPerSlice).toBe(24);
    const whole = await pointwise.predictBatch({ data: windowed(volume.data), shape: [2, 1, 37, 53] });
    const expected = classMajor(whole);
    expect(maxAbsDiff(res.probabilities!, expected)).toBeLessThan(1e-5);
    expect(Array.from(res.labels.data)).toEqual(argmax(expected, 3));
    expect(new Set(res.labels.data).size).toBe(3); // every class appears: the comparison is not trivial
  });

  it('wholeSlice: one network pass per slice, equal to the network on the whole slices', async () => {
    // U-Net tile 8×8 (size multiple 2), slices 12×12: one 12×12 window per slice instead of 2 × 2 tiles.
    const volume = ctVolume([3, 12, 12]);
    const res = await segmentVolume(unet, volume, { returnProbabilities: true, wholeSlice: true, batchSize: 2 });
    const direct = await unet.predictBatch({ data: windowed(volume.data), shape: [3, 1, 12, 12] });
    expect(maxAbsDiff(res.probabilities!, classMajor(direct))).toBeLessThan(1e-5);
    expect(res.tilesPerSlice).toBe(1);
    // 2 tiles of 8×8 = 128 pixels per call hold no 144-pixel slice: one slice per call.
    expect(res.timings).toMatchObject({ tiles: 3, batches: 3 });
    const tiled = await segmentVolume(unet, volume, { returnProbabilities: true, batchSize: 2 });
    expect(tiled.tilesPerSlice).toBe(4);
  });

  it('pads a slice smaller than the tile (centred) and crops the result back', async () => {
    // [1, 5, 11] under a 16×16 tile: a pointwise model is unaffected by the padding.
    const volume = ctVolume([1, 5, 11]);
    const res = await segmentVolume(pointwise, volume, { returnProbabilities: true });
    const whole = await pointwise.predictBatch({ data: windowed(volume.data), shape: [1, 1, 5, 11] });
    expect(maxAbsDiff(res.probabilities!, classMajor(whole))).toBeLessThan(1e-6);
  });

  it('flip TTA averages the four flipped predictions, flipped back', async () => {
    // [2, 8, 8], U-Net tile 8×8 (not flip-symmetric). Expected by hand-written flips.
    const volume = ctVolume([2, 8, 8]);
    const x = windowed(volume.data);
    const flip = (a: Float32Array, fy: boolean, fx: boolean): Float32Array => {
      const out = new Float32Array(a.length);
      for (let p = 0; p < a.length / 64; p++) for (let y = 0; y < 8; y++) for (let xx = 0; xx < 8; xx++) out[p * 64 + y * 8 + xx] = a[p * 64 + (fy ? 7 - y : y) * 8 + (fx ? 7 - xx : xx)] as number;
      return out;
    };
    const sum = new Float32Array(2 * 3 * 64);
    for (const [fy, fx] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const out = await unet.predictBatch({ data: flip(x, fy, fx), shape: [2, 1, 8, 8] });
      const back = flip(out.data, fy, fx);
      back.forEach((v, i) => (sum[i] = (sum[i] as number) + v / 4));
    }
    const expected = classMajor({ data: sum, shape: [2, 3, 8, 8] });
    const tta = await segmentVolume(unet, volume, { returnProbabilities: true, flipTta: true });
    const plain = await segmentVolume(unet, volume, { returnProbabilities: true });
    expect(maxAbsDiff(tta.probabilities!, expected)).toBeLessThan(1e-5);
    expect(maxAbsDiff(plain.probabilities!, expected)).toBeGreaterThan(1e-3); // TTA changes the output
  });

  // numpy oracle: window, bilinear in-plane resampling (align_corners=False, border clamped) to the
  // model's size, the pointwise softmax, bilinear back to the input size, argmax.
  const RESAMPLE_ORACLE = `
import json, sys
import numpy as np
a = json.loads(sys.stdin.read())
z, y, x = a['shape']; my, mx = a['model']
v = np.array(a['data'], dtype=np.float64).reshape(z, y, x)
v = (np.clip(v, -100, 200) + 100) / 300
def lin(arr, axis, n2):
    n = arr.shape[axis]
    u = np.clip((np.arange(n2) + 0.5) * (n / n2) - 0.5, 0, n - 1)
    i0 = np.floor(u).astype(int); i1 = np.minimum(i0 + 1, n - 1); f = u - i0
    a0 = np.take(arr, i0, axis=axis); a1 = np.take(arr, i1, axis=axis)
    shape = [1] * arr.ndim; shape[axis] = n2
    return a0 * (1 - f.reshape(shape)) + a1 * f.reshape(shape)
m = lin(lin(v, 1, my), 2, mx)
w = np.array(a['w'])[0]; b = np.array(a['b'])
logits = w[:, None, None, None] * m[None] + b[:, None, None, None]
e = np.exp(logits - logits.max(0)); p = e / e.sum(0)
back = lin(lin(p, 2, y), 3, x)
print(json.dumps({'p': back.ravel().tolist(), 'labels': back.argmax(0).ravel().tolist()}))
`;

  it('resamples in-plane to the model spacing and maps probabilities back onto an oblique input grid (numpy oracle)', async () => {
    // [2, 10, 14], spacing (0.7, 1.3, 2.5) mm, model spacing (1, 1): model grid x = round(14·0.7) = 10, y = round(10·1.3) = 13.
    const c = Math.cos(0.4);
    const s = Math.sin(0.4);
    const oblique = [c, -s, 0, s, c, 0, 0, 0, 1];
    const volume = ctVolume([2, 10, 14], { spacingXyzMm: [0.7, 1.3, 2.5], originLpsMm: [-20, 13, 7], directionLps: oblique });
    const res = await segmentVolume(pointwiseSpaced, volume, { returnProbabilities: true });
    expect(res.modelGrid.shape).toEqual([2, 13, 10]);
    expect(res.labels.shape).toEqual([2, 10, 14]);
    expect(res.labels.directionLps).toEqual(oblique);
    expect(res.labels.originLpsMm).toEqual([-20, 13, 7]);
    const oracle = runPythonJson<{ p: number[]; labels: number[] }>(RESAMPLE_ORACLE, [], JSON.stringify({ shape: [2, 10, 14], model: [13, 10], data: Array.from(volume.data), ...POINTWISE }));
    expect(maxAbsDiff(res.probabilities!, oracle.p)).toBeLessThan(1e-5);
    expect(Array.from(res.labels.data)).toEqual(oracle.labels);
    // The direction does not change what the network sees (slices follow the index axes).
    const axisAligned = await segmentVolume(pointwiseSpaced, makeVolume(volume.data, volume.shape, { spacingXyzMm: [0.7, 1.3, 2.5] }), { returnProbabilities: true });
    expect(Array.from(axisAligned.labels.data)).toEqual(Array.from(res.labels.data));
  });

  it('refuses a model with more than one input channel', async () => {
    const v = await publishUNet(registry, 'two-channel', { depth: 2, inputChannels: 2 }, { inputChannels: 2, inputSizeYx: [8, 8] });
    const model = await LoadedModel.load(v, config);
    try {
      await expect(segmentVolume(model, ctVolume([1, 8, 8]))).rejects.toMatchObject({
        kind: 'invalid-argument',
        message: 'model two-channel:1 takes 2 input channels; a volume gives 1 (use predictPatches with [n, 2, y, x] crops)',
      });
    } finally {
      await model.dispose();
    }
  });

  it.each([
    // [option, value, message]
    ['overlap', 1, 'overlap must be a number in [0, 1), got 1'],
    ['batchSize', 0, 'batchSize must be a positive integer, got 0'],
  ])('refuses %s = %d', async (option, value, message) => {
    await expect(segmentVolume(unet, ctVolume([1, 8, 8]), { [option]: value })).rejects.toMatchObject({ kind: 'invalid-argument', message });
  });
});

describe('normalizeVolume', () => {
  it('percentile and zscore match numpy', () => {
    const volume = ctVolume([2, 6, 7]);
    const oracle = runPythonJson<{ pct: number[]; z: number[] }>(
      `
import json, sys
import numpy as np
v = np.array(json.loads(sys.stdin.read()), dtype=np.float64)
lo, hi = np.percentile(v, [1.5, 97])
print(json.dumps({'pct': ((np.clip(v, lo, hi) - lo) / (hi - lo)).tolist(), 'z': ((v - v.mean()) / v.std()).tolist()}))
`,
      [],
      JSON.stringify(Array.from(volume.data)),
    );
    expect(maxAbsDiff(normalizeVolume(volume, { kind: 'percentile', low: 1.5, high: 97 }).data, oracle.pct)).toBeLessThan(1e-6);
    expect(maxAbsDiff(normalizeVolume(volume, { kind: 'zscore' }).data, oracle.z)).toBeLessThan(1e-5);
  });
});

describe('windowOf', () => {
  const model = (tile: [number, number], sizeMultiple: number) => ({ meta: { inputSizeYx: tile } as never, sizeMultiple });
  it.each([
    // [tile, multiple, slice, batchSize, wholeSlice] → [window, slices per call]
    [[64, 64], 16, [96, 96], 8, false, [64, 64], 8],
    [[64, 64], 16, [96, 96], 8, true, [96, 96], 3], // 8·4096 / 9216 = 3.6
    [[64, 64], 16, [100, 90], 8, true, [112, 96], 3], // rounded up to the multiple: 32768 / 10752 = 3.05
    [[64, 64], 16, [40, 200], 8, true, [64, 208], 2], // never below the tile: 32768 / 13312 = 2.5
    [[64, 64], 16, [512, 512], 8, true, [512, 512], 1], // at least one slice per call
    [[8, 8], 2, [5, 11], 4, true, [8, 12], 2],
  ] as const)('tile %j, multiple %d, slice %j, batch %d, whole %s → %j, %d per call', (tile, m, slice, batchSize, wholeSlice, window, slab) => {
    expect(windowOf(model([...tile], m), slice, { batchSize, wholeSlice })).toEqual({ tileYx: window, slab });
  });
});

describe('segmentMemoryBytes', () => {
  const grid = (shape: [number, number, number], spacing: [number, number, number]) => ({ shape, spacingXyzMm: spacing, originLpsMm: [0, 0, 0] as [number, number, number], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] });
  const model = (spacingXyMm?: [number, number]) => ({ meta: { inputSizeYx: [64, 64], ...(spacingXyMm ? { spacingXyMm } : {}) } as never, numClasses: 5, sizeMultiple: 16 });
  it.each([
    // By hand: input + 4·voxels (normalised) + 4·z·my·mx (model grid) + voxels (labels) + [5·4·voxels probabilities] + 3·min(slab, z)·5·canvas·4.
    // [32, 96, 96] int16 (589 824 bytes), no model spacing: model grid = input grid; 8 tiles of 64² per slab, canvas 96².
    ['tiled, labels only', grid([32, 96, 96], [4, 4, 4]), 589_824, model(), { returnProbabilities: false, batchSize: 8, wholeSlice: false }, 589_824 + 4 * 294_912 + 4 * 294_912 + 294_912 + 3 * 8 * 5 * 9216 * 4],
    ['tiled, with probabilities', grid([32, 96, 96], [4, 4, 4]), 589_824, model(), { returnProbabilities: true, batchSize: 8, wholeSlice: false }, 589_824 + 9 * 294_912 + 20 * 294_912 + 3 * 8 * 5 * 9216 * 4],
    // Whole slices of 96²: 8·64²/96² = 3 slices per call.
    ['whole slices', grid([32, 96, 96], [4, 4, 4]), 589_824, model(), { returnProbabilities: false, batchSize: 8, wholeSlice: true }, 589_824 + 9 * 294_912 + 3 * 3 * 5 * 9216 * 4],
    // 2 mm input, 4 mm model: the model grid is [4, 48, 48] (the same box), under the 64² tile → canvas 64²; slabs of min(8, 4) slices.
    ['resampled to a coarser model grid', grid([4, 96, 96], [2, 2, 2]), 36_864 * 4, model([4, 4]), { returnProbabilities: false, batchSize: 8, wholeSlice: false }, 36_864 * 4 + 4 * 36_864 + 4 * 4 * 48 * 48 + 36_864 + 3 * 4 * 5 * 4096 * 4],
  ] as const)('%s', (_name, g, inputBytes, m, o, bytes) => {
    expect(segmentMemoryBytes(g, inputBytes, m, o)).toBe(bytes);
  });
});
