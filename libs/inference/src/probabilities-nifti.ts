/**
 * Class probabilities `[c, z, y, x]` as a 4D NIfTI-1 file: x, y, z as the
 * input's grid (same affine) and the class index as the 4th dimension, the
 * layout nibabel and ITK read as `(x, y, z, c)`.
 */
import { gzipSync } from 'node:zlib';
import { writeFileAtomic } from '@purify/artifacts';
import { encodeNifti, makeVolume, type Grid, type Vec3 } from '@purify/imaging';

/**
 * Encodes float32 probabilities `[c, z, y, x]` (C order, x fastest — the same
 * bytes as NIfTI's (x, y, z, c) Fortran order) on `grid`. The header is the 3D
 * one of @purify/imaging with dim[0] = 4, dim[3] = z and dim[4] = c.
 */
export function encodeProbabilitiesNifti(data: Float32Array, shapeCzyx: readonly [number, number, number, number], grid: Grid, options: { gzip?: boolean } = {}): Uint8Array {
  const [c, z, y, x] = shapeCzyx;
  if (grid.shape[0] !== z || grid.shape[1] !== y || grid.shape[2] !== x) {
    throw new RangeError(`probabilities [c, z, y, x] = [${shapeCzyx.join(', ')}] do not match the grid [z, y, x] = [${grid.shape.join(', ')}]`);
  }
  if (data.length !== c * z * y * x) throw new RangeError(`probabilities hold ${data.length} values, shape [${shapeCzyx.join(', ')}] needs ${c * z * y * x}`);
  // Encode as a 3D volume of c·z slices, then fix the dims: the affine only depends on spacing, origin and direction.
  const stacked = makeVolume(data, [c * z, y, x] as unknown as Vec3, grid, 'probabilities');
  const bytes = encodeNifti(stacked, { gzip: false, description: 'purify class probabilities (x, y, z, class)' });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setInt16(40, 4, true); // dim[0]: 4 dimensions
  view.setInt16(46, z, true); // dim[3]
  view.setInt16(48, c, true); // dim[4]
  view.setFloat32(92, 1, true); // pixdim[4]: one class per step
  return options.gzip ? gzipSync(bytes, { level: 6 }) : bytes;
}

/** Writes {@link encodeProbabilitiesNifti} atomically to `path` (`.nii` or `.nii.gz`; gzip follows the name). */
export function writeProbabilitiesNifti(path: string, data: Float32Array, shapeCzyx: readonly [number, number, number, number], grid: Grid): void {
  const lower = path.toLowerCase();
  if (!lower.endsWith('.nii') && !lower.endsWith('.nii.gz')) throw new RangeError(`${path}: a NIfTI file name must end in .nii or .nii.gz`);
  writeFileAtomic(path, encodeProbabilitiesNifti(data, shapeCzyx, grid, { gzip: lower.endsWith('.gz') }));
}
