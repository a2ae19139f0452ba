/**
 * NIfTI-1 read and write (`.nii`, `.nii.gz`), single-file only.
 *
 * Reading: the header fields are parsed by nifti-reader-js (the maintained npm
 * NIfTI parser behind Papaya/NiiVue; it handles both byte orders). Everything that
 * decides what the numbers *mean* is ours: gzip (node:zlib, so a truncated stream
 * fails instead of yielding short data), validation, the choice between sform and
 * qform, the RAS → LPS conversion, scaling and the voxel copy. nifti-reader-js's own
 * `affine` is not used: it prefers the qform whenever qform_code > sform_code and
 * does not clamp the quaternion.
 *
 * Geometry rule (the same as nibabel's `get_best_affine` and ITK ≥ 5.2 / SimpleITK):
 *   1. sform_code > 0  → srow_x/y/z (spacing = column norms, direction = normalised
 *      columns). If those columns are not orthogonal (shear), the sform cannot be a
 *      Volume geometry: use the qform when qform_code > 0 (as ITK does), else fail.
 *   2. else qform_code > 0 → quaternion + qoffset + pixdim, with qfac = -1 when
 *      pixdim[0] < 0 (else +1). A negative pixdim[1..3] is taken literally: its
 *      sign goes into the direction column and its magnitude into the spacing.
 *   3. else (Analyze-style files) → NIfTI "method 1": diag(pixdim[1..3]), origin 0.
 *      (nibabel differs here: it centres the grid and flips x. Such files are rare.)
 * Why sform first: it is the full-precision matrix that writers (SPM, FSL, nibabel,
 * ITK ≥ 5.2) put the aligned/scanner transform in; the qform is a float-quantised
 * rigid approximation.
 * NIfTI world coordinates are RAS; ours are LPS: x and y change sign.
 * Spatial units (xyzt_units): metres and microns are converted to mm; unknown is
 * taken as mm.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@purify/artifacts';
import { makeVolume, type Vec3, type Volume, type VoxelArray } from './volume';

export class NiftiError extends Error {
  override readonly name = 'NiftiError';
}

/** NIfTI-1 datatype codes we read and write. */
export const NiftiDatatype = {
  uint8: 2,
  int16: 4,
  int32: 8,
  float32: 16,
  float64: 64,
  uint16: 512,
} as const;
export type NiftiDatatypeName = keyof typeof NiftiDatatype;

const DATATYPE_BY_CODE = new Map<number, { name: NiftiDatatypeName; bytes: number }>([
  [2, { name: 'uint8', bytes: 1 }],
  [4, { name: 'int16', bytes: 2 }],
  [8, { name: 'int32', bytes: 4 }],
  [16, { name: 'float32', bytes: 4 }],
  [64, { name: 'float64', bytes: 8 }],
  [512, { name: 'uint16', bytes: 2 }],
]);

/** Names of other NIfTI datatype codes, for error messages. */
const OTHER_DATATYPES = new Map<number, string>([
  [1, 'binary'],
  [32, 'complex64'],
  [128, 'rgb24'],
  [256, 'int8'],
  [768, 'uint32'],
  [1024, 'int64'],
  [1280, 'uint64'],
  [1536, 'float128'],
  [1792, 'complex128'],
  [2048, 'complex256'],
  [2304, 'rgba32'],
]);

/** How the geometry of a file was found (see the rule in this module's comment). */
export const NiftiGeometrySource = { sform: 'sform', qform: 'qform', pixdim: 'pixdim' } as const;
export type NiftiGeometrySource = (typeof NiftiGeometrySource)[keyof typeof NiftiGeometrySource];

/** What the header said, for `purify data inspect` and for tests. */
export interface NiftiHeaderInfo {
  /** Datatype stored in the file. */
  readonly datatype: NiftiDatatypeName;
  /** dim[0..7] as stored. */
  readonly dims: readonly number[];
  /** pixdim[0..7] as stored (pixdim[0] is qfac). */
  readonly pixdims: readonly number[];
  readonly qformCode: number;
  readonly sformCode: number;
  readonly sclSlope: number;
  readonly sclInter: number;
  /** True when slope/intercept were applied to the voxels. */
  readonly scaled: boolean;
  readonly littleEndian: boolean;
  readonly description: string;
  readonly geometrySource: NiftiGeometrySource;
  /** Row-major 4x4 index (i, j, k, 1) → RAS mm affine that was used (nibabel's `img.affine` for sform/qform files). */
  readonly affineRas: readonly number[];
  /** Number of volumes in the file (product of dim[4..7]); one is read (see `NiftiReadOptions.volumeIndex`). */
  readonly volumes: number;
  /** Index of the volume that was read (0 for a 3D file). */
  readonly volumeIndex: number;
}

