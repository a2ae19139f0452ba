import { MetricsError } from './errors';
import type { LabelMap } from './label-map';
import { computeCaseMetrics, computeLabelMetrics, type LabelMetrics } from './metrics';

type Shape = [number, number, number];
type Spacing = [number, number, number];

/** Label map [z, y, x] with `label` at the given (z, y, x) voxels. */
function voxels(shape: Shape, spacingXyzMm: Spacing, label: number, at: readonly Shape[]): LabelMap {
  const data = new Uint8Array(shape[0] * shape[1] * shape[2]);
  for (const [z, y, x] of at) data[(z * shape[1] + y) * shape[2] + x] = label;
  return { data, shape, spacingXyzMm };
}

/** Label map with `label` on the box z0..z1, y0..y1, x0..x1 (inclusive). */
function box(shape: Shape, spacingXyzMm: Spacing, label: number, [z0, z1, y0, y1, x0, x1]: number[]): LabelMap {
  const at: Shape[] = [];
  for (let z = z0 ?? 0; z <= (z1 ?? -1); z++) for (let y = y0 ?? 0; y <= (y1 ?? -1); y++) for (let x = x0 ?? 0; x <= (x1 ?? -1); x++) at.push([z, y, x]);
  return voxels(shape, spacingXyzMm, label, at);
}

type Expected = Pick<LabelMetrics, 'dice' | 'hdMm' | 'hd95Mm' | 'assdMm' | 'surfaceDice' | 'bothEmpty' | 'oneEmpty'> &
  Partial<Pick<LabelMetrics, 'predSurfaceVoxels' | 'gtSurfaceVoxels'>>;

function expectMetrics(got: LabelMetrics, want: Expected): void {
  for (const [key, value] of Object.entries(want) as [keyof Expected, number | boolean][]) {
    if (typeof value === 'boolean') expect([key, got[key]]).toEqual([key, value]);
    else if (Number.isNaN(value)) expect([key, got[key]]).toEqual([key, NaN]);
    else expect([key, got[key]]).toEqual([key, expect.closeTo(value, 10)]);
  }
}

