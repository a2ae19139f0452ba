import { AugmentError, type ImageArray } from './augment';
import {
  applyClassMaps,
  applyRandomConvNet,
  blendImages,
  classwiseRemap,
  evalClassMap,
  evalCurve,
  randomBezierCurve,
  randomConvAppearance,
  sampleClassMaps,
  sampleRandomConvNet,
  smoothRandomMask,
  type RandomConvNet,
} from './augment-agnostic';
import { runPythonJson } from './python.test-util';
import { Rng } from './rng';

/** A [24, 28] phantom slice: air 0 outside an ellipse of "fat" 0.3 holding discs 1 (0.55), 2 (0.6) and 3 (0.8), with a ramp inside each so values vary within a class. */
function phantom(): { image: ImageArray; label: ImageArray<Int32Array> } {
  const ny = 24;
  const nx = 28;
  const image = new Float32Array(ny * nx);
  const label = new Int32Array(ny * nx);
  const discs = [[8, 9, 4, 1, 0.55], [15, 18, 5, 2, 0.6], [16, 7, 3, 3, 0.8]] as const;
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = y * nx + x;
      if (((y - 11.5) / 11) ** 2 + ((x - 13.5) / 13) ** 2 > 1) continue;
      image[i] = 0.3 + 0.002 * x;
      for (const [cy, cx, r, l, v] of discs) {
        if ((y - cy) ** 2 + (x - cx) ** 2 <= r * r) {
          label[i] = l;
          image[i] = v + 0.01 * (y - cy);
        }
      }
    }
  }
  return { image: { data: image, shape: [ny, nx] }, label: { data: label, shape: [ny, nx] } };
}

const minMax = (a: ArrayLike<number>): [number, number] => [Math.min(...Array.from(a)), Math.max(...Array.from(a))];

describe('GIN (random convolution networks)', () => {
  it('draws fresh networks: shape kept, output within the input range, deterministic per seed, different across seeds', () => {
    const { image } = phantom();
    const [lo, hi] = minMax(image.data);
    const outs = [1, 2, 3].map((seed) => randomConvAppearance(image, new Rng(seed)));
    for (const out of outs) {
      expect(out.shape).toEqual(image.shape);
      const [a, b] = minMax(out.data);
      expect(a).toBeGreaterThanOrEqual(lo - 1e-6);
      expect(b).toBeLessThanOrEqual(hi + 1e-6);
    }
    expect(Array.from(randomConvAppearance(image, new Rng(1)).data)).toEqual(Array.from(outs[0]!.data));
    expect(Array.from(outs[0]!.data)).not.toEqual(Array.from(outs[1]!.data));
    expect(Array.from(outs[1]!.data)).not.toEqual(Array.from(outs[2]!.data));
  });

  it('is the identity when every weight and bias is 0 (the blend keeps (1 − α)·x, mapped back onto the input range)', () => {
    const { image } = phantom();
    const net = sampleRandomConvNet(new Rng(4));
    const zero: RandomConvNet = { ...net, layers: net.layers.map((l) => ({ ...l, kernel: new Float32Array(l.kernel.length), bias: new Float32Array(l.bias.length) })) };
    expect(zero.alpha).toBeLessThan(1);
    const out = applyRandomConvNet(image, zero);
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(image.data[i]!, 5));
  });

  it('matches a numpy reference of conv (zero padding) → leaky ReLU → … → blend → range map', () => {
    const rng = new Rng(11);
    const shape = [6, 7];
    const data = Float32Array.from({ length: 42 }, () => rng.uniform(0, 1));
    const net = sampleRandomConvNet(new Rng(12), { layers: 3, channels: 2, kernelSizes: [3] });
    const out = applyRandomConvNet({ data, shape }, net);
    const want = runPythonJson<number[]>(
      `
import sys, json, numpy as np
x = np.array(json.loads(sys.argv[1]), dtype=np.float64).reshape(1, 6, 7)
net = json.loads(sys.argv[2])
h = x
for L in net['layers']:
    k = L['k']; r = k // 2
    W = np.array(L['kernel']).reshape(L['out'], L['in'], k, k); b = np.array(L['bias'])
    p = np.pad(h, ((0, 0), (r, r), (r, r)))
    o = np.zeros((L['out'], 6, 7))
    for co in range(L['out']):
        o[co] = b[co]
        for ci in range(L['in']):
            for dy in range(k):
                for dx in range(k):
                    o[co] += W[co, ci, dy, dx] * p[ci, dy:dy + 6, dx:dx + 7]
    if L['act']:
        o = np.where(o < 0, o * net['slope'], o)
    h = o
m = net['alpha'] * h[0] + (1 - net['alpha']) * x[0]
y = x[0].min() + (m - m.min()) * (x[0].max() - x[0].min()) / (m.max() - m.min())
print(json.dumps(y.reshape(-1).tolist()))
`,
      [
        JSON.stringify(Array.from(data)),
        JSON.stringify({
          alpha: net.alpha,
          slope: net.negativeSlope,
          layers: net.layers.map((l) => ({ k: l.kernelSize, in: l.inChannels, out: l.outChannels, kernel: Array.from(l.kernel), bias: Array.from(l.bias), act: l.activation })),
        }),
      ],
    );
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 4));
  });

  it('refuses bad options and inconsistent networks', () => {
    expect(() => sampleRandomConvNet(new Rng(1), { kernelSizes: [2] })).toThrow(new AugmentError('random conv kernel sizes must be odd positive integers, got [2]'));
    expect(() => sampleRandomConvNet(new Rng(1), { layers: 0 })).toThrow(new AugmentError('random conv layers must be an integer ≥ 1, got 0'));
    const net = sampleRandomConvNet(new Rng(1), { layers: 2 });
    const broken: RandomConvNet = { ...net, layers: [net.layers[0]!, { ...net.layers[1]!, inChannels: 3, kernel: new Float32Array(3 * net.layers[1]!.kernelSize ** 2) }] };
    expect(() => applyRandomConvNet(phantom().image, broken)).toThrow(new AugmentError('random conv layer 1 takes 3 channels but receives 2'));
  });
});

