import { DType, type VolumeHeader } from '@purify/proto';
import { PurifyError } from './errors';
import { volumeHeader } from './validate';

const good: VolumeHeader = {
  shapeZyx: [4, 8, 16],
  spacingXyzMm: [0.8, 0.8, 2.5],
  originLpsMm: [-100, -120, 30],
  directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  dtype: DType.DTYPE_INT16,
  modality: 0,
  caseId: 'c1',
};

describe('validate.volumeHeader', () => {
  it('returns the byte size: 4*8*16 voxels * 2 bytes', () => {
    expect(volumeHeader(good, 'volume', 1e9)).toBe(4 * 8 * 16 * 2);
  });

  it('accepts a rotated orthonormal direction (90° about z)', () => {
    expect(volumeHeader({ ...good, directionLps: [0, -1, 0, 1, 0, 0, 0, 0, 1] }, 'volume', 1e9)).toBe(1024);
  });

  it.each([
    // [case, header override, expected message]
    ['zero dim', { shapeZyx: [0, 128, 128] }, '`volume.shape_zyx` must have 3 positive dims [z, y, x], got [0, 128, 128]'],
    ['2 dims', { shapeZyx: [128, 128] }, '`volume.shape_zyx` must have 3 positive dims [z, y, x], got [128, 128]'],
    ['negative spacing', { spacingXyzMm: [1, -1, 1] }, '`volume.spacing_xyz_mm` must have 3 finite positive values (mm), got [1, -1, 1]'],
    ['NaN origin', { originLpsMm: [0, Number.NaN, 0] }, '`volume.origin_lps_mm` must have 3 finite values (mm), got [0, NaN, 0]'],
    ['skewed direction', { directionLps: [1, 0.5, 0, 0, 1, 0, 0, 0, 1] }, '`volume.direction_lps` must be 9 values of an orthonormal row-major 3x3 matrix, got [1, 0.5, 0, 0, 1, 0, 0, 0, 1]'],
    ['unset dtype', { dtype: DType.DTYPE_UNSPECIFIED }, '`volume.dtype` must be one of DTYPE_UINT8, DTYPE_INT16, DTYPE_UINT16, DTYPE_INT32, DTYPE_FLOAT32, DTYPE_FLOAT64, got "DTYPE_UNSPECIFIED"'],
  ])('refuses %s', (_name, override, message) => {
    expect(() => volumeHeader({ ...good, ...override }, 'volume', 1e9)).toThrow(PurifyError.invalidArgument(message));
  });

  it('refuses a volume over the size limit', () => {
    expect(() => volumeHeader(good, 'volume', 1000)).toThrow(
      '`volume` must hold at most 1000 bytes of voxels (the configured limit), got "1024 bytes for shape [4, 8, 16]"',
    );
  });

  it('refuses a missing header', () => {
    expect(() => volumeHeader(undefined, 'setup.volume', 1e9)).toThrow('`setup.volume` is required, got nothing');
  });
});