export interface NiftiImage {
  readonly volume: Volume;
  readonly header: NiftiHeaderInfo;
}

export interface NiftiReadOptions {
  /**
   * Reject NaN and ±Infinity voxels with a NiftiError (default false). Use for images
   * and label maps that feed training or evaluation.
   */
  requireFinite?: boolean;
  /**
   * Which volume of a file with more than one (dim[4..7] not all 1, e.g. a time
   * series) to read, 0-based, counting through dims 4..7 with dim 4 fastest.
   * Without it such a file is refused with a NiftiError: taking the first volume
   * silently would hand a 4D series to code that expects one 3D image. A 3D file
   * (or one whose extra dims are all 1) accepts only 0 or undefined.
   */
  volumeIndex?: number;
}

/** nifti-reader-js is ES-module only; a native dynamic import loads it from our CommonJS output. */
const importNiftiReader = () => import('nifti-reader-js');
let niftiReaderModule: ReturnType<typeof importNiftiReader> | undefined;

function niftiReader(): ReturnType<typeof importNiftiReader> {
  niftiReaderModule ??= importNiftiReader();
  return niftiReaderModule;
}

const HEADER_BYTES = 348;
const SINGLE_FILE_VOX_OFFSET = 352;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads a `.nii`/`.nii.gz` file and returns its 3D volume (see {@link decodeNifti}; 4D files need `volumeIndex`). */
export async function readNifti(path: string, options: NiftiReadOptions = {}): Promise<Volume> {
  return (await readNiftiImage(path, options)).volume;
}

/** Reads a `.nii`/`.nii.gz` file: its 3D volume (4D files need `volumeIndex`) plus what its header said. */
export async function readNiftiImage(path: string, options: NiftiReadOptions = {}): Promise<NiftiImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new NiftiError(`${path}: cannot read file: ${(err as Error).message}`, { cause: err });
  }
  return decodeNifti(bytes, path, options);
}

/**
 * Decodes NIfTI-1 bytes (gzip-compressed or not). `what` names the source in error
 * messages; a name ending in `.gz` must hold gzip data.
 *
 * Returns one 3D volume — the only one, or `options.volumeIndex` of a file with
 * several (a file with several and no `volumeIndex` is refused, naming its dims
 * and how to pick one): data `[z, y, x]` (x fastest) = NIfTI (k, j, i); the
 * array type follows the stored datatype, except that a non-identity
 * scl_slope/scl_inter turns integer data into Float32Array (float64 stays Float64Array)
 * holding `stored * slope + inter`. A slope of 0 or non-finite means "no scaling" (as
 * in nibabel). Geometry per this module's rule, in LPS mm.
 */
