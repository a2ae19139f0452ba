import { ABDOMEN_WINDOW, IntensityError, huWindow, percentile, percentileClip, percentiles, windowHu } from './intensity';
import { ResampleError, resampleToGrid, resampleVolume, resampledGrid } from './resample';
import { cropVolume, foregroundBox, pasteVolume } from './crop';
import { axialSlice, fromAxialSlices, toAxialSlices } from './slices';
import { gridOf } from './geometry';
import { makeVolume, type Vec3 } from './volume';
import { Rng } from './rng';
import { runPythonJson } from './python.test-util';

describe('intensity', () => {
  it.each([
    // abdomen window [-160, 240] HU: -1000 → 0, -160 → 0, 40 → 0.5, 240 → 1, 1000 → 1
    { window: ABDOMEN_WINDOW, hu: [-1000, -160, 40, 240, 1000], want: [0, 0, 0.5, 1, 1] },
    // level 0 width 100 → [-50, 50]: -25 → 0.25, 25 → 0.75
    { window: huWindow(0, 100), hu: [-25, 25, 0, -50], want: [0.25, 0.75, 0.5, 0] },
  ])('windowHu $window', ({ window, hu, want }) => {
    const out = windowHu(makeVolume(new Int16Array(hu), [1, 1, hu.length]), window);
    expect(out.data).toBeInstanceOf(Float32Array);
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
  });

  it('rejects an empty window', () => {
    expect(() => windowHu(makeVolume(new Int16Array(1), [1, 1, 1]), { lowHu: 5, highHu: 5 })).toThrow(new IntensityError('HU window must have highHu > lowHu, got [5, 5]'));
    expect(() => huWindow(0, -1)).toThrow(new IntensityError('HU window needs a finite centre and a positive width, got centre 0, width -1'));
  });

  it.each([
    // [1, 2, 3, 4, 5]: p25 → h = 1 → 2; p10 → h = 0.4 → 1.4; p100 → 5; p0 → 1
    { values: [5, 3, 1, 4, 2], p: 25, want: 2 },
    { values: [5, 3, 1, 4, 2], p: 10, want: 1.4 },
    { values: [5, 3, 1, 4, 2], p: 100, want: 5 },
    { values: [5, NaN, 1], p: 50, want: 3 }, // NaN ignored: [1, 5], h = 0.5 → 3
  ])('percentile($values, $p) = $want', ({ values, p, want }) => {
    expect(percentile(values, p)).toBeCloseTo(want, 12);
  });

  it('matches numpy.percentile (linear) on random data', () => {
    const rng = new Rng(7);
    const values = Array.from({ length: 1001 }, () => rng.normal(100, 30));
    const ps = [0.5, 2, 25, 50, 97.5, 99.5];
    const want = runPythonJson<number[]>('import sys, json, numpy as np; v = np.array(json.loads(sys.argv[1])); print(json.dumps(np.percentile(v, json.loads(sys.argv[2])).tolist()))', [JSON.stringify(values), JSON.stringify(ps)]);
    percentiles(values, ps).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 9));
  });

  it('percentileClip over a mask', () => {
    // values [0, 10, 20, 30, 100], mask picks [10, 20, 30]; p0 = 10, p100 = 30 →
    // [0, 0, 0.5, 1, 1]
    const r = percentileClip(makeVolume(new Float32Array([0, 10, 20, 30, 100]), [1, 1, 5]), { lowerPercentile: 0, upperPercentile: 100, mask: [0, 1, 1, 1, 0] });
    expect([r.low, r.high]).toEqual([10, 30]);
    expect(Array.from(r.volume.data)).toEqual([0, 0, 0.5, 1, 1]);
  });

  it('percentileClip with default percentiles', () => {
    // 0..200 (201 values): p0.5 → h = 1 → 1; p99.5 → h = 199 → 199; 100 → 99/198
    const r = percentileClip(makeVolume(Float32Array.from({ length: 201 }, (_, i) => i), [1, 1, 201]));
    expect([r.low, r.high]).toEqual([1, 199]);
    expect(r.volume.data[100]).toBeCloseTo(99 / 198, 6);
  });

  it('rejects an empty mask', () => {
    expect(() => percentileClip(makeVolume(new Float32Array(3), [1, 1, 3]), { mask: [0, 0, 0] })).toThrow(
      new IntensityError('percentile of no values (empty input, empty mask, or all NaN)'),
    );
  });
});

