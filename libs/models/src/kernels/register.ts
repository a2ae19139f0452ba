import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterWasm, conv2DBackpropInputWasm } from './conv2d-backprop';
import { conv3DBackpropFilterV2Wasm, conv3DBackpropInputV2Wasm } from './conv3d-backprop';
import { makeConcatWasm, makeMaxPoolGrad, makeSplitVWasm } from './copy-kernels';
import { identityWasm, makeCastWasm, makeSumWasm } from './elementwise';
import { FUSED_ADAM_KERNEL, NATIVE_BINARY_OPS, NATIVE_UNARY_OPS, makeBatchNormNative, makeBinaryNative, makeUnaryNative, makeMeanNative, conv2DBackpropFilterNative, conv2DBackpropInputNative, fusedAdamNative, makeConv2DNative, makeFusedConv2DNative, makeTileNative, nativeAddon, type NativeAddon, type NativeStatus } from './native';
import { WASM } from './wasm-backend';

/**
 * One of our wasm kernels: `make` builds its kernel function, given the
 * kernel registered before ours (the shipped one), for kernels that handle
 * only some cases themselves and hand the rest back.
 */
interface KernelSpec {
  readonly kernelName: string;
  /** Why it is replaced (tfjs-backend-wasm 4.22; docs/kernels.md has the measurements). */
  readonly why: string;
  make(shipped: tf.KernelConfig | undefined): tf.KernelFunc;
}

function requireShipped(kernelName: string, shipped: tf.KernelConfig | undefined): tf.KernelConfig {
  if (shipped == null) throw new Error(`registerWasmTrainingKernels: the wasm backend has no '${kernelName}' kernel to fall back to`);
  return shipped;
}

export const WASM_TRAINING_KERNELS: readonly KernelSpec[] = [
  { kernelName: tf.Conv2DBackpropFilter, why: 'missing: training any conv net threw', make: () => conv2DBackpropFilterWasm },
  {
    kernelName: tf.Conv2DBackpropInput,
    why: 'a slow scalar loop (also the forward pass of conv2dTranspose)',
    make: () => conv2DBackpropInputWasm,
  },
  { kernelName: tf.Conv3DBackpropInputV2, why: 'wrong results', make: () => conv3DBackpropInputV2Wasm },
  { kernelName: tf.Conv3DBackpropFilterV2, why: 'replaced alongside, through the same forward Conv3D path', make: () => conv3DBackpropFilterV2Wasm },
  { kernelName: tf.Identity, why: 'copied the tensor; ours shares the data', make: () => identityWasm },
  { kernelName: tf.Cast, why: "a cast to the tensor's own dtype (ReLU's gradient, every layer) copied it; ours shares the data", make: (shipped) => makeCastWasm(requireShipped(tf.Cast, shipped).kernelFunc) },
  { kernelName: tf.Sum, why: 'bias gradients transposed the whole tensor first', make: (shipped) => makeSumWasm(requireShipped(tf.Sum, shipped).kernelFunc) },
  { kernelName: tf.Concat, why: 'one subarray allocation per pixel', make: (shipped) => makeConcatWasm(requireShipped(tf.Concat, shipped).kernelFunc) },
  { kernelName: tf.SplitV, why: 'one subarray allocation per pixel', make: (shipped) => makeSplitVWasm(requireShipped(tf.SplitV, shipped).kernelFunc) },
  { kernelName: tf.MaxPoolGrad, why: 'recomputed window maxima per input pixel', make: () => makeMaxPoolGrad() },
];

/** Native kernels (./native.ts: direct and im2col + BLAS convolutions, element-wise, copy and reduction loops), used instead of the wasm ones when the addon is built. */
export function nativeKernels(addon: NativeAddon): readonly KernelSpec[] {
  return [
    { kernelName: tf.Conv2D, why: 'XNNPACK in wasm (128-bit SIMD, no FMA) is ~3x slower than native BLAS', make: (shipped) => makeConv2DNative(addon, requireShipped(tf.Conv2D, shipped).kernelFunc) },
    {
      kernelName: tf.FusedConv2D,
      why: 'what tf.layers.conv2d runs: the same convolution with the bias and ReLU in its epilogue',
      make: (shipped) => makeFusedConv2DNative(addon, requireShipped(tf.FusedConv2D, shipped).kernelFunc),
    },
    { kernelName: tf.Conv2DBackpropInput, why: 'im2col + BLAS instead of XNNPACK convolutions', make: () => conv2DBackpropInputNative(addon) },
    { kernelName: tf.Conv2DBackpropFilter, why: 'im2col + BLAS instead of tap GEMMs in XNNPACK', make: () => conv2DBackpropFilterNative(addon) },
    { kernelName: tf.Tile, why: "BatchNorm's gradient tiles per-channel vectors to the activation's shape; wasm's Tile took a third of a step", make: (shipped) => makeTileNative(addon, requireShipped(tf.Tile, shipped).kernelFunc) },
    ...Object.keys(NATIVE_BINARY_OPS).map(
      (name): KernelSpec => ({
        kernelName: name,
        why: 'same-shape, per-channel and scalar element-wise arithmetic in one C++ loop (wasm broadcasts slowly)',
        make: (shipped) => makeBinaryNative(addon, name, requireShipped(name, shipped).kernelFunc),
      }),
    ),
    ...Object.keys(NATIVE_UNARY_OPS).map(
      (name): KernelSpec => ({
        kernelName: name,
        why: "ReLU and Step (ReLU's gradient) in C++, split over the kernel threads",
        make: (shipped) => makeUnaryNative(addon, name, requireShipped(name, shipped).kernelFunc),
      }),
    ),
    { kernelName: tf.Concat, why: 'skip connections: one strided native copy per input', make: (shipped) => makeConcatWasm(requireShipped(tf.Concat, shipped).kernelFunc, addon.stridedCopy) },
    { kernelName: tf.SplitV, why: "Concat's gradient: one strided native copy per part", make: (shipped) => makeSplitVWasm(requireShipped(tf.SplitV, shipped).kernelFunc, addon.stridedCopy) },
    { kernelName: tf.Mean, why: 'BatchNorm statistics: the column means in C++ (wasm transposes first)', make: (shipped) => makeMeanNative(addon, requireShipped(tf.Mean, shipped).kernelFunc) },
    { kernelName: tf.FusedBatchNorm, why: 'per-channel normalisation in one C++ pass', make: (shipped) => makeBatchNormNative(addon, requireShipped(tf.FusedBatchNorm, shipped).kernelFunc) },
    { kernelName: tf.Sum, why: 'the bias-gradient column sums in C++', make: (shipped) => makeSumWasm(requireShipped(tf.Sum, shipped).kernelFunc, addon.columnSums) },
    { kernelName: tf.MaxPoolGrad, why: 'the window scatter in C++', make: () => makeMaxPoolGrad(addon.maxPoolGrad) },
    { kernelName: FUSED_ADAM_KERNEL, why: 'one pass per variable instead of ~11 element-wise ops (a new kernel: Adam.apply uses it where registered)', make: () => fusedAdamNative(addon) },
  ];
}

