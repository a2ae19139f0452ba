import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Adam } from '../optimizer';
import { relativeError, seeded } from './kernels.test-util';
import { FUSED_ADAM_KERNEL, blasThreadsFrom, kernelThreadsFrom, loadNativeAddon, nativeAddon, nativeModeFrom } from './native';
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

  it.each([
    ['BLAS', 1],
    ['direct', 16],
  ])('keeps NaN through the fused ReLU, as the cpu backend (%s path, %d channels)', (_path, co) => {
    // All-ones 4×4 image and 3×3 filter; channel 0's bias is NaN, the others −5: NaN and the window counts − 5 clamped at 0.
    const bias = new Float32Array(co).fill(-5);
    bias[0] = Number.NaN;
    const out = new Float32Array(16 * co);
    addon.conv2dBiasRelu(new Float32Array(16).fill(1), new Float32Array(9 * co).fill(1), bias, out, Int32Array.from([1, 4, 4, 1, 3, 3, co, 4, 4, 1, 1, 1, 1]), true);
    const channel = (c: number): number[] => Array.from({ length: 16 }, (_, p) => out[p * co + c]!);
    expect(channel(0).every(Number.isNaN)).toBe(true);
    for (let c = 1; c < co; c++) expect(channel(c)).toEqual([0, 1, 1, 0, 1, 4, 4, 1, 1, 4, 4, 1, 0, 1, 1, 0]);
  });

  it('copies strided runs: rows of 2 from a 3-wide source into a 4-wide destination at column 1', () => {
    const src = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const dst = new Float32Array(12);
    addon.stridedCopy(src, dst, Int32Array.from([3, 2, 1, 3, 1, 4]));
    expect(Array.from(dst)).toEqual([0, 2, 3, 0, 0, 5, 6, 0, 0, 8, 9, 0]);
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
    ['bad kernel thread count', () => addon.setKernelThreads(65), 'setKernelThreads expects an integer from 1 to 64'],
    ['an unknown unary op', () => addon.unary(2, x, new Float32Array(32), 0), 'op must be 0 (relu) or 1 (step)'],
    ['a unary output of another size', () => addon.unary(0, x, y, 0), 'x has 32 elements and out 48; they must match'],
    ['strided runs past the source', () => addon.stridedCopy(x, y, Int32Array.from([4, 3, 0, 10, 0, 3])), 'the runs reach past src (32 elements) or dst (48)'],
    ['a negative stride', () => addon.stridedCopy(x, y, Int32Array.from([2, 3, 0, -3, 0, 3])), 'layout values must be >= 0'],
    ['a short layout', () => addon.stridedCopy(x, y, new Int32Array(5)), 'layout must be an Int32Array [count, run, srcOffset, srcStride, dstOffset, dstStride]'],
  ])('refuses %s', (_name, call, message) => {
    expect(call).toThrow(message);
  });
});

withAddon('convolutions split over kernel threads', () => {
  const addon = native.addon!;
  const restore = addon.info().kernelThreads;
  afterAll(() => addon.setKernelThreads(restore));

  // Reference convolution in float64, written out loop by loop (NHWC, filter [KH, KW, Cin, Cout]).
  function reference(g: number[], x: Float32Array, w: Float32Array, dy: Float32Array): { y: Float64Array; dx: Float64Array; dw: Float64Array } {
    const [n, h, wd, ci, kh, kw, co, oh, ow, sh, sw, pt, pl] = g as [number, number, number, number, number, number, number, number, number, number, number, number, number];
    const y = new Float64Array(n * oh * ow * co);
    const dx = new Float64Array(x.length);
    const dw = new Float64Array(w.length);
    for (let b = 0; b < n; b++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++)
          for (let a = 0; a < kh; a++)
            for (let e = 0; e < kw; e++) {
              const iy = oy * sh - pt + a;
              const ix = ox * sw - pl + e;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              for (let c = 0; c < ci; c++) {
                const xi = ((b * h + iy) * wd + ix) * ci + c;
                for (let o = 0; o < co; o++) {
                  const yi = ((b * oh + oy) * ow + ox) * co + o;
                  const wi = ((a * kw + e) * ci + c) * co + o;
                  y[yi]! += x[xi]! * w[wi]!;
                  dx[xi]! += dy[yi]! * w[wi]!;
                  dw[wi]! += x[xi]! * dy[yi]!;
                }
              }
            }
    return { y, dx, dw };
  }
  const maxRelative = (got: Float32Array, want: Float64Array): number => {
    let scale = 0;
    let err = 0;
    want.forEach((v, i) => {
      scale = Math.max(scale, Math.abs(v));
      err = Math.max(err, Math.abs(got[i]! - v));
    });
    return err / scale;
  };

  // [name, geometry]: each large enough (≥ 8 MFLOP) to be split, with row splits that cross images.
  const CASES: [string, number[]][] = [
    ['direct kernels: [2, 30, 33, 16] → 32, 3×3 same', [2, 30, 33, 16, 3, 3, 32, 30, 33, 1, 1, 1, 1]],
    ['direct forward and filter, BLAS input gradient: [3, 41, 40, 16] → 48, 3×3 stride 2', [3, 41, 40, 16, 3, 3, 48, 21, 20, 2, 2, 1, 1]],
    ['BLAS: [2, 40, 36, 12] → 20, 3×3 same', [2, 40, 36, 12, 3, 3, 20, 40, 36, 1, 1, 1, 1]],
  ];
  it.each(CASES)('%s: 1, 2 and 3 threads match a float64 reference', (_name, g) => {
    const [n, h, wd, ci, kh, kw, co, oh, ow] = g as [number, number, number, number, number, number, number, number, number];
    const x = Float32Array.from(seeded([n, h, wd, ci], 7));
    const w = Float32Array.from(seeded([kh, kw, ci, co], 8));
    const dy = Float32Array.from(seeded([n, oh, ow, co], 9));
    const want = reference(g, x, w, dy);
    for (const threads of [1, 2, 3]) {
      addon.setKernelThreads(threads);
      const y = new Float32Array(want.y.length);
      const dx = new Float32Array(x.length).fill(Number.NaN);
      const dw = new Float32Array(w.length).fill(Number.NaN);
      addon.conv2dBiasRelu(x, w, null, y, Int32Array.from(g), false);
      addon.conv2dBackpropInput(dy, w, dx, Int32Array.from(g));
      addon.conv2dBackpropFilter(x, dy, dw, Int32Array.from(g));
      expect(maxRelative(y, want.y)).toBeLessThan(1e-5);
      expect(maxRelative(dx, want.dx)).toBeLessThan(1e-5);
      expect(maxRelative(dw, want.dw)).toBeLessThan(1e-5);
    }
  });
});

describe('PURIFY_KERNEL_THREADS', () => {
  it.each([
    // [value, main thread, cores, threads]
    [undefined, true, 2, 2],
    ['', true, 8, 4],
    [undefined, true, 1, 1],
    [undefined, false, 8, 1],
    ['3', false, 2, 3],
    [' 1 ', true, 2, 1],
  ] as const)('%p on the main thread %p with %d cores: %d', (value, main, cores, want) => {
    expect(kernelThreadsFrom(value, main, cores)).toBe(want);
  });
  it.each(['0', '65', '1.5', 'two'])('refuses %p', (value) => {
    expect(() => kernelThreadsFrom(value, true, 2)).toThrow(`PURIFY_KERNEL_THREADS must be an integer from 1 to 64, got '${value}'`);
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
