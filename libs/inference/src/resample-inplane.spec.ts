import { makeVolume, resampledGrid, resampleToGrid } from '@purify/imaging';
import { resampleSlicesBilinear } from './resample-inplane';

describe('resampleSlicesBilinear', () => {
  it('halves and doubles by hand: [1, 1, 4] ↔ [1, 1, 2]', () => {
    // 4 → 2: u = (i + 0.5)·2 − 0.5 = 0.5, 2.5 → (1 + 2)/2 = 1.5, (3 + 4)/2 = 3.5
    expect(Array.from(resampleSlicesBilinear(Float32Array.from([1, 2, 3, 4]), [1, 1, 4], [1, 2]))).toEqual([1.5, 3.5]);
    // 2 → 4: u = (i + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1) → 10, 12.5, 17.5, 20
    expect(Array.from(resampleSlicesBilinear(Float32Array.from([10, 20]), [1, 1, 2], [1, 4]))).toEqual([10, 12.5, 17.5, 20]);
  });

  it.each([
    // [case, shape [z, y, x], spacing (x, y, z), target in-plane spacing]
    ['down-sampling, oblique', [3, 17, 23], [0.7, 0.9, 2], [1.3, 1.1]],
    ['up-sampling on x, down on y', [2, 11, 9], [1.6, 0.6, 3], [0.8, 1.0]],
  ] as const)('equals resampleToGrid(linear) onto resampledGrid: %s', (_case, shape, spacing, target) => {
    const [c, s] = [Math.cos(0.5), Math.sin(0.5)];
    const volume = makeVolume(Float32Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => Math.sin(i * 0.37) * 10 + i * 0.01), shape, {
      spacingXyzMm: spacing,
      originLpsMm: [5, -3, 12],
      directionLps: [c, 0, -s, 0, 1, 0, s, 0, c],
    });
    const grid = resampledGrid(volume, { spacingXyzMm: [target[0], target[1], undefined] });
    const expected = resampleToGrid(volume, grid, { interpolation: 'linear' }).data;
    const got = resampleSlicesBilinear(volume.data, shape, [grid.shape[1], grid.shape[2]]);
    expect(got.length).toBe(expected.length);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs((got[i] as number) - (expected[i] as number)));
    expect(maxDiff).toBeLessThan(1e-4);
  });
});