export interface RegisterOptions {
  /**
   * Use the native kernels when the addon loads (default true;
   * `PURIFY_NATIVE_KERNELS=off|require` decides as well, see ./native.ts).
   * `false` registers the pure-wasm kernels only.
   */
  readonly native?: boolean;
}

/** Our registered configs, with whether each is the native variant (to recognise them on a repeated call). */
const ours = new WeakMap<tf.KernelConfig, 'wasm' | 'native'>();
/** The kernel each name had before we first replaced it (what fallbacks hand back to). */
const shippedKernels = new Map<string, tf.KernelConfig | undefined>();

/**
 * Registers our wasm training kernels ({@link WASM_TRAINING_KERNELS}):
 * Conv2DBackpropFilter (missing in tfjs-backend-wasm), Conv2DBackpropInput
 * (slow), Conv3DBackpropInputV2 (wrong) and Conv3DBackpropFilterV2 through
 * the backend's fast paths, plus Identity, Cast, Sum, Concat, SplitV and
 * MaxPoolGrad, found slow by profiling a U-Net training step. Where the
 * native addon is built, the 2D convolutions and their gradients, Tile, the
 * element-wise arithmetic, ReLU and Step, Concat and SplitV, Mean,
 * BatchNorm, the bias sums, MaxPoolGrad and a fused Adam update run natively
 * instead ({@link nativeKernels}). Replaces
 * whatever is registered under those names for 'wasm'. Idempotent; a call
 * with the other `native` choice swaps the variants. Returns whether the
 * native kernels are in use and why not.
 *
 * Call it after `@tensorflow/tfjs-backend-wasm` is loaded (e.g. after
 * `selectBackend`): loading that package registers its own kernels and would
 * silently replace ours, so calling before is refused with an error. Whether
 * wasm is the active backend does not matter.
 */
export function registerWasmTrainingKernels(options: RegisterOptions = {}): NativeStatus {
  if (tf.findBackendFactory(WASM) == null) {
    throw new Error(
      "registerWasmTrainingKernels: the 'wasm' backend is not registered; load @tensorflow/tfjs-backend-wasm first (loading it afterwards would replace these kernels with its own)",
    );
  }
  const native = options.native === false ? { addon: undefined, status: { loaded: false, reason: 'native kernels not requested' } } : nativeAddon();
  const specs = new Map<string, { spec: KernelSpec; variant: 'wasm' | 'native' }>();
  for (const spec of WASM_TRAINING_KERNELS) specs.set(spec.kernelName, { spec, variant: 'wasm' });
  if (native.addon !== undefined) for (const spec of nativeKernels(native.addon)) specs.set(spec.kernelName, { spec, variant: 'native' });
  // Names we replaced natively before but not now (native: false) go back to the shipped kernel, or away if there was none.
  for (const [name, shipped] of shippedKernels) {
    if (specs.has(name)) continue;
    const current = tf.getKernel(name, WASM);
    if (current == null || !ours.has(current)) continue;
    tf.unregisterKernel(name, WASM);
    if (shipped != null) tf.registerKernel(shipped);
  }
  for (const [name, { spec, variant }] of specs) {
    const current = tf.getKernel(name, WASM);
    if (current != null && ours.get(current) === variant) continue;
    if (!shippedKernels.has(name)) shippedKernels.set(name, current != null && ours.has(current) ? undefined : current);
    const config: tf.KernelConfig = { kernelName: name, backendName: WASM, kernelFunc: spec.make(shippedKernels.get(name)) };
    if (current != null) tf.unregisterKernel(name, WASM);
    tf.registerKernel(config);
    ours.set(config, variant);
  }
  return native.status;
}
