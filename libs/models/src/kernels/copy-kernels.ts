import * as tf from '@tensorflow/tfjs';
import { alias, heapF32, release, transpose, wasmBackendOf, type WasmBackend } from './wasm-backend';

/**
 * Data-movement kernels of a U-Net step: skip-connection `Concat`, its
 * gradient `SplitV`, and `MaxPoolGrad`. The shipped wasm Concat/SplitV copy
 * one `subarray` per pixel (an allocation per channel run), and the shipped
 * MaxPoolGrad recomputes window maxima per input pixel; these do one pass.
 */

/** Runs of at least this many floats are copied with `TypedArray.set`; shorter ones element by element. */
const BULK = 64;

function copyRun(src: Float32Array, from: number, dst: Float32Array, to: number, len: number): void {
  if (len >= BULK) {
    dst.set(src.subarray(from, from + len), to);
    return;
  }
  for (let i = 0; i < len; i++) dst[to + i] = src[from + i]!;
}

/**
 * `count` runs of `run` floats from `src[srcOffset + i·srcStride]` to
 * `dst[dstOffset + i·dstStride]`; layout `[count, run, srcOffset, srcStride,
 * dstOffset, dstStride]` (the native addon's `stridedCopy`).
 */
export type StridedCopy = (src: Float32Array, dst: Float32Array, layout: Int32Array) => void;

/**
 * `Concat` of float32 tensors along any axis: out is `outer` blocks, each the
 * inputs' `inner_i` contiguous elements one after another. With the native
 * addon (`copy`), one strided copy per input. Otherwise, when all `inner_i`
 * are equal (a U-Net skip concatenation), the k inputs are stacked with bulk
 * copies into `[k, outer, inner]` and transposed to `[outer, k, inner]` by the
 * wasm Transpose kernel (measured ~3× faster than per-run copies in JS).
 * Falls back to the shipped kernel for other dtypes.
 */
export function makeConcatWasm(fallback: tf.KernelFunc, copy?: StridedCopy): tf.KernelFunc {
  return (args) => {
    const inputs = Object.keys(args.inputs)
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => args.inputs[k]!);
    const first = inputs[0];
    if (first == null || inputs.some((t) => t.dtype !== 'float32')) return fallback(args);
    const attrs = args.attrs as unknown as tf.ConcatAttrs;
    const axis = tf.util.parseAxisParam(attrs.axis, first.shape)[0]!;
    tf.backend_util.assertParamsConsistent(
      inputs.map((t) => t.shape),
      axis,
    );
    const backend = wasmBackendOf(args, 'Concat');
    const outShape = tf.backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      axis,
    );
    const outer = tf.util.sizeFromShape(first.shape.slice(0, axis));
    const inners = inputs.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
    const total = inners.reduce((a, b) => a + b, 0);
    const inner0 = inners[0]!;
    if (copy !== undefined) {
      const out = backend.makeOutput(outShape, 'float32');
      let offset = 0;
      inputs.forEach((t, i) => {
        copy(heapF32(backend, t), heapF32(backend, out), Int32Array.from([outer, inners[i]!, 0, inners[i]!, offset, total]));
        offset += inners[i]!;
      });
      return out;
    }
    if (outer > 1 && inner0 < BULK && inners.every((v) => v === inner0)) {
      const stacked = backend.makeOutput([inputs.length, outer, inner0], 'float32');
      inputs.forEach((t, i) => heapF32(backend, stacked).set(heapF32(backend, t), i * outer * inner0));
      const y = transpose(backend, stacked, [1, 0, 2]); // [outer, k, inner]
      release(backend, stacked);
      y.shape = outShape;
      return y;
    }
    const out = backend.makeOutput(outShape, 'float32');
    const dst = heapF32(backend, out);
    inputs.forEach((t, i) => {
      const src = heapF32(backend, t);
      const inner = inners[i]!;
      let to = inners.slice(0, i).reduce((a, b) => a + b, 0);
      for (let o = 0, from = 0; o < outer; o++, from += inner, to += total) copyRun(src, from, dst, to, inner);
    });
    return out;
  };
}

/**
 * `SplitV` of a float32 tensor along any axis (the gradient of Concat). With
 * the native addon (`copy`), one strided copy per part. Otherwise, equal
 * parts: one wasm transpose `[outer, k, inner]` -> `[k, outer, inner]`, then a
 * bulk copy per part. Other dtypes go to the shipped kernel.
 */
