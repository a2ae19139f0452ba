import { abortBarrier, barrier, BarrierAbortedError, crossEntropyNormaliser, CTRL, diceTotalsGradient, resetBarrier, splitBatch } from './shared';

describe('splitBatch', () => {
  it.each([
    // [batch, workers, expected (start, count) per shard]
    [8, 2, [[0, 4], [4, 4]]], // even split
    [5, 2, [[0, 3], [3, 2]]], // the first shard takes the remainder
    [4, 3, [[0, 2], [2, 1], [3, 1]]],
    [1, 3, [[0, 1], [1, 0], [1, 0]]], // more workers than images: trailing shards empty
    [7, 1, [[0, 7]]],
  ])('%i images over %i workers', (batch, workers, expected) => {
    expect(splitBatch(batch, workers).map((s) => [s.start, s.count])).toEqual(expected);
  });
});

describe('crossEntropyNormaliser', () => {
  it.each([
    // [weights, pixels, expected]
    [undefined, 12, 12], // no weights: the pixel count (plain mean)
    [new Float32Array([0.5, 0.25, 0, 1]), 4, 1.75], // Σw
    [new Float32Array([0, 0, 0]), 3, 1e-6], // all zero: the ε floor, as weightedCrossEntropy
  ])('weights %p over %i pixels → %f', (weights, pixels, expected) => {
    expect(crossEntropyNormaliser(weights, pixels, 1e-6)).toBeCloseTo(expected, 12);
  });
});

describe('diceTotalsGradient', () => {
  // L(I, S) = 1 − mean_k (2 I_k + s)/(S_k + s), checked against central differences.
  const lossOf = (i: number[], s: number[], smooth: number): number => 1 - i.reduce((a, ik, k) => a + (2 * ik + smooth) / (s[k]! + smooth), 0) / i.length;
  it.each([
    // [I, S, smooth]
    [[3, 0.5, 0.01], [8, 2, 0.05], 1e-5],
    [[10.25, 4], [30, 9.5], 1],
  ])('I=%p S=%p smooth=%f matches finite differences', (i, s, smooth) => {
    const g = diceTotalsGradient(Float64Array.from(i), Float64Array.from(s), smooth);
    expect(g.loss).toBeCloseTo(lossOf(i, s, smooth), 10);
    const h = 1e-4;
    i.forEach((_, k) => {
      const up = (a: number[], d: number): number[] => a.map((v, j) => (j === k ? v + d : v));
      const dI = (lossOf(up(i, h), s, smooth) - lossOf(up(i, -h), s, smooth)) / (2 * h);
      const dS = (lossOf(i, up(s, h), smooth) - lossOf(i, up(s, -h), smooth)) / (2 * h);
      // float32 results and O(h²) difference error: relative tolerance 1e-4
      expect(Math.abs(g.dI[k]! - dI)).toBeLessThanOrEqual(1e-4 * Math.abs(dI) + 1e-7);
      expect(Math.abs(g.dS[k]! - dS)).toBeLessThanOrEqual(1e-4 * Math.abs(dS) + 1e-7);
    });
  });


  it('scores an absent class (I = S = 0) as Dice 1', () => {
    // loss = 1 − mean(2·3/8, (0 + s)/(0 + s)) = 1 − (0.75 + 1)/2 = 0.125 (up to s = 1e-5 in the first ratio)
    expect(diceTotalsGradient(Float64Array.from([3, 0]), Float64Array.from([8, 0]), 1e-5).loss).toBeCloseTo(0.125, 6);
  });
});

describe('barrier', () => {
  it('passes at once for a single party and advances the generation', () => {
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL.Length * 4));
    barrier(ctrl, 1);
    barrier(ctrl, 1);
    expect(Atomics.load(ctrl, CTRL.Generation)).toBe(2);
    expect(Atomics.load(ctrl, CTRL.Count)).toBe(0);
  });

  it('throws BarrierAbortedError once aborted, until reset', () => {
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL.Length * 4));
    abortBarrier(ctrl);
    expect(() => barrier(ctrl, 2)).toThrow(new BarrierAbortedError('step aborted: another worker failed'));
    resetBarrier(ctrl);
    barrier(ctrl, 1);
    expect(Atomics.load(ctrl, CTRL.Abort)).toBe(0);
  });
});