describe('class-wise remapping', () => {
  it('pixels of one label follow one curve: with hard masks every pixel gets its own class map', () => {
    const { image, label } = phantom();
    const maps = sampleClassMaps(image, label, new Rng(3));
    expect([...maps.keys()]).toEqual([0, 1, 2, 3]);
    const out = applyClassMaps(image, label, maps, { boundarySigma: 0 });
    for (let i = 0; i < image.data.length; i++) {
      const v = image.data[i]!;
      const want = v <= 0.01 ? v : evalClassMap(maps.get(label.data[i]!)!, v);
      expect(out.data[i]).toBeCloseTo(want, 6);
    }
  });

  it('with soft boundaries, pixels whose whole neighbourhood is one class still follow that class map; boundary pixels lie between the neighbouring maps', () => {
    const { image, label } = phantom();
    const [ny, nx] = image.shape as [number, number];
    const maps = sampleClassMaps(image, label, new Rng(8));
    const out = applyClassMaps(image, label, maps, { boundarySigma: 1 });
    let interior = 0;
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = y * nx + x;
        const v = image.data[i]!;
        if (v <= 0.01) {
          expect(out.data[i]).toBe(v); // air keeps its value
          continue;
        }
        // Classes within the Gaussian's radius (3σ).
        const near = new Set<number>();
        for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) near.add(label.data[Math.min(Math.max(y + dy, 0), ny - 1) * nx + Math.min(Math.max(x + dx, 0), nx - 1)]!);
        const values = [...near].map((c) => evalClassMap(maps.get(c)!, v));
        if (near.size === 1) {
          interior++;
          expect(out.data[i]).toBeCloseTo(values[0]!, 5);
        } else {
          expect(out.data[i]).toBeGreaterThanOrEqual(Math.min(...values) - 1e-5);
          expect(out.data[i]).toBeLessThanOrEqual(Math.max(...values) + 1e-5);
        }
      }
    }
    expect(interior).toBeGreaterThan(50);
  });

  it('changes organ contrast independently: deterministic per seed, in [0, 1], the label map is not an output', () => {
    const { image, label } = phantom();
    const a = classwiseRemap(image, label, new Rng(21));
    const b = classwiseRemap(image, label, new Rng(21));
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    const [lo, hi] = minMax(a.data);
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThanOrEqual(1);
    // Over seeds, the mean of class 1 minus the mean of class 2 changes sign (0.55 < 0.6 in the input): contrast reorders.
    const diff = (seed: number): number => {
      const o = classwiseRemap(image, label, new Rng(seed), { boundarySigma: 0 }).data;
      const mean = (c: number): number => {
        let s = 0;
        let n = 0;
        for (let i = 0; i < o.length; i++) {
          if (label.data[i] !== c) continue;
          s += o[i]!;
          n++;
        }
        return s / n;
      };
      return mean(1) - mean(2);
    };
    const signs = new Set(Array.from({ length: 20 }, (_, s) => Math.sign(diff(s))));
    expect(signs).toEqual(new Set([-1, 1]));
  });

  it('Bézier curves: start and end at the class range, stay inside it, monotone unless drawn non-monotone', () => {
    for (let seed = 0; seed < 20; seed++) {
      const c = randomBezierCurve(new Rng(seed), 0.2, 0.7, { pNonMonotonic: 0 });
      expect(c.xs[0]).toBeCloseTo(0.2, 12);
      expect(c.xs[c.xs.length - 1]).toBeCloseTo(0.7, 12);
      expect(c.ys[0]).toBeCloseTo(0.2, 12);
      expect(c.ys[c.ys.length - 1]).toBeCloseTo(0.7, 12);
      for (let i = 1; i < c.ys.length; i++) expect(c.ys[i]! >= c.ys[i - 1]!).toBe(true);
      const n = randomBezierCurve(new Rng(seed), 0.2, 0.7, { pNonMonotonic: 1 });
      expect(Math.min(...n.ys)).toBeGreaterThanOrEqual(0.2 - 1e-12);
      expect(Math.max(...n.ys)).toBeLessThanOrEqual(0.7 + 1e-12);
    }
  });

  it('evalCurve interpolates like numpy.interp (clamped at the ends)', () => {
    const xs = Float64Array.from([0.1, 0.2, 0.5, 0.9]);
    const ys = Float64Array.from([0.8, 0.1, 0.4, 0.3]);
    const at = [0, 0.1, 0.15, 0.3, 0.5, 0.77, 0.9, 1];
    const want = runPythonJson<number[]>('import sys, json, numpy as np; a = json.loads(sys.argv[1]); print(json.dumps(np.interp(a[2], a[0], a[1]).tolist()))', [JSON.stringify([Array.from(xs), Array.from(ys), at])]);
    at.forEach((v, i) => expect(evalCurve({ xs, ys }, v)).toBeCloseTo(want[i]!, 12));
  });
});

