/**
 * Choosing the TensorFlow.js backend for training. The shipped wasm backend
 * cannot train a conv net (no `Conv2DBackpropFilter` kernel); on wasm we register
 * the purify training kernels of `@purify/models` (docs/kernels.md).
 */
import { registerWasmTrainingKernels, selectBackend, type Backend, type NativeStatus } from '@purify/models';

export interface TrainingBackend {
  readonly backend: Backend;
  /**
   * Which wasm training kernels are in use: 'purify-native' when the native
   * convolution addon is built (OpenBLAS), 'purify' for the pure wasm ones,
   * 'n/a' off wasm. The notes say why the addon is not in use.
   */
  readonly wasmKernels: 'purify-native' | 'purify' | 'n/a';
  /** Backends tried first and why they were skipped. */
  readonly notes: readonly string[];
}

export interface TrainingBackendOptions {
  /** Registers the wasm training kernels; default `registerWasmTrainingKernels` of `@purify/models` (idempotent). */
  readonly registerWasmKernels?: (() => NativeStatus) | undefined;
}

/**
 * Activates a backend for training (`auto`: tensorflow-gpu → tensorflow → wasm →
 * cpu, see `selectBackend`) and reports it; on wasm the training kernels are
 * registered after the backend package is loaded.
 */
export async function initTrainingBackend(requested: Backend | 'auto' = 'auto', options: TrainingBackendOptions = {}): Promise<TrainingBackend> {
  const choice = await selectBackend(requested);
  const notes = choice.skipped.map((s) => `${s.backend} skipped: ${s.reason}`);
  if (choice.backend !== 'wasm') return { backend: choice.backend, wasmKernels: 'n/a', notes };
  const native = (options.registerWasmKernels ?? registerWasmTrainingKernels)();
  if (native.loaded) return { backend: 'wasm', wasmKernels: 'purify-native', notes: [...notes, `native kernels: ${native.blas ?? 'BLAS'}, ${native.threads ?? 1} thread(s)`] };
  return { backend: 'wasm', wasmKernels: 'purify', notes: [...notes, `native kernels not in use: ${native.reason ?? 'unknown reason'}`] };
}
