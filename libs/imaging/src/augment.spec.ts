import {
  AugmentError,
  adjustContrast,
  applyCurve,
  biasField,
  gammaTransform,
  gaussianBlur,
  addGaussianNoise,
  randomAppearance,
  randomMonotonicCurve,
  randomNonMonotonicCurve,
  sampleSpatialTransform,
  warp,
  warpSample,
  type ImageArray,
} from './augment';
import { Rng } from './rng';
import { runPythonJson } from './python.test-util';

describe('Rng', () => {
  // Reference: xoshiro128** and splitmix32 seeding written independently in Python.
  const REF = `
import sys, json
M = 0xffffffff
def rotl(x, k): return ((x << k) | (x >> (32 - k))) & M
def splitmix(seed):
    x = seed & M
    while True:
        x = (x + 0x9e3779b9) & M
        z = x
        z = ((z ^ (z >> 16)) * 0x85ebca6b) & M
        z = ((z ^ (z >> 13)) * 0xc2b2ae35) & M
        yield (z ^ (z >> 16)) & M
out = {}
for seed in json.loads(sys.argv[1]):
    g = splitmix(seed); s = [next(g) for _ in range(4)]
    vals = []
    for _ in range(8):
        r = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 9) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11)
        vals.append(r)
    out[str(seed)] = vals
print(json.dumps(out))
`;
  it('matches a reference xoshiro128** (seeds 0, 42, -7)', () => {
    const want = runPythonJson<Record<string, number[]>>(REF, [JSON.stringify([0, 42, -7])]);
    for (const seed of [0, 42, -7]) {
      const rng = new Rng(seed);
      expect(Array.from({ length: 8 }, () => rng.nextUint32())).toEqual(want[String(seed)]);
    }
  });

  it('draws in range and normal has the right moments', () => {
    const rng = new Rng(1);
    const ints = Array.from({ length: 1000 }, () => rng.int(3, 7));
    expect(Math.min(...ints)).toBe(3);
    expect(Math.max(...ints)).toBe(6);
    const xs = Array.from({ length: 20000 }, () => rng.normal(2, 3));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
    // standard errors: mean 3/√20000 ≈ 0.021, sd ≈ 0.015
    expect(Math.abs(mean - 2)).toBeLessThan(0.1);
    expect(Math.abs(sd - 3)).toBeLessThan(0.1);
    expect(() => rng.int(2, 2)).toThrow(new RangeError('Rng.int needs integers low < high, got 2, 2'));
  });
});

const img = (values: number[], shape: number[]): ImageArray => ({ data: Float32Array.from(values), shape });