describe('resampling', () => {
  it('builds the box-preserving grid', () => {
    // x: 2 voxels of 1 mm at origin 0 → 4 voxels of 0.5 mm; box [-0.5, 1.5] kept,
    // first centre at -0.5 + 0.25 = -0.25. y: spacing 3 mm, 3 voxels → target 2 mm →
    // round(9/2) = 5 voxels of 1.8 mm, origin shifted by (1.8 - 3)/2 = -0.6.
    const g = resampledGrid({ shape: [1, 3, 2], spacingXyzMm: [1, 3, 1], originLpsMm: [0, 0, 0], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] }, { spacingXyzMm: [0.5, 2, undefined] });
    expect(g.shape).toEqual([1, 5, 4]);
    expect(g.spacingXyzMm[0]).toBeCloseTo(0.5, 12);
    expect(g.spacingXyzMm[1]).toBeCloseTo(1.8, 12);
    expect(g.originLpsMm[0]).toBeCloseTo(-0.25, 12);
    expect(g.originLpsMm[1]).toBeCloseTo(-0.6, 12);
    expect(g.originLpsMm[2]).toBe(0);
  });

  it('moves the origin along the direction', () => {
    // direction x → -x (LPS), 1 mm → 0.5 mm: shift (0.5 - 1)/2 = -0.25 along -x = +0.25
    const g = resampledGrid({ shape: [1, 1, 2], spacingXyzMm: [1, 1, 1], originLpsMm: [10, 0, 0], directionLps: [-1, 0, 0, 0, 1, 0, 0, 0, 1] }, { sizeXy: [4, 1] });
    expect(g.originLpsMm[0]).toBeCloseTo(10.25, 12);
  });

  it('interpolates linearly with align-corners=false', () => {
    // [0, 10] → 4 voxels: u = (i + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25 → clamped
    // to [0, 1] → 0, 2.5, 7.5, 10
    const r = resampleVolume(makeVolume(new Float32Array([0, 10]), [1, 1, 2]), { sizeXy: [4, 1] }, 'linear');
    expect(Array.from(r.volume.data)).toEqual([0, 2.5, 7.5, 10]);
  });

  it('matches scipy.ndimage.zoom(order=1, grid_mode=True) on a random image', () => {
    // [1, 6, 5] image zoomed to [1, 9, 10] in-plane (factors 1.5, 2)
    const rng = new Rng(3);
    const data = Float32Array.from({ length: 30 }, () => rng.uniform(0, 100));
    const r = resampleVolume(makeVolume(data, [1, 6, 5]), { sizeXy: [10, 9] }, 'linear');
    const want = runPythonJson<number[]>(
      'import sys, json, numpy as np; from scipy import ndimage; a = np.array(json.loads(sys.argv[1])).reshape(6, 5); print(json.dumps(ndimage.zoom(a, (1.5, 2), order=1, grid_mode=True, mode="nearest").reshape(-1).tolist()))',
      [JSON.stringify(Array.from(data))],
    );
    expect(want.length).toBe(90);
    Array.from(r.volume.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 3));
  });

  // Labels: upsampling by integer factors then resampling back onto the original grid
  // must return the original labels exactly, for any direction.
  it.each([
    // x ×2, y ×3 by in-plane size, oblique direction
    { shape: [3, 5, 7] as Vec3, target: { sizeXy: [14, 15] as const }, direction: [0.8, -0.6, 0, 0.6, 0.8, 0, 0, 0, 1] },
    // x ×2, z ×4 by spacing (1.6 → 0.8, 4 → 1), flipped axes
    { shape: [4, 6, 5] as Vec3, target: { spacingXyzMm: [0.8, undefined, 1] as const }, direction: [-1, 0, 0, 0, 1, 0, 0, 0, -1] },
  ])('label resample → inverse is exact: $shape', ({ shape, target, direction }) => {
    const rng = new Rng(11);
    const labels = Uint8Array.from({ length: shape[0] * shape[1] * shape[2] }, () => rng.int(0, 5));
    const volume = makeVolume(labels, shape, { spacingXyzMm: [1.6, 1.2, 4], originLpsMm: [5, -7, 12], directionLps: direction });
    const up = resampleVolume(volume, target, 'nearest');
    expect(up.volume.data).toBeInstanceOf(Uint8Array);
    const back = resampleToGrid(up.volume, up.originalGrid, { interpolation: 'nearest' });
    expect(back.shape).toEqual(shape);
    expect(Array.from(back.data)).toEqual(Array.from(labels));
    expect(back.originLpsMm.map((o, i) => Math.abs(o - volume.originLpsMm[i]!) < 1e-9)).toEqual([true, true, true]);
  });

  it('upsampling by 2 repeats each label twice', () => {
    // [1, 2, 3] → [1, 1, 2, 2, 3, 3]
    const r = resampleVolume(makeVolume(new Uint8Array([1, 2, 3]), [1, 1, 3]), { sizeXy: [6, 1] }, 'nearest');
    expect(Array.from(r.volume.data)).toEqual([1, 1, 2, 2, 3, 3]);
  });

  it('fills outside the source box', () => {
    // source x centres 0, 1 (box [-0.5, 1.5]); target centres -2, 0, 2 → fill, 7, fill
    const src = makeVolume(new Uint8Array([7, 8]), [1, 1, 2]);
    const out = resampleToGrid(src, { ...gridOf(src), shape: [1, 1, 3], spacingXyzMm: [2, 1, 1], originLpsMm: [-2, 0, 0] }, { interpolation: 'nearest', fill: 9 });
    expect(Array.from(out.data)).toEqual([9, 7, 9]);
  });

  it('rejects a bad target', () => {
    expect(() => resampledGrid(gridOf(makeVolume(new Uint8Array(1), [1, 1, 1])), { spacingXyzMm: [0, undefined, undefined] })).toThrow(
      new ResampleError('spacingXyzMm[0] must be a positive number of mm, got 0'),
    );
  });
});

