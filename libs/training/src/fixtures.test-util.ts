/**
 * Tiny test datasets: volumes `[z, y, x]` written through `DatasetWriter` (the real
 * MSD / nnU-Net layout), so tests exercise the real loading code.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetWriter, makeVolume, type Vec3, type Volume } from '@purify/imaging';

export function tempDir(prefix = 'purify-training-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const LABELS = new Map([
  [0, 'background'],
  [1, 'square'],
]);

/**
 * A case `[z, y, x]` with a bright square (class 1, `fgHu`) on a dark background
 * (`bgHu`); the square spans rows/cols [lo, hi) in slices z ≥ zFrom.
 */
export function squareCase(shape: Vec3, spacingXyzMm: Vec3, square: { lo: number; hi: number; zFrom?: number }, fgHu = 200, bgHu = -100): { image: Volume; label: Volume } {
  const [nz, ny, nx] = shape;
  const img = new Int16Array(nz * ny * nx).fill(bgHu);
  const lab = new Uint8Array(nz * ny * nx);
  for (let z = square.zFrom ?? 0; z < nz; z++) {
    for (let y = square.lo; y < square.hi; y++) {
      for (let x = square.lo; x < square.hi; x++) {
        img[(z * ny + y) * nx + x] = fgHu;
        lab[(z * ny + y) * nx + x] = 1;
      }
    }
  }
  return { image: makeVolume(img, shape, { spacingXyzMm }), label: makeVolume(lab, shape, { spacingXyzMm }) };
}

/** Writes a labelled CT dataset of square cases; returns its folder. */
export function writeSquareDataset(
  root: string,
  options: { train: number; test: number; shape?: Vec3; spacingXyzMm?: Vec3; labels?: ReadonlyMap<number, string>; channel?: string },
): string {
  const shape = options.shape ?? [4, 16, 16];
  const spacing = options.spacingXyzMm ?? [2, 2, 5];
  const writer = new DatasetWriter(root, { name: 'squares', channelNames: [options.channel ?? 'CT'], labels: options.labels ?? LABELS });
  for (let i = 0; i < options.train + options.test; i++) {
    const lo = 3 + (i % 3);
    const { image, label } = squareCase(shape, spacing, { lo, hi: lo + 6, zFrom: 1 });
    writer.writeCase({ id: `sq_${String(i).padStart(3, '0')}`, split: i < options.train ? 'train' : 'test', channels: [image], label });
  }
  writer.finish();
  return root;
}
