import * as tf from '@tensorflow/tfjs';
import { KERNEL_VARIANTS, relativeError, runOn, seeded, useWasmKernels, wasmDataIds } from './kernels.test-util';

/**
 * Conv3D training on wasm is made correct (not refused): our
 * Conv3DBackpropInputV2 / Conv3DBackpropFilterV2 are checked against the cpu
 * backend. Relative error (max |Δ| / max |cpu|) ≤ 1e-4.
 */
const TOL = 1e-4;

interface Case {
  /** x [N, D, H, W, Cin] */
  x: [number, number, number, number, number];
  /** filter [KD, KH, KW, Cin, Cout] */
  w: [number, number, number, number, number];
  strides: number | [number, number, number];
  pad: 'same' | 'valid';
}

const CASES: Case[] = [
  // 3×3×3 'same' stride 1: dy [2, 5, 6, 7, 4]
  { x: [2, 5, 6, 7, 3], w: [3, 3, 3, 3, 4], strides: 1, pad: 'same' },
  // 3×2×3 'same' stride 2, odd sizes: dy [2, 3, 3, 4, 5]
  { x: [2, 5, 6, 7, 3], w: [3, 2, 3, 3, 5], strides: 2, pad: 'same' },
  // 2×3×3 'valid' stride 2 with leftover planes: dy [1, 3, 2, 3, 3]
  { x: [1, 6, 5, 7, 2], w: [2, 3, 3, 2, 3], strides: 2, pad: 'valid' },
  // 2×2×2 stride 2 (3D transposed-conv upsampling shape): dy [3, 2, 3, 2, 6]
  { x: [3, 4, 6, 4, 5], w: [2, 2, 2, 5, 6], strides: 2, pad: 'same' },
  // 1×3×3 'valid' stride [1, 2, 1]: dy [2, 4, 3, 3, 2]
  { x: [2, 4, 7, 5, 1], w: [1, 3, 3, 1, 2], strides: [1, 2, 1], pad: 'valid' },
];

const label = (c: Case): string => `x [${c.x.join(',')}] w [${c.w.join(',')}] strides ${JSON.stringify(c.strides)} ${c.pad}`;

// The default registration (native where built; the 3D kernels themselves are wasm in both variants).
useWasmKernels(KERNEL_VARIANTS.includes('native'));

function conv3dGrads(c: Case, seed: number): () => tf.Tensor[] {
  const xv = seeded(c.x, seed);
  const wv = seeded(c.w, seed + 1);
  return () =>
    tf.tidy(() => {
      const x = tf.tensor5d(xv, c.x);
      const w = tf.tensor5d(wv, c.w);
      const y = tf.conv3d(x, w, c.strides, c.pad);
      const r = tf.tensor(seeded(y.shape, seed + 2), y.shape);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, c.strides, c.pad), r)))([x, w]);
      return [dx!, dw!];
    });
}

describe('Conv3D gradients on wasm match the cpu backend', () => {
  it.each(CASES.map((c, i) => [label(c), c, i] as const))('%s', async (_name, c, i) => {
    const f = conv3dGrads(c, 500 + 10 * i);
    const [dxWasm, dwWasm] = await runOn('wasm', f);
    const [dxCpu, dwCpu] = await runOn('cpu', f);
    expect(relativeError(dxWasm!, dxCpu!)).toBeLessThanOrEqual(TOL);
    expect(relativeError(dwWasm!, dwCpu!)).toBeLessThanOrEqual(TOL);
  });

  it('leaves no tensors and no backend buffers behind', async () => {
    await tf.setBackend('wasm');
    const f = conv3dGrads(CASES[1]!, 9);
    tf.dispose(f());
    const tensors = tf.memory().numTensors;
    const buffers = wasmDataIds();
    tf.dispose(f());
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasmDataIds()).toBe(buffers);
  });
});
