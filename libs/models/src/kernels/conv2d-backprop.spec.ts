import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from './index';
import { describeKernelVariants, relativeError, runOn, seeded, seededOneHot, wasmDataIds } from './kernels.test-util';

/**
 * Gradient checks of our wasm Conv2DBackpropInput / Conv2DBackpropFilter
 * against the cpu backend (tfjs-backend-cpu's reference kernels), on the same
 * data. Tolerance: relative error (max |Δ| / max |cpu|) ≤ 1e-4.
 *
 * Every check runs for both variants of the convolution kernels: the pure
 * wasm ones, and the native im2col + BLAS ones where the addon is built.
 * Without the addon the native variant is skipped, unless
 * PURIFY_NATIVE_KERNELS=require (set in CI, which builds it): then its
 * absence fails the suite.
 */
const TOL = 1e-4;

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
interface Case {
  /** x [N, H, W, Cin] */
  x: [number, number, number, number];
  /** filter [KH, KW, Cin, Cout] */
  w: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

// Shapes: batch > 1 mostly, channels not multiples of 4, odd spatial sizes.
const CASES: Case[] = [
  // 3×3 'same' stride 1 (the U-Net conv): dy [2, 7, 9, 5]
  { x: [2, 7, 9, 3], w: [3, 3, 3, 5], strides: 1, pad: 'same' },
  // 3×3 'valid' stride 1: dy [3, 5, 3, 2]
  { x: [3, 7, 5, 6], w: [3, 3, 6, 2], strides: 1, pad: 'valid' },
  // 3×3 'same' stride 2, odd sizes: dy [2, 4, 5, 5]
  { x: [2, 7, 9, 3], w: [3, 3, 3, 5], strides: 2, pad: 'same' },
  // 3×3 'valid' stride 2 with leftover rows/cols: dy [2, 3, 4, 7]
  { x: [2, 8, 10, 5], w: [3, 3, 5, 7], strides: 2, pad: 'valid' },
  // 2×2 stride 2 'same' (transposed-conv upsampling / pixel-shuffle path): dy [2, 4, 5, 6]
  { x: [2, 8, 10, 3], w: [2, 2, 3, 6], strides: 2, pad: 'same' },
  // 2×2 stride 2 'valid' on odd input (leftover row → general path): dy [1, 3, 3, 4]
  { x: [1, 7, 7, 5], w: [2, 2, 5, 4], strides: 2, pad: 'valid' },
  // 1×1 (pointwise path): dy [3, 5, 7, 5]
  { x: [3, 5, 7, 6], w: [1, 1, 6, 5], strides: 1, pad: 'valid' },
  // 1×1 'same' with one input channel and batch 1: dy [1, 9, 9, 3]
  { x: [1, 9, 9, 1], w: [1, 1, 1, 3], strides: 1, pad: 'same' },
  // first U-Net layer shape: Cin = 1, 3×3 'same': dy [2, 11, 9, 5]
  { x: [2, 11, 9, 1], w: [3, 3, 1, 5], strides: 1, pad: 'same' },
  // even 4×2 kernel, anisotropic strides [2, 3], 'same': dy [2, 5, 3, 5]
  { x: [2, 9, 7, 3], w: [4, 2, 3, 5], strides: [2, 3], pad: 'same' },
  // explicit pads, stride 1, pads larger than the kernel on one side: dy [2, 8, 11, 5]
  { x: [2, 7, 9, 3], w: [3, 3, 3, 5], strides: 1, pad: [[0, 0], [3, 0], [0, 4], [0, 0]] },
  // explicit asymmetric pads, stride 2: dy [2, 5, 4, 5]
  { x: [2, 7, 9, 3], w: [3, 3, 3, 5], strides: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  // 5×5 'same', larger channel counts: dy [2, 13, 11, 17]
  { x: [2, 13, 11, 10], w: [5, 5, 10, 17], strides: 1, pad: 'same' },
  // The native direct kernels (output channels a multiple of 16; the input
  // gradient also needs Cin a multiple of 16 and stride 1). Widths leave tails
  // after the 16-, 8- and 4-pixel blocks.
  // 16 → 16, 3×3 'same' (the U-Net's first level), width 13 = 8 + 4 + 1: dy [2, 6, 13, 16]
  { x: [2, 6, 13, 16], w: [3, 3, 16, 16], strides: 1, pad: 'same' },
  // 1 → 16 (the first layer; its input gradient stays on BLAS): dy [1, 9, 19, 16]
  { x: [1, 9, 19, 1], w: [3, 3, 1, 16], strides: 1, pad: 'same' },
  // 32 → 48: channel groups of 2 and 1 vectors; 'valid': dy [2, 5, 7, 48]
  { x: [2, 7, 9, 32], w: [3, 3, 32, 48], strides: 1, pad: 'valid' },
  // 16 → 64 (one 4-vector group), stride 2 (input gradient on BLAS): dy [2, 4, 5, 64]
  { x: [2, 8, 10, 16], w: [3, 3, 16, 64], strides: 2, pad: 'same' },
  // 64 → 32, 5×4 kernel, explicit pads beyond the kernel on one side (input gradient on BLAS): dy [1, 9, 12, 32]
  { x: [1, 6, 7, 64], w: [5, 4, 64, 32], strides: 1, pad: [[0, 0], [4, 3], [5, 3], [0, 0]] },
  // 16 → 16 with asymmetric explicit pads within the kernel (direct input gradient): dy [2, 7, 9, 16]
  { x: [2, 6, 7, 16], w: [3, 4, 16, 16], strides: 1, pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
];

const label = (c: Case): string => `x [${c.x.join(',')}] w [${c.w.join(',')}] strides ${JSON.stringify(c.strides)} pad ${JSON.stringify(c.pad)}`;

describeKernelVariants((variant) => {
  /** y = conv2d(x, w), and dx, dw of Σ y ⊙ r (r a fixed random weighting, so dy is not constant). */
  function convGrads(c: Case, seed: number): () => tf.Tensor[] {
    const xv = seeded(c.x, seed);
    const wv = seeded(c.w, seed + 1);
    return () =>
      tf.tidy(() => {
        const x = tf.tensor4d(xv, c.x);
        const w = tf.tensor4d(wv, c.w);
        const y = tf.conv2d(x, w, c.strides, c.pad);
        const r = tf.tensor(seeded(y.shape, seed + 2), y.shape);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), r)))([x, w]);
        return [y, dx!, dw!];
      });
  }

