import { BatchSampler, largestRemainder, slicesOf, stepSeed, type TrainingSlice } from './sampler';
import type { SliceVolume } from './slice-data';
import { TrainingConfigError } from './errors';

/** A slice `[h, w]` whose image is its index / 100 everywhere, label `cls` in the first pixel (0 elsewhere). */
function slice(index: number, shape: [number, number], cls: number, weight?: number): TrainingSlice {
  const n = shape[0] * shape[1];
  const label = new Uint8Array(n);
  label[0] = cls;
  return {
    image: new Float32Array(n).fill(index / 100),
    label,
    weight: weight === undefined ? undefined : new Float32Array(n).fill(weight),
    shape,
    classes: cls > 0 ? [0, cls] : [0],
    ref: `s${index}`,
  };
}

describe('largestRemainder', () => {
  it.each([
    { shares: [1, 1], total: 8, want: [4, 4] },
    { shares: [3, 1], total: 8, want: [6, 2] },
    // 8·(1/3) = 2.67 each: floors 2, 2, 2; remainders equal → the first two pools get one more.
    { shares: [1, 1, 1], total: 8, want: [3, 3, 2] },
    { shares: [1, 9], total: 1, want: [0, 1] },
  ])('$shares of $total → $want', ({ shares, total, want }) => expect(largestRemainder(shares, total)).toEqual(want));
});

