import { flipNchw, gaussianImportance, planTiles, predictWithFlips, slidingWindowPredict, tileStarts, type BatchPredictor } from './sliding-window';
import type { Nchw } from './model';
import { runPythonJson } from './test-models.test-util';

describe('tileStarts', () => {
  it.each([
    // [length, tile, overlap, expected starts] — n = ceil((L − t)/(t(1 − o))) + 1, starts round(i (L − t)/(n − 1))
    [10, 4, 0.5, [0, 2, 4, 6]], // step 2: n = 3 + 1, spacing 6/3 = 2
    [9, 4, 0.5, [0, 2, 3, 5]], // n = ceil(5/2) + 1 = 4, spacing 5/3: 0, 1.67→2, 3.33→3, 5
    [10, 4, 0, [0, 3, 6]], // step 4: n = ceil(6/4) + 1 = 3, spacing 3
    [4, 4, 0.5, [0]], // exactly one tile
    [3, 4, 0.5, [0]], // shorter than the tile: padded, one tile
    [13, 8, 0.5, [0, 3, 5]], // n = ceil(5/4) + 1 = 3, spacing 2.5: 0, 2.5→3 (half up), 5
  ])('length %d, tile %d, overlap %d → %j', (length, tile, overlap, expected) => {
    expect(tileStarts(length, tile, overlap)).toEqual(expected);
  });

  it('centres a slice smaller than the tile on a padded canvas', () => {
    // slice [5, 19], tile [8, 8]: canvas [8, 19], offset [floor(3/2), 0] = [1, 0]; x starts for 19 with overlap 0.5: n = ceil(11/4)+1 = 4, spacing 11/3 → 0, 4, 7, 11
    expect(planTiles([5, 19], [8, 8], 0.5)).toEqual({ tile: [8, 8], canvas: [8, 19], offset: [1, 0], startsY: [0], startsX: [0, 4, 7, 11] });
  });
});

describe('gaussianImportance', () => {
  it('is a separable Gaussian with σ = t/8 centred at (t − 1)/2, maximum 1', () => {
    // tile [3, 2]: σy = 0.375, σx = 0.25; y offsets (−1, 0, 1), x offsets (−0.5, 0.5)
    // gy = (e^{−1/(2·0.140625)}, 1, same) = (e^{−3.5556}, 1, e^{−3.5556}); gx = (1, 1) after scaling to max 1
    const g = gaussianImportance([3, 2]);
    const e = Math.exp(-1 / (2 * 0.375 * 0.375));
    const expected = [e, e, 1, 1, e, e];
    expect(g).toHaveLength(6);
    g.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 7));
  });
});

describe('flipNchw', () => {
  it.each([
    // [axes, expected] for one 2×3 image [[1, 2, 3], [4, 5, 6]]
    ['x', [3, 2, 1, 6, 5, 4]],
    ['y', [4, 5, 6, 1, 2, 3]],
    ['xy', [6, 5, 4, 3, 2, 1]],
  ] as const)('flips along %s', (axes, expected) => {
    expect(Array.from(flipNchw({ data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [1, 1, 2, 3] }, axes).data)).toEqual(expected);
  });
});

/**
 * A position-dependent fake network (NOT translation equivariant, so tiling
 * matters): 2 classes, p1 = σ(x + 0.05·(px − py)) at in-tile pixel (py, px), p0 = 1 − p1.
 */
const fake: BatchPredictor = async ({ data, shape: [n, , h, w] }) => {
  const out = new Float32Array(n * 2 * h * w);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p1 = 1 / (1 + Math.exp(-((data[(b * h + y) * w + x] as number) + 0.05 * (x - y))));
        out[((b * 2 + 1) * h + y) * w + x] = p1;
        out[((b * 2 + 0) * h + y) * w + x] = 1 - p1;
      }
    }
  }
  return { data: out, shape: [n, 2, h, w] };
};

