import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Adam } from '../optimizer';
import { relativeError, seeded } from './kernels.test-util';
import { FUSED_ADAM_KERNEL, blasThreadsFrom, loadNativeAddon, nativeAddon, nativeModeFrom } from './native';
import { registerWasmTrainingKernels } from './register';

/**
 * The native addon's loader and its own argument checks. The kernels' numbers
 * are checked against the cpu backend in conv2d-backprop.spec.ts (native
 * variant). Where the addon is not built the addon checks are skipped, unless
 * PURIFY_NATIVE_KERNELS=require (CI), which turns its absence into a failure.
 */

describe('PURIFY_NATIVE_KERNELS and PURIFY_BLAS_THREADS', () => {
  it.each([
    [undefined, 'auto'],
    ['', 'auto'],
    ['auto', 'auto'],
    ['ON', 'auto'],
    ['off', 'off'],
    ['0', 'off'],
    ['require', 'require'],
  ] as const)('mode %j -> %s', (value, mode) => {
    expect(nativeModeFrom(value)).toBe(mode);
  });

  it('refuses an unknown mode, naming the accepted ones', () => {
    expect(() => nativeModeFrom('fast')).toThrow("PURIFY_NATIVE_KERNELS must be auto, off or require, got 'fast'");
  });

  it.each([
    [undefined, 1],
    ['', 1],
    ['2', 2],
  ] as const)('threads %j -> %d', (value, n) => {
    expect(blasThreadsFrom(value)).toBe(n);
  });

  it.each(['0', '-1', '1.5', 'two', '1000'])('refuses %j threads', (value) => {
    expect(() => blasThreadsFrom(value)).toThrow(`PURIFY_BLAS_THREADS must be an integer from 1 to 256, got '${value}'`);
  });
});

describe('loading the addon', () => {
  const missing = path.join(__dirname, 'no-such-addon.node');

  it('off: not loaded, and says so', () => {
    expect(loadNativeAddon({ PURIFY_NATIVE_KERNELS: 'off' })).toEqual({ addon: undefined, status: { loaded: false, reason: 'PURIFY_NATIVE_KERNELS=off' } });
  });

  it('auto without the addon: not loaded, with the path and how to build it', () => {
    const { addon, status } = loadNativeAddon({}, missing);
    expect(addon).toBeUndefined();
    expect(status.loaded).toBe(false);
    expect(status.reason).toContain(missing);
    expect(status.reason).toContain('npm run build:native');
  });

  it('require without the addon: an error', () => {
    expect(() => loadNativeAddon({ PURIFY_NATIVE_KERNELS: 'require' }, missing)).toThrow(/^PURIFY_NATIVE_KERNELS=require: .*no-such-addon\.node is not built/);
  });
});

const native = nativeAddon();
const withAddon = native.addon !== undefined ? describe : describe.skip;