describe('computeLabelMetrics (hand-computed)', () => {
  const s: Spacing = [0.5, 0.7, 2.0];
  const empty = voxels([4, 4, 4], s, 1, []);
  const offset = Math.sqrt((2 * 2.0) ** 2 + (3 * 0.5) ** 2); // √(4² + 1.5²) = √18.25 ≈ 4.2720 mm

  it.each<[string, LabelMap, LabelMap, number, Expected]>([
    // [what, pred, gt, surface tolerance mm, expected]
    // Both empty: Dice 1, distances 0, surface Dice 1, flagged.
    ['both empty', empty, empty, 1, { dice: 1, hdMm: 0, hd95Mm: 0, assdMm: 0, surfaceDice: 1, bothEmpty: true, oneEmpty: false }],
    // Prediction empty, gt one voxel: Dice 0, surface Dice 0, distances missing (NaN).
    [
      'pred empty',
      empty,
      voxels([4, 4, 4], s, 1, [[1, 1, 1]]),
      1,
      { dice: 0, hdMm: NaN, hd95Mm: NaN, assdMm: NaN, surfaceDice: 0, bothEmpty: false, oneEmpty: true, gtSurfaceVoxels: 1 },
    ],
    // Gt empty: the same, the other way round.
    [
      'gt empty',
      voxels([4, 4, 4], s, 1, [[1, 1, 1]]),
      empty,
      1,
      { dice: 0, hdMm: NaN, hd95Mm: NaN, assdMm: NaN, surfaceDice: 0, bothEmpty: false, oneEmpty: true, predSurfaceVoxels: 1 },
    ],
    // Single voxel (z1, y2, x3) vs (z3, y2, x0), spacing x 0.5, y 0.7, z 2 mm:
    // Δz = 2 slices = 4 mm, Δx = 3 columns = 1.5 mm → √18.25 mm for HD, HD95, ASSD.
    // Tolerance 4.3 mm ≥ 4.272 → surface Dice 1.
    [
      'single voxels, tolerance above the offset',
      voxels([4, 4, 4], s, 1, [[1, 2, 3]]),
      voxels([4, 4, 4], s, 1, [[3, 2, 0]]),
      4.3,
      { dice: 0, hdMm: offset, hd95Mm: offset, assdMm: offset, surfaceDice: 1, bothEmpty: false, oneEmpty: false },
    ],
    // Same pair, tolerance 4.2 mm < 4.272 → surface Dice 0.
    [
      'single voxels, tolerance below the offset',
      voxels([4, 4, 4], s, 1, [[1, 2, 3]]),
      voxels([4, 4, 4], s, 1, [[3, 2, 0]]),
      4.2,
      { dice: 0, hdMm: offset, hd95Mm: offset, assdMm: offset, surfaceDice: 0, bothEmpty: false, oneEmpty: false },
    ],
    // Tolerance exactly equal to a distance of 2 × 1.1 mm counts as within (≤ τ).
    [
      'distance equal to the tolerance',
      voxels([1, 1, 4], [1.1, 1, 1], 1, [[0, 0, 0]]),
      voxels([1, 1, 4], [1.1, 1, 1], 1, [[0, 0, 2]]),
      2.2,
      { dice: 0, hdMm: 2.2, hd95Mm: 2.2, assdMm: 2.2, surfaceDice: 1, bothEmpty: false, oneEmpty: false },
    ],
    // Identical 2×3×3 boxes: Dice 1, every distance 0, surface Dice 1.
    [
      'identical masks',
      box([4, 5, 5], s, 1, [1, 2, 1, 3, 0, 2]),
      box([4, 5, 5], s, 1, [1, 2, 1, 3, 0, 2]),
      0,
      { dice: 1, hdMm: 0, hd95Mm: 0, assdMm: 0, surfaceDice: 1, bothEmpty: false, oneEmpty: false },
    ],
    // Touching the border, a 1D image [1, 1, 5] with x spacing 2 mm: pred x=0..4
    // (the whole row), gt x=0..3. Border voxels are surface (outside = background):
    // ∂P = {0, 4}, ∂G = {0, 3}. P→G: [0, 2] mm; G→P: [0, 2] mm.
    // HD 2; HD95 = 0 + 0.95·2 = 1.9 each direction; ASSD = (1 + 1)/2 = 1;
    // Dice = 2·4/(5 + 4) = 8/9; surface Dice at 1 mm = (1 + 1)/4 = 0.5.
    [
      'masks touching the image border',
      box([1, 1, 5], [2, 1, 1], 1, [0, 0, 0, 0, 0, 4]),
      box([1, 1, 5], [2, 1, 1], 1, [0, 0, 0, 0, 0, 3]),
      1,
      {
        dice: 8 / 9,
        hdMm: 2,
        hd95Mm: 1.9,
        assdMm: 1,
        surfaceDice: 0.5,
        bothEmpty: false,
        oneEmpty: false,
        predSurfaceVoxels: 2,
        gtSurfaceVoxels: 2,
      },
    ],
    // 2D [1, 5, 6], spacing x 0.5, y 0.8 mm (z 3 mm is irrelevant): 3×3 squares,
    // pred at x 0..2, gt at x 1..3, both y 0..2. In-plane 4-neighbourhood: each
    // surface is the 8-voxel ring (centre interior). P→G distances (hand):
    // (0,0) 0.5, (0,1) 0, (0,2) 0, (1,0) 0.5, (1,2) 0.5, (2,0) 0.5, (2,1) 0, (2,2) 0
    // → sorted [0,0,0,0,.5,.5,.5,.5]: mean 0.25, p95 (h = 6.65) 0.5, max 0.5;
    // G→P is the mirror image. Dice = 2·6/18 = 2/3. Surface Dice at 0.4 mm = 8/16.
    [
      '2D [1, y, x] squares shifted by one column',
      box([1, 5, 6], [0.5, 0.8, 3], 1, [0, 0, 0, 2, 0, 2]),
      box([1, 5, 6], [0.5, 0.8, 3], 1, [0, 0, 0, 2, 1, 3]),
      0.4,
      {
        dice: 2 / 3,
        hdMm: 0.5,
        hd95Mm: 0.5,
        assdMm: 0.25,
        surfaceDice: 0.5,
        bothEmpty: false,
        oneEmpty: false,
        predSurfaceVoxels: 8,
        gtSurfaceVoxels: 8,
      },
    ],
  ])('%s', (_what, pred, gt, tol, expected) => {
    const got = computeLabelMetrics(pred, gt, 1, { surfaceToleranceMm: tol });
    expectMetrics(got, expected);
    expect(got.surfaceToleranceMm).toBe(tol);
  });

  it('keeps the two directed HD95s apart (max of directions, not pooled as medpy does)', () => {
    // [1, 1, 12] row, 1 mm: pred x=0..9 → ∂P = {0, 9}; gt x=0 → ∂G = {0}.
    // P→G: [0, 9] → p95 = 8.55, mean 4.5;  G→P: [0] → p95 0, mean 0.
    // MONAI/DeepMind HD95 = max(8.55, 0) = 8.55 (pooled [0, 0, 9] would give 8.1).
    // ASSD = (4.5 + 0)/2 = 2.25 (pooled mean would be 3). HD = 9.
    const got = computeLabelMetrics(box([1, 1, 12], [1, 1, 1], 1, [0, 0, 0, 0, 0, 9]), box([1, 1, 12], [1, 1, 1], 1, [0, 0, 0, 0, 0, 0]), 1);
    expect(got.predToGt).toEqual({ meanMm: 4.5, p95Mm: expect.closeTo(8.55, 12), maxMm: 9 });
    expect(got.gtToPred).toEqual({ meanMm: 0, p95Mm: 0, maxMm: 0 });
    expect(got.hd95Mm).toBeCloseTo(8.55, 12);
    expect(got.assdMm).toBe(2.25);
    expect(got.hdMm).toBe(9);
    expect(got.dice).toBeCloseTo((2 * 1) / 11, 12);
  });

  it('uses the image, not the cropped box, to decide which axes are present', () => {
    // 3D image [3, 3, 3] with both masks only in slice z=1: z is still an axis, so
    // the one-voxel-thick plate is all surface (its voxels face background in z).
    // Pred = gt = the 3×3 plate → 9 surface voxels each (2D would say 8).
    const plate = box([3, 3, 3], [1, 1, 1], 1, [1, 1, 0, 2, 0, 2]);
    const got = computeLabelMetrics(plate, plate, 1);
    expect([got.predSurfaceVoxels, got.gtSurfaceVoxels, got.dice, got.hdMm]).toEqual([9, 9, 1, 0]);
  });
});

