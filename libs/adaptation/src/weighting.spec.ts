import {
  argmaxLabels,
  confidenceWeights,
  consensusWeights,
  entropyWeights,
  naiveWeights,
  regionPixelWeights,
  thresholdRegionWeights,
  weightStatistics,
} from './weighting';
import { AdaptationConfigError } from './errors';

/** [K, z, y, x] from per-pixel class vectors (pixels in z, y, x order). */
function probs(pixels: number[][]): Float32Array {
  const k = pixels[0]!.length;
  const n = pixels.length;
  const out = new Float32Array(k * n);
  pixels.forEach((p, i) => p.forEach((v, c) => (out[c * n + i] = v)));
  return out;
}

const close = (got: Float32Array, want: number[]): void => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 5));
};

describe('weighting strategies (hand-computed maps)', () => {
  it('argmax takes the lower class on ties', () => {
    // K=3, [1, 1, 3]: (0.2, 0.5, 0.3) → 1; (0.4, 0.4, 0.2) → 0 (tie); (0.1, 0.1, 0.8) → 2.
    expect([...argmaxLabels(probs([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]]), 3, [1, 1, 3])]).toEqual([1, 0, 2]);
  });

  it('naive: every pixel weight 1', () => {
    close(naiveWeights([2, 1, 2]), [1, 1, 1, 1]);
  });

  it.each([
    // [case, pixel probabilities (K = 2), shape, threshold, expected weights]
    // max-probs 0.98, 0.5, 0.9, 0.97: two of four ≥ 0.968 → q = 0.5 on those two, 0 elsewhere.
    ['one slice', [[0.98, 0.02], [0.5, 0.5], [0.1, 0.9], [0.97, 0.03]], [1, 1, 4], 0.968, [0.5, 0, 0, 0.5]],
    // Two slices of 2 pixels: slice 0 has 1/2 above (q 0.5), slice 1 has 2/2 (q 1).
    ['per-slice quality', [[0.99, 0.01], [0.6, 0.4], [0.01, 0.99], [1, 0]], [2, 1, 2], 0.968, [0.5, 0, 1, 1]],
    // Threshold 0.5: every pixel qualifies (0.5 ≥ 0.5) → all 1.
    ['low threshold', [[0.98, 0.02], [0.5, 0.5]], [1, 1, 2], 0.5, [1, 1]],
  ])('confidence: %s', (_name, pixels, shape, threshold, want) => {
    close(confidenceWeights(probs(pixels), 2, shape as [number, number, number], threshold), want);
  });

  it('entropy: w = 1 − H/log K', () => {
    // (1, 0) → H 0 → 1; (0.5, 0.5) → H ln 2 → 0;
    // (0.9, 0.1) → H = 0.9·0.1053605 + 0.1·2.3025851 = 0.3250830, /ln 2 = 0.4689956 → 0.5310044.
    close(entropyWeights(probs([[1, 0], [0.5, 0.5], [0.9, 0.1]]), 2, [1, 1, 3]), [1, 0, 0.5310044]);
  });

  it('consensus: dual-view agreement × image-level uncertainty weight', () => {
    // Main (0.9, 0.1), (0.2, 0.8) → argmax 0, 1; view (0.7, 0.3), (0.6, 0.4) → 0, 0: agreement [1, 0].
    // Mean probs (0.8, 0.2): H/ln2 = 0.5004024/0.6931472 = 0.7219281; (0.4, 0.6): 0.6730117/0.6931472 = 0.9709506.
    // u = 1 − (0.7219281 + 0.9709506)/2 = 0.1535607 → weights [0.1535607, 0].
    close(consensusWeights(probs([[0.9, 0.1], [0.2, 0.8]]), probs([[0.7, 0.3], [0.6, 0.4]]), 2, [1, 1, 2]), [0.1535607, 0]);
  });

  it('rule: region weight 1 at or above the threshold, 0 below', () => {
    close(thresholdRegionWeights(Float32Array.from([0.4, 0.5, 0.9]), 0.5), [0, 1, 1]);
  });

  it('region weights become pixel maps through the region index', () => {
    // Regions 0 → 0.2 and 1 → 0.7 over [1, 2, 2] pixels with index [[0, 1], [1, 0]].
    close(regionPixelWeights(Float32Array.from([0.2, 0.7]), Int32Array.from([0, 1, 1, 0])), [0.2, 0.7, 0.7, 0.2]);
  });

  it('weight statistics: mean, population std, zero fraction, 10-bin histogram', () => {
    // Pixels 0, 0.5, 1, 0.25: mean 0.4375; E[w²] = 1.3125/4 = 0.328125; var = 0.328125 − 0.19140625 = 0.13671875 → std 0.3697550.
    const s = weightStatistics([Float32Array.from([0, 0.5]), Float32Array.from([1, 0.25])]);
    expect(s.mean).toBeCloseTo(0.4375, 10);
    expect(s.std).toBeCloseTo(0.369755, 5);
    expect(s.zeroFraction).toBe(0.25);
    expect(s.histogram).toEqual([1, 0, 1, 0, 0, 1, 0, 0, 0, 1]);
    expect(s.pixels).toBe(4);
  });

  it.each([
    // [case, call, message]
    ['probabilities of the wrong size', () => entropyWeights(new Float32Array(5), 2, [1, 1, 3]), 'probabilities must hold [K, z, y, x] = [2, 1, 1, 3] = 6 values, got 5'],
    ['a view of the wrong size', () => consensusWeights(new Float32Array(4), new Float32Array(2), 2, [1, 1, 2]), 'viewProbabilities must hold [K, z, y, x] = [2, 1, 1, 2] = 4 values, got 2'],
    ['a confidence threshold of 0', () => confidenceWeights(new Float32Array(4), 2, [1, 1, 2], 0), 'threshold must be in (0, 1], got 0'],
    ['a region index out of range', () => regionPixelWeights(Float32Array.from([1]), Int32Array.from([0, 3])), 'regionIndex[1] = 3 is not a region index in [0, 0]'],
  ])('refuses %s', (_name, call, message) => {
    expect(call).toThrow(AdaptationConfigError);
    expect(call).toThrow(message);
  });
});
