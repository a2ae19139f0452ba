/**
 * @purify/metrics against an independent scipy implementation (test/scipy_oracle.py):
 * scipy.ndimage.distance_transform_edt with anisotropic `sampling`, binary_erosion
 * with face connectivity and border_value=0, numpy's linear percentile.
 */
import { computeCaseMetrics, euclideanDistanceTransform, type LabelMap } from '../src/index';
import { runOracle } from './oracle';
import { rng, smoothNoise, threshold } from './random-volumes';

type Shape = [number, number, number];
type Spacing = [number, number, number];

describe('euclideanDistanceTransform vs scipy distance_transform_edt', () => {
  // [what, shape [z, y, x], spacing (x, y, z) mm, how the mask is drawn]
  const cases: [string, Shape, Spacing, (random: () => number, n: number) => Uint8Array][] = [
    ['sparse random points, 3D anisotropic', [20, 30, 40], [0.7, 1.3, 2.9], (r, n) => Uint8Array.from({ length: n }, () => (r() < 0.003 ? 1 : 0))],
    ['dense random voxels, 3D anisotropic', [20, 30, 40], [1.1, 0.45, 3.3], (r, n) => Uint8Array.from({ length: n }, () => (r() < 0.4 ? 1 : 0))],
    ['blobs (thresholded smoothed noise)', [24, 28, 32], [0.9, 0.9, 2.5], (r) => threshold(smoothNoise([24, 28, 32], r), [1])],
    ['one voxel in a long thin box', [5, 7, 60], [0.3, 2.0, 4.0], (_r, n) => Uint8Array.from({ length: n }, (_, i) => (i === 3 * 7 * 60 + 2 * 60 + 17 ? 1 : 0))],
    ['2D image [1, y, x]', [1, 45, 37], [0.6, 1.7, 5.0], (r, n) => Uint8Array.from({ length: n }, () => (r() < 0.01 ? 1 : 0))],
    ['singleton y axis [z, 1, x]', [18, 1, 26], [0.8, 3.0, 1.9], (r, n) => Uint8Array.from({ length: n }, () => (r() < 0.02 ? 1 : 0))],
  ];

  const masks = cases.map(([, shape, spacingXyzMm, draw], k): LabelMap => {
    const data = draw(rng(100 + k), shape[0] * shape[1] * shape[2]);
    if (!data.some((v) => v !== 0)) data[0] = 1; // scipy needs at least one feature
    return { data, shape, spacingXyzMm };
  });
  const expected = runOracle<number[]>({
    op: 'edt',
    cases: masks.map((m) => ({ shape: m.shape, spacingXyzMm: m.spacingXyzMm, mask: Array.from(m.data) })),
  });

  it.each(cases.map((c, k) => [c[0], k] as const))('%s: every voxel to 1e-6 mm', (_what, k) => {
    const got = euclideanDistanceTransform(masks[k] as LabelMap);
    const want = expected[k] as number[];
    expect(got.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
    expect(worst).toBeLessThan(1e-6);
    // Not trivially all zero: some voxel is at least one voxel away from a feature.
    expect(Math.max(...want)).toBeGreaterThan(0.3);
  });
});

interface OracleRow {
  label: number;
  dice: number;
  hd: number | null;
  hd95: number | null;
  assd: number | null;
  surfaceDice: number;
  nSurfPred: number;
  nSurfGt: number;
  bothEmpty: boolean;
  oneEmpty: boolean;
}

describe('computeCaseMetrics vs scipy', () => {
  // Random blob label maps: gt = labels 1–3 from thresholds of a smoothed field F;
  // pred = the same thresholds of F + 0.6·F' (another smoothed field), so labels
  // overlap partly and surfaces differ by a few voxels. Label 4: a few gt voxels
  // only (one empty). Label 9: absent from both (both empty).
  // [what, shape [z, y, x], spacing (x, y, z) mm, surface tolerance mm]
  const cases: [string, Shape, Spacing, number][] = [
    ['3D, anisotropic (0.7, 1.3, 2.9)', [20, 30, 40], [0.7, 1.3, 2.9], 1.7],
    ['3D, anisotropic (1.1, 0.45, 3.3)', [20, 30, 40], [1.1, 0.45, 3.3], 2.2],
    ['3D, isotropic 1 mm', [22, 26, 30], [1, 1, 1], 1.5],
    ['3D, thick slices (0.8, 0.8, 5)', [12, 40, 40], [0.8, 0.8, 5], 3.1],
    ['2D [1, y, x] (z spacing must not matter)', [1, 64, 72], [0.6, 0.9, 7.0], 1.3],
    ['3D, tolerance 0 (exact overlap of surfaces)', [16, 20, 24], [0.9, 1.2, 2.1], 0],
  ];
  const labels = [1, 2, 3, 4, 9];

  const maps = cases.map(([, shape, spacingXyzMm], k): { pred: LabelMap; gt: LabelMap } => {
    const random = rng(7000 + k);
    const f = smoothNoise(shape, random);
    const g = smoothNoise(shape, random);
    const gt = threshold(f, [-0.3, 0.4, 1.0]);
    const pred = threshold(
      f.map((v, i) => v + 0.6 * (g[i] as number)),
      [-0.3, 0.4, 1.0],
    );
    for (let i = 5; i < gt.length; i += 97) gt[i] = 4; // label 4 only in gt
    return { pred: { data: pred, shape, spacingXyzMm }, gt: { data: gt, shape, spacingXyzMm } };
  });
  const expected = runOracle<OracleRow[]>({
    op: 'metrics',
    cases: maps.map(({ pred, gt }, k) => ({
      shape: pred.shape,
      spacingXyzMm: pred.spacingXyzMm,
      pred: Array.from(pred.data),
      gt: Array.from(gt.data),
      labels,
      toleranceMm: cases[k]?.[3],
    })),
  });

  it.each(cases.map((c, k) => [c[0], k] as const))('%s: Dice to 1e-6, distances to 1e-3 mm', (_what, k) => {
    const { pred, gt } = maps[k] as { pred: LabelMap; gt: LabelMap };
    const got = computeCaseMetrics(pred, gt, labels, { surfaceToleranceMm: cases[k]?.[3] as number });
    const want = expected[k] as OracleRow[];
    expect(got.map((m) => m.label)).toEqual(labels);
    // The random shapes must exercise the interesting paths, or the case proves little.
    expect(want.filter((r) => !r.bothEmpty && !r.oneEmpty).length).toBeGreaterThanOrEqual(2);
    expect(want.map((r) => [r.label, r.bothEmpty, r.oneEmpty])).toEqual([
      [1, false, false],
      [2, false, false],
      [3, false, false],
      [4, false, true],
      [9, true, false],
    ]);
    got.forEach((m, j) => {
      const w = want[j] as OracleRow;
      expect([m.label, m.bothEmpty, m.oneEmpty, m.predSurfaceVoxels, m.gtSurfaceVoxels]).toEqual([
        w.label,
        w.bothEmpty,
        w.oneEmpty,
        w.nSurfPred,
        w.nSurfGt,
      ]);
      expect(Math.abs(m.dice - w.dice)).toBeLessThan(1e-6);
      expect(Math.abs(m.surfaceDice - w.surfaceDice)).toBeLessThan(1e-6);
      for (const [ours, theirs] of [
        [m.hdMm, w.hd],
        [m.hd95Mm, w.hd95],
        [m.assdMm, w.assd],
      ] as const) {
        if (theirs === null) expect(ours).toBeNaN();
        else expect(Math.abs(ours - theirs)).toBeLessThan(1e-3);
      }
    });
  });
});
