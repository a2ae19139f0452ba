import type { LabelMap } from './label-map';
import { surfaceMask } from './surface';

const full = (shape: [number, number, number]): LabelMap => ({
  data: new Uint8Array(shape[0] * shape[1] * shape[2]).fill(1),
  shape,
  spacingXyzMm: [1, 1, 1],
});

describe('surfaceMask', () => {
  it.each<[string, LabelMap, number, number[]]>([
    // [what, mask, expected surface voxel count, indices expected to be interior]
    // Whole 3×3×3 image: outside is background, so all 26 border voxels are
    // surface; only the centre (index 13) keeps its 6 face neighbours.
    ['full 3×3×3 image', full([3, 3, 3]), 26, [13]],
    // 2D [1, 3, 3]: z is absent (4-neighbourhood), so the centre (index 4) is
    // interior; counting z would make all 9 surface.
    ['full 2D [1, 3, 3] image', full([1, 3, 3]), 8, [4]],
    // Whole [3, 4, 4] image: interior = z 1, y 1..2, x 1..2 (4 voxels) → 48 − 4.
    ['full [3, 4, 4] image', full([3, 4, 4]), 44, [21, 22, 25, 26]],
    // A single voxel is its own surface.
    ['single voxel', { data: Uint8Array.from([0, 0, 7, 0]), shape: [1, 2, 2], spacingXyzMm: [1, 1, 1] }, 1, []],
    // [1, 1, 5] row: a 1D image, x only; run x=1..3 → ends x=1 and x=3 are surface, x=2 interior.
    ['1D run', { data: [0, 1, 1, 1, 0], shape: [1, 1, 5], spacingXyzMm: [1, 1, 1] }, 2, [2]],
  ])('%s', (_what, mask, count, interior) => {
    const s = surfaceMask(mask);
    expect(s.reduce((n, v) => n + v, 0)).toBe(count);
    for (const i of interior) expect(s[i]).toBe(0);
    // Surface ⊆ mask.
    for (let i = 0; i < s.length; i++) if (s[i] === 1) expect(mask.data[i]).not.toBe(0);
  });

  it('treats a 3D mask inside the image (not touching the border) with the 6-neighbourhood', () => {
    // 5×5×5 image, 3×3×3 cube at 1..3 on every axis: 27 voxels, only the centre
    // (2,2,2) is interior → 26 surface voxels; edges and corners of the cube count.
    const data = new Uint8Array(125);
    for (let z = 1; z <= 3; z++) for (let y = 1; y <= 3; y++) for (let x = 1; x <= 3; x++) data[(z * 5 + y) * 5 + x] = 1;
    const s = surfaceMask({ data, shape: [5, 5, 5], spacingXyzMm: [1, 1, 1] });
    expect(s.reduce((n, v) => n + v, 0)).toBe(26);
    expect(s[(2 * 5 + 2) * 5 + 2]).toBe(0);
  });
});
