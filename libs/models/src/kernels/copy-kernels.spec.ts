import * as tf from '@tensorflow/tfjs';
import { describeKernelVariants, relativeError, runOn, seeded } from './kernels.test-util';

/** Our wasm Concat, SplitV and MaxPoolGrad against the cpu backend (exact: they only move or add data). */

describeKernelVariants(() => {
  describe('Concat and its gradient SplitV on wasm match cpu', () => {
    // [shapes of the inputs, axis]
    const CASES: [number[][], number][] = [
      // skip connection: [2, 5, 7, 3] ++ [2, 5, 7, 3] on channels -> [2, 5, 7, 6]
      [[[2, 5, 7, 3], [2, 5, 7, 3]], 3],
      // unequal channels, three inputs: -> [2, 5, 7, 12]
      [[[2, 5, 7, 3], [2, 5, 7, 1], [2, 5, 7, 8]], -1],
      // long runs (bulk copies): [1, 3, 100] ++ [1, 3, 70] -> [1, 3, 170]
      [[[1, 3, 100], [1, 3, 70]], 2],
      // middle axis: [2, 3, 4] ++ [2, 5, 4] -> [2, 8, 4]
      [[[2, 3, 4], [2, 5, 4]], 1],
      // first axis: [3, 4] ++ [1, 4] -> [4, 4]
      [[[3, 4], [1, 4]], 0],
    ];
    it.each(CASES)('%j along axis %d', async (shapes, axis) => {
      const values = shapes.map((s, i) => seeded(s, 20 + i));
      const r = seeded(tf.backend_util.computeOutShape(shapes, axis < 0 ? axis + shapes[0]!.length : axis), 30);
      const f = (): tf.Tensor[] =>
        tf.tidy(() => {
          const xs = shapes.map((s, i) => tf.tensor(values[i]!, s));
          const y = tf.concat(xs, axis);
          // Gradients of Σ concat(xs) ⊙ r: SplitV of r.
          const gs = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(tf.concat(a, axis), tf.tensor(r, y.shape))))(xs);
          return [y, ...gs];
        });
      const wasm = await runOn('wasm', f);
      const cpu = await runOn('cpu', f);
      wasm.forEach((v, i) => expect(relativeError(v, cpu[i]!)).toBe(0));
    });

    it('concatenates int32 through the shipped kernel: [1, 2] ++ [3] -> [1, 2, 3]', async () => {
      await tf.setBackend('wasm');
      expect(tf.tidy(() => tf.concat([tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3], 'int32')]).arraySync())).toEqual([1, 2, 3]);
    });
  });

  describe('MaxPoolGrad on wasm matches cpu', () => {
    // [x shape, filter, stride, pad]
    const CASES: [number[], number, number, 'same' | 'valid'][] = [
      // U-Net pooling 2×2/2 on even sizes: [2, 8, 10, 3] -> [2, 4, 5, 3]
      [[2, 8, 10, 3], 2, 2, 'valid'],
      // odd sizes, 'same' (clipped windows): [2, 7, 9, 5] -> [2, 4, 5, 5]
      [[2, 7, 9, 5], 2, 2, 'same'],
      // overlapping 3×3/2 windows (gradients accumulate): [1, 9, 7, 2] -> [1, 5, 4, 2]
      [[1, 9, 7, 2], 3, 2, 'same'],
      // 16 and 32 channels (the native kernel's vector search): [2, 8, 10, 16] -> [2, 4, 5, 16]
      [[2, 8, 10, 16], 2, 2, 'valid'],
      // clipped windows and 32 channels: [1, 7, 9, 32] -> [1, 4, 5, 32]
      [[1, 7, 9, 32], 2, 2, 'same'],
      // overlapping windows, 16 channels: [1, 9, 7, 16] -> [1, 5, 4, 16]
      [[1, 9, 7, 16], 3, 2, 'same'],
    ];
    it.each(CASES)('x %j filter %d stride %d %s', async (shape, filter, stride, pad) => {
      // ReLU-like input with many exact zeros, so ties are common and the tie rule (first maximum) is exercised.
      const xv = seeded(shape, 40).map((v) => Math.max(0, Math.round(v)));
      const f = (): tf.Tensor[] =>
        tf.tidy(() => {
          const x = tf.tensor4d(xv, shape as [number, number, number, number]);
          const y = tf.maxPool(x, filter, stride, pad);
          const r = tf.tensor(seeded(y.shape, 41), y.shape);
          return [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, filter, stride, pad), r)))(x)];
        });
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(relativeError(a!, b!)).toBeLessThanOrEqual(1e-6);
    });
  });
});