describe('appearance', () => {
  it.each([
    // gamma 2: [0.25, 1, 0, 1.5 → clamped 1] → [0.0625, 1, 0, 1]
    { name: 'gamma', f: (i: ImageArray) => gammaTransform(i, 2), input: [0.25, 1, 0, 1.5], want: [0.0625, 1, 0, 1] },
    // contrast 0.5 around mean 0.5: [0, 1, 0.5, 0.5] → [0.25, 0.75, 0.5, 0.5]
    { name: 'contrast', f: (i: ImageArray) => adjustContrast(i, 0.5), input: [0, 1, 0.5, 0.5], want: [0.25, 0.75, 0.5, 0.5] },
    // curve v → 1 − v
    { name: 'inverting curve', f: (i: ImageArray) => applyCurve(i, (v) => 1 - v), input: [0, 0.25, 0.5, 1], want: [1, 0.75, 0.5, 0] },
  ])('$name', ({ f, input, want }) => {
    const out = f(img(input, [2, 2]));
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
  });

  it('random monotonic curves are monotonic with endpoints 0 and 1', () => {
    for (let seed = 0; seed < 20; seed++) {
      const curve = randomMonotonicCurve(new Rng(seed));
      const ys = Array.from({ length: 501 }, (_, i) => curve(i / 500));
      const increasing = ys[500]! > ys[0]!;
      expect([ys[0], ys[500]].map((v) => Math.round(v! * 1e9) / 1e9)).toEqual(increasing ? [0, 1] : [1, 0]);
      for (let i = 1; i < ys.length; i++) expect(increasing ? ys[i]! >= ys[i - 1]! - 1e-12 : ys[i]! <= ys[i - 1]! + 1e-12).toBe(true);
    }
  });

  it('random non-monotonic curves change direction and stay in [0, 1] when applied', () => {
    let turning = 0;
    for (let seed = 0; seed < 20; seed++) {
      const curve = randomNonMonotonicCurve(new Rng(seed));
      const ys = Array.from({ length: 201 }, (_, i) => curve(i / 200));
      const d = ys.slice(1).map((y, i) => y - ys[i]!);
      if (d.some((v) => v > 1e-6) && d.some((v) => v < -1e-6)) turning++;
      const out = applyCurve(img(Array.from({ length: 201 }, (_, i) => i / 200), [1, 201]), curve);
      expect(Math.min(...out.data) >= 0 && Math.max(...out.data) <= 1).toBe(true);
    }
    // 6 independent uniform knots are monotone with probability 2/6! ≈ 0.3 %
    expect(turning).toBeGreaterThanOrEqual(19);
  });

  it('blur matches scipy.ndimage.gaussian_filter(sigma=1, truncate=3, mode="nearest")', () => {
    const rng = new Rng(5);
    const values = Array.from({ length: 7 * 9 }, () => rng.uniform(0, 1));
    const out = gaussianBlur(img(values, [7, 9]), 1);
    const want = runPythonJson<number[]>(
      'import sys, json, numpy as np; from scipy import ndimage; a = np.array(json.loads(sys.argv[1])).reshape(7, 9); print(json.dumps(ndimage.gaussian_filter(a, 1.0, truncate=3.0, mode="nearest").reshape(-1).tolist()))',
      [JSON.stringify(values)],
    );
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
  });

  it('3D blur with sigma per axis blurs only those axes', () => {
    // impulse at [1, 1, 4] in [3, 3, 9], sigma [0, 0, 1] (radius 3 fits inside the row):
    // all mass stays in row z 1, y 1 and sums to 1
    const data = new Array<number>(81).fill(0);
    data[(1 * 3 + 1) * 9 + 4] = 1;
    const out = gaussianBlur(img(data, [3, 3, 9]), [0, 0, 1]);
    const row = Array.from(out.data.slice(36, 45));
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(Array.from(out.data).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    // weights at distance 1 vs 0 with sigma 1: exp(-1/2)
    expect(row[3]! / row[4]!).toBeCloseTo(Math.exp(-0.5), 6);
    expect(() => gaussianBlur(img(data, [3, 3, 9]), [1, 1])).toThrow(new AugmentError('blur sigma must be >= 0 for each of the 3 axes, got [1, 1]'));
  });

  it('noise has the requested sigma', () => {
    const out = addGaussianNoise(img(new Array<number>(10000).fill(0.5), [100, 100]), 0.05, new Rng(9));
    const d = Array.from(out.data, (v) => v - 0.5);
    const sd = Math.sqrt(d.reduce((a, b) => a + b * b, 0) / d.length);
    expect(Math.abs(sd - 0.05)).toBeLessThan(0.002);
  });

  it('bias field is smooth, positive and multiplicative', () => {
    const out = biasField(img(new Array<number>(32 * 32).fill(0.4), [32, 32]), new Rng(4), 0.3);
    const ratio = Array.from(out.data, (v) => v / 0.4);
    expect(Math.min(...ratio)).toBeGreaterThan(0);
    // neighbouring voxels differ by far less than the field's range
    let maxStep = 0;
    for (let y = 0; y < 32; y++) for (let x = 1; x < 32; x++) maxStep = Math.max(maxStep, Math.abs(ratio[y * 32 + x]! - ratio[y * 32 + x - 1]!));
    expect(maxStep).toBeLessThan(0.1);
    expect(Math.max(...ratio) - Math.min(...ratio)).toBeGreaterThan(0.05);
  });

  it('is deterministic per seed', () => {
    const base = img(Array.from({ length: 24 * 24 }, (_, i) => (i % 24) / 23), [24, 24]);
    const all = { pCurve: 1, pGamma: 1, pContrast: 1, pBias: 1, pBlur: 1, pNoise: 1 };
    const a = randomAppearance(base, new Rng(123), all);
    const b = randomAppearance(base, new Rng(123), all);
    const c = randomAppearance(base, new Rng(124), all);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).not.toEqual(Array.from(c.data));
    expect(Math.min(...a.data) >= 0 && Math.max(...a.data) <= 1).toBe(true);
  });
});

