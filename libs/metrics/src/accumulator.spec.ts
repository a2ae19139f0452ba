import { MetricsAccumulator, meanStd } from './accumulator';
import { MetricsError } from './errors';
import type { LabelMetrics } from './metrics';

/** A hand-made result; distances NaN when oneEmpty, 0 when bothEmpty. */
function result(label: number, dice: number, hd95Mm: number, flags: { bothEmpty?: boolean; oneEmpty?: boolean; tol?: number } = {}): LabelMetrics {
  const directed = { meanMm: hd95Mm / 2, p95Mm: hd95Mm, maxMm: hd95Mm * 2 };
  return {
    label,
    dice,
    hdMm: hd95Mm * 2,
    hd95Mm,
    assdMm: hd95Mm / 2,
    surfaceDice: dice,
    surfaceToleranceMm: flags.tol ?? 1,
    predVoxels: 0,
    gtVoxels: 0,
    intersectionVoxels: 0,
    predSurfaceVoxels: 0,
    gtSurfaceVoxels: 0,
    bothEmpty: flags.bothEmpty ?? false,
    oneEmpty: flags.oneEmpty ?? false,
    predToGt: directed,
    gtToPred: directed,
  };
}

describe('meanStd (population std)', () => {
  it.each([
    // [values, expected mean, std, n]
    [[2, 4, 4, 4, 5, 5, 7, 9], 5, 2, 8], // textbook: σ = 2 (divide by n)
    [[0.8, 0.6, 1.0], 0.8, Math.sqrt(0.08 / 3), 3], // deviations 0, −0.2, 0.2
    [[3], 3, 0, 1], // one case: std 0
    [[1, NaN, 3], 2, 1, 2], // NaN (missing) left out
    [[NaN], NaN, NaN, 0],
    [[], NaN, NaN, 0],
  ])('%p → mean %p, std %p, n %p', (values, mean, std, n) => {
    const got = meanStd(values);
    expect(got.n).toBe(n);
    if (Number.isNaN(mean)) expect([got.mean, got.std]).toEqual([NaN, NaN]);
    else {
      expect(got.mean).toBeCloseTo(mean, 12);
      expect(got.std).toBeCloseTo(std, 12);
    }
  });
});

