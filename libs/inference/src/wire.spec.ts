import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DType, Modality } from '@purify/proto';
import { makeVolume } from '@purify/imaging';
import { writeProbabilitiesNifti } from './probabilities-nifti';
import { runPythonJson } from './test-models.test-util';
import { arrayFromBytes, bytesOfArray, ChunkAssembler, chunksOf, volumeFromHeader, volumeHeaderOf } from './wire';

describe('wire format', () => {
  it('round-trips a volume through header + chunked little-endian bytes', () => {
    // int16 [2, 2, 3] = −3 … 8; bytes are little-endian: −3 → fd ff.
    const volume = makeVolume(Int16Array.from({ length: 12 }, (_, i) => i - 3), [2, 2, 3], { spacingXyzMm: [0.5, 0.7, 2], originLpsMm: [1, 2, 3] });
    const header = volumeHeaderOf(volume, { modality: Modality.MODALITY_CT, caseId: 'c1' });
    expect(header).toMatchObject({ shapeZyx: [2, 2, 3], dtype: DType.DTYPE_INT16, modality: Modality.MODALITY_CT, caseId: 'c1' });
    const bytes = bytesOfArray(volume.data);
    expect(Array.from(bytes.subarray(0, 2))).toEqual([0xfd, 0xff]);
    const chunks = [...chunksOf(bytes, 10)];
    expect(chunks.map((c) => [c.byteOffset, c.data.length])).toEqual([[0, 10], [10, 10], [20, 4]]);
    const assembler = new ChunkAssembler(24, 'chunk', 'the volume');
    chunks.forEach((c) => assembler.add(c));
    const back = volumeFromHeader(header, assembler.finish());
    expect(Array.from(back.data)).toEqual(Array.from(volume.data));
    expect(back.spacingXyzMm).toEqual([0.5, 0.7, 2]);
  });

  it.each([
    // [case, chunks (offset, length) into a 16-byte buffer, exact message]
    ['a gap', [[0, 4], [8, 4]], '`chunk.byte_offset` must be 4 (the bytes received so far), got 8'],
    ['a chunk past the end', [[0, 12], [12, 8]], '`chunk` runs past the 16 bytes of the volume, got 8 bytes at offset 12'],
    ['an empty chunk', [[0, 0]], '`chunk.data` must not be empty, got 0 bytes at offset 0'],
  ])('ChunkAssembler refuses %s', (_case, chunks, message) => {
    const assembler = new ChunkAssembler(16, 'chunk', 'the volume');
    expect(() => chunks.forEach(([offset, n]) => assembler.add({ byteOffset: offset as number, data: Buffer.alloc(n as number) }))).toThrow(message);
  });

  it('ChunkAssembler refuses a stream that ends early', () => {
    const assembler = new ChunkAssembler(16, 'chunk', 'the volume');
    assembler.add({ byteOffset: 0, data: Buffer.alloc(6) });
    expect(() => assembler.finish()).toThrow('`chunk` stream ended after 6 of the 16 bytes of the volume');
  });

  it('refuses bytes that are not whole values of the dtype', () => {
    expect(() => arrayFromBytes(new Uint8Array(6), DType.DTYPE_FLOAT32, 'volume')).toThrow('volume: 6 bytes is not a whole number of DTYPE_FLOAT32 values');
  });
});

describe('writeProbabilitiesNifti', () => {
  it('writes [c, z, y, x] as a 4D NIfTI that nibabel reads as (x, y, z, c) with the grid affine', () => {
    const dir = mkdtempSync(join(tmpdir(), 'probs-'));
    try {
      // c = 2, z = 3, y = 2, x = 4; value = c·100 + z·10 + y + x/10.
      const data = new Float32Array(2 * 3 * 2 * 4);
      for (let c = 0; c < 2; c++) for (let z = 0; z < 3; z++) for (let y = 0; y < 2; y++) for (let x = 0; x < 4; x++) data[((c * 3 + z) * 2 + y) * 4 + x] = c * 100 + z * 10 + y + x / 10;
      const grid = { shape: [3, 2, 4] as const, spacingXyzMm: [0.5, 0.8, 2.5] as const, originLpsMm: [10, -20, 30] as const, directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
      const path = join(dir, 'p.nii.gz');
      writeProbabilitiesNifti(path, data, [2, 3, 2, 4], grid);
      const got = runPythonJson<{ shape: number[]; v: number; affine: number[][] }>(
        'import json, sys, nibabel as nib\nimg = nib.load(sys.argv[1]); a = img.get_fdata()\nprint(json.dumps({"shape": list(a.shape), "v": float(a[3, 1, 2, 1]), "affine": img.affine.tolist()}))',
        [path],
      );
      expect(got.shape).toEqual([4, 2, 3, 2]);
      expect(got.v).toBeCloseTo(100 + 20 + 1 + 0.3, 4); // x = 3, y = 1, z = 2, c = 1
      // RAS affine: LPS x and y flip sign (origin (−10, 20, 30)), spacing on the diagonal.
      const expected = [
        [-0.5, 0, 0, -10],
        [0, -0.8, 0, 20],
        [0, 0, 2.5, 30],
        [0, 0, 0, 1],
      ];
      expected.forEach((row, r) => row.forEach((v, c) => expect(got.affine[r]?.[c]).toBeCloseTo(v, 5)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
