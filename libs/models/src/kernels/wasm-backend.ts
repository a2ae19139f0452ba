import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * Helpers for kernels that run on the TensorFlow.js wasm backend by composing
 * the backend's own (XNNPACK-backed) kernels. Everything here works on
 * `TensorInfo`s (data id + shape) inside a kernel function, below the engine:
 * nothing is tracked by `tf.memory()`, so every intermediate must be released
 * with {@link release}.
 */

export const WASM = 'wasm';

/** The wasm backend as our kernels see it (the parts of `BackendWasm` we use). */
export type WasmBackend = Pick<BackendWasm, 'makeOutput' | 'typedArrayFromHeap' | 'disposeData' | 'dataIdMap' | 'wasm'>;

/** Arguments every kernel function receives from the engine. */
export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** The backend a kernel function was called with, checked to be the wasm backend. */
export function wasmBackendOf(args: KernelArgs, kernelName: string): WasmBackend {
  const b = args.backend as Partial<WasmBackend> | null;
  if (b == null || typeof b.makeOutput !== 'function' || typeof b.typedArrayFromHeap !== 'function' || typeof b.disposeData !== 'function' || b.dataIdMap == null || b.wasm == null) {
    throw new Error(`${kernelName}: expected to run on the '${WASM}' backend (makeOutput/typedArrayFromHeap/disposeData/dataIdMap/wasm), got ${b == null ? String(b) : typeof b}`);
  }
  return b as WasmBackend;
}

/** Input `name` of a kernel call; throws naming the kernel when it is missing. */
export function inputOf(args: KernelArgs, kernelName: string, name: string): tf.TensorInfo {
  const t = args.inputs[name];
  if (t == null) throw new Error(`${kernelName}: input '${name}' is missing`);
  if (t.dtype !== 'float32') throw new Error(`${kernelName}: input '${name}' must be float32, got ${t.dtype}`);
  return t;
}

/**
 * Runs the wasm backend's registered kernel `kernelName` directly (no engine
 * bookkeeping, no tape). The caller owns the returned data and must
 * {@link release} it unless it is handed back to the engine as a kernel output.
 */
export function runWasmKernel(backend: WasmBackend, kernelName: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap): tf.TensorInfo {
  const kernel = tf.getKernel(kernelName, WASM);
  if (kernel == null) throw new Error(`the '${WASM}' backend has no '${kernelName}' kernel registered (is @tensorflow/tfjs-backend-wasm loaded?)`);
  const out = kernel.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`wasm kernel '${kernelName}' returned ${out.length} outputs, expected one`);
  return out;
}

