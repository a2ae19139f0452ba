import { MetricsError } from './errors';
import { labelValues, type LabelMap } from './label-map';

/** A [1, 2, 3] map (z, y, x) with spacing 1 mm. */
const map = (data: ArrayLike<number>): LabelMap => ({ data, shape: [1, 2, 3], spacingXyzMm: [1, 1, 1] });

describe('labelValues', () => {
  it.each([
    // [what, data (6 voxels), distinct values ascending]
    ['uint8 labels', new Uint8Array([0, 2, 2, 1, 0, 4]), [0, 1, 2, 4]],
    ['int16 labels', new Int16Array([3, 3, 3, 3, 3, 3]), [3]],
    ['float32 with whole numbers (a label map saved as float)', new Float32Array([0, 1, 1, 0, 2, 0]), [0, 1, 2]],
    ['float64 with whole numbers', new Float64Array([5, 0, 0, 0, 0, 5]), [0, 5]],
  ])('%s', (_what, data, values) => {
    expect(labelValues(map(data), 'p.nii')).toEqual(values);
  });

  it.each([
    // [what, data, message]: the first bad voxel in C order (x fastest), [z, y, x]
    ['a float CT image', new Float32Array([0, -1000.5, 40, 12, 0, 0]), 'p.nii: voxel [z, y, x] = [0, 0, 1] is -1000.5, not a label'],
    ['NaN', new Float32Array([0, 1, 2, NaN, NaN, NaN]), 'p.nii: voxel [z, y, x] = [0, 1, 0] is NaN, not a label'],
    ['a non-whole value after whole ones', new Float64Array([0, 0, 0, 0, 1, 1.5]), 'p.nii: voxel [z, y, x] = [0, 1, 2] is 1.5, not a label'],
    ['an int16 CT image (negative HU)', new Int16Array([0, 0, -1024, 0, 0, 0]), 'p.nii: voxel [z, y, x] = [0, 0, 2] is -1024, not a label'],
    ['Infinity', new Float32Array([Infinity, 0, 0, 0, 0, 0]), 'p.nii: voxel [z, y, x] = [0, 0, 0] is Infinity, not a label'],
  ])('refuses %s', (_what, data, message) => {
    expect(() => labelValues(map(data), 'p.nii')).toThrow(MetricsError);
    expect(() => labelValues(map(data), 'p.nii')).toThrow(
      `${message}: a label map holds integers ≥ 0 (an integer datatype, or float data whose values are all whole numbers)`,
    );
  });

  it('checks the shape first', () => {
    // 5 voxels for a [1, 2, 3] shape
    expect(() => labelValues(map(new Uint8Array(5)), 'p.nii')).toThrow(new MetricsError('p.nii: data has 5 voxels but shape [1, 2, 3] needs 6'));
  });
});
