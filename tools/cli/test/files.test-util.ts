/**
 * Small files for CLI tests: the `purify` command run as a user runs it, tiny
 * labelled datasets (the real nnU-Net layout, through DatasetWriter) and 4D NIfTI
 * files (which our writer never produces: it writes 3D volumes only).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetWriter, encodeNifti, makeVolume, type Vec3, type Volume } from '@purify/imaging';

const BIN = join(__dirname, '..', 'bin', 'purify.js');

/** Runs `purify ...args` to completion. */
export function purify(args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

/** A [z, y, x] case: int16 image (-100 background, 200 inside) and uint8 label 1 in rows/cols [lo, lo + 6) of slices z ≥ 1. */
export function squareCase(shape: Vec3, lo: number): { image: Volume; label: Volume } {
  const [nz, ny, nx] = shape;
  const image = new Int16Array(nz * ny * nx).fill(-100);
  const label = new Uint8Array(nz * ny * nx);
  for (let z = 1; z < nz; z++) {
    for (let y = lo; y < lo + 6; y++) {
      for (let x = lo; x < lo + 6; x++) {
        image[(z * ny + y) * nx + x] = 200;
        label[(z * ny + y) * nx + x] = 1;
      }
    }
  }
  const geometry = { spacingXyzMm: [2, 2, 5] as Vec3 };
  return { image: makeVolume(image, shape, geometry), label: makeVolume(label, shape, geometry) };
}

/** A labelled CT dataset at `root`: cases sq_000… (`train` of them in imagesTr/labelsTr, `test` in imagesTs/labelsTs), shape [4, 16, 16]. */
export function writeSquareDataset(root: string, train: number, test: number): string {
  const writer = new DatasetWriter(root, { name: 'squares', channelNames: ['CT'], labels: new Map([[0, 'background'], [1, 'square']]) });
  for (let i = 0; i < train + test; i++) {
    const { image, label } = squareCase([4, 16, 16], 3 + (i % 3));
    writer.writeCase({ id: `sq_${String(i).padStart(3, '0')}`, split: i < train ? 'train' : 'test', channels: [image], label });
  }
  writer.finish();
  return root;
}

/**
 * Writes `volumes` (equal shapes and types) as one 4D NIfTI: dims (x, y, z, t) with
 * t = volumes.length, volume k = the k-th block of voxels. Gzipped when `path` ends in .gz.
 */
export function writeNifti4d(path: string, volumes: readonly Volume[]): void {
  const first = volumes[0] as Volume;
  const [nz, ny, nx] = first.shape;
  const Ctor = first.data.constructor as new (n: number) => Volume['data'];
  const data = new Ctor(first.data.length * volumes.length);
  volumes.forEach((v, k) => data.set(v.data, k * first.data.length));
  const bytes = encodeNifti(makeVolume(data, [nz * volumes.length, ny, nx], first));
  [4, nx, ny, nz, volumes.length].forEach((d, i) => new DataView(bytes.buffer).setInt16(40 + 2 * i, d, true));
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(bytes) : bytes);
}