export function makeSplitVWasm(fallback: tf.KernelFunc, copy?: StridedCopy): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (x == null || x.dtype !== 'float32') return fallback(args);
    const attrs = args.attrs as unknown as tf.SplitVAttrs;
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x, attrs.numOrSizeSplits, axis);
    const backend = wasmBackendOf(args, 'SplitV');
    const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
    const rest = tf.util.sizeFromShape(x.shape.slice(axis + 1));
    const total = x.shape[axis]! * rest;
    const shapeOf = (s: number): number[] => x.shape.map((d, i) => (i === axis ? s : d));
    const s0 = sizes[0]!;
    if (copy !== undefined) {
      let offset = 0;
      return sizes.map((s) => {
        const out = backend.makeOutput(shapeOf(s), 'float32');
        copy(heapF32(backend, x), heapF32(backend, out), Int32Array.from([outer, s * rest, offset, total, 0, s * rest]));
        offset += s * rest;
        return out;
      });
    }
    if (outer > 1 && s0 * rest < BULK && sizes.length > 1 && sizes.every((s) => s === s0)) {
      const t = transpose(backend, alias(x, [outer, sizes.length, s0 * rest]), [1, 0, 2]); // [k, outer, inner]
      const part = outer * s0 * rest;
      const outs = sizes.map((s, i) => {
        const out = backend.makeOutput(shapeOf(s), 'float32');
        heapF32(backend, out).set(heapF32(backend, t).subarray(i * part, (i + 1) * part));
        return out;
      });
      release(backend, t);
      return outs;
    }
    const outs = sizes.map((s) => backend.makeOutput(shapeOf(s), 'float32'));
    const src = heapF32(backend, x);
    let offset = 0;
    outs.forEach((out, i) => {
      const inner = sizes[i]! * rest;
      const dst = heapF32(backend, out);
      for (let o = 0, to = 0, from = offset; o < outer; o++, to += inner, from += total) copyRun(src, from, dst, to, inner);
      offset += inner;
    });
    return outs;
  };
}

/**
 * `MaxPoolGrad` (NHWC, dilation 1): each window's dy goes to the window's
 * first strict maximum in row-major order (the cpu backend's rule; a window
 * of NaNs passes nothing), accumulated where windows overlap.
 * x `[N, H, W, C]`, dy `[N, OH, OW, C]` -> dx `[N, H, W, C]`. The scatter
 * runs in JS by default, natively where the addon is built (./native.ts).
 */
export function makeMaxPoolGrad(scatter: MaxPoolScatter = maxPoolScatterJs): tf.KernelFunc {
  return (args) => {
    const name = 'MaxPoolGrad';
    const backend: WasmBackend = wasmBackendOf(args, name);
    const x = args.inputs['input'];
    const dy = args.inputs['dy'];
    if (x == null || dy == null) throw new Error(`${name}: inputs 'input' and 'dy' are required`);
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error(`${name}: expected float32 input and dy, got ${x.dtype} and ${dy.dtype}`);
    const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
    const info = tf.backend_util.computePool2DInfo(x.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
    const { top, left } = info.padInfo;
    if (dy.shape[1] !== oh || dy.shape[2] !== ow) throw new Error(`${name}: dy has spatial shape [${dy.shape[1]}, ${dy.shape[2]}], the pooling gives [${oh}, ${ow}]`);

    const out = backend.makeOutput([...x.shape], 'float32');
    scatter(heapF32(backend, x), heapF32(backend, dy), heapF32(backend, out), Int32Array.from([n, h, w, c, oh, ow, sh, sw, fh, fw, top, left]));
    return out;
  };
}

/**
 * The scatter itself: x, dy, dx (written whole) and the geometry
 * `[N, H, W, C, OH, OW, strideH, strideW, filterH, filterW, padTop, padLeft]`.
 */
export type MaxPoolScatter = (x: Float32Array, dy: Float32Array, dx: Float32Array, geometry: Int32Array) => void;

function maxPoolScatterJs(xv: Float32Array, gv: Float32Array, dx: Float32Array, geometry: Int32Array): void {
  const [n, h, w, c, oh, ow, sh, sw, fh, fw, top, left] = geometry as unknown as [number, number, number, number, number, number, number, number, number, number, number, number];
  dx.fill(0);
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    for (let yr = 0; yr < oh; yr++) {
      const r0 = Math.max(0, yr * sh - top);
      const r1 = Math.min(h, yr * sh - top + fh);
      for (let yc = 0; yc < ow; yc++) {
        const c0 = Math.max(0, yc * sw - left);
        const c1 = Math.min(w, yc * sw - left + fw);
        best.fill(-Infinity);
        where.fill(-1);
        for (let r = r0; r < r1; r++) {
          for (let cc = c0; cc < c1; cc++) {
            const base = ((b * h + r) * w + cc) * c;
            for (let d = 0; d < c; d++) {
              const v = xv[base + d]!;
              if (v > best[d]!) {
                best[d] = v;
                where[d] = base + d;
              }
            }
          }
        }
        const g = ((b * oh + yr) * ow + yc) * c;
        for (let d = 0; d < c; d++) {
          const at = where[d]!;
          if (at >= 0) dx[at] = dx[at]! + gv[g + d]!;
        }
      }
    }
  }
}
