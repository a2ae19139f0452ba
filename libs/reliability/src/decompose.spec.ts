import { BorderMode, resolveOptions, type ReliabilityOptions } from './config';
import { composeSlice, decomposeAndCompose, extractPatches, type PatchPredictor } from './decompose';
import { ReliabilityError } from './errors';
import { buildGrid } from './grid';
import { gaussianWeights } from './measures';
import { lcg } from './python.test-util';

/**
 * A "pointwise" model: each pixel's K-class softmax depends on its own
 * intensity only, so a patch's prediction equals the whole image's prediction
 * on the same pixels (no context effect). Input [n, c, P, P] → [n, K, P, P];
 * logits_k = (k + 1)·v·3 − k (c = 1).
 */
function pointwiseProbabilities(values: Float32Array, k: number): Float32Array {
  const n = values.length;
  const out = new Float32Array(k * n);
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    const e = Array.from({ length: k }, (_, c) => Math.exp((c + 1) * v * 3 - c));
    const sum = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < k; c++) out[c * n + i] = (e[c] as number) / sum;
  }
  return out;
}

/** Same model on a patch batch [n, 1, P, P] → [n, K, P, P]. */
function pointwisePredictor(k: number, calls: number[][] = []): PatchPredictor {
  return async (patches, shape) => {
    calls.push([...shape]);
    const [n, , p] = shape;
    const out = new Float32Array(n * k * p * p);
    for (let b = 0; b < n; b++) out.set(pointwiseProbabilities(patches.subarray(b * p * p, (b + 1) * p * p), k), b * k * p * p);
    return out;
  };
}

/** Whole-image prediction of the same model, [K, z, y, x]. */
function wholePointwise(image: Float32Array, k: number): Float32Array {
  return pointwiseProbabilities(image, k);
}

function randomImage(n: number, seed: number): Float32Array {
  const r = lcg(seed);
  return Float32Array.from({ length: n }, () => r());
}