describe('computeCaseMetrics', () => {
  it('computes each label in the order given, from multi-label maps', () => {
    // [1, 1, 6] row, 1 mm. pred = [1, 1, 2, 2, 0, 0], gt = [1, 0, 2, 2, 2, 0].
    // Label 2: |P| 2, |G| 3, |P∩G| 2 → Dice 4/5. ∂P = {2, 3}, ∂G = {2, 4};
    //   P→G [0, 1], G→P [0, 1] → HD 1, HD95 0.95, ASSD 0.5.
    // Label 1: |P| 2, |G| 1, ∩ 1 → Dice 2/3; ∂P = {0, 1}, ∂G = {0}; P→G [0, 1], G→P [0]
    //   → HD 1, HD95 max(0.95, 0) = 0.95, ASSD (0.5 + 0)/2 = 0.25.
    // Label 3: in neither → both empty.
    const pred: LabelMap = { data: Int16Array.from([1, 1, 2, 2, 0, 0]), shape: [1, 1, 6], spacingXyzMm: [1, 1, 1] };
    const gt: LabelMap = { data: Int16Array.from([1, 0, 2, 2, 2, 0]), shape: [1, 1, 6], spacingXyzMm: [1, 1, 1] };
    const got = computeCaseMetrics(pred, gt, [2, 1, 3]);
    expect(got.map((m) => m.label)).toEqual([2, 1, 3]);
    expectMetrics(got[0] as LabelMetrics, { dice: 0.8, hdMm: 1, hd95Mm: 0.95, assdMm: 0.5, surfaceDice: 1, bothEmpty: false, oneEmpty: false });
    expectMetrics(got[1] as LabelMetrics, { dice: 2 / 3, hdMm: 1, hd95Mm: 0.95, assdMm: 0.25, surfaceDice: 1, bothEmpty: false, oneEmpty: false });
    expectMetrics(got[2] as LabelMetrics, { dice: 1, hdMm: 0, hd95Mm: 0, assdMm: 0, surfaceDice: 1, bothEmpty: true, oneEmpty: false });
  });

  it('returns an empty list for no labels', () => {
    const m = voxels([1, 1, 2], [1, 1, 1], 1, [[0, 0, 0]]);
    expect(computeCaseMetrics(m, m, [])).toEqual([]);
  });
});