describe('BatchSampler', () => {
  const pool = Array.from({ length: 10 }, (_, i) => slice(i, [4, 4], i % 3));

  it('is a function of (seed, step): same batch for the same pair, different for another step or seed', () => {
    const a = new BatchSampler([{ slices: pool, augment: 'strong' }], { batchSize: 3, tileYx: [4, 4], seed: 7 });
    const b = new BatchSampler([{ slices: pool, augment: 'strong' }], { batchSize: 3, tileYx: [4, 4], seed: 7 });
    const c = new BatchSampler([{ slices: pool, augment: 'strong' }], { batchSize: 3, tileYx: [4, 4], seed: 8 });
    b.batch(0); // draws of other steps do not matter
    expect(a.batch(5)).toEqual(b.batch(5));
    expect(a.batch(5).images).not.toEqual(a.batch(6).images);
    expect(a.batch(5).images).not.toEqual(c.batch(5).images);
    expect(stepSeed(7, 5)).not.toBe(stepSeed(5, 7));
  });

  it('foregroundFraction 1 draws only slices containing a foreground class', () => {
    // Slices with i % 3 = 0 have no foreground.
    const s = new BatchSampler([{ slices: pool, foregroundFraction: 1 }], { batchSize: 16, tileYx: [4, 4], seed: 1 });
    for (let step = 0; step < 5; step++) {
      const refs = s.batch(step).refs.map((r) => Number(r.split('/s')[1]));
      expect(refs.every((i) => i % 3 !== 0)).toBe(true);
    }
  });

  it('mixes pools by share; source weights are 1, target weights are the given maps', () => {
    // Pool 0: 6 slices, no weight (→ 1). Pool 1: 4 slices with weight 0.25. Shares 3:1 of 8 → 6 + 2.
    const source = Array.from({ length: 6 }, (_, i) => slice(i, [2, 2], 1));
    const target = Array.from({ length: 4 }, (_, i) => slice(50 + i, [2, 2], 1, 0.25));
    const s = new BatchSampler([{ slices: source, share: 3 }, { slices: target, share: 1 }], { batchSize: 8, tileYx: [2, 2], seed: 3 });
    const b = s.batch(0);
    expect(b.shape).toEqual([8, 2, 2]);
    expect(b.refs.map((r) => r.split('/')[0])).toEqual(['0', '0', '0', '0', '0', '0', '1', '1']);
    expect(Array.from(b.weights.subarray(0, 24))).toEqual(new Array(24).fill(1));
    expect(Array.from(b.weights.subarray(24))).toEqual(new Array(8).fill(0.25));
    // Without augmentation images and labels are copied as they are: image = index/100, label 1 at pixel 0.
    const idx = Number(b.refs[6]!.split('/s')[1]);
    expect(Array.from(b.images.subarray(24, 28))).toEqual(new Array(4).fill(Math.fround(idx / 100)));
    expect(Array.from(b.labels.subarray(24, 28))).toEqual([1, 0, 0, 0]);
  });

  it('pads smaller slices centred (image 0, label 0, weight 0) and crops larger ones', () => {
    // [2, 2] slice of value 0.5 on a [4, 4] tile: rows/cols 1–2 hold it.
    const small = [slice(50, [2, 2], 0)];
    const padded = new BatchSampler([{ slices: small }], { batchSize: 1, tileYx: [4, 4], seed: 1 }).batch(0);
    const inside = [5, 6, 9, 10];
    for (let i = 0; i < 16; i++) {
      expect(padded.images[i]).toBe(inside.includes(i) ? 0.5 : 0);
      expect(padded.weights[i]).toBe(inside.includes(i) ? 1 : 0);
    }
    // [4, 4] slice with image = pixel index cropped to [2, 2]: a contiguous window, values (y0 + dy)·4 + x0 + dx.
    const big: TrainingSlice = { image: Float32Array.from({ length: 16 }, (_, i) => i), label: new Uint8Array(16), shape: [4, 4], classes: [0], ref: 'big' };
    for (let step = 0; step < 6; step++) {
      const c = new BatchSampler([{ slices: [big] }], { batchSize: 1, tileYx: [2, 2], seed: 1 }).batch(step).images;
      const y0 = Math.floor(c[0]! / 4);
      const x0 = c[0]! % 4;
      expect(Array.from(c)).toEqual([y0 * 4 + x0, y0 * 4 + x0 + 1, (y0 + 1) * 4 + x0, (y0 + 1) * 4 + x0 + 1]);
    }
  });

  it('slicesOf views each axial slice of labelled volumes', () => {
    // [2, 1, 2] volume: slice 0 = [0.1, 0.2], slice 1 = [0.3, 0.4].
    const v = { id: 'v', image: Float32Array.from([0.1, 0.2, 0.3, 0.4]), label: Uint8Array.from([0, 1, 0, 0]), shape: [2, 1, 2], sliceClasses: [[0, 1], [0]] } as unknown as SliceVolume;
    const s = slicesOf([v]);
    expect(s.map((x) => [Array.from(x.image), x.classes, x.ref, x.shape])).toEqual([
      [[Math.fround(0.1), Math.fround(0.2)], [0, 1], 'v:0', [1, 2]],
      [[Math.fround(0.3), Math.fround(0.4)], [0], 'v:1', [1, 2]],
    ]);
    expect(() => slicesOf([{ ...v, label: undefined }])).toThrow(new TrainingConfigError('case v has no label; only labelled volumes can be training slices'));
  });

  it.each([
    { pools: [], options: { batchSize: 2, tileYx: [4, 4], seed: 1 }, message: 'at least one slice pool is needed' },
    { pools: [{ slices: pool }], options: { batchSize: 0, tileYx: [4, 4], seed: 1 }, message: 'batchSize must be an integer ≥ 1, got 0' },
    { pools: [{ slices: pool }], options: { batchSize: 2, tileYx: [4, 0], seed: 1 }, message: 'tileYx must be two positive integers [H, W], got [4, 0]' },
    { pools: [{ slices: [] }], options: { batchSize: 2, tileYx: [4, 4], seed: 1 }, message: 'pools[0] has no slices' },
    { pools: [{ slices: pool, share: -1 }], options: { batchSize: 2, tileYx: [4, 4], seed: 1 }, message: 'pools[0].share must be a finite number > 0, got -1' },
    { pools: [{ slices: pool, augment: 'huge' }], options: { batchSize: 2, tileYx: [4, 4], seed: 1 }, message: 'augment must be one of none@1, light@1, strong@1, gin@1, classwise@1, gin-classwise@1 (the version may be left out) or a config object, got "huge"' },
  ])('refuses: $message', ({ pools, options, message }) => {
    expect(() => new BatchSampler(pools as never, options as never)).toThrow(new TrainingConfigError(message));
  });
});
