import { NORM_CLIP, RunningNormalizer } from './normalizer';
import { Rng } from './rng';

/** Direct two-pass mean and population variance of [n, width] rows. */
function direct(rows: Float32Array, n: number, width: number): { mean: number[]; variance: number[] } {
  const mean = Array.from({ length: width }, (_, f) => {
    let s = 0;
    for (let r = 0; r < n; r++) s += rows[r * width + f]!;
    return s / n;
  });
  const variance = mean.map((m, f) => {
    let s = 0;
    for (let r = 0; r < n; r++) s += (rows[r * width + f]! - m) ** 2;
    return s / n;
  });
  return { mean, variance };
}

describe('RunningNormalizer', () => {
  it('merging batches of 1, 7, 300 and 2 rows equals the direct mean/variance of all 310 rows', () => {
    // 310 rows × 3 features with different scales and offsets: N(5, 2²), N(−1e3, 10²), U[0, 1).
    const rng = Rng.fromSeed(4, 'normalizer');
    const width = 3;
    const all = new Float32Array(310 * width);
    for (let r = 0; r < 310; r++) {
      all[r * width] = 5 + 2 * rng.normal();
      all[r * width + 1] = -1000 + 10 * rng.normal();
      all[r * width + 2] = rng.uniform();
    }
    let norm = RunningNormalizer.empty(width);
    let row = 0;
    for (const size of [1, 7, 300, 2]) {
      norm = norm.merged(all.subarray(row * width, (row + size) * width), size);
      row += size;
    }
    const want = direct(all, 310, width);
    expect(norm.count).toBe(310);
    want.mean.forEach((m, f) => expect(norm.mean[f]).toBeCloseTo(m, 9));
    want.variance.forEach((v, f) => expect(norm.variance[f]! / v).toBeCloseTo(1, 9));
  });

  it('hand example: rows [1, 10], [3, 10] then [5, 10] → mean [3, 10], variance [8/3, 0]', () => {
    const norm = RunningNormalizer.empty(2)
      .merged(new Float32Array([1, 10, 3, 10]), 2)
      .merged(new Float32Array([5, 10]), 1);
    expect(Array.from(norm.mean)).toEqual([3, 10]);
    expect(norm.variance[0]).toBeCloseTo(8 / 3, 12);
    expect(norm.variance[1]).toBe(0);
    // normalize([5, 10]) = [(5 − 3)/√(8/3 + 1e-8), (10 − 10)/√1e-8] = [1.2247…, 0]
    const z = norm.normalize(new Float32Array([5, 10]), 1);
    expect(z[0]).toBeCloseTo(2 / Math.sqrt(8 / 3), 6);
    expect(z[1]).toBe(0);
    // A constant feature's slightest change is clipped to ±NORM_CLIP instead of exploding.
    expect(norm.normalize(new Float32Array([3, 10.5]), 1)[1]).toBe(NORM_CLIP);
  });

  it('is the identity (then clipped) before any data, and never mutates: merged() returns a new normaliser', () => {
    const empty = RunningNormalizer.empty(2);
    expect(Array.from(empty.normalize(new Float32Array([0.5, -20]), 1))).toEqual([0.5, -NORM_CLIP]);
    const next = empty.merged(new Float32Array([1, 2]), 1);
    expect(empty.count).toBe(0);
    expect(next.count).toBe(1);
    expect(RunningNormalizer.fromState(next.state).state).toEqual(next.state);
  });
});
