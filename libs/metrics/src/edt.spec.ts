import { euclideanDistanceTransform } from './edt';
import { MetricsError } from './errors';
import type { LabelMap } from './label-map';

const map = (shape: [number, number, number], spacingXyzMm: [number, number, number], data: number[]): LabelMap => ({
  data: Uint8Array.from(data),
  shape,
  spacingXyzMm,
});

describe('euclideanDistanceTransform (hand-computed)', () => {
  it.each([
    // [what, mask, expected distance in mm per voxel, C order]
    // 1D row [1, 1, 5], x spacing 2 mm, feature at x=1 → |x − 1|·2.
    ['row, feature at x=1, 2 mm', map([1, 1, 5], [2, 9, 9], [0, 1, 0, 0, 0]), [2, 0, 2, 4, 6]],
    // 2D [1, 2, 4], spacing x 1 mm, y 3 mm, features at (y0,x0) and (y1,x3).
    // (0,3): 3 mm down to (1,3) or 3 mm left to (0,0) → 3 (isotropic would say 1).
    // (0,2): 2 to (0,0) beats √(9+1) to (1,3).   (1,1): 2 to (1,3) beats √10.
    ['2D anisotropic, two features', map([1, 2, 4], [1, 3, 7], [1, 0, 0, 0, 0, 0, 0, 1]), [0, 1, 2, 3, 3, 2, 1, 0]],
    // No feature at all → +Infinity everywhere.
    ['no feature', map([1, 2, 2], [1, 1, 1], [0, 0, 0, 0]), [Infinity, Infinity, Infinity, Infinity]],
    // Every voxel a feature → 0.
    ['all features', map([2, 1, 2], [1, 1, 1], [5, 1, 2, 3]), [0, 0, 0, 0]],
  ])('%s', (_what, mask, expected) => {
    expect(Array.from(euclideanDistanceTransform(mask))).toEqual(expected);
  });

  it('measures anisotropic 3D distances from a centre voxel exactly', () => {
    // 3×3×3, feature at the centre (1,1,1); spacing x 1, y 2, z 3 mm.
    const data = new Array<number>(27).fill(0);
    data[13] = 1;
    const d = euclideanDistanceTransform(map([3, 3, 3], [1, 2, 3], data));
    const at = (z: number, y: number, x: number): number => d[(z * 3 + y) * 3 + x] as number;
    // [voxel (z, y, x), expected mm]
    const cases: [[number, number, number], number][] = [
      [[1, 1, 1], 0],
      [[1, 1, 0], 1], // one x step
      [[1, 0, 1], 2], // one y step
      [[0, 1, 1], 3], // one z step
      [[0, 0, 0], Math.sqrt(1 + 4 + 9)], // corner: √14
      [[2, 2, 1], Math.sqrt(4 + 9)], // √13
    ];
    for (const [[z, y, x], mm] of cases) expect(at(z, y, x)).toBeCloseTo(mm, 12);
  });

  it.each([
    // [what, bad mask, message]
    ['zero spacing', map([1, 1, 2], [1, 0, 1], [0, 1]), 'mask: spacingXyzMm must be 3 finite positive mm values (x, y, z), got [1, 0, 1]'],
    ['short data', map([1, 2, 2], [1, 1, 1], [0, 1, 0]), 'mask: data has 3 voxels but shape [1, 2, 2] needs 4'],
    ['bad shape', map([0, 2, 2], [1, 1, 1], []), 'mask: shape must be 3 positive integers [z, y, x], got [0, 2, 2]'],
  ])('rejects %s', (_what, mask, message) => {
    expect(() => euclideanDistanceTransform(mask)).toThrow(MetricsError);
    expect(() => euclideanDistanceTransform(mask)).toThrow(message);
  });
});