export async function decodeNifti(bytes: Uint8Array, what: string, options: NiftiReadOptions = {}): Promise<NiftiImage> {
  let raw = bytes;
  if (isGzip(bytes)) {
    try {
      raw = gunzipSync(bytes);
    } catch (err) {
      throw new NiftiError(`${what}: corrupt or truncated gzip data (${(err as Error).message})`, { cause: err });
    }
  } else if (what.toLowerCase().endsWith('.gz')) {
    throw new NiftiError(`${what}: expected gzip data (name ends in .gz) but the file does not start with the gzip signature 1f 8b`);
  }
  if (raw.length < HEADER_BYTES) {
    throw new NiftiError(`${what}: truncated: ${raw.length} bytes, a NIfTI-1 header needs ${HEADER_BYTES}`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const sizeLe = view.getInt32(0, true);
  const sizeBe = view.getInt32(0, false);
  if (sizeLe === 540 || sizeBe === 540) throw new NiftiError(`${what}: NIfTI-2 files are not supported (sizeof_hdr 540); convert to NIfTI-1`);
  if (sizeLe !== HEADER_BYTES && sizeBe !== HEADER_BYTES) {
    throw new NiftiError(`${what}: not a NIfTI-1 file: sizeof_hdr must be 348, got ${sizeLe}`);
  }
  const littleEndian = sizeLe === HEADER_BYTES;
  const magic = String.fromCharCode(raw[344] as number, raw[345] as number, raw[346] as number, raw[347] as number);
  if (magic === 'ni1\0') {
    throw new NiftiError(`${what}: this is the header of a .hdr/.img pair (magic "ni1"); only single-file .nii/.nii.gz is supported`);
  }
  if (magic !== 'n+1\0') {
    throw new NiftiError(`${what}: wrong magic: expected "n+1\\0" at byte 344, got ${JSON.stringify(magic)}`);
  }

  const reader = await niftiReader();
  // nifti-reader-js wants an ArrayBuffer that starts with the header.
  const headerBuffer = raw.buffer.slice(raw.byteOffset, raw.byteOffset + Math.min(raw.byteLength, SINGLE_FILE_VOX_OFFSET + 4));
  const hdr = reader.readHeader(headerBuffer as ArrayBuffer);
  if (!(hdr instanceof reader.NIFTI1)) throw new NiftiError(`${what}: not a NIfTI-1 header`);

  const datatypeCode = hdr.datatypeCode;
  const datatype = DATATYPE_BY_CODE.get(datatypeCode);
  if (datatype === undefined) {
    const name = OTHER_DATATYPES.get(datatypeCode) ?? 'unknown';
    throw new NiftiError(
      `${what}: unsupported datatype ${datatypeCode} (${name}); supported: ${[...DATATYPE_BY_CODE].map(([c, d]) => `${d.name} (${c})`).join(', ')}`,
    );
  }
  const dims = Array.from(hdr.dims);
  const ndim = dims[0] ?? 0;
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) throw new NiftiError(`${what}: dim[0] must be 1..7, got ${ndim}`);
  for (let d = 1; d <= ndim; d++) {
    if ((dims[d] ?? 0) < 1) throw new NiftiError(`${what}: dim[${d}] must be >= 1, got ${dims[d]}`);
  }
  const size = (d: number): number => (d <= ndim ? (dims[d] as number) : 1);
  const nx = size(1);
  const ny = size(2);
  const nz = size(3);
  let volumes = 1;
  for (let d = 4; d <= ndim; d++) volumes *= size(d);
  const volumeIndex = chooseVolume(volumes, dims.slice(1, ndim + 1), options.volumeIndex, what);
  let voxOffset = Math.round(hdr.vox_offset);
  // Old writers left vox_offset 0 in single files; nibabel then reads from 352 too.
  if (voxOffset < SINGLE_FILE_VOX_OFFSET) voxOffset = SINGLE_FILE_VOX_OFFSET;
  const count = nx * ny * nz;
  const start = voxOffset + volumeIndex * count * datatype.bytes;
  const needed = start + count * datatype.bytes;
  if (raw.length < needed) {
    throw new NiftiError(
      `${what}: truncated: voxel data needs ${needed} bytes (offset ${voxOffset} + ${volumeIndex > 0 ? `${volumeIndex} volumes before + ` : ''}${count} × ${datatype.bytes}), file has ${raw.length}`,
    );
  }

  let data: VoxelArray = readVoxels(view, start, count, datatype.name, littleEndian);
  const slope = hdr.scl_slope;
  const inter = hdr.scl_inter;
  const scaled = Number.isFinite(slope) && slope !== 0 && (slope !== 1 || (Number.isFinite(inter) && inter !== 0));
  if (scaled) {
    const out = data instanceof Float64Array ? new Float64Array(count) : new Float32Array(count);
    const b = Number.isFinite(inter) ? inter : 0;
    for (let n = 0; n < count; n++) out[n] = (data[n] as number) * slope + b;
    data = out;
  }
  if (options.requireFinite === true) {
    const bad = firstNonFinite(data);
    if (bad !== undefined) {
      const z = Math.floor(bad / (nx * ny));
      const y = Math.floor((bad % (nx * ny)) / nx);
      throw new NiftiError(`${what}: voxel [z, y, x] = [${z}, ${y}, ${bad % nx}] is ${data[bad]}; images must be finite`);
    }
  }

  const pixdims = Array.from(hdr.pixDims);
  const unitScale = spatialUnitToMm(hdr.xyzt_units & 0x07);
  const geometry = chooseGeometry(view, littleEndian, hdr.qform_code, hdr.sform_code, pixdims, [hdr.quatern_b, hdr.quatern_c, hdr.quatern_d], [hdr.qoffset_x, hdr.qoffset_y, hdr.qoffset_z], what);
  const affineRas = geometry.affineRas.map((v, i) => (i < 12 ? v * unitScale : v));
  const spacingXyzMm: number[] = [];
  const directionLps: number[] = new Array<number>(9).fill(0);
  for (let c = 0; c < 3; c++) {
    const col = [0, 1, 2].map((r) => affineRas[r * 4 + c] as number);
    const norm = Math.hypot(...col);
    spacingXyzMm.push(norm);
    for (let r = 0; r < 3; r++) directionLps[r * 3 + c] = ((col[r] as number) / norm) * (r < 2 ? -1 : 1);
  }
  const originLpsMm: Vec3 = [-(affineRas[3] as number), -(affineRas[7] as number), affineRas[11] as number];
  const volume = makeVolume(data, [nz, ny, nx], { spacingXyzMm: spacingXyzMm as unknown as Vec3, originLpsMm, directionLps: orthonormalise(directionLps) }, what);
  return {
    volume,
    header: {
      datatype: datatype.name,
      dims,
      pixdims,
      qformCode: hdr.qform_code,
      sformCode: hdr.sform_code,
      sclSlope: slope,
      sclInter: inter,
      scaled,
      littleEndian,
      description: hdr.description,
      geometrySource: geometry.source,
      affineRas,
      volumes,
      volumeIndex,
    },
  };
}

/**
 * The volume to read of a file holding `volumes` of them: `requested`, which must
 * be an integer in [0, volumes); undefined is 0 for a single-volume file and an
 * error otherwise. `dims` are dim[1..ndim] (x, y, z, t, …) for the message.
 */
function chooseVolume(volumes: number, dims: readonly number[], requested: number | undefined, what: string): number {
  if (requested === undefined) {
    if (volumes === 1) return 0;
    throw new NiftiError(
      `${what}: holds ${volumes} volumes (dims x, y, z, … = ${dims.join(' × ')}) but one 3D image is expected; ` +
        `pick one with a volume index in 0..${volumes - 1} (\`--volume-index N\` where the command has it), or save that volume as its own 3D file`,
    );
  }
  if (!Number.isInteger(requested) || requested < 0 || requested >= volumes) {
    throw new NiftiError(`${what}: volume index must be an integer in 0..${volumes - 1} (the file holds ${volumes} volume${volumes === 1 ? '' : 's'}, dims ${dims.join(' × ')}), got ${requested}`);
  }
  return requested;
}

function spatialUnitToMm(code: number): number {
  if (code === 1) return 1000; // metre
  if (code === 3) return 0.001; // micron
  return 1; // mm or unknown
}

function readVoxels(view: DataView, offset: number, count: number, type: NiftiDatatypeName, littleEndian: boolean): VoxelArray {
  const hostLittle = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const bytes = DATATYPE_BY_CODE.get(NiftiDatatype[type])?.bytes ?? 1;
  const make = (): VoxelArray => {
    switch (type) {
      case 'uint8':
        return new Uint8Array(count);
      case 'int16':
        return new Int16Array(count);
      case 'uint16':
        return new Uint16Array(count);
      case 'int32':
        return new Int32Array(count);
      case 'float32':
        return new Float32Array(count);
      case 'float64':
        return new Float64Array(count);
    }
  };
  const out = make();
  if (littleEndian === hostLittle || bytes === 1) {
    new Uint8Array(out.buffer).set(new Uint8Array(view.buffer, view.byteOffset + offset, count * bytes));
    return out;
  }
  for (let n = 0; n < count; n++) {
    const at = offset + n * bytes;
    switch (type) {
      case 'int16':
        out[n] = view.getInt16(at, littleEndian);
        break;
      case 'uint16':
        out[n] = view.getUint16(at, littleEndian);
        break;
      case 'int32':
        out[n] = view.getInt32(at, littleEndian);
        break;
      case 'float32':
        out[n] = view.getFloat32(at, littleEndian);
        break;
      default:
        out[n] = view.getFloat64(at, littleEndian);
    }
  }
  return out;
}

function firstNonFinite(data: VoxelArray): number | undefined {
  if (!(data instanceof Float32Array || data instanceof Float64Array)) return undefined;
  for (let n = 0; n < data.length; n++) if (!Number.isFinite(data[n])) return n;
  return undefined;
}

interface ChosenGeometry {
  source: NiftiGeometrySource;
  /** Row-major 4x4, index → RAS (in file units). */
  affineRas: number[];
}

function chooseGeometry(
  view: DataView,
  littleEndian: boolean,
  qformCode: number,
  sformCode: number,
  pixdims: number[],
  quatern: [number, number, number],
  qoffset: [number, number, number],
  what: string,
): ChosenGeometry {
  if (sformCode > 0) {
    const affineRas: number[] = [];
    for (let n = 0; n < 12; n++) affineRas.push(view.getFloat32(280 + 4 * n, littleEndian));
    affineRas.push(0, 0, 0, 1);
    const problem = columnsProblem(affineRas);
    if (problem === undefined) return { source: 'sform', affineRas };
    if (qformCode <= 0) throw new NiftiError(`${what}: the sform ${problem} and there is no qform (qform_code 0); cannot derive spacing and direction`);
  }
  if (qformCode > 0) {
    const [b, c, d] = quatern;
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    const r = [
      a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
      2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
      2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c,
    ];
    const qfac = (pixdims[0] ?? 0) < 0 ? -1 : 1;
    const spacing = [1, 2, 3].map((i) => nonZero(pixdims[i]));
    const affineRas: number[] = new Array<number>(16).fill(0);
    for (let row = 0; row < 3; row++) {
      for (let col = 0; col < 3; col++) affineRas[row * 4 + col] = (r[row * 3 + col] as number) * (spacing[col] as number) * (col === 2 ? qfac : 1);
      affineRas[row * 4 + 3] = qoffset[row] as number;
    }
    affineRas[15] = 1;
    return { source: 'qform', affineRas };
  }
  const affineRas = [nonZero(pixdims[1]), 0, 0, 0, 0, nonZero(pixdims[2]), 0, 0, 0, 0, nonZero(pixdims[3]), 0, 0, 0, 0, 1];
  return { source: 'pixdim', affineRas };
}

/** A zero or non-finite pixdim means "unknown": 1 (as nifti1_io does). */
function nonZero(v: number | undefined): number {
  return v === undefined || !Number.isFinite(v) || v === 0 ? 1 : v;
}

/** Why the 3 columns of a 4x4 affine cannot be spacing × orthonormal direction, or undefined. */
function columnsProblem(m: readonly number[]): string | undefined {
  const col = (c: number): number[] => [0, 1, 2].map((r) => m[r * 4 + c] as number);
  const cols = [col(0), col(1), col(2)];
  const norms = cols.map((v) => Math.hypot(...v));
  if (norms.some((n) => !Number.isFinite(n) || n === 0)) return 'has a zero or non-finite column';
  for (let a = 0; a < 3; a++) {
    for (let b = a + 1; b < 3; b++) {
      const ca = cols[a] as number[];
      const cb = cols[b] as number[];
      const cos = (ca[0]! * cb[0]! + ca[1]! * cb[1]! + ca[2]! * cb[2]!) / ((norms[a] as number) * (norms[b] as number));
      if (Math.abs(cos) > 1e-4) return `has non-orthogonal columns ${a} and ${b} (shear, cos ${cos.toPrecision(3)})`;
    }
  }
  return undefined;
}

/**
 * Removes float32 quantisation noise from a nearly orthonormal direction (columns
 * re-orthonormalised by Gram–Schmidt, keeping column 0's direction).
 */
function orthonormalise(m: number[]): number[] {
  const cols = [0, 1, 2].map((c) => [0, 1, 2].map((r) => m[r * 3 + c] as number));
  const out: number[][] = [];
  for (const v of cols) {
    const w = [...v];
    for (const u of out) {
      const dot = u[0]! * v[0]! + u[1]! * v[1]! + u[2]! * v[2]!;
      for (let r = 0; r < 3; r++) w[r] = (w[r] as number) - dot * (u[r] as number);
    }
    const n = Math.hypot(...w);
    out.push(w.map((x) => x / n));
  }
  const res: number[] = new Array<number>(9).fill(0);
  for (let c = 0; c < 3; c++) for (let r = 0; r < 3; r++) res[r * 3 + c] = out[c]![r]!;
  return res;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface NiftiWriteOptions {
  /** gzip the output; default: true when the path ends in `.gz`. */
  gzip?: boolean;
  /** Written into the 80-byte `descrip` field (ASCII, truncated). */
  description?: string;
}

function datatypeOf(data: VoxelArray): NiftiDatatypeName {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Float32Array) return 'float32';
  return 'float64';
}

/**
 * Quaternion (b, c, d) and qfac of a 3x3 direction in RAS (row-major), after the
 * NIfTI-1 reference code (nifti_mat44_to_quatern): an improper matrix (det < 0) is
 * made proper by negating its third column and recorded as qfac = -1.
 */
export function directionToQuaternion(rasDirection: readonly number[]): { b: number; c: number; d: number; qfac: 1 | -1 } {
  const r = [...rasDirection];
  const det =
    r[0]! * (r[4]! * r[8]! - r[5]! * r[7]!) - r[1]! * (r[3]! * r[8]! - r[5]! * r[6]!) + r[2]! * (r[3]! * r[7]! - r[4]! * r[6]!);
  const qfac: 1 | -1 = det < 0 ? -1 : 1;
  if (qfac < 0) for (const i of [2, 5, 8]) r[i] = -r[i]!;
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = r as [number, number, number, number, number, number, number, number, number];
  let a = r11 + r22 + r33 + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac };
}

