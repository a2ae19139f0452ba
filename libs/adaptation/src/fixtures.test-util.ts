/**
 * Tiny in-memory volumes for the loop tests: `[z, 16, 16]` slices with a
 * square organ (class 1). The source is bright-on-dark; the "target" inverts
 * the contrast (a domain shift) and carries no label.
 */
import { gridOf, makeVolume, Rng } from '@purify/imaging';
import type { SliceVolume } from '@purify/training';

export const SIZE = 16;

export function squareVolume(id: string, seed: number, options: { slices?: number; invert?: boolean; labelled?: boolean } = {}): SliceVolume {
  const z = options.slices ?? 2;
  const n = SIZE * SIZE;
  const rng = new Rng(seed);
  const image = new Float32Array(z * n);
  const label = new Uint8Array(z * n);
  const sliceClasses: number[][] = [];
  for (let s = 0; s < z; s++) {
    const side = rng.int(4, 8);
    const y0 = rng.int(0, SIZE - side);
    const x0 = rng.int(0, SIZE - side);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const inside = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
        const v = (inside ? 0.8 : 0.2) + rng.uniform(-0.05, 0.05);
        image[s * n + y * SIZE + x] = options.invert ? 1 - v : v;
        label[s * n + y * SIZE + x] = inside ? 1 : 0;
      }
    }
    sliceClasses.push([0, 1]);
  }
  const grid = gridOf(makeVolume(image, [z, SIZE, SIZE], { spacingXyzMm: [2, 2, 5] }));
  const labelled = options.labelled ?? !options.invert;
  return {
    id,
    image,
    label: labelled ? label : undefined,
    shape: [z, SIZE, SIZE],
    workingGrid: grid,
    originalGrid: grid,
    originalLabel: labelled ? makeVolume(label, [z, SIZE, SIZE], { spacingXyzMm: [2, 2, 5] }) : undefined,
    sliceClasses: labelled ? sliceClasses : Array.from({ length: z }, () => []),
  };
}

/** The label the target volume would have (for the oracle tests only). */
export function squareLabel(seed: number, slices = 2): Uint8Array {
  return squareVolume('x', seed, { slices, labelled: true }).label!;
}