  describe('Conv2D and its gradients on wasm match the cpu backend', () => {
    it.each(CASES.map((c, i) => [label(c), c, i] as const))('%s', async (_name, c, i) => {
      const f = convGrads(c, 100 + 10 * i);
      const [yWasm, dxWasm, dwWasm] = await runOn('wasm', f);
      const [yCpu, dxCpu, dwCpu] = await runOn('cpu', f);
      expect(relativeError(yWasm!, yCpu!)).toBeLessThanOrEqual(TOL);
      expect(relativeError(dxWasm!, dxCpu!)).toBeLessThanOrEqual(TOL);
      expect(relativeError(dwWasm!, dwCpu!)).toBeLessThanOrEqual(TOL);
    });
  });

  describe('fused conv2d (bias, activation) and its gradients on wasm match cpu', () => {
    // [name, bias, activation, output channels]: the layers' conv (bias, linear / relu), no bias, an
    // activation the native kernel hands back; 16 and 32 channels take the direct kernel's epilogue.
    const FUSED: [string, boolean, 'linear' | 'relu' | 'elu', number][] = [
      ['bias + relu', true, 'relu', 5],
      ['bias, linear', true, 'linear', 5],
      ['no bias, relu', false, 'relu', 5],
      ['bias + elu (fallback)', true, 'elu', 5],
      ['bias + relu, 16 channels (direct)', true, 'relu', 16],
      ['no bias, relu, 32 channels (direct)', false, 'relu', 32],
      ['bias, linear, 48 channels (direct)', true, 'linear', 48],
    ];
    it.each(FUSED)('%s', async (_name, withBias, activation, cout) => {
      const c: Case = { x: [2, 7, 9, 3], w: [3, 3, 3, cout], strides: 1, pad: 'same' };
      const [xv, wv, bv] = [seeded(c.x, 61), seeded(c.w, 62), seeded([cout], 63)];
      const f = (): tf.Tensor[] =>
        tf.tidy(() => {
          const x = tf.tensor4d(xv, c.x);
          const w = tf.tensor4d(wv, c.w);
          const b = tf.tensor1d(bv);
          const conv = (xa: tf.Tensor, wa: tf.Tensor, ba: tf.Tensor): tf.Tensor =>
            tf.fused.conv2d({ x: xa as tf.Tensor4D, filter: wa as tf.Tensor4D, strides: 1, pad: 'same', bias: withBias ? ba : undefined, activation });
          const y = conv(x, w, b);
          const r = tf.tensor(seeded(y.shape, 64), y.shape);
          // Gradients with respect to the inputs the convolution uses (without a bias there is none to take).
          const loss = (...ts: tf.Tensor[]): tf.Scalar => tf.sum(tf.mul(conv(ts[0]!, ts[1]!, ts[2] ?? b), r));
          return [y, ...tf.grads(loss)(withBias ? [x, w, b] : [x, w])];
        });
      const wasm = await runOn('wasm', f);
      const cpu = await runOn('cpu', f);
      expect(wasm).toHaveLength(withBias ? 4 : 3);
      wasm.forEach((t, i) => expect(relativeError(t, cpu[i]!)).toBeLessThanOrEqual(TOL));
    });
  });