/** numpy oracle of the documented algorithm (independent, vectorised implementation). */
const ORACLE = `
import json, sys, math
import numpy as np
a = json.loads(sys.stdin.read())
n, h, w = a['shape']; th, tw = a['tile']; ov = a['overlap']
img = np.array(a['data'], dtype=np.float64).reshape(n, h, w)
def starts(L, t):
    if L <= t: return [0]
    k = math.ceil((L - t) / (t * (1 - ov))) + 1
    return [int(math.floor(i * (L - t) / (k - 1) + 0.5)) for i in range(k)]
def g1(t):
    s = t / 8.0; c = (t - 1) / 2.0
    v = np.exp(-((np.arange(t) - c) ** 2) / (2 * s * s)); return v / v.max()
imp = np.outer(g1(th), g1(tw))
H, W = max(h, th), max(w, tw); oy, ox = (H - h) // 2, (W - w) // 2
canvas = np.zeros((n, H, W)); canvas[:, oy:oy + h, ox:ox + w] = img
acc = np.zeros((n, 2, H, W)); wsum = np.zeros((H, W))
py, px = np.mgrid[0:th, 0:tw]
for ty in starts(H, th):
    for tx in starts(W, tw):
        tile = canvas[:, ty:ty + th, tx:tx + tw]
        p1 = 1 / (1 + np.exp(-(tile + 0.05 * (px - py))))
        acc[:, 1, ty:ty + th, tx:tx + tw] += imp * p1
        acc[:, 0, ty:ty + th, tx:tx + tw] += imp * (1 - p1)
        wsum[ty:ty + th, tx:tx + tw] += imp
out = acc / wsum
print(json.dumps(out[:, :, oy:oy + h, ox:ox + w].ravel().tolist()))
`;

describe('slidingWindowPredict', () => {
  it.each([
    // [case, slices [n, 1, h, w], tile, overlap, batch size] — expected: the numpy oracle
    ['larger than the tile on both axes', [1, 1, 20, 13], [8, 8], 0.5, 4],
    ['smaller on y (centred padding), larger on x', [2, 1, 5, 19], [8, 8], 0.25, 3],
    ['no overlap, batches spanning slices', [3, 1, 12, 10], [4, 8], 0, 5],
    ['exactly one tile', [2, 1, 8, 8], [8, 8], 0.5, 1],
  ] as const)('%s equals the numpy oracle', async (_case, shape, tile, overlap, batchSize) => {
    const [n, , h, w] = shape;
    const data = Float32Array.from({ length: n * h * w }, (_, i) => Math.sin(i * 0.37) * 2);
    const timings = { inferenceMs: 0, blendMs: 0, tiles: 0, batches: 0 };
    const got = await slidingWindowPredict(fake, { data, shape }, { tileYx: tile, overlap, batchSize, timings });
    const expected = runPythonJson<number[]>(ORACLE, [], JSON.stringify({ shape: [n, h, w], tile, overlap, data: Array.from(data) }));
    expect(got.shape).toEqual([n, 2, h, w]);
    const maxDiff = expected.reduce((m, v, i) => Math.max(m, Math.abs(v - (got.data[i] as number))), 0);
    expect(maxDiff).toBeLessThan(1e-5);
    const tilesPerSlice = planTiles([h, w], tile, overlap).startsY.length * planTiles([h, w], tile, overlap).startsX.length;
    expect(timings.tiles).toBe(n * tilesPerSlice);
    expect(timings.batches).toBe(Math.ceil((n * tilesPerSlice) / batchSize));
  });

  it('refuses an overlap of 1 and a zero batch size', async () => {
    const slices: Nchw = { data: new Float32Array(16), shape: [1, 1, 4, 4] };
    await expect(slidingWindowPredict(fake, slices, { tileYx: [4, 4], overlap: 1, batchSize: 1 })).rejects.toMatchObject({ name: 'InferenceError', kind: 'invalid-argument', message: 'overlap must be in [0, 1), got 1' });
    await expect(slidingWindowPredict(fake, slices, { tileYx: [4, 4], overlap: 0, batchSize: 0 })).rejects.toMatchObject({ kind: 'invalid-argument', message: 'batch size must be a positive integer, got 0' });
  });

  it('stops between batches when the signal is aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(slidingWindowPredict(fake, { data: new Float32Array(16), shape: [1, 1, 4, 4] }, { tileYx: [4, 4], overlap: 0, batchSize: 1, signal: controller.signal })).rejects.toThrow('stop');
  });
});

describe('predictWithFlips', () => {
  it('averages the four flipped predictions, flipped back', async () => {
    // 1×1×1×2 image [a, b] with the fake: out-of-tile position terms 0.05·(px − py):
    //   identity: p1 = [σ(a), σ(b + 0.05)]; x-flip sees [b, a] → [σ(b), σ(a + 0.05)] → back [σ(a + 0.05), σ(b)]
    //   y-flip = identity (h = 1); xy-flip = x-flip. Mean: p1 = [(σ(a) + σ(a + .05))/2, (σ(b + .05) + σ(b))/2]
    const s = (v: number): number => 1 / (1 + Math.exp(-v));
    const [a, b] = [0.3, -1.2];
    const got = await predictWithFlips(fake, { data: Float32Array.from([a, b]), shape: [1, 1, 1, 2] });
    expect(got.data[2]).toBeCloseTo((s(a) + s(a + 0.05)) / 2, 6);
    expect(got.data[3]).toBeCloseTo((s(b + 0.05) + s(b)) / 2, 6);
  });
});
