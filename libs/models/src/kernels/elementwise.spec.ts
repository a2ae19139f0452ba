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
      // large enough for the native sum to split its rows over the kernel threads: [4, 64, 64, 20] -> [20]
      [[4, 64, 64, 20], [0, 1, 2], false, [20]],
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

  describe('Cast on wasm', () => {
    it('to the same dtype shares the data (no new buffer) and frees it with the last reference', async () => {
      await tf.setBackend('wasm');
      const buffers = wasmDataIds();
      const x = tf.tensor1d([1.5, -2, 3]);
      const y = tf.cast(x, 'float32');
      expect(wasmDataIds()).toBe(buffers + 1);
      x.dispose();
      expect(Array.from(y.dataSync())).toEqual([1.5, -2, 3]);
      y.dispose();
      expect(wasmDataIds()).toBe(buffers);
    });

    it.each([
      // [from, values, to, expected]: real conversions go to the shipped kernel
      ['float32', [1.5, -2.7, 0], 'int32', [1, -2, 0]],
      ['int32', [3, 0, -1], 'float32', [3, 0, -1]],
    ] as const)('%s %j to %s: %j', async (from, values, to, want) => {
      await tf.setBackend('wasm');
      const got = tf.tidy(() => tf.cast(tf.tensor1d([...values], from), to).arraySync());
      expect(got).toEqual(want);
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
      // large enough (327,680 elements) for the native loop to split over the kernel threads,
      // at a multiple of the channel count for the per-channel patterns
      [[4, 64, 64, 20], [4, 64, 64, 20]],
      [[4, 64, 64, 20], [20]],
      [[20], [4, 64, 64, 20]],
      [[4, 64, 64, 20], []],
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

  describe('Relu, Step and the ReLU gradient on wasm match cpu exactly', () => {
    // Seeded values with exact zeros, -0, NaN and ±Infinity mixed in.
    const valuesOf = (shape: number[]): Float32Array => {
      const v = seeded(shape, 51);
      const specials = [0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
      for (let i = 0; i < v.length; i += 7) v[i] = specials[(i / 7) % specials.length]!;
      return v;
    };
    it.each([
      // [shape, op]: small, and large enough (266,240 elements) to split over the kernel threads
      [[2, 5, 7, 6], 'relu'],
      [[2, 5, 7, 6], 'step 0'],
      [[2, 5, 7, 6], 'step 0.25'],
      [[2, 128, 130, 8], 'relu'],
      [[2, 128, 130, 8], 'step -1'],
    ] as const)('%j %s', async (shape, op) => {
      const v = valuesOf([...shape]);
      const alpha = op === 'relu' ? 0 : Number(op.split(' ')[1]);
      const f = (): tf.Tensor[] => [tf.tidy(() => (op === 'relu' ? tf.relu(tf.tensor(v, [...shape])) : tf.step(tf.tensor(v, [...shape]), alpha)))];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(Array.from(a!)).toEqual(Array.from(b!));
    });

    it('the ReLU gradient (dy · Step(Cast(x))) of [2, 9, 11, 16]', async () => {
      const shape = [2, 9, 11, 16];
      const v = seeded(shape, 52);
      const r = seeded(shape, 53);
      const f = (): tf.Tensor[] => [tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.relu(x), tf.tensor(r, shape))))(tf.tensor(v, shape)))];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(Array.from(a!)).toEqual(Array.from(b!));
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
