import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { conv2DInfoFor, type Conv2DInfo } from './conv2d-backprop';
import { makeLeadingAxesReduction } from './elementwise';
import { heapF32, inputOf, wasmBackendOf } from './wasm-backend';

/**
 * Native training kernels for the wasm backend — the 2D convolution (with its
 * bias + ReLU epilogue) and its gradients (direct AVX-512/AVX2 kernels for
 * layers of 16, 32, 64… channels, im2col + the system BLAS otherwise), Tile,
 * same-shape / per-channel / scalar arithmetic, ReLU and Step, strided copies
 * for Concat and SplitV, the leading-axes Sum and Mean, BatchNorm,
 * MaxPoolGrad and a fused Adam update — compiled from
 * `libs/models/native/training_kernels.cc` (+ `direct_conv.h`) by
 * `libs/models/native/build.mjs` when `npm install` runs on a machine with a
 * C++ compiler and `libopenblas-dev`. The tensors stay on the wasm heap; the
 * addon reads and writes them in place. Convolutions and large element-wise
 * kernels split over `PURIFY_KERNEL_THREADS` threads ({@link kernelThreadsFrom}).
 * Without the addon (or with `PURIFY_NATIVE_KERNELS=off`) the wasm kernels run
 * instead — same results within float tolerance, several times slower per
 * convolution (docs/kernels.md). Every kernel is checked against the cpu
 * backend in the kernel specs.
 */
/** The addon's functions (see libs/models/native/training_kernels.cc). */
export interface NativeAddon {
  readonly conv2dBackpropInput: (dy: Float32Array, filter: Float32Array, dx: Float32Array, geometry: Int32Array) => void;
  readonly conv2dBackpropFilter: (x: Float32Array, dy: Float32Array, dw: Float32Array, geometry: Int32Array) => void;
  /** The forward convolution, then `+ bias` (per output channel; `null` for none) and ReLU when `relu`. */
  readonly conv2dBiasRelu: (x: Float32Array, filter: Float32Array, bias: Float32Array | null, y: Float32Array, geometry: Int32Array, relu: boolean) => void;
  /** `out` = `x` of shape `xShape` tiled `reps` times along each axis (rank 1–8). */
  readonly tile: (x: Float32Array, xShape: Int32Array, reps: Int32Array, out: Float32Array) => void;
  /** `out[j] = Σ_i x[i·cols + j]` (float64 accumulators), divided by the row count when `mean`. */
  readonly columnSums: (x: Float32Array, cols: number, out: Float32Array, mean?: boolean) => void;
  /** `out = a (op) b`; op 0–3 add/sub/mul/div; pattern 0 same shape, 1 b per channel, 2 a per channel, 3 b scalar, 4 a scalar. */
  readonly binary: (op: number, a: Float32Array, b: Float32Array, out: Float32Array, pattern: number, inner: number) => void;
  /** `out = op(x)`: op 0 ReLU (`max(0, x)`, NaN passes), 1 Step (`x > 0 ? 1 : alpha`, NaN stays NaN). */
  readonly unary: (op: number, x: Float32Array, out: Float32Array, alpha: number) => void;
  /** Copies runs of floats between strided positions; layout `[count, run, srcOffset, srcStride, dstOffset, dstStride]`. */
  readonly stridedCopy: (src: Float32Array, dst: Float32Array, layout: Int32Array) => void;
  /** `out = (x − mean)·scale/sqrt(variance + ε) + offset`, per channel (C = mean.length). */
  readonly batchNorm: (x: Float32Array, mean: Float32Array, variance: Float32Array, offset: Float32Array | null, scale: Float32Array | null, epsilon: number, out: Float32Array) => void;
  /** MaxPoolGrad scatter; geometry `[N, H, W, C, OH, OW, strideH, strideW, filterH, filterW, padTop, padLeft]`. */
  readonly maxPoolGrad: (x: Float32Array, dy: Float32Array, dx: Float32Array, geometry: Int32Array) => void;
  /** One Adam update of one variable (see {@link FUSED_ADAM_KERNEL}); params `[β1, 1−β1, β2, 1−β2, decay, stepSize, sqrtBc2, ε]`. */
  readonly adam: (x: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, xOut: Float32Array, mOut: Float32Array, vOut: Float32Array, params: Float64Array) => void;
  /** OpenBLAS's own threads (process-wide). */
  readonly setThreads: (n: number) => void;
  /** Threads a convolution called from this JavaScript thread may be split over (1–64). */
  readonly setKernelThreads: (n: number) => void;
  readonly info: () => { blas: string; threads: number; kernelThreads: number };
}