describe('spatial', () => {
  // A [40, 48] label map of three discs on background.
  function labelMap(ny: number, nx: number): Uint8Array {
    const out = new Uint8Array(ny * nx);
    const discs = [[12, 14, 8, 1], [26, 30, 10, 2], [30, 10, 6, 3]] as const;
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) for (const [cy, cx, r, l] of discs) if ((y - cy) ** 2 + (x - cx) ** 2 <= r * r) out[y * nx + x] = l;
    return out;
  }

  it('same seed → identical transform and output', () => {
    const options = { flipAxes: [0, 1], maxRotationDeg: 15, maxTranslationVoxels: 3, elasticVoxels: 2 };
    const t1 = sampleSpatialTransform(new Rng(77), [40, 48], options);
    const t2 = sampleSpatialTransform(new Rng(77), [40, 48], options);
    expect(t1.sourceCoords.map((c) => Array.from(c))).toEqual(t2.sourceCoords.map((c) => Array.from(c)));
    const labels = { data: labelMap(40, 48), shape: [40, 48] };
    expect(Array.from(warp(t1, labels, 'nearest').data)).toEqual(Array.from(warp(t2, labels, 'nearest').data));
  });

  it('flips alone are exact permutations', () => {
    const labels = labelMap(40, 48);
    const flipped = (fy: boolean, fx: boolean): number[] => Array.from({ length: 40 * 48 }, (_, n) => labels[((fy ? 39 - Math.floor(n / 48) : Math.floor(n / 48)) * 48) + (fx ? 47 - (n % 48) : n % 48)]!);
    const candidates = [flipped(false, false), flipped(true, false), flipped(false, true), flipped(true, true)];
    const seen = new Set<number>();
    for (let seed = 0; seed < 12; seed++) {
      const t = sampleSpatialTransform(new Rng(seed), [40, 48], { flipAxes: [0, 1], maxRotationDeg: 0, scaleRange: [1, 1], elasticVoxels: 0 });
      const out = Array.from(warp(t, { data: labels, shape: [40, 48] }, 'nearest').data);
      const k = candidates.findIndex((c) => c.every((v, i) => v === out[i]));
      expect(k).toBeGreaterThanOrEqual(0);
      seen.add(k);
    }
    expect(seen.size).toBe(4);
  });

  // The label map warped with nearest and the same map cast to float warped linearly must
  // agree wherever the linear sample's neighbourhood is one label (then the float is
  // that integer exactly), and on ≥ 90 % of voxels overall after rounding.
  it.each([
    { shape: [40, 48], seed: 1 },
    { shape: [6, 40, 48], seed: 2 },
  ])('image, label and weight stay aligned: $shape', ({ shape, seed }) => {
    const plane = labelMap(40, 48);
    const nz = shape.length === 3 ? shape[0]! : 1;
    const labels = new Uint8Array(nz * plane.length);
    for (let z = 0; z < nz; z++) labels.set(plane, z * plane.length);
    const t = sampleSpatialTransform(new Rng(seed), shape, { flipAxes: [shape.length - 1], maxRotationDeg: 20, maxTranslationVoxels: 2, elasticVoxels: 3 });
    const weight = { data: new Float32Array(labels.length).fill(1), shape };
    const out = warpSample(t, { image: { data: Float32Array.from(labels), shape }, label: { data: labels, shape }, weight });
    const warpedLabel = out.label!.data;
    expect(warpedLabel).toBeInstanceOf(Uint8Array);
    let homogeneousChecked = 0;
    let agree = 0;
    for (let n = 0; n < labels.length; n++) {
      const v = out.image.data[n]!;
      if (Number.isInteger(v)) {
        homogeneousChecked++;
        expect(warpedLabel[n]).toBe(v);
      }
      if (Math.round(v) === warpedLabel[n]) agree++;
    }
    expect(homogeneousChecked).toBeGreaterThan(labels.length / 2);
    expect(agree / labels.length).toBeGreaterThan(0.9);
    // weights: 1 inside the source, 0 where the source was outside (label fill 0 there too)
    for (let n = 0; n < labels.length; n++) if (out.weight!.data[n] === 0) expect(warpedLabel[n]).toBe(0);
  });

  it('rejects a mismatched array', () => {
    const t = sampleSpatialTransform(new Rng(1), [4, 4]);
    expect(() => warp(t, img(new Array<number>(20).fill(0), [4, 5]), 'linear')).toThrow(new AugmentError('array shape [4, 5] does not match the transform shape [4, 4]'));
  });
});