describe('bad input', () => {
  const ok = voxels([2, 3, 4], [0.8, 0.8, 2.5], 1, [[0, 0, 0]]);
  it.each<[string, () => unknown, string]>([
    // [what, call, exact message]
    [
      'shape mismatch',
      () => computeCaseMetrics(ok, voxels([2, 4, 3], [0.8, 0.8, 2.5], 1, []), [1]),
      'shape mismatch: pred [z, y, x] [2, 3, 4] vs gt [2, 4, 3]',
    ],
    [
      'spacing mismatch',
      () => computeCaseMetrics(ok, voxels([2, 3, 4], [0.8, 0.8, 2.4], 1, []), [1]),
      'spacing mismatch: pred spacingXyzMm [0.8, 0.8, 2.5] vs gt [0.8, 0.8, 2.4]',
    ],
    [
      'non-positive spacing',
      () => computeLabelMetrics(voxels([2, 3, 4], [0.8, -0.8, 2.5], 1, []), ok, 1),
      'pred: spacingXyzMm must be 3 finite positive mm values (x, y, z), got [0.8, -0.8, 2.5]',
    ],
    [
      'NaN spacing',
      () => computeLabelMetrics(ok, voxels([2, 3, 4], [0.8, NaN, 2.5], 1, []), 1),
      'gt: spacingXyzMm must be 3 finite positive mm values (x, y, z), got [0.8, NaN, 2.5]',
    ],
    ['non-integer label', () => computeCaseMetrics(ok, ok, [1, 2.5]), 'label must be an integer, got 2.5'],
    ['NaN label', () => computeLabelMetrics(ok, ok, NaN), 'label must be an integer, got NaN'],
    ['repeated label', () => computeCaseMetrics(ok, ok, [1, 2, 1]), 'labels must be unique, got 1 twice in [1, 2, 1]'],
    [
      'data length',
      () => computeCaseMetrics({ ...ok, data: new Uint8Array(23) }, ok, [1]),
      'pred: data has 23 voxels but shape [2, 3, 4] needs 24',
    ],
    [
      'negative tolerance',
      () => computeCaseMetrics(ok, ok, [1], { surfaceToleranceMm: -1 }),
      'surfaceToleranceMm must be a finite number ≥ 0 (mm), got -1',
    ],
  ])('%s', (_what, call, message) => {
    expect(call).toThrow(MetricsError);
    expect(call).toThrow(message);
  });

  it('accepts spacings that differ only by float32 rounding (relative 1e-5)', () => {
    // 2.5 vs Math.fround(2.4999999) — the difference ~1e-7 mm is within tolerance.
    const other = voxels([2, 3, 4], [0.8, Math.fround(0.8), Math.fround(2.4999999)], 1, [[0, 0, 0]]);
    expect(computeLabelMetrics(ok, other, 1).dice).toBe(1);
  });
});