/** Releases intermediates created inside a kernel (decrements their reference counts). */
export function release(backend: WasmBackend, ...infos: readonly tf.TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/**
 * The same data under another shape (a reshape that shares storage and takes
 * no reference: never release it separately from `info`).
 */
export function alias(info: tf.TensorInfo, shape: readonly number[]): tf.TensorInfo {
  if (tf.util.sizeFromShape([...shape]) !== tf.util.sizeFromShape(info.shape)) {
    throw new Error(`alias: cannot view shape [${info.shape.join(', ')}] as [${shape.join(', ')}]`);
  }
  return { dataId: info.dataId, shape: [...shape], dtype: info.dtype };
}

/** Float32 view of a tensor's wasm heap memory. Re-fetch after any allocation (the heap may grow and detach it). */
export function heapF32(backend: WasmBackend, info: tf.TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** Transposes through the wasm `Transpose` kernel. */
export function transpose(backend: WasmBackend, x: tf.TensorInfo, perm: readonly number[]): tf.TensorInfo {
  return runWasmKernel(backend, 'Transpose', { x }, { perm: [...perm] });
}

/** `[begin, begin+size)` slice through the wasm `Slice` kernel. */
export function slice(backend: WasmBackend, x: tf.TensorInfo, begin: readonly number[], size: readonly number[]): tf.TensorInfo {
  return runWasmKernel(backend, 'Slice', { x }, { begin: [...begin], size: [...size] });
}

/** Zero padding `[[before, after], ...]` per axis through the wasm `PadV2` kernel. */
export function pad(backend: WasmBackend, x: tf.TensorInfo, paddings: readonly (readonly [number, number])[]): tf.TensorInfo {
  return runWasmKernel(backend, 'PadV2', { x }, { paddings: paddings.map(([a, b]) => [a, b]), constantValue: 0 });
}

/** Explicit per-side padding `[[before, after], ...]` for each spatial dimension. */
export type SpatialPads = readonly (readonly [number, number])[];

/**
 * NHWC 2D convolution through the wasm `Conv2D` kernel (XNNPACK), with
 * explicit non-negative pads. x `[N, H, W, Cin]`, filter `[KH, KW, Cin, Cout]`.
 */
export function conv2d(
  backend: WasmBackend,
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  pads: SpatialPads,
  dilations: readonly [number, number] = [1, 1],
): tf.TensorInfo {
  const [ph, pw] = pads;
  if (ph == null || pw == null) throw new Error('conv2d: pads must give [top, bottom] and [left, right]');
  return runWasmKernel(
    backend,
    'Conv2D',
    { x, filter },
    {
      strides: [1, 1],
      pad: [[0, 0], [ph[0], ph[1]], [pw[0], pw[1]], [0, 0]],
      dataFormat: 'NHWC',
      dilations: [...dilations],
      dimRoundingMode: null as unknown as string,
    },
  );
}

/**
 * Crops `[N, ...spatial, C]` to `size` spatial extent starting at `begin`.
 * Consumes `x`: returns it unchanged when nothing is cropped, else releases it.
 */
export function cropSpatial(backend: WasmBackend, x: tf.TensorInfo, begin: readonly number[], size: readonly number[]): tf.TensorInfo {
  const rank = x.shape.length;
  const fullBegin = [0, ...begin, 0];
  const fullSize = [x.shape[0] ?? 0, ...size, x.shape[rank - 1] ?? 0];
  const same = fullSize.every((s, i) => s === x.shape[i] && fullBegin[i] === 0);
  if (same) return x;
  const out = slice(backend, x, fullBegin, fullSize);
  release(backend, x);
  return out;
}

/**
 * A float32 tensor of `shape` that lives inside `base`'s memory, starting
 * `offsetElems` elements in (a sub-array the backend's kernels can read
 * without a copy). The caller guarantees `offsetElems + size(shape)` stays
 * inside `base`'s allocation, keeps `base` alive while the view is in use, and
 * ends the view with {@link releaseView} (never {@link release}: the backend
 * would free memory it does not own).
 */
export function viewOf(backend: WasmBackend, base: tf.TensorInfo, offsetElems: number, shape: readonly number[]): tf.TensorInfo {
  const data = backend.dataIdMap.get(base.dataId);
  if (data == null) throw new Error('viewOf: base tensor has no data on the wasm backend');
  const size = tf.util.sizeFromShape([...shape]);
  if (offsetElems < 0 || offsetElems + size > tf.util.sizeFromShape(base.shape)) {
    throw new Error(`viewOf: elements [${offsetElems}, ${offsetElems + size}) fall outside a base of ${tf.util.sizeFromShape(base.shape)}`);
  }
  return backend.makeOutput([...shape], 'float32', data.memoryOffset + 4 * offsetElems);
}

/** Ends a {@link viewOf} view: unregisters it without freeing the memory it borrows. */
export function releaseView(backend: WasmBackend, view: tf.TensorInfo): void {
  const data = backend.dataIdMap.get(view.dataId);
  if (data == null) return;
  backend.dataIdMap.delete(view.dataId);
  backend.wasm.tfjs.disposeData(data.id);
}

/** `a [M, K] · b [K, N]` through the wasm `BatchMatMul` kernel (XNNPACK when neither is transposed). */
export function matMul(backend: WasmBackend, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  return runWasmKernel(backend, 'BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
}
