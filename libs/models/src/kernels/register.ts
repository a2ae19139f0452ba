import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterWasm, conv2DBackpropInputWasm } from './conv2d-backprop';
import { conv3DBackpropFilterV2Wasm, conv3DBackpropInputV2Wasm } from './conv3d-backprop';
import { makeConcatWasm, makeSplitVWasm, maxPoolGradWasm } from './copy-kernels';
import { identityWasm, makeSumWasm } from './elementwise';
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
  { kernelName: tf.Sum, why: 'bias gradients transposed the whole tensor first', make: (shipped) => makeSumWasm(requireShipped(tf.Sum, shipped).kernelFunc) },
  { kernelName: tf.Concat, why: 'one subarray allocation per pixel', make: (shipped) => makeConcatWasm(requireShipped(tf.Concat, shipped).kernelFunc) },
  { kernelName: tf.SplitV, why: 'one subarray allocation per pixel', make: (shipped) => makeSplitVWasm(requireShipped(tf.SplitV, shipped).kernelFunc) },
  { kernelName: tf.MaxPoolGrad, why: 'recomputed window maxima per input pixel', make: () => maxPoolGradWasm },
];

/** Our registered configs (to recognise them on a repeated call). */
const ours = new WeakSet<tf.KernelConfig>();

/**
 * Registers our wasm training kernels ({@link WASM_TRAINING_KERNELS}):
 * Conv2DBackpropFilter (missing in tfjs-backend-wasm), Conv2DBackpropInput
 * (slow), Conv3DBackpropInputV2 (wrong) and Conv3DBackpropFilterV2 through
 * the backend's fast paths, plus Identity, Sum, Concat, SplitV and
 * MaxPoolGrad, found slow by profiling a U-Net training step. Replaces whatever is registered under those names for
 * 'wasm'. Idempotent.
 *
 * Call it after `@tensorflow/tfjs-backend-wasm` is loaded (e.g. after
 * `selectBackend`): loading that package registers its own kernels and would
 * silently replace ours, so calling before is refused with an error. Whether
 * wasm is the active backend does not matter.
 */
export function registerWasmTrainingKernels(): void {
  if (tf.findBackendFactory(WASM) == null) {
    throw new Error(
      "registerWasmTrainingKernels: the 'wasm' backend is not registered; load @tensorflow/tfjs-backend-wasm first (loading it afterwards would replace these kernels with its own)",
    );
  }
  for (const spec of WASM_TRAINING_KERNELS) {
    const current = tf.getKernel(spec.kernelName, WASM);
    if (current != null && ours.has(current)) continue;
    const config: tf.KernelConfig = { kernelName: spec.kernelName, backendName: WASM, kernelFunc: spec.make(current) };
    if (current != null) tf.unregisterKernel(spec.kernelName, WASM);
    tf.registerKernel(config);
    ours.add(config);
  }
}
