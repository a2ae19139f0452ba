import * as tf from '@tensorflow/tfjs';
import { heapF32, wasmBackendOf, type KernelArgs } from './wasm-backend';

/**
 * Cheap kernels that a training step calls many times, where the shipped wasm
 * kernels copy or transpose needlessly (see docs/kernels.md for the profile).
 */

/**
 * `Identity` without a copy: the output shares the input's data and takes a
 * reference to it (what the cpu backend and wasm's own `Reshape` do; tfjs
 * never writes a tensor's data in place). The shipped kernel copied the whole
 * tensor, ~77 times per U-Net training step.
 */
export function identityWasm(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs['x'];
  if (x == null) throw new Error("Identity: input 'x' is missing");
  if (x.dtype === 'string') throw new Error('Identity on wasm: string tensors are not supported by our kernel');
  (args.backend as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/**
 * Cast: to the tensor's own dtype it shares the data, as Identity does (ReLU's
 * gradient casts float32 activations to float32 on every layer; the shipped
 * kernel copies them); any real conversion goes to the shipped kernel.
 */
export function makeCastWasm(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    const dtype = (args.attrs as { dtype?: tf.DataType } | undefined)?.dtype;
    if (x == null || x.dtype !== dtype || x.dtype === 'string') return fallback(args);
    return identityWasm(args);
  };
}

/**
 * A reduction over all leading axes of a float32 tensor `[..., C]` — `Sum`
 * (a bias gradient: Σ over N, H, W of dy `[N, H, W, C]`) or `Mean` (BatchNorm's
 * batch statistics) — computed by `columns` in one pass; every other reduction
 * (other axes, dtypes, empty tensors) goes to the shipped kernel (`fallback`),
 * which first transposes the reduced axes innermost — a full extra copy for
 * this case.
 */
export function makeLeadingAxesReduction(kernelName: string, fallback: tf.KernelFunc, columns: ColumnSums): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    const attrs = args.attrs as unknown as tf.SumAttrs | tf.MeanAttrs;
    if (x == null || x.dtype !== 'float32' || x.shape.length < 2 || tf.util.sizeFromShape(x.shape) === 0) return fallback(args);
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const leading = axes.length === rank - 1 && [...axes].sort((a, b) => a - b).every((a, i) => a === i);
    if (!leading) return fallback(args);
    const c = x.shape[rank - 1]!;
    const backend = wasmBackendOf(args, kernelName);
    const out = backend.makeOutput(attrs.keepDims ? [...x.shape.slice(0, -1).map(() => 1), c] : [c], 'float32');
    columns(heapF32(backend, x), c, heapF32(backend, out));
    return out;
  };
}

/** `Sum` over all leading axes with float64 accumulators (as the cpu backend accumulates), in JS unless `columnSums` is given. */
export function makeSumWasm(fallback: tf.KernelFunc, columnSums: ColumnSums = columnSumsJs): tf.KernelFunc {
  return makeLeadingAxesReduction('Sum', fallback, columnSums);
}

/** `out[j] = Σ_i x[i·cols + j]` with float64 accumulators. */
export type ColumnSums = (x: Float32Array, cols: number, out: Float32Array) => void;

function columnSumsJs(x: Float32Array, cols: number, out: Float32Array): void {
  const acc = new Float64Array(cols);
  for (let i = 0; i < x.length; i += cols) {
    for (let j = 0; j < cols; j++) acc[j] = acc[j]! + x[i + j]!;
  }
  out.set(acc);
}
