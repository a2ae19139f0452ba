import * as tf from '@tensorflow/tfjs';
import { describeKernelVariants, relativeError, runOn, seeded, wasmDataIds } from './kernels.test-util';

/** Our wasm Sum and Identity against the cpu backend. */

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
});