describe('crop and slices', () => {
  // [4, 5, 6] volume, foreground at z 1..2, y 2, x 3..4; margin 1 → start [0, 1, 2], end [4, 4, 6]
  const data = new Int16Array(120);
  for (const [z, y, x] of [[1, 2, 3], [2, 2, 4]] as const) data[(z * 5 + y) * 6 + x] = 5;
  const volume = makeVolume(data, [4, 5, 6], { spacingXyzMm: [1, 2, 3], originLpsMm: [10, 20, 30] });

  it('finds the foreground box with margin', () => {
    expect(foregroundBox(volume, { marginVoxels: 1 })).toEqual({ start: [0, 1, 2], end: [4, 4, 6] });
    expect(foregroundBox(volume, { threshold: 5 })).toBeUndefined();
  });

  it('crops (origin = world of the box start) and pastes back exactly', () => {
    const box = foregroundBox(volume, { marginVoxels: 1 })!;
    const cropped = cropVolume(volume, box);
    expect(cropped.shape).toEqual([4, 3, 4]);
    // start index (x 2, y 1, z 0) → (10 + 2·1, 20 + 1·2, 30 + 0·3)
    expect(cropped.originLpsMm).toEqual([12, 22, 30]);
    // voxel (z 1, y 2, x 3) is (z 1, y 1, x 1) in the crop
    expect(cropped.data[(1 * 3 + 1) * 4 + 1]).toBe(5);
    const back = pasteVolume(cropped, box, gridOf(volume));
    expect(Array.from(back.data)).toEqual(Array.from(data));
    expect(back.data).toBeInstanceOf(Int16Array);
  });

  it('rejects a box outside the volume', () => {
    expect(() => cropVolume(volume, { start: [0, 0, 0], end: [5, 1, 1] })).toThrow(new RangeError('box [0, 0, 0]..[5, 1, 1] does not fit in the shape [z, y, x] = [4, 5, 6]'));
  });

  it('volume ↔ axial slices', () => {
    const stack = toAxialSlices(volume);
    expect(stack.shape).toEqual([4, 5, 6]);
    expect(stack.data).not.toBe(volume.data);
    const slice = axialSlice(volume, 2);
    expect(slice.shape).toEqual([5, 6]);
    expect(slice.data[2 * 6 + 4]).toBe(5);
    const again = fromAxialSlices(stack, gridOf(volume));
    expect(Array.from(again.data)).toEqual(Array.from(data));
    expect(() => axialSlice(volume, 4)).toThrow(new RangeError('slice index z must be an integer in [0, 3], got 4'));
  });
});