/** Where the build script puts the addon (the same relative path from `src/kernels` and `dist/kernels`). */
export const NATIVE_ADDON_PATH = path.join(__dirname, '..', '..', 'native', 'build', 'purify_kernels.node');

/** `PURIFY_NATIVE_KERNELS`: `auto` (default: use the addon when it loads), `off`, or `require` (absence is an error). */
export type NativeMode = 'auto' | 'off' | 'require';

export interface NativeStatus {
  /** Whether the native kernels are available (and so registered by `registerWasmTrainingKernels`). */
  readonly loaded: boolean;
  /** Why not, when not loaded. */
  readonly reason?: string;
  /** OpenBLAS build configuration and its thread count, when loaded. */
  readonly blas?: string;
  readonly threads?: number;
  /** Intra-op threads of this JavaScript thread's convolutions, when loaded. */
  readonly kernelThreads?: number;
}

export function nativeModeFrom(value: string | undefined): NativeMode {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'auto' || v === 'on' || v === '1') return 'auto';
  if (v === 'off' || v === '0' || v === 'false') return 'off';
  if (v === 'require') return 'require';
  throw new Error(`PURIFY_NATIVE_KERNELS must be auto, off or require, got '${value}'`);
}

/** BLAS threads per process (`PURIFY_BLAS_THREADS`, default 1: the other cores come from the kernel threads and the data-parallel workers). */
export function blasThreadsFrom(value: string | undefined): number {
  if (value == null || value.trim() === '') return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`PURIFY_BLAS_THREADS must be an integer from 1 to 256, got '${value}'`);
  return n;
}

/**
 * Intra-op threads per convolution (`PURIFY_KERNEL_THREADS`, 1–64). Default:
 * the machine's cores (at most 4) on the main thread, 1 on a worker thread —
 * the data-parallel replicas each hold a core already.
 */
export function kernelThreadsFrom(value: string | undefined, mainThread: boolean = isMainThread, cores: number = os.availableParallelism()): number {
  if (value == null || value.trim() === '') return mainThread ? Math.max(1, Math.min(4, cores)) : 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`PURIFY_KERNEL_THREADS must be an integer from 1 to 64, got '${value}'`);
  return n;
}

export interface NativeLoad {
  readonly addon: NativeAddon | undefined;
  readonly status: NativeStatus;
}

