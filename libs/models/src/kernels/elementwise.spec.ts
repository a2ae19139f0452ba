import * as tf from '@tensorflow/tfjs';
import { describeKernelVariants, relativeError, runOn, seeded, wasmDataIds } from './kernels.test-util';

/** Our wasm Sum and Identity, and the native element-wise, Mean, BatchNorm and Tile kernels, against the cpu backend. */

describeKernelVariants(() => {
  describe('Sum on wasm matches cpu', () => {
    // [shape, axis, keepDims, expected output shape]
    const CASES: [number[], number | number[], boolean, number[]][] = [
      // bias gradient: Σ over N, H, W of [3, 7, 5, 6] -> [6] (our one-pass path)
      [[3, 7, 5, 6], [0, 1, 2], false, [6]],
      // same, axes unordered and keepDims -> [1, 1, 1, 6]
      [[3, 7, 5, 6], [2, 0, 1], true, [1, 1, 1, 6]],
      // rank 2, axis 0: [9, 5] -> [5]
      [[9, 5], 0, false, [5]],
      // innermost axis (shipped kernel): [3, 7, 5] -> [3, 7]
      [[3, 7, 5], -1, false, [3, 7]],
      // middle axes (shipped kernel): [3, 7, 5, 2] -> [3, 2]
      [[3, 7, 5, 2], [1, 2], false, [3, 2]],
    ];
    it.each(CASES)('shape %j axis %j keepDims %s -> %j', async (shape, axis, keepDims, outShape) => {
      const v = seeded(shape, 11);
      const f = (): tf.Tensor[] => [tf.tidy(() => tf.sum(tf.tensor(v, shape), axis, keepDims))];
      await tf.setBackend('wasm');
      const s = tf.tidy(() => tf.sum(tf.tensor(v, shape), axis, keepDims).shape);
      expect(s).toEqual(outShape);
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(relativeError(a!, b!)).toBeLessThanOrEqual(1e-6);
    });

    it('sums int32 through the shipped kernel: [[1, 2], [3, 4]] over axis 0 -> [4, 6]', async () => {
      await tf.setBackend('wasm');
      const s = tf.tidy(() => tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), 0).arraySync());
      expect(s).toEqual([4, 6]);
    });
  });

  describe('Identity on wasm', () => {
    it('clones share data, survive disposal of the source and free it with the last reference', async () => {
      await tf.setBackend('wasm');
      const buffers = wasmDataIds();
      const x = tf.tensor1d([1, 2, 3]);
      const y = tf.clone(x); // Identity
      x.dispose();
      expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
      expect(wasmDataIds()).toBe(buffers + 1);
      y.dispose();
      expect(wasmDataIds()).toBe(buffers);
    });
  });

  describe('element-wise arithmetic on wasm matches cpu', () => {
    // [a shape, b shape]: same shape, per-channel vectors either side ([C] and [1, 1, 1, C]), scalars
    // either side, and two the native kernel hands back (general broadcasting, a rank-raising scalar).
    const SHAPES: [number[], number[]][] = [
      [[2, 5, 7, 6], [2, 5, 7, 6]],
      [[2, 5, 7, 6], [6]],
      [[6], [2, 5, 7, 6]],
      [[1, 1, 1, 6], [2, 5, 7, 6]],
      [[2, 5, 7, 6], []],
      [[], [2, 5, 7, 6]],
      [[2, 5, 7, 6], [1]],
      [[2, 1, 7, 6], [2, 5, 1, 6]],
      [[3, 4], [1, 1, 1]],
    ];
    const OPS = [
      ['add', tf.add],
      ['sub', tf.sub],
      ['mul', tf.mul],
      ['div', tf.div],
    ] as const;
    const CASES = OPS.flatMap(([name, op]) => SHAPES.map(([sa, sb]) => [name, sa, sb, op] as const));
    it.each(CASES)('%s %j %j', async (_name, sa, sb, op) => {
      // b kept away from zero so div is well conditioned.
      const av = seeded(sa, 21);
      const bv = seeded(sb, 22).map((v) => (v >= 0 ? v + 0.5 : v - 0.5));
      const f = (): tf.Tensor[] => [tf.tidy(() => op(tf.tensor(av, sa), tf.tensor(bv, sb)))];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(relativeError(a!, b!)).toBeLessThanOrEqual(1e-6);
    });

    it('int32 goes through the shipped kernels: [1, 2] * [3, 4] = [3, 8]', async () => {
      await tf.setBackend('wasm');
      expect(tf.tidy(() => tf.mul(tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3, 4], 'int32')).arraySync())).toEqual([3, 8]);
    });
  });

  describe('Mean, BatchNorm and Tile on wasm match cpu', () => {
    it.each([
      [[3, 7, 5, 6], [0, 1, 2], false],
      [[3, 7, 5, 6], [2, 1, 0], true],
      [[9, 5], 0, false],
      [[3, 7, 5], -1, false],
    ] as const)('mean of %j over %j keepDims %s', async (shape, axis, keepDims) => {
      const v = seeded([...shape], 31);
      const f = (): tf.Tensor[] => [tf.tidy(() => tf.mean(tf.tensor(v, [...shape]), axis as number | number[], keepDims))];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(relativeError(a!, b!)).toBeLessThanOrEqual(1e-6);
    });

    it.each([
      ['offset and scale', true, true, [6]],
      ['neither', false, false, [6]],
      ['[1, 1, 1, C] statistics', true, true, [1, 1, 1, 6]],
    ] as const)('batchNorm with %s', async (_name, withOffset, withScale, statShape) => {
      const xs = [2, 5, 7, 6];
      const [x, m, v, o, sc] = [seeded(xs, 41), seeded([6], 42), seeded([6], 43).map((q) => Math.abs(q) + 0.1), seeded([6], 44), seeded([6], 45)];
      const f = (): tf.Tensor[] => [
        tf.tidy(() =>
          tf.batchNorm(
            tf.tensor(x, xs),
            tf.tensor(m, [...statShape]),
            tf.tensor(v, [...statShape]),
            withOffset ? tf.tensor(o, [...statShape]) : undefined,
            withScale ? tf.tensor(sc, [...statShape]) : undefined,
            1e-3,
          ),
        ),
      ];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(relativeError(a!, b!)).toBeLessThanOrEqual(1e-5);
    });

    it.each([
      [[1, 1, 1, 6], [2, 5, 7, 1]],
      [[3, 4], [2, 3]],
      [[2, 1, 3], [1, 4, 2]],
      [[5], [3]],
      [[2, 3, 4], [2, 2, 1]],
    ])('tile %j by %j', async (shape, reps) => {
      const v = seeded(shape, 51);
      const f = (): tf.Tensor[] => [tf.tidy(() => tf.tile(tf.tensor(v, shape), reps))];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(Array.from(a!)).toEqual(Array.from(b!));
    });

    it('tiles int32 through the shipped kernel', async () => {
      await tf.setBackend('wasm');
      expect(tf.tidy(() => tf.tile(tf.tensor1d([1, 2], 'int32'), [2]).arraySync())).toEqual([1, 2, 1, 2]);
    });
  });
});