withAddon('the addon', () => {
  const addon = native.addon!;
  // x [1, 4, 4, 2], 3×3 filter to 3 channels, 'same': y [1, 4, 4, 3]
  const geometry = (): Int32Array => Int32Array.from([1, 4, 4, 2, 3, 3, 3, 4, 4, 1, 1, 1, 1]);
  const x = new Float32Array(32);
  const w = new Float32Array(54);
  const y = new Float32Array(48);

  it('reports OpenBLAS and one thread by default', () => {
    expect(native.status.loaded).toBe(true);
    expect(native.status.blas).toMatch(/OpenBLAS/);
    expect(native.status.threads).toBe(blasThreadsFrom(process.env['PURIFY_BLAS_THREADS']));
  });

  it('computes a known convolution: all-ones 3×3 on all-ones 4×4 gives the window counts', () => {
    const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
    const out = new Float32Array(16);
    addon.conv2dBiasRelu(ones(16), ones(9), null, out, Int32Array.from([1, 4, 4, 1, 3, 3, 1, 4, 4, 1, 1, 1, 1]), false);
    expect(Array.from(out)).toEqual([4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4]);
  });

  it('adds the bias and applies ReLU after the convolution: the window counts − 5, clamped at 0', () => {
    const out = new Float32Array(16);
    addon.conv2dBiasRelu(new Float32Array(16).fill(1), new Float32Array(9).fill(1), Float32Array.of(-5), out, Int32Array.from([1, 4, 4, 1, 3, 3, 1, 4, 4, 1, 1, 1, 1]), true);
    expect(Array.from(out)).toEqual([0, 1, 1, 0, 1, 4, 4, 1, 1, 4, 4, 1, 0, 1, 1, 0]);
  });

  it.each([
    ['an operand of the wrong length', () => addon.conv2dBiasRelu(x, w, null, new Float32Array(47), geometry(), false), 'y has 47 elements, the geometry needs 48'],
    ['a non-Float32Array operand', () => addon.conv2dBackpropFilter(x, new Float64Array(48) as unknown as Float32Array, w, geometry()), 'dy must be a Float32Array'],
    ['a short geometry', () => addon.conv2dBackpropInput(y, w, x, new Int32Array(12)), 'geometry must be an Int32Array of 13 values'],
    ['a zero size', () => addon.conv2dBiasRelu(x, w, null, y, Int32Array.from([1, 4, 4, 2, 3, 3, 0, 4, 4, 1, 1, 1, 1]), false), 'geometry: sizes and strides must be >= 1, got value 0 at index 6'],
    ['a negative pad', () => addon.conv2dBiasRelu(x, w, null, y, Int32Array.from([1, 4, 4, 2, 3, 3, 3, 4, 4, 1, 1, -1, 1]), false), 'geometry: pads must be >= 0'],
    ['bad thread count', () => addon.setThreads(0), 'setThreads expects an integer >= 1'],
  ])('refuses %s', (_name, call, message) => {
    expect(call).toThrow(message);
  });
});

withAddon('the fused Adam kernel', () => {
  // Three updates of two variables with seeded gradients, on a backend and kernel variant.
  async function threeUpdates(backend: 'cpu' | 'wasm', native: boolean, weightDecay: number): Promise<{ x: Float32Array[]; fused: boolean }> {
    await tf.setBackend(backend);
    await tf.ready();
    if (backend === 'wasm') registerWasmTrainingKernels({ native });
    const shapes = [[3, 3, 2, 5], [5]];
    const vars = shapes.map((s, i) => tf.variable(tf.tensor(seeded(s, 10 + i), s)));
    const adam = new Adam(vars, { learningRate: 1e-2, weightDecay });
    for (let step = 0; step < 3; step++) {
      const grads = shapes.map((s, i) => tf.tensor(seeded(s, 100 * step + i), s));
      adam.apply(grads);
      tf.dispose(grads);
    }
    const fused = tf.getKernel(FUSED_ADAM_KERNEL, backend) != null;
    const x = vars.map((v) => v.dataSync() as Float32Array);
    adam.dispose();
    tf.dispose(vars);
    return { x, fused };
  }

  let original: string;
  beforeAll(async () => {
    await tf.ready();
    original = tf.getBackend();
  });
  afterAll(async () => {
    registerWasmTrainingKernels({ native: true });
    await tf.setBackend(original);
  });

  it.each([0, 0.05])('weight decay %d: the same weights as the op sequence on wasm (bit for bit) and on cpu (≤ 1e-6)', async (wd) => {
    const fused = await threeUpdates('wasm', true, wd);
    const ops = await threeUpdates('wasm', false, wd);
    const cpu = await threeUpdates('cpu', false, wd);
    expect([fused.fused, ops.fused, cpu.fused]).toEqual([true, false, false]);
    fused.x.forEach((x, i) => {
      expect(Array.from(x)).toEqual(Array.from(ops.x[i]!));
      expect(relativeError(x, cpu.x[i]!)).toBeLessThanOrEqual(1e-6);
    });
  });

  it('refuses moments of another shape', async () => {
    await tf.setBackend('wasm');
    registerWasmTrainingKernels({ native: true });
    const [x, m, v, g] = [tf.zeros([2, 3]), tf.zeros([3, 2]), tf.zeros([2, 3]), tf.zeros([2, 3])];
    expect(() => tf.engine().runKernel(FUSED_ADAM_KERNEL, { x, m, v, g }, { beta1: 0.9, beta2: 0.999, decay: 1, stepSize: 0.01, sqrtBc2: 1, epsilon: 1e-8 })).toThrow(
      `${FUSED_ADAM_KERNEL}: m has shape [3, 2], x has [2, 3]`,
    );
    tf.dispose([x, m, v, g]);
  });
});