describe('MetricsAccumulator', () => {
  it('gives per-label mean ± std, counts and the organ average (hand-computed)', () => {
    const acc = new MetricsAccumulator();
    // Label 1: Dice 0.8, 0.6, 1 (both empty; HD95 0 included) → mean 0.8,
    //   std √(0.08/3) ≈ 0.1633; HD95 4, 2, 0 → mean 2, std √(8/3) ≈ 1.633.
    // Label 2: Dice 0.5, 0 (one empty, HD95 missing), and not reported in c3
    //   → Dice mean 0.25, std 0.25 (n 2); HD95 only [6] → mean 6, std 0, n 1; missing 1.
    // Organ average: Dice (0.8 + 0.25)/2 = 0.525; HD95 (2 + 6)/2 = 4.
    acc.update('c1', [result(1, 0.8, 4), result(2, 0.5, 6)]);
    acc.update('c2', [result(1, 0.6, 2), result(2, 0, NaN, { oneEmpty: true })]);
    acc.update('c3', [result(1, 1, 0, { bothEmpty: true })]);
    const s = acc.aggregate();

    expect(s.cases).toBe(3);
    expect(s.perCase.map((c) => c.caseId)).toEqual(['c1', 'c2', 'c3']);
    expect(s.labels.map((l) => [l.label, l.cases, l.missing, l.bothEmpty, l.oneEmpty])).toEqual([
      [1, 3, 0, 1, 0],
      [2, 2, 1, 0, 1],
    ]);
    const [l1, l2] = s.labels;
    expect(l1?.dice).toEqual({ mean: expect.closeTo(0.8, 12), std: expect.closeTo(Math.sqrt(0.08 / 3), 12), n: 3 });
    expect(l1?.hd95Mm).toEqual({ mean: expect.closeTo(2, 12), std: expect.closeTo(Math.sqrt(8 / 3), 12), n: 3 });
    expect(l2?.dice).toEqual({ mean: expect.closeTo(0.25, 12), std: expect.closeTo(0.25, 12), n: 2 });
    expect(l2?.hd95Mm).toEqual({ mean: 6, std: 0, n: 1 });
    expect(l2?.assdMm).toEqual({ mean: 3, std: 0, n: 1 });
    expect(s.organAverage.dice).toBeCloseTo(0.525, 12);
    expect(s.organAverage.hd95Mm).toBeCloseTo(4, 12);
    expect(s.organAverage.hdMm).toBeCloseTo((4 + 12) / 2, 12); // label means 4 and 12
  });

  it('sorts labels, leaves out labels with no value from the organ average, and resets', () => {
    const acc = new MetricsAccumulator();
    // Label 3 is one-empty in its only case: Dice 0 (n 1), distances NaN (n 0).
    // Organ average of HD95 over labels with a value: only label 1 → 5.
    acc.update('a', [result(3, 0, NaN, { oneEmpty: true }), result(1, 0.9, 5)]);
    const s = acc.aggregate();
    expect(s.labels.map((l) => l.label)).toEqual([1, 3]);
    expect(s.labels[1]?.hd95Mm).toEqual({ mean: NaN, std: NaN, n: 0 });
    expect(s.organAverage.hd95Mm).toBe(5);
    expect(s.organAverage.dice).toBeCloseTo(0.45, 12);

    acc.reset();
    expect(acc.caseCount).toBe(0);
    const empty = acc.aggregate();
    expect(empty.cases).toBe(0);
    expect(empty.labels).toEqual([]);
    expect(empty.organAverage.dice).toBeNaN();
    acc.update('a', [result(1, 1, 0)]); // the id is free again after reset
    expect(acc.caseCount).toBe(1);
  });

  it('reports a label empty on both sides in every case as absent and scores it nowhere', () => {
    const acc = new MetricsAccumulator();
    // Label 1: Dice 0.1 and 0.3 → mean 0.2. Label 2: both empty in c1 (Dice 1) and 0.5 in
    //   c2 → mean 0.75: present in some case, so the both-empty case keeps counting.
    // Label 3: both empty in c1 and c2 → absent: not in labels, perCase or the averages.
    // Organ average over labels 1 and 2: (0.2 + 0.75)/2 = 0.475 (with label 3 as Dice 1
    //   it would have been (0.2 + 0.75 + 1)/3 = 0.65).
    acc.update('c1', [result(1, 0.1, 8), result(2, 1, 0, { bothEmpty: true }), result(3, 1, 0, { bothEmpty: true })]);
    acc.update('c2', [result(1, 0.3, 4), result(2, 0.5, 2), result(3, 1, 0, { bothEmpty: true })]);
    const s = acc.aggregate();
    expect(s.absentLabels).toEqual([3]);
    expect(s.labels.map((l) => [l.label, l.cases, l.bothEmpty])).toEqual([
      [1, 2, 0],
      [2, 2, 1],
    ]);
    expect(s.labels[1]?.dice.mean).toBeCloseTo(0.75, 12);
    expect(s.organAverage.dice).toBeCloseTo(0.475, 12);
    expect(s.organAverage.hd95Mm).toBeCloseTo((6 + 1) / 2, 12); // label means 6 and 1
    expect(s.perCase.map((c) => [c.caseId, c.labels.map((m) => m.label)])).toEqual([
      ['c1', [1, 2]],
      ['c2', [1, 2]],
    ]);
  });

  it('with every label absent there is no organ average', () => {
    // One case, labels 1 and 2 both empty on both sides: nothing to score.
    const acc = new MetricsAccumulator();
    acc.update('c1', [result(1, 1, 0, { bothEmpty: true }), result(2, 1, 0, { bothEmpty: true })]);
    const s = acc.aggregate();
    expect(s.absentLabels).toEqual([1, 2]);
    expect(s.labels).toEqual([]);
    expect(s.organAverage.dice).toBeNaN();
    expect(s.perCase).toEqual([{ caseId: 'c1', labels: [] }]);
  });

  it.each<[string, (acc: MetricsAccumulator) => void, string]>([
    // [what, bad update after case "c1" with label 1 at tolerance 1 mm, message]
    ['a repeated case id', (acc) => acc.update('c1', []), 'case "c1" was already added'],
    ['an empty case id', (acc) => acc.update('', []), 'caseId must be a non-empty string, got ""'],
    ['a label twice in one case', (acc) => acc.update('c2', [result(2, 1, 0), result(2, 1, 0)]), 'case "c2": label 2 appears twice'],
    ['a non-integer label', (acc) => acc.update('c2', [result(1.5, 1, 0)]), 'case "c2": label must be an integer, got 1.5'],
    [
      'another surface tolerance',
      (acc) => acc.update('c2', [result(1, 1, 0, { tol: 2 })]),
      'case "c2": label 1 has surfaceToleranceMm 2, earlier cases used 1',
    ],
  ])('rejects %s', (_what, bad, message) => {
    const acc = new MetricsAccumulator();
    acc.update('c1', [result(1, 1, 0)]);
    expect(() => bad(acc)).toThrow(MetricsError);
    expect(() => bad(acc)).toThrow(message);
    expect(acc.caseCount).toBe(1); // nothing half-added
  });
});
