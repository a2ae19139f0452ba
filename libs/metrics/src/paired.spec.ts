import { MetricsError } from './errors';
import { pairedComparison, type SeedScores } from './paired';

const seed = (s: number, perCaseDice: number[]): SeedScores => ({ seed: s, dice: perCaseDice.reduce((a, b) => a + b, 0) / perCaseDice.length, perCaseDice });

describe('pairedComparison', () => {
  it.each([
    // [case, a, b, per-seed differences, wins/losses/ties, interval]
    ['identical methods', [seed(1, [0.8, 0.9]), seed(2, [0.7, 0.6])], [seed(1, [0.8, 0.9]), seed(2, [0.7, 0.6])], [0, 0], [0, 0, 2], [0, 0]],
    ['a constant gain of 0.01 on every case', [seed(1, [0.81, 0.91]), seed(2, [0.71, 0.61]), seed(3, [0.5, 0.4])], [seed(1, [0.8, 0.9]), seed(2, [0.7, 0.6]), seed(3, [0.49, 0.39])], [0.01, 0.01, 0.01], [3, 0, 0], [0.01, 0.01]],
    // One seed, case differences −0.02 and +0.04: a resample's mean is −0.02, 0.01 or 0.04 with probabilities 1/4, 1/2, 1/4,
    // so the 2.5th and 97.5th percentiles are the extremes.
    ['one seed, two cases', [seed(1, [0.78, 0.94])], [seed(1, [0.8, 0.9])], [0.01], [1, 0, 0], [-0.02, 0.04]],
  ] as const)('%s', (_name, a, b, perSeed, [wins, losses, ties], [lo, hi]) => {
    const r = pairedComparison(a, b);
    perSeed.forEach((d, i) => expect(r.perSeed[i]).toBeCloseTo(d, 12));
    expect(r.meanDifference).toBeCloseTo((perSeed as readonly number[]).reduce((x, y) => x + y, 0) / perSeed.length, 12);
    expect([r.wins, r.losses, r.ties]).toEqual([wins, losses, ties]);
    expect(r.ci95[0]).toBeCloseTo(lo, 12);
    expect(r.ci95[1]).toBeCloseTo(hi, 12);
  });

  it('pairs by seed, ignores seeds only one method has, and is reproducible', () => {
    const a = [seed(3, [0.9, 0.7, 0.8]), seed(1, [0.6, 0.65, 0.7]), seed(7, [0.1, 0.1, 0.1])];
    const b = [seed(1, [0.62, 0.6, 0.69]), seed(3, [0.85, 0.72, 0.8])];
    const r = pairedComparison(a, b);
    expect(r.seeds).toEqual([1, 3]);
    expect(r.perSeed[0]).toBeCloseTo(0.65 - 1.91 / 3, 12);
    expect(r.perSeed[1]).toBeCloseTo(0.8 - 2.37 / 3, 12);
    expect(r.ci95[0]).toBeLessThanOrEqual(r.meanDifference);
    expect(r.ci95[1]).toBeGreaterThanOrEqual(r.meanDifference);
    // Every resampled mean lies between the smallest and the largest case difference.
    expect(r.ci95[0]).toBeGreaterThanOrEqual(-0.02 - 1e-12);
    expect(r.ci95[1]).toBeLessThanOrEqual(0.05 + 1e-12);
    expect(pairedComparison(a, b)).toEqual(r);
    expect(pairedComparison(a, b, { seed: 2 }).ci95).not.toEqual(r.ci95);
  });

  it.each([
    ['different case counts', [seed(1, [0.8, 0.9])], [seed(1, [0.8])], 'seed 1: the methods were scored on 2 and 1 cases; a paired comparison needs the same, non-empty case list'],
    ['no shared seed', [seed(1, [0.8])], [seed(2, [0.8])], 'no seed is shared by the two methods'],
  ])('refuses %s', (_name, a, b, message) => {
    expect(() => pairedComparison(a, b)).toThrow(new MetricsError(message));
  });
});