describe('decomposition and composition', () => {
  it.each([
    // [case, shape [z, y, x], options] — composition of identical patch predictions must equal the whole prediction
    ['2×64×64, P32 s16 shift, batch 7, 3 in flight', [2, 64, 64], { patchSize: 32, stride: 16, batchSize: 7, concurrency: 3 }],
    ['2×64×64, P32 s16 pad (zero-padded edges ignored)', [2, 64, 64], { patchSize: 32, stride: 16, borderMode: BorderMode.Pad }],
    ['1×37×53, P12 s5 shift, batch 1', [1, 37, 53], { patchSize: 12, stride: 5, batchSize: 1 }],
    ['3×20×28, P8 s8 pad, batch 1000', [3, 20, 28], { patchSize: 8, stride: 8, borderMode: BorderMode.Pad, batchSize: 1000 }],
  ] as [string, [number, number, number], ReliabilityOptions][])('%s: composed = whole exactly, variance 0', async (_name, shape, options) => {
    const [z, h, w] = shape;
    const k = 3;
    const image = randomImage(z * h * w, 7);
    const opts = resolveOptions(options, shape);
    const grid = buildGrid(shape, opts);
    const calls: number[][] = [];
    const comp = await decomposeAndCompose(image, 1, grid, pointwisePredictor(k, calls), opts);
    const whole = wholePointwise(image, k);
    expect(comp.numClasses).toBe(k);
    // Bit-for-bit: the running mean of equal float32 values is that value.
    expect(Array.from(comp.probabilities)).toEqual(Array.from(whole));
    expect(comp.variance.every((v) => v === 0)).toBe(true);
    expect(comp.coverage.every((c) => c >= 1)).toBe(true);
    const total = z * grid.anchorY.length * grid.anchorX.length;
    expect(comp.patchCount).toBe(total);
    expect(calls.reduce((a, c) => a + (c[0] as number), 0)).toBe(total);
    expect(calls.every((c) => (c[0] as number) <= opts.batchSize && c[1] === 1 && c[2] === opts.patchSize && c[3] === opts.patchSize)).toBe(true);
  });

  it('extracts crops with zero padding outside the slice (pad mode)', () => {
    // 1×4×4 image v = 10·y + x, P 4, s 2, pad: anchors per axis ⌊(0+2−4)/2⌋ = −1 and ⌊(2+4−4)/2⌋ = 1
    const image = Float32Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4));
    const opts = resolveOptions({ patchSize: 4, stride: 2, borderMode: BorderMode.Pad }, [1, 4, 4]);
    const grid = buildGrid([1, 4, 4], opts);
    expect(grid.anchorY).toEqual([-1, 1]);
    // Patch 0 at top-left (−1, −1): row 0 and column 0 are padding, then rows 0..2, columns 0..2 of the image.
    expect(Array.from(extractPatches(image, 1, grid, 0, 1))).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 0, 10, 11, 12, 0, 20, 21, 22]);
    // Patch 3 at (1, 1): rows 1..3, columns 1..3, then padding.
    expect(Array.from(extractPatches(image, 1, grid, 3, 1))).toEqual([11, 12, 13, 0, 21, 22, 23, 0, 31, 32, 33, 0, 0, 0, 0, 0]);
  });

  it('extracts every channel of a [z, c, y, x] image', () => {
    // 1 slice, 2 channels of 2×2, P 2: the one patch is the whole image, channel-major.
    const image = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const grid = buildGrid([1, 2, 2], resolveOptions({ patchSize: 2, stride: 2 }, [1, 2, 2]));
    expect(Array.from(extractPatches(image, 2, grid, 0, 1))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('stitches two overlapping patches with their Gaussian weights (hand values)', () => {
    // 1×2×3 slice, P 2, s 1, shift: x anchors ⌊(0+1−2)/2⌋ = −1 → 0, ⌊(1+2−2)/2⌋ = 0, ⌊(2+3−2)/2⌋ = 1 → [0, 1]; y anchor 0.
    // K = 2: patch 0 predicts (0.2, 0.8) everywhere, patch 1 (0.6, 0.4).
    // P 2, σ = 0.5: every pixel is at distance² 0.5 from the centre → equal weights, peak-normalised to 1.
    // Column 0: only patch 0 → 0.2; column 2: only patch 1 → 0.6; column 1: (0.2 + 0.6)/2 = 0.4 and
    // variance per class w1 w2 (a − b)²/(w1 + w2)² = 0.04 (both classes) → mean over classes 0.04.
    const grid = buildGrid([1, 2, 3], resolveOptions({ patchSize: 2, stride: 1 }, [1, 2, 3]));
    expect(grid.anchorY).toEqual([0]);
    expect(grid.anchorX).toEqual([0, 1]);
    const store = new Float32Array(2 * 2 * 4);
    store.fill(0.2, 0, 4);
    store.fill(0.8, 4, 8);
    store.fill(0.6, 8, 12);
    store.fill(0.4, 12, 16);
    const out = { probabilities: new Float32Array(2 * 6), variance: new Float32Array(6), coverage: new Uint16Array(6) };
    const weights = gaussianWeights(2, 0.25);
    expect(Array.from(weights)).toEqual([1, 1, 1, 1]);
    composeSlice(store, grid, 2, weights, 0, out);
    const f = Math.fround;
    expect(Array.from(out.probabilities.subarray(0, 6))).toEqual([f(0.2), f((f(0.2) + f(0.6)) / 2), f(0.6), f(0.2), f((f(0.2) + f(0.6)) / 2), f(0.6)]);
    expect(out.variance[0]).toBe(0);
    expect(out.variance[1]).toBeCloseTo(0.04, 7);
    expect(Array.from(out.coverage)).toEqual([1, 2, 1, 1, 2, 1]);
  });

  it('weights the overlap by the Gaussian (unequal weights, hand values)', () => {
    // 1×4×6, P 4, s 4, shift: x cells [0,4) [4,6) → anchors 0 and ⌊(4+6−4)/2⌋ = 3 → clamped to 2; y anchor 0. Pixel (1, 2) is patch-0 column 2 and patch-1 column 0.
    // P 4, σ 1, centre 1.5: w0 = exp(−(0.25 + 0.25)/2) = exp(−0.25), w1 = exp(−(0.25 + 2.25)/2) = exp(−1.25), peak exp(−0.25) → 1 and exp(−1).
    // Patch 0 predicts a = 0.1, patch 1 b = 0.9 for class 0: mean = (1·0.1 + e⁻¹·0.9)/(1 + e⁻¹), var = e⁻¹(0.8)²/(1 + e⁻¹)².
    const grid = buildGrid([1, 4, 6], resolveOptions({ patchSize: 4, stride: 4 }, [1, 4, 6]));
    expect(grid.anchorX).toEqual([0, 2]);
    const store = new Float32Array(2 * 1 * 16);
    store.fill(0.1, 0, 16);
    store.fill(0.9, 16, 32);
    const out = { probabilities: new Float32Array(24), variance: new Float32Array(24), coverage: new Uint16Array(24) };
    composeSlice(store, grid, 1, gaussianWeights(4, 0.25), 0, out);
    const e = Math.exp(-1);
    expect(out.probabilities[1 * 6 + 2]).toBeCloseTo((0.1 + e * 0.9) / (1 + e), 6);
    expect(out.variance[1 * 6 + 2]).toBeCloseTo((e * 0.64) / (1 + e) ** 2, 6);
  });

  it('stitching weights are normalised: patches predicting 1 compose to exactly 1', async () => {
    // 1×50×50, P 16, s 6: many overlaps with unequal weights; K = 1 with every probability 1
    const opts = resolveOptions({ patchSize: 16, stride: 6 }, [1, 50, 50]);
    const grid = buildGrid([1, 50, 50], opts);
    const comp = await decomposeAndCompose(new Float32Array(2500), 1, grid, async (_p, [n, , p]) => new Float32Array(n * p * p).fill(1), opts);
    expect(comp.probabilities.every((v) => v === 1)).toBe(true);
  });

  it('refuses a predictor answering the wrong size, and stops after a failure', async () => {
    const opts = resolveOptions({ patchSize: 8, stride: 8, batchSize: 1, concurrency: 2 }, [1, 32, 32]);
    const grid = buildGrid([1, 32, 32], opts);
    const bad = decomposeAndCompose(new Float32Array(1024), 1, grid, async () => new Float32Array(100), opts);
    await expect(bad).rejects.toThrow(ReliabilityError);
    await expect(decomposeAndCompose(new Float32Array(1024), 1, grid, async () => new Float32Array(100), opts)).rejects.toThrow(
      'the patch predictor must return [n, K, P, P] = [1, K, 8, 8] values, got 100',
    );
    // K announced as 3, predictor answers K = 2.
    await expect(decomposeAndCompose(new Float32Array(1024), 1, grid, pointwisePredictor(2), opts, { numClasses: 3 })).rejects.toThrow(
      'the patch predictor must return [n, K, P, P] = [1, 3, 8, 8] = 192 values, got 128',
    );
    // 16 patches, 2 workers: after the first failure no new batch is started.
    let started = 0;
    const failing: PatchPredictor = async () => {
      started++;
      throw new Error('segmenter down');
    };
    await expect(decomposeAndCompose(new Float32Array(1024), 1, grid, failing, opts)).rejects.toThrow('segmenter down');
    expect(started).toBe(2);
    await expect(decomposeAndCompose(new Float32Array(10), 1, grid, failing, opts)).rejects.toThrow('`image` must hold [z, c, y, x] = [1, 1, 32, 32] = 1024 values, got 10');
  });
});