/**
 * Encodes a volume as a single-file NIfTI-1 (little-endian, vox_offset 352, no
 * extensions, units mm). The datatype follows the array type. Both the qform
 * (quaternion, code 1 = scanner anatomical) and the sform (full affine, code 1) are
 * set from the volume's geometry, converted from LPS to RAS; scl_slope 1, scl_inter 0.
 */
export function encodeNifti(volume: Volume, options: { gzip?: boolean; description?: string } = {}): Uint8Array {
  const [nz, ny, nx] = volume.shape;
  const type = datatypeOf(volume.data);
  const code = NiftiDatatype[type];
  const bytesPer = volume.data.BYTES_PER_ELEMENT;
  const out = new Uint8Array(SINGLE_FILE_VOX_OFFSET + volume.data.length * bytesPer);
  const v = new DataView(out.buffer);
  v.setInt32(0, HEADER_BYTES, true);
  out[38] = 'r'.charCodeAt(0); // regular = 'r' (Analyze legacy)
  const dims = [3, nx, ny, nz, 1, 1, 1, 1];
  dims.forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  v.setInt16(70, code, true);
  v.setInt16(72, bytesPer * 8, true);

  // RAS affine: rows 0 and 1 of the LPS affine change sign.
  const s = volume.spacingXyzMm;
  const rasDir = volume.directionLps.map((x, i) => (i < 6 ? -x : x));
  const rasOrigin = [-volume.originLpsMm[0], -volume.originLpsMm[1], volume.originLpsMm[2]];
  const q = directionToQuaternion(rasDir);
  const pixdims = [q.qfac, s[0], s[1], s[2], 1, 1, 1, 1];
  pixdims.forEach((p, i) => v.setFloat32(76 + 4 * i, p, true));
  v.setFloat32(108, SINGLE_FILE_VOX_OFFSET, true);
  v.setFloat32(112, 1, true); // scl_slope
  v.setFloat32(116, 0, true); // scl_inter
  out[123] = 2 | 8; // xyzt_units: mm, seconds
  const descrip = (options.description ?? 'purify').replace(/[^\x20-\x7e]/g, '?').slice(0, 79);
  for (let i = 0; i < descrip.length; i++) out[148 + i] = descrip.charCodeAt(i);
  v.setInt16(252, 1, true); // qform_code: scanner anatomical
  v.setInt16(254, 1, true); // sform_code: scanner anatomical
  v.setFloat32(256, q.b, true);
  v.setFloat32(260, q.c, true);
  v.setFloat32(264, q.d, true);
  rasOrigin.forEach((o, i) => v.setFloat32(268 + 4 * i, o, true));
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) v.setFloat32(280 + 16 * r + 4 * c, (rasDir[r * 3 + c] as number) * (s[c] as number), true);
    v.setFloat32(280 + 16 * r + 12, rasOrigin[r] as number, true);
  }
  out.set([0x6e, 0x2b, 0x31, 0x00], 344); // "n+1\0"
  // bytes 348..351: extension flag 0.
  const src = volume.data;
  const hostLittle = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (hostLittle) {
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), SINGLE_FILE_VOX_OFFSET);
  } else {
    throw new NiftiError('writing NIfTI on a big-endian host is not supported');
  }
  return options.gzip === true ? gzipSync(out, { level: 6 }) : out;
}

/**
 * Writes a volume to `path` (`.nii` or `.nii.gz`, see {@link encodeNifti}) atomically:
 * a temporary file in the same folder renamed over `path`.
 */
export function writeNifti(path: string, volume: Volume, options: NiftiWriteOptions = {}): void {
  const lower = path.toLowerCase();
  if (!lower.endsWith('.nii') && !lower.endsWith('.nii.gz')) throw new NiftiError(`${path}: a NIfTI file name must end in .nii or .nii.gz`);
  const gzip = options.gzip ?? lower.endsWith('.gz');
  writeFileAtomic(path, encodeNifti(volume, { gzip, ...(options.description === undefined ? {} : { description: options.description }) }));
}