describe('IPA blend', () => {
  it('smooth random masks lie in [0, 1], vary slowly and differ per seed', () => {
    const a = smoothRandomMask(32, 40, new Rng(1));
    const b = smoothRandomMask(32, 40, new Rng(2));
    expect(a.length).toBe(32 * 40);
    const [lo, hi] = minMax(a);
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi - lo).toBeGreaterThan(0.2);
    let step = 0;
    for (let y = 0; y < 32; y++) for (let x = 1; x < 40; x++) step = Math.max(step, Math.abs(a[y * 40 + x]! - a[y * 40 + x - 1]!));
    // Control points at least 40/4 = 10 pixels apart: a pixel step is a small part of the range.
    expect(step).toBeLessThan(0.25);
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it('blends m·a + (1 − m)·b per pixel, one mask for every slice of a volume', () => {
    // [2, 1, 2] volumes: a = [1, 0 | 1, 0], b = [0, 1 | 0.5, 0.5], mask [0.25, 1] → [0.25, 0 | 0.625, 0]
    const a = { data: Float32Array.from([1, 0, 1, 0]), shape: [2, 1, 2] };
    const b = { data: Float32Array.from([0, 1, 0.5, 0.5]), shape: [2, 1, 2] };
    const out = blendImages(a, b, Float32Array.from([0.25, 1]));
    expect(Array.from(out.data)).toEqual([0.25, 0, 0.625, 0]);
    expect(() => blendImages(a, b, Float32Array.from([1]))).toThrow(new AugmentError('blend: mask has 1 values, a slice 2'));
  });
});