  describe('conv2dTranspose forward (Conv2DBackpropInput) on wasm matches cpu', () => {
    // [dy (the transposed conv's input), filter [KH, KW, Cout of the op, Cin of the op], output shape, stride, pad]
    const T: [number[], number[], [number, number, number, number], number, 'same' | 'valid'][] = [
      // U-Net upsampling 2×2 stride 2: [2, 5, 7, 6] -> [2, 10, 14, 3]
      [[2, 5, 7, 6], [2, 2, 3, 6], [2, 10, 14, 3], 2, 'same'],
      // 3×3 stride 2 'same': [3, 4, 3, 5] -> [3, 7, 5, 2]
      [[3, 4, 3, 5], [3, 3, 2, 5], [3, 7, 5, 2], 2, 'same'],
      // 3×3 stride 1 'valid' (full correlation): [2, 5, 5, 3] -> [2, 7, 7, 4]
      [[2, 5, 5, 3], [3, 3, 4, 3], [2, 7, 7, 4], 1, 'valid'],
    ];
    it.each(T)('dy %j filter %j -> %j stride %d %s', async (dyShape, wShape, outShape, stride, pad) => {
      const dv = seeded(dyShape, 7);
      const wv = seeded(wShape, 8);
      const f = (): tf.Tensor[] => [
        tf.tidy(() => tf.conv2dTranspose(tf.tensor4d(dv, dyShape as [number, number, number, number]), tf.tensor4d(wv, wShape as [number, number, number, number]), outShape, stride, pad)),
      ];
      const [a] = await runOn('wasm', f);
      const [b] = await runOn('cpu', f);
      expect(relativeError(a!, b!)).toBeLessThanOrEqual(TOL);
    });
  });