/** Loads the addon at `addonPath` according to `env` (uncached; {@link nativeAddon} is the cached entry point). */
export function loadNativeAddon(env: NodeJS.ProcessEnv, addonPath: string = NATIVE_ADDON_PATH): NativeLoad {
  const mode = nativeModeFrom(env['PURIFY_NATIVE_KERNELS']);
  if (mode === 'off') return { addon: undefined, status: { loaded: false, reason: 'PURIFY_NATIVE_KERNELS=off' } };
  const threads = blasThreadsFrom(env['PURIFY_BLAS_THREADS']);
  const kernelThreads = kernelThreadsFrom(env['PURIFY_KERNEL_THREADS']);
  try {
    // A dynamic require on purpose: the addon exists only where it could be built.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(addonPath) as NativeAddon;
    addon.setThreads(threads);
    addon.setKernelThreads(kernelThreads);
    const info = addon.info();
    return { addon, status: { loaded: true, blas: info.blas, threads: info.threads, kernelThreads: info.kernelThreads } };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'MODULE_NOT_FOUND'
        ? `${addonPath} is not built (it needs g++ and libopenblas-dev when npm install runs; then npm run build:native)`
        : `the native kernels failed to load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
    if (mode === 'require') throw new Error(`PURIFY_NATIVE_KERNELS=require: ${reason}`);
    return { addon: undefined, status: { loaded: false, reason } };
  }
}

let loaded: NativeLoad | undefined;

/** The addon as this thread's process environment asks for it, loaded once. */
export function nativeAddon(): NativeLoad {
  loaded ??= loadNativeAddon(process.env);
  return loaded;
}

/** `[N, H, W, Cin, KH, KW, Cout, OH, OW, strideH, strideW, padTop, padLeft]` for the addon. */
export function geometryOf(info: Conv2DInfo): Int32Array {
  return Int32Array.from([
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  ]);
}

/** Whether the addon computes this convolution (NHWC, dilation 1); otherwise the fallback runs. */
function nativeCase(attrs: { dataFormat?: string; dilations?: number | [number, number] }): boolean {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') return false;
  const d = attrs.dilations;
  return d === undefined || d === 1 || (Array.isArray(d) && d[0] === 1 && d[1] === 1);
}

/** The forward convolution both `Conv2D` and `FusedConv2D` run natively: conv, then `+ bias` and ReLU when given. */
function convForward(addon: NativeAddon, args: Parameters<tf.KernelFunc>[0], name: string, attrs: tf.Conv2DAttrs, bias: tf.TensorInfo | undefined, relu: boolean): tf.TensorInfo {
  const backend = wasmBackendOf(args, name);
  const x = inputOf(args, name, 'x');
  const filter = inputOf(args, name, 'filter');
  const info = conv2DInfoFor(name, x.shape, filter.shape, attrs);
  const y = backend.makeOutput([info.batchSize, info.outHeight, info.outWidth, info.outChannels], 'float32');
  addon.conv2dBiasRelu(heapF32(backend, x), heapF32(backend, filter), bias == null ? null : heapF32(backend, bias), heapF32(backend, y), geometryOf(info), relu);
  return y;
}

/** Forward `Conv2D` through the addon; other cases (NCHW, dilation) go to `fallback`. */
export function makeConv2DNative(addon: NativeAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as unknown as tf.Conv2DAttrs;
    return nativeCase(attrs) ? convForward(addon, args, tf.Conv2D, attrs, undefined, false) : fallback(args);
  };
}

/**
 * `FusedConv2D` (what `tf.layers.conv2d` runs: convolution, optional bias,
 * optional activation) through the addon for a per-channel bias and a linear
 * or ReLU activation; other activations, PReLU weights, NCHW and dilation go
 * to `fallback`.
 */
export function makeFusedConv2DNative(addon: NativeAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as unknown as tf.FusedConv2DAttrs;
    const bias = args.inputs['bias'];
    const activation = attrs.activation ?? 'linear';
    const outChannels = args.inputs['filter']?.shape[3];
    const perChannelBias = bias == null || (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === outChannels && bias.shape[bias.shape.length - 1] === outChannels);
    if (!nativeCase(attrs) || (activation !== 'linear' && activation !== 'relu') || args.inputs['preluActivationWeights'] != null || !perChannelBias) return fallback(args);
    return convForward(addon, args, tf.FusedConv2D, attrs, bias, activation === 'relu');
  };
}

/** `Tile` of a float32 tensor through the addon (one pass, row copies); other dtypes go to `fallback`. */
export function makeTileNative(addon: NativeAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  const name = tf.Tile;
  return (args) => {
    const x = args.inputs['x'];
    const { reps } = args.attrs as unknown as tf.TileAttrs;
    if (x == null || x.dtype !== 'float32' || x.shape.length < 1 || x.shape.length > 8 || reps.length !== x.shape.length || x.shape.some((d) => d === 0) || reps.some((r) => !(r >= 1))) {
      return fallback(args);
    }
    const backend = wasmBackendOf(args, name);
    const out = backend.makeOutput(
      x.shape.map((d, i) => d * reps[i]!),
      'float32',
    );
    addon.tile(heapF32(backend, x), Int32Array.from(x.shape), Int32Array.from(reps), heapF32(backend, out));
    return out;
  };
}

/** The unary kernels done natively, by the addon's op code. */
export const NATIVE_UNARY_OPS: Readonly<Record<string, number>> = { [tf.Relu]: 0, [tf.Step]: 1 };

/** `Relu` / `Step` of a float32 tensor through the addon (ReLU's gradient is `dy · Step(x)`); other dtypes go to `fallback`. */
export function makeUnaryNative(addon: NativeAddon, kernelName: string, fallback: tf.KernelFunc): tf.KernelFunc {
  const op = NATIVE_UNARY_OPS[kernelName];
  if (op === undefined) throw new Error(`makeUnaryNative: no native op for '${kernelName}'`);
  return (args) => {
    const x = args.inputs['x'];
    if (x == null || x.dtype !== 'float32') return fallback(args);
    const alpha = (args.attrs as { alpha?: number } | undefined)?.alpha ?? 0;
    const backend = wasmBackendOf(args, kernelName);
    const out = backend.makeOutput([...x.shape], 'float32');
    addon.unary(op, heapF32(backend, x), heapF32(backend, out), alpha);
    return out;
  };
}

/** The element-wise kernels done natively, by the addon's op code. */
export const NATIVE_BINARY_OPS: Readonly<Record<string, number>> = { [tf.Add]: 0, [tf.Sub]: 1, [tf.Multiply]: 2, [tf.RealDiv]: 3 };

/** Size of a per-channel vector `[C]` / `[1, …, 1, C]` broadcast over `big` (or undefined when `small` is not one). */
function channelVectorOf(small: readonly number[], big: readonly number[]): number | undefined {
  const c = big[big.length - 1];
  if (c === undefined || small.length === 0 || small.length > big.length) return undefined;
  if (small[small.length - 1] !== c || small.slice(0, -1).some((d) => d !== 1)) return undefined;
  return c;
}

/**
 * `Add`, `Sub`, `Multiply`, `RealDiv` of float32 tensors through the addon when
 * the operands have the same shape, one is a per-channel vector of the other
 * (bias, BatchNorm statistics) or one is a single value that does not raise
 * the rank; every other case (other dtypes, general broadcasting) goes to
 * `fallback`.
 */
export function makeBinaryNative(addon: NativeAddon, kernelName: string, fallback: tf.KernelFunc): tf.KernelFunc {
  const op = NATIVE_BINARY_OPS[kernelName];
  if (op === undefined) throw new Error(`makeBinaryNative: no native op for '${kernelName}'`);
  return (args) => {
    const a = args.inputs['a'];
    const b = args.inputs['b'];
    if (a == null || b == null || a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args);
    const sizeA = tf.util.sizeFromShape(a.shape);
    const sizeB = tf.util.sizeFromShape(b.shape);
    if (sizeA === 0 || sizeB === 0) return fallback(args);
    const bPerChannel = channelVectorOf(b.shape, a.shape);
    const aPerChannel = channelVectorOf(a.shape, b.shape);
    let pattern: number;
    let inner = 1;
    let outShape: readonly number[];
    if (tf.util.arraysEqual(a.shape, b.shape)) [pattern, outShape] = [0, a.shape];
    else if (sizeB === 1 && b.shape.length <= a.shape.length) [pattern, outShape] = [3, a.shape];
    else if (sizeA === 1 && a.shape.length <= b.shape.length) [pattern, outShape] = [4, b.shape];
    else if (bPerChannel !== undefined) [pattern, inner, outShape] = [1, bPerChannel, a.shape];
    else if (aPerChannel !== undefined) [pattern, inner, outShape] = [2, aPerChannel, b.shape];
    else return fallback(args);
    const backend = wasmBackendOf(args, kernelName);
    const out = backend.makeOutput([...outShape], 'float32');
    addon.binary(op, heapF32(backend, a), heapF32(backend, b), heapF32(backend, out), pattern, inner);
    return out;
  };
}

/** `Mean` over all leading axes (BatchNorm's batch statistics) through the addon; other reductions go to `fallback`. */
export function makeMeanNative(addon: NativeAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return makeLeadingAxesReduction(tf.Mean, fallback, (x, cols, out) => addon.columnSums(x, cols, out, true));
}

/** `FusedBatchNorm` with per-channel `[C]` statistics through the addon; anything else goes to `fallback`. */
export function makeBatchNormNative(addon: NativeAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  const name = tf.FusedBatchNorm;
  return (args) => {
    const { x, mean, variance, offset, scale } = args.inputs;
    if (x == null || mean == null || variance == null || x.dtype !== 'float32' || x.shape.length < 1) return fallback(args);
    const vectors = [mean, variance, offset, scale].filter((t): t is tf.TensorInfo => t != null);
    if (vectors.some((t) => t.dtype !== 'float32' || channelVectorOf(t.shape, x.shape) === undefined) || tf.util.sizeFromShape(x.shape) === 0) return fallback(args);
    const { varianceEpsilon } = args.attrs as unknown as tf.FusedBatchNormAttrs;
    const backend = wasmBackendOf(args, name);
    const out = backend.makeOutput([...x.shape], 'float32');
    const h = (t: tf.TensorInfo | undefined): Float32Array | null => (t == null ? null : heapF32(backend, t));
    addon.batchNorm(h(x)!, h(mean)!, h(variance)!, h(offset), h(scale), varianceEpsilon, heapF32(backend, out));
    return out;
  };
}

/** `Conv2DBackpropInput` (dx; also the forward pass of `conv2dTranspose`) through the addon. */
export function conv2DBackpropInputNative(addon: NativeAddon): tf.KernelFunc {
  const name = tf.Conv2DBackpropInput;
  return (args) => {
    const backend = wasmBackendOf(args, name);
    const dy = inputOf(args, name, 'dy');
    const filter = inputOf(args, name, 'filter');
    const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const info = conv2DInfoFor(name, attrs.inputShape, filter.shape, attrs);
    checkOutShape(name, dy.shape, info);
    const dx = backend.makeOutput([...attrs.inputShape], 'float32');
    addon.conv2dBackpropInput(heapF32(backend, dy), heapF32(backend, filter), heapF32(backend, dx), geometryOf(info));
    return dx;
  };
}

/** `Conv2DBackpropFilter` (dw) through the addon. */
export function conv2DBackpropFilterNative(addon: NativeAddon): tf.KernelFunc {
  const name = tf.Conv2DBackpropFilter;
  return (args) => {
    const backend = wasmBackendOf(args, name);
    const x = inputOf(args, name, 'x');
    const dy = inputOf(args, name, 'dy');
    const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    const info = conv2DInfoFor(name, x.shape, attrs.filterShape, attrs);
    checkOutShape(name, dy.shape, info);
    const dw = backend.makeOutput([...attrs.filterShape], 'float32');
    addon.conv2dBackpropFilter(heapF32(backend, x), heapF32(backend, dy), heapF32(backend, dw), geometryOf(info));
    return dw;
  };
}

/** dy must have the convolution's output shape (the addon would read past it otherwise). */
function checkOutShape(kernelName: string, dyShape: readonly number[], info: Conv2DInfo): void {
  const [n, oh, ow, c] = dyShape;
  if (oh !== info.outHeight || ow !== info.outWidth) {
    throw new Error(`${kernelName}: dy has spatial shape [${oh}, ${ow}], the convolution gives [${info.outHeight}, ${info.outWidth}]`);
  }
  if (n !== info.batchSize || c !== info.outChannels) {
    throw new Error(`${kernelName}: dy has batch ${n} and ${c} channels, the convolution gives batch ${info.batchSize} and ${info.outChannels} channels`);
  }
}

/**
 * Name of the fused Adam kernel: inputs `x, m, v, g` (one variable, its
 * moments, its gradient), attrs {@link FusedAdamAttrs}, outputs the new
 * `[x, m, v]`. Registered on wasm with the native kernels only;
 * `Adam.apply` uses it when the active backend has it and the element-wise
 * op sequence otherwise (same float32 operations in the same order).
 */
export const FUSED_ADAM_KERNEL = 'PurifyFusedAdam';

export interface FusedAdamAttrs {
  readonly beta1: number;
  readonly beta2: number;
  /** `1 − lr·weightDecay` (1 = no decay). */
  readonly decay: number;
  /** `lr / (1 − β1^t)`. */
  readonly stepSize: number;
  /** `sqrt(1 − β2^t)`. */
  readonly sqrtBc2: number;
  readonly epsilon: number;
}

export function fusedAdamNative(addon: NativeAddon): tf.KernelFunc {
  const name = FUSED_ADAM_KERNEL;
  return (args) => {
    const backend = wasmBackendOf(args, name);
    const [x, m, v, g] = (['x', 'm', 'v', 'g'] as const).map((k) => inputOf(args, name, k)) as [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo];
    for (const [k, t] of [['m', m], ['v', v], ['g', g]] as const) {
      if (!tf.util.arraysEqual(t.shape, x.shape)) throw new Error(`${name}: ${k} has shape [${t.shape.join(', ')}], x has [${x.shape.join(', ')}]`);
    }
    const a = args.attrs as unknown as FusedAdamAttrs;
    const params = Float64Array.from([a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.decay, a.stepSize, a.sqrtBc2, a.epsilon]);
    const outs = [x, m, v].map((t) => backend.makeOutput([...t.shape], 'float32'));
    const [xo, mo, vo] = outs as [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo];
    const h = (t: tf.TensorInfo): Float32Array => heapF32(backend, t);
    addon.adam(h(x), h(m), h(v), h(g), h(xo), h(mo), h(vo), params);
    return outs;
  };
}
