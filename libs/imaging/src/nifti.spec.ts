import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { NiftiError, decodeNifti, encodeNifti, readNifti, readNiftiImage, writeNifti } from './nifti';
import { makeVolume, type Vec3, type Volume, type VoxelArray } from './volume';
import { nibabelDataDir, runPythonJson } from './python.test-util';

const dir = mkdtempSync(join(tmpdir(), 'nifti-'));

const deg = Math.PI / 180;
function rz(a: number): number[] {
  return [Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a), 0, 0, 0, 1];
}
function rx(a: number): number[] {
  return [1, 0, 0, 0, Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a)];
}
function mul3(a: number[], b: number[]): number[] {
  const m: number[] = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) m.push(a[r * 3]! * b[c]! + a[r * 3 + 1]! * b[3 + c]! + a[r * 3 + 2]! * b[6 + c]!);
  return m;
}

// Geometries (LPS) exercised by every round trip.
const GEOMETRIES: { name: string; spacingXyzMm: Vec3; originLpsMm: Vec3; directionLps: number[] }[] = [
  // axis-aligned, anisotropic
  { name: 'identity', spacingXyzMm: [0.8, 0.9, 2.5], originLpsMm: [-100.5, 20.25, 7], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
  // x runs to the patient's right: a "negative spacing" direction (det -1, qfac -1)
  { name: 'x flipped', spacingXyzMm: [1.5, 1.5, 3], originLpsMm: [120, -30, -60.5], directionLps: [-1, 0, 0, 0, 1, 0, 0, 0, 1] },
  // oblique proper rotation Rx(20°)·Rz(35°)
  { name: 'oblique', spacingXyzMm: [0.7, 1.1, 2], originLpsMm: [3.25, -4.5, 99], directionLps: mul3(rx(20 * deg), rz(35 * deg)) },
  // oblique improper: Rz(30°)·diag(1, 1, -1) (slices stacked inferiorly)
  { name: 'oblique improper', spacingXyzMm: [2, 2, 4], originLpsMm: [0, 0, 0], directionLps: mul3(rz(30 * deg), [1, 0, 0, 0, 1, 0, 0, 0, -1]) },
  // 180° about x (quaternion branch with a + 1 small)
  { name: 'rotated 180', spacingXyzMm: [1, 2, 3], originLpsMm: [10, 20, 30], directionLps: [1, 0, 0, 0, -1, 0, 0, 0, -1] },
];

const SHAPE: Vec3 = [3, 4, 5]; // [z, y, x]
function ramp<T extends VoxelArray>(make: (n: number) => T, f: (n: number) => number): T {
  const a = make(60);
  for (let n = 0; n < 60; n++) a[n] = f(n);
  return a;
}
// One array per datatype; values cover the sign/range of each type.
const ARRAYS: { type: string; data: () => VoxelArray }[] = [
  { type: 'uint8', data: () => ramp((n) => new Uint8Array(n), (n) => (n * 37) % 256) },
  { type: 'int16', data: () => ramp((n) => new Int16Array(n), (n) => (n - 30) * 1021) },
  { type: 'uint16', data: () => ramp((n) => new Uint16Array(n), (n) => n * 1091) },
  { type: 'int32', data: () => ramp((n) => new Int32Array(n), (n) => (n - 30) * 70_000_001) },
  { type: 'float32', data: () => ramp((n) => new Float32Array(n), (n) => Math.fround((n - 30) * 0.37)) },
  { type: 'float64', data: () => ramp((n) => new Float64Array(n), (n) => (n - 30) * Math.PI * 1e-3) },
];

function expectGeometry(actual: Volume, expected: { spacingXyzMm: Vec3; originLpsMm: Vec3; directionLps: readonly number[] }): void {
  actual.spacingXyzMm.forEach((s, i) => expect(s).toBeCloseTo(expected.spacingXyzMm[i]!, 5));
  actual.originLpsMm.forEach((o, i) => expect(o).toBeCloseTo(expected.originLpsMm[i]!, 4));
  actual.directionLps.forEach((d, i) => expect(d).toBeCloseTo(expected.directionLps[i]!, 6));
}

describe('NIfTI round trip (every datatype × gzip × geometry)', () => {
  const cases = ARRAYS.flatMap((a) => GEOMETRIES.flatMap((g) => [false, true].map((gz) => ({ ...a, geometry: g, gz }))));
  // Each case: a [3, 4, 5] volume written with writeNifti and read back; voxels identical,
  // same array type, geometry equal to float32 precision.
  it.each(cases)('$type, $geometry.name, gzip=$gz', async ({ data, geometry, gz, type }) => {
    const volume = makeVolume(data(), SHAPE, geometry);
    const path = join(dir, `rt-${type}-${geometry.name.replace(/ /g, '_')}.nii${gz ? '.gz' : ''}`);
    writeNifti(path, volume);
    const raw = readFileSync(path);
    expect(raw[0] === 0x1f && raw[1] === 0x8b).toBe(gz);
    const image = await readNiftiImage(path);
    expect(image.header.datatype).toBe(type);
    expect(image.header.geometrySource).toBe('sform');
    expect(image.volume.data.constructor).toBe(volume.data.constructor);
    expect(Array.from(image.volume.data)).toEqual(Array.from(volume.data));
    expect(image.volume.shape).toEqual(SHAPE);
    expectGeometry(image.volume, geometry);
  });

  // The same files with sform_code patched to 0: the qform (quaternion + qfac) alone must
  // give the same geometry.
  it.each(GEOMETRIES)('qform only: $name', async (geometry) => {
    const bytes = encodeNifti(makeVolume(new Uint8Array(60), SHAPE, geometry));
    new DataView(bytes.buffer).setInt16(254, 0, true);
    const image = await decodeNifti(bytes, 'q.nii');
    expect(image.header.geometrySource).toBe('qform');
    expectGeometry(image.volume, geometry);
  });
});

describe('NIfTI header details', () => {
  function header(patch: (v: DataView, b: Uint8Array) => void, data: VoxelArray = new Int16Array([0, 1, -2, 3])): Uint8Array {
    const bytes = encodeNifti(makeVolume(data, [1, 2, 2]));
    patch(new DataView(bytes.buffer), bytes);
    return bytes;
  }

  it('applies scl_slope/scl_inter and returns float32', async () => {
    // int16 [0, 1, -2, 3], slope 2, inter 10 → [10, 12, 6, 16] as Float32Array
    const image = await decodeNifti(header((v) => { v.setFloat32(112, 2, true); v.setFloat32(116, 10, true); }), 's.nii');
    expect(image.volume.data).toBeInstanceOf(Float32Array);
    expect(Array.from(image.volume.data)).toEqual([10, 12, 6, 16]);
    expect(image.header.scaled).toBe(true);
  });

  it('treats scl_slope 0 as no scaling', async () => {
    // slope 0, inter 5 → stored values unchanged, still Int16Array
    const image = await decodeNifti(header((v) => { v.setFloat32(112, 0, true); v.setFloat32(116, 5, true); }), 's.nii');
    expect(image.volume.data).toBeInstanceOf(Int16Array);
    expect(Array.from(image.volume.data)).toEqual([0, 1, -2, 3]);
  });

  /** int16 voxels 0..11 written as [3, 2, 2] and relabelled with `dims`: dim[4..] volumes of 4 voxels each. */
  function multiVolume(dims: readonly number[]): Uint8Array {
    const bytes = encodeNifti(makeVolume(Int16Array.from({ length: 12 }, (_, n) => n), [3, 2, 2]));
    const v = new DataView(bytes.buffer);
    dims.forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
    return bytes;
  }

  it.each([
    // [dims, volumeIndex, expected voxels (volume k holds 4k..4k+3), header.volumes]
    [[4, 2, 2, 1, 3], 0, [0, 1, 2, 3], 3],
    [[4, 2, 2, 1, 3], 2, [8, 9, 10, 11], 3],
    // dims 4..5 = 1 × 3: still 3 volumes, counted through dim 5
    [[5, 2, 2, 1, 1, 3], 1, [4, 5, 6, 7], 3],
    // a 4th dimension of 1 is a 3D image: no index needed
    [[4, 2, 2, 3, 1], undefined, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 1],
  ])('dims %p, volumeIndex %p → voxels %p', async (dims, volumeIndex, voxels, volumes) => {
    const image = await decodeNifti(multiVolume(dims), '4d.nii', volumeIndex === undefined ? {} : { volumeIndex });
    expect(Array.from(image.volume.data)).toEqual(voxels);
    expect(image.header.volumes).toBe(volumes);
    expect(image.header.volumeIndex).toBe(volumeIndex ?? 0);
  });

  it.each([
    // [dims, volumeIndex, message]
    [
      [4, 2, 2, 1, 3],
      undefined,
      '4d.nii: holds 3 volumes (dims x, y, z, … = 2 × 2 × 1 × 3) but one 3D image is expected; pick one with a volume index in 0..2 (`--volume-index N` where the command has it), or save that volume as its own 3D file',
    ],
    [[4, 2, 2, 1, 3], 3, '4d.nii: volume index must be an integer in 0..2 (the file holds 3 volumes, dims 2 × 2 × 1 × 3), got 3'],
    [[3, 2, 2, 3], 1, '4d.nii: volume index must be an integer in 0..0 (the file holds 1 volume, dims 2 × 2 × 3), got 1'],
  ])('refuses dims %p with volumeIndex %p', async (dims, volumeIndex, message) => {
    const read = decodeNifti(multiVolume(dims), '4d.nii', volumeIndex === undefined ? {} : { volumeIndex });
    await expect(read).rejects.toThrow(NiftiError);
    await expect(read).rejects.toThrow(message);
  });

  it('uses pixdim only when neither form is set', async () => {
    // qform_code = sform_code = 0, pixdim (0.5, 0.25, 4) → spacing (0.5, 0.25, 4), origin 0,
    // RAS identity = LPS diag(-1, -1, 1)
    const image = await decodeNifti(header((v) => {
      v.setInt16(252, 0, true);
      v.setInt16(254, 0, true);
      [0.5, 0.25, 4].forEach((p, i) => v.setFloat32(80 + 4 * i, p, true));
    }), 'p.nii');
    expect(image.header.geometrySource).toBe('pixdim');
    expectGeometry(image.volume, { spacingXyzMm: [0.5, 0.25, 4], originLpsMm: [0, 0, 0], directionLps: [-1, 0, 0, 0, -1, 0, 0, 0, 1] });
  });

  it('converts metres to mm', async () => {
    // xyzt_units = 1 (metre), sform diag(0.001, 0.002, 0.003), offset (0.1, 0, 0) RAS →
    // spacing (1, 2, 3) mm, origin LPS (-100, 0, 0) mm
    const image = await decodeNifti(header((v, b) => {
      b[123] = 1;
      const srow = [0.001, 0, 0, 0.1, 0, 0.002, 0, 0, 0, 0, 0.003, 0];
      srow.forEach((x, i) => v.setFloat32(280 + 4 * i, x, true));
    }), 'm.nii');
    expectGeometry(image.volume, { spacingXyzMm: [1, 2, 3], originLpsMm: [-100, 0, 0], directionLps: [-1, 0, 0, 0, -1, 0, 0, 0, 1] });
  });

  it('falls back to the qform when the sform is sheared', async () => {
    // sform with columns (1,0,0) and (1,1,0) (45° shear) → qform (identity RAS, spacing 1) wins
    const image = await decodeNifti(header((v) => {
      const srow = [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];
      srow.forEach((x, i) => v.setFloat32(280 + 4 * i, x, true));
    }), 'shear.nii');
    expect(image.header.geometrySource).toBe('qform');
  });
});

describe('NIfTI bad input', () => {
  const good = encodeNifti(makeVolume(new Int16Array([1, 2, 3, 4]), [1, 2, 2]));
  const cases: { name: string; file: string; bytes: () => Uint8Array; message: string; options?: { requireFinite: boolean } }[] = [
    // a .nii.gz cut in half: zlib stops at end of input
    { name: 'truncated gzip', file: 't.nii.gz', bytes: () => gzipSync(good).subarray(0, 40), message: 't.nii.gz: corrupt or truncated gzip data (unexpected end of file)' },
    // plain NIfTI bytes under a .gz name
    { name: 'non-gzip .gz', file: 'plain.nii.gz', bytes: () => good, message: 'plain.nii.gz: expected gzip data (name ends in .gz) but the file does not start with the gzip signature 1f 8b' },
    // magic "n+2\0"
    {
      name: 'wrong magic',
      file: 'm.nii',
      bytes: () => { const b = good.slice(); b[346] = 0x32; return b; },
      message: 'm.nii: wrong magic: expected "n+1\\0" at byte 344, got "n+2\\u0000"',
    },
    // datatype 32 = complex64
    {
      name: 'unsupported datatype',
      file: 'c.nii',
      bytes: () => { const b = good.slice(); new DataView(b.buffer).setInt16(70, 32, true); return b; },
      message: 'c.nii: unsupported datatype 32 (complex64); supported: uint8 (2), int16 (4), int32 (8), float32 (16), float64 (64), uint16 (512)',
    },
    // header says 4 int16 voxels (8 bytes from 352), file ends at 356
    { name: 'truncated voxels', file: 'v.nii', bytes: () => good.subarray(0, 356), message: 'v.nii: truncated: voxel data needs 360 bytes (offset 352 + 4 × 2), file has 356' },
    // 100 bytes only
    { name: 'truncated header', file: 'h.nii', bytes: () => good.subarray(0, 100), message: 'h.nii: truncated: 100 bytes, a NIfTI-1 header needs 348' },
    // not NIfTI at all
    { name: 'not nifti', file: 'x.nii', bytes: () => new Uint8Array(400).fill(7), message: 'x.nii: not a NIfTI-1 file: sizeof_hdr must be 348, got 117901063' },
    // float32 [1, NaN, 3, 4] with requireFinite: voxel index 1 = [z 0, y 0, x 1]
    {
      name: 'NaN voxel',
      file: 'nan.nii',
      bytes: () => encodeNifti(makeVolume(new Float32Array([1, NaN, 3, 4]), [1, 2, 2])),
      options: { requireFinite: true },
      message: 'nan.nii: voxel [z, y, x] = [0, 0, 1] is NaN; images must be finite',
    },
  ];
  it.each(cases)('$name', async ({ file, bytes, message, options }) => {
    const path = join(dir, file);
    writeFileSync(path, bytes());
    const err = await readNifti(path, options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NiftiError);
    expect((err as Error).message).toBe(`${path.slice(0, -file.length)}${message}`);
  });

  it('names a missing file', async () => {
    const path = join(dir, 'missing.nii');
    const err = await readNifti(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NiftiError);
    expect((err as Error).message).toBe(`${path}: cannot read file: ENOENT: no such file or directory, open '${path}'`);
  });

  it('rejects a file name that is not .nii/.nii.gz on write', () => {
    expect(() => writeNifti(join(dir, 'a.img'), makeVolume(new Uint8Array(1), [1, 1, 1]))).toThrow(new NiftiError(`${join(dir, 'a.img')}: a NIfTI file name must end in .nii or .nii.gz`));
  });
});

describe('nibabel oracle', () => {
  const dataDir = nibabelDataDir();
  // nibabel loads the file, takes the first volume, reports shape, the affine in LPS
  // (spacing = column norms, direction = normalised columns with x, y negated, origin
  // = (-t0, -t1, t2)), and dumps the voxels in [z, y, x] C order as float64.
  const READ = `
import sys, json, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
data = np.asanyarray(img.dataobj)
if data.ndim == 4: data = data[..., 0]
a = img.affine
flip = np.diag([-1.0, -1.0, 1.0])
cols = a[:3, :3]
spacing = np.linalg.norm(cols, axis=0)
direction = flip @ (cols / spacing)
origin = flip @ a[:3, 3]
np.ascontiguousarray(np.transpose(data, (2, 1, 0)), dtype='<f8').tofile(sys.argv[2])
print(json.dumps({'shape': list(data.shape[::-1]), 'spacing': spacing.tolist(), 'origin': origin.tolist(),
  'direction': direction.reshape(-1).tolist(), 'dtype': str(img.get_data_dtype().newbyteorder('=').name),
  'affine': a.reshape(-1).tolist()}))
`;
  // anatomical.nii: big-endian int16, vox_offset 0, qform = sform codes 2.
  // example4d.nii.gz: 4D int16, oblique, little-endian; volume 0 (volumeIndex 0).
  it.each(['anatomical.nii', 'example4d.nii.gz'])('%s matches nibabel', async (file) => {
    const path = join(dataDir, file);
    const bin = join(dir, `${file}.f64`);
    const want = runPythonJson<{ shape: number[]; spacing: number[]; origin: number[]; direction: number[]; dtype: string; affine: number[] }>(READ, [path, bin]);
    const image = await readNiftiImage(path, { volumeIndex: 0 });
    expect(image.volume.shape).toEqual(want.shape);
    expect(image.header.datatype).toBe(want.dtype);
    image.header.affineRas.forEach((v, i) => expect(v).toBeCloseTo(want.affine[i]!, 4));
    expectGeometry(image.volume, { spacingXyzMm: want.spacing as unknown as Vec3, originLpsMm: want.origin as unknown as Vec3, directionLps: want.direction });
    const raw = readFileSync(bin);
    const voxels = new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
    expect(voxels.length).toBe(image.volume.data.length);
    let mismatches = 0;
    for (let n = 0; n < voxels.length; n++) if (voxels[n] !== image.volume.data[n]) mismatches++;
    expect(mismatches).toBe(0);
  });

  // Our writer → nibabel: nibabel must see the same voxels, datatype, codes, and both its
  // sform and its qform must equal the RAS affine numpy builds from our LPS geometry.
  const CHECK = `
import sys, json, numpy as np, nibabel as nib
g = json.load(open(sys.argv[2]))
img = nib.load(sys.argv[1])
h = img.header
D = np.array(g['direction']).reshape(3, 3)
A = np.eye(4)
A[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ D @ np.diag(g['spacing'])
A[:3, 3] = np.diag([-1.0, -1.0, 1.0]) @ np.array(g['origin'])
data = np.asanyarray(img.dataobj)
print(json.dumps({'sformDiff': float(np.abs(h.get_sform() - A).max()), 'qformDiff': float(np.abs(h.get_qform() - A).max()),
  'codes': [int(h['qform_code']), int(h['sform_code'])], 'dtype': img.get_data_dtype().name, 'shape': list(data.shape),
  'data': np.transpose(data, (2, 1, 0)).reshape(-1).tolist(), 'units': list(h.get_xyzt_units())}))
`;
  it.each(GEOMETRIES.map((g, i) => ({ ...g, gz: i % 2 === 1 })))('nibabel reads what we write: $name', ({ gz, ...geometry }) => {
    const data = Int16Array.from({ length: 60 }, (_, n) => n * 7 - 100);
    const volume = makeVolume(data, SHAPE, geometry);
    const path = join(dir, `w-${geometry.name.replace(/ /g, '_')}.nii${gz ? '.gz' : ''}`);
    writeNifti(path, volume);
    const geomPath = join(dir, 'geom.json');
    writeFileSync(geomPath, JSON.stringify({ spacing: geometry.spacingXyzMm, origin: geometry.originLpsMm, direction: geometry.directionLps }));
    const got = runPythonJson<{ sformDiff: number; qformDiff: number; codes: number[]; dtype: string; shape: number[]; data: number[]; units: string[] }>(CHECK, [path, geomPath]);
    expect(got.sformDiff).toBeLessThan(1e-4);
    expect(got.qformDiff).toBeLessThan(1e-4);
    expect(got.codes).toEqual([1, 1]);
    expect(got.dtype).toBe('int16');
    expect(got.shape).toEqual([5, 4, 3]); // nibabel (i, j, k) = our (x, y, z)
    expect(got.data).toEqual(Array.from(data));
    expect(got.units).toEqual(['mm', 'sec']);
  });
});