  describe('end to end: a small U-Net-like conv net', () => {
    // x [2, 9, 11, 1] -> conv3×3(1→3)+relu -> maxpool 2 -> conv3×3(3→6)+relu -> convT 2×2 s2 (6→3) ->
    // crop/concat with the first block -> conv3×3(6→5) -> softmax cross-entropy against random labels.
    const shapes: Record<string, number[]> = { w1: [3, 3, 1, 3], b1: [3], w2: [3, 3, 3, 6], b2: [6], wt: [2, 2, 3, 6], w3: [3, 3, 6, 5], b3: [5] };
    const values = Object.fromEntries(Object.entries(shapes).map(([k, s], i) => [k, seeded(s, 300 + i)]));
    const xv = seeded([2, 10, 12, 1], 400);
    const labels = seededOneHot([2, 10, 12], 5, 401);

    function lossGrads(): tf.Tensor[] {
      return tf.tidy(() => {
        const vars = Object.entries(shapes).map(([k, s]) => tf.tensor(values[k]!, s));
        const x = tf.tensor4d(xv, [2, 10, 12, 1]);
        const y = tf.tensor4d(labels, [2, 10, 12, 5]);
        const loss = (w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, wt: tf.Tensor, w3: tf.Tensor, b3: tf.Tensor): tf.Scalar => {
          const h1 = tf.relu(tf.add(tf.conv2d(x, w1 as tf.Tensor4D, 1, 'same'), b1)) as tf.Tensor4D; // [2, 10, 12, 3]
          const p = tf.maxPool(h1, 2, 2, 'valid'); // [2, 5, 6, 3]
          const h2 = tf.relu(tf.add(tf.conv2d(p, w2 as tf.Tensor4D, 1, 'same'), b2)) as tf.Tensor4D; // [2, 5, 6, 6]
          const up = tf.conv2dTranspose(h2, wt as tf.Tensor4D, [2, 10, 12, 3], 2, 'same'); // [2, 10, 12, 3]
          const cat = tf.concat([up, h1], 3); // [2, 10, 12, 6]
          const logits = tf.add(tf.conv2d(cat, w3 as tf.Tensor4D, 1, 'same'), b3); // [2, 10, 12, 5]
          return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(y, logits);
        };
        return tf.grads(loss)(vars);
      });
    }

    it('gradients of the loss w.r.t. every weight equal the cpu backend', async () => {
      const wasm = await runOn('wasm', lossGrads);
      const cpu = await runOn('cpu', lossGrads);
      expect(wasm).toHaveLength(7);
      wasm.forEach((g, i) => expect(relativeError(g, cpu[i]!)).toBeLessThanOrEqual(TOL));
    });

    it('leaves no tensors and no backend buffers behind', async () => {
      await tf.setBackend('wasm');
      tf.dispose(lossGrads()); // warm-up (lazy kernel setup)
      const tensors = tf.memory().numTensors;
      const buffers = wasmDataIds();
      tf.dispose(lossGrads());
      expect(tf.memory().numTensors).toBe(tensors);
      expect(wasmDataIds()).toBe(buffers);
    });
  });

  describe('bad input', () => {
    it('refuses NCHW with the kernel name and the received format', async () => {
      await tf.setBackend('wasm');
      const dy = tf.zeros([1, 3, 4, 4]);
      const x = tf.zeros([1, 3, 4, 4]);
      const w = tf.zeros([3, 3, 3, 3]);
      expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 3] })).toThrow(
        new Error("Conv2DBackpropFilter on wasm supports dataFormat 'NHWC' only, got 'NCHW'"),
      );
      expect(() => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { strides: 1, pad: 'same', dataFormat: 'NCHW', inputShape: [1, 3, 4, 4] })).toThrow(
        new Error("Conv2DBackpropInput on wasm supports dataFormat 'NHWC' only, got 'NCHW'"),
      );
      tf.dispose([dy, x, w]);
    });

    it('refuses a dy whose spatial shape does not match the convolution', async () => {
      await tf.setBackend('wasm');
      const x = tf.zeros([1, 6, 6, 2]);
      const dy = tf.zeros([1, 5, 6, 3]); // 'same' stride 1 gives [6, 6]
      expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 2, 3] })).toThrow(
        new Error('Conv2DBackpropFilter: dy has spatial shape [5, 6], the convolution gives [6, 6]'),
      );
      tf.dispose([x, dy]);
    });
  });

  describe('registerWasmTrainingKernels', () => {
    it('is idempotent: a second call keeps the same registrations', () => {
      const names = ['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'Conv3DBackpropInputV2', 'Conv3DBackpropFilterV2', 'Identity', 'Sum', 'Concat', 'SplitV', 'MaxPoolGrad'];
      const before = names.map((k) => tf.getKernel(k, 'wasm'));
      registerWasmTrainingKernels({ native: variant === 'native' });
      const after = names.map((k) => tf.getKernel(k, 'wasm'));
      expect(after).toEqual(before);
      after.forEach((k, i) => expect(k).toBe(before[i]));
    });
  });
});
