import * as tf from '@tensorflow/tfjs';
import {
  alias,
  conv2d,
  cropSpatial,
  heapF32,
  inputOf,
  matMul,
  pad,
  release,
  releaseView,
  transpose,
  viewOf,
  wasmBackendOf,
  type KernelArgs,
  type WasmBackend,
} from './wasm-backend';

/**
 * 2D convolution gradients for the wasm backend, expressed through its fast
 * XNNPACK forward convolution (see docs/kernels.md for the derivations and
 * measurements). Layout NHWC throughout: x `[N, H, W, Cin]`, filter
 * `[KH, KW, Cin, Cout]`, dy `[N, OH, OW, Cout]`. Dilation is always 1 in
 * TensorFlow.js convolution gradients (tfjs-core refuses dilated gradients
 * before any kernel runs).
 */

export type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

export function conv2DInfoFor(
  kernelName: string,
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: Pick<tf.Conv2DAttrs, 'strides' | 'pad' | 'dataFormat' | 'dimRoundingMode'>,
): Conv2DInfo {
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(`${kernelName} on wasm supports dataFormat 'NHWC' only, got '${String(attrs.dataFormat)}'`);
  }
  if (inShape.length !== 4 || filterShape.length !== 4) {
    throw new Error(`${kernelName}: expected input [N, H, W, Cin] and filter [KH, KW, Cin, Cout], got [${inShape.join(', ')}] and [${filterShape.join(', ')}]`);
  }
  return tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

/**
 * The filter rotated by 180° with its channel axes swapped:
 * `w'[a, b, co, ci] = w[KH-1-a, KW-1-b, ci, co]`, shape `[KH, KW, Cout, Cin]`.
 */
function flippedTransposedFilter(backend: WasmBackend, filter: tf.TensorInfo): tf.TensorInfo {
  const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
  const out = backend.makeOutput([kh, kw, co, ci], 'float32');
  const w = heapF32(backend, filter);
  const o = heapF32(backend, out);
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const src = ((kh - 1 - a) * kw + (kw - 1 - b)) * ci * co;
      const dst = (a * kw + b) * co * ci;
      for (let i = 0; i < ci; i++) {
        for (let j = 0; j < co; j++) o[dst + j * ci + i] = w[src + i * co + j]!;
      }
    }
  }
  return out;
}

/**
 * dy `[N, OH, OW, C]` with `sH-1` zero rows between rows and `sW-1` zero
 * columns between columns: `[N, (OH-1)*sH+1, (OW-1)*sW+1, C]`.
 */
function zeroInserted(backend: WasmBackend, dy: tf.TensorInfo, sH: number, sW: number): tf.TensorInfo {
  const [n, oh, ow, c] = dy.shape as [number, number, number, number];
  const uh = (oh - 1) * sH + 1;
  const uw = (ow - 1) * sW + 1;
  const out = backend.makeOutput([n, uh, uw, c], 'float32');
  const src = heapF32(backend, dy);
  const dst = heapF32(backend, out);
  dst.fill(0);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const s = ((b * oh + y) * ow + x) * c;
        dst.set(src.subarray(s, s + c), ((b * uh + y * sH) * uw + x * sW) * c);
      }
    }
  }
  return out;
}

/**
 * dx for the case kernel = stride, no padding, and dy covering x exactly
 * (transposed-conv upsampling): every input pixel gets exactly one tap, so
 * dx = depthToSpace(dy · Wᵀ) — one 1×1 convolution (a GEMM) and a transpose.
 */
function backpropInputPixelShuffle(backend: WasmBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: Conv2DInfo): tf.TensorInfo {
  const { filterHeight: k, inChannels: ci, outChannels: co } = info;
  // [KH, KW, Cin, Cout] -> [Cout, KH, KW, Cin] viewed as a 1×1 filter [1, 1, Cout, KH*KW*Cin].
  const wt = transpose(backend, filter, [3, 0, 1, 2]);
  const y = conv2d(backend, dy, alias(wt, [1, 1, co, k * k * ci]), [
    [0, 0],
    [0, 0],
  ]); // [N, OH, OW, KH*KW*Cin]
  release(backend, wt);
  // Depth-to-space as a transpose: [N*OH, OW, k, k*Cin] -> [N*OH, k, OW, k*Cin] is [N, OH*k, OW*k, Cin]
  // (wasm's own DepthToSpace kernel measured ~10x slower).
  const [n, oh, ow] = dy.shape as [number, number, number, number];
  const dx = transpose(backend, alias(y, [n * oh, ow, k, k * ci]), [0, 2, 1, 3]);
  dx.shape = [n, oh * k, ow * k, ci];
  release(backend, y);
  return dx;
}

/**
 * `Conv2DBackpropInput` (also the forward pass of `conv2dTranspose`):
 * dx `[N, H, W, Cin]` from dy `[N, OH, OW, Cout]` and filter `[KH, KW, Cin, Cout]`.
 *
 * dx is the stride-1 convolution of dy (zero-inserted by the stride) with the
 * rotated, channel-swapped filter, padded by `K-1-padBefore` before and
 * whatever makes the output length H after.
 */
export function conv2DBackpropInputWasm(args: KernelArgs): tf.TensorInfo {
  const name = 'Conv2DBackpropInput';
  const backend = wasmBackendOf(args, name);
  const dy = inputOf(args, name, 'dy');
  const filter = inputOf(args, name, 'filter');
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const info = conv2DInfoFor(name, attrs.inputShape, filter.shape, attrs);
  const { inHeight: h, inWidth: w, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const [, oh, ow] = dy.shape as [number, number, number, number];
  const { top, left } = info.padInfo;

  if (kh === kw && sh === kh && sw === kw && kh > 1 && top === 0 && left === 0 && oh * sh === h && ow * sw === w) {
    return backpropInputPixelShuffle(backend, dy, filter, info);
  }

  const wf = flippedTransposedFilter(backend, filter); // [KH, KW, Cout, Cin]
  const up = sh > 1 || sw > 1 ? zeroInserted(backend, dy, sh, sw) : dy;
  const uh = up.shape[1]!;
  const uw = up.shape[2]!;
  // Pads of the stride-1 convolution; a negative pad becomes a crop of its output.
  const padTop = kh - 1 - top;
  const padLeft = kw - 1 - left;
  const padBottom = h - uh - padTop + kh - 1;
  const padRight = w - uw - padLeft + kw - 1;
  const full = conv2d(backend, up, wf, [
    [Math.max(0, padTop), Math.max(0, padBottom)],
    [Math.max(0, padLeft), Math.max(0, padRight)],
  ]);
  release(backend, wf);
  if (up !== dy) release(backend, up);
  return cropSpatial(backend, full, [Math.max(0, -padTop), Math.max(0, -padLeft)], [h, w]);
}

/**
 * Stride-1 filter gradient as one GEMM per (image, filter tap), without an
 * im2col copy.
 *
 * Each image lives on a padded grid `[Hp, Wp]` flattened to Tn positions:
 * xP `[N, Cin+1, Tn]` (x channel-major, placed at (padTop, padLeft), zeros
 * around, plus a zero channel) and dyP `[N, Tn, Cout]` (dy at the grid's
 * origin, zeros elsewhere) — both built by wasm Transpose/PadV2.
 * Tap (kh, kw) pairs grid position q of dyP with q + kh*Wp + kw of xP, so
 * `dw[kh, kw] = Σ_n xP[n, :, off : off+Tn] · dyP[n]` with off = kh*Wp + kw —
 * a contiguous view of xP (a row runs `off` elements into the next channel,
 * which only ever meets zero rows of dyP; the zero channel covers the last row).
 * Per image, dyP[n] is the right-hand side of all taps, so XNNPACK packs it
 * once, and one image's operands stay in cache across its taps.
 */
export function backpropFilterTapGemm(backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, info: Conv2DInfo): tf.TensorInfo {
  const [n, h, w, ci] = x.shape as [number, number, number, number];
  const [, oh, ow, co] = dy.shape as [number, number, number, number];
  const { filterHeight: kh, filterWidth: kw } = info;
  const { top, left } = info.padInfo;
  // The grid holds x at (top, left) and dy at (0, 0); every tap's window (y + kh, x + kw) stays inside a row/image.
  const hp = Math.max(h + top, oh + kh - 1);
  const wp = Math.max(w + left, ow + kw - 1);
  const tn = hp * wp;
  const maxOff = (kh - 1) * wp + (kw - 1);

  // xP [N, Cin+1, Hp, Wp]: channel-major, x at (top, left); the extra zero channel is the tail each
  // image's last row view runs into (maxOff <= Tn).
  const xt = transpose(backend, x, [0, 3, 1, 2]); // [N, Cin, H, W]
  const xp = pad(backend, xt, [
    [0, 0],
    [0, 1],
    [top, hp - h - top],
    [left, wp - w - left],
  ]);
  release(backend, xt);
  const dyp = pad(backend, dy, [
    [0, 0],
    [0, hp - oh],
    [0, wp - ow],
    [0, 0],
  ]); // [N, Hp, Wp, Cout], dy at the origin
  if (maxOff > tn) throw new Error(`Conv2DBackpropFilter: internal: tap offset ${maxOff} exceeds the grid ${tn}`);
  const acc = new Float32Array(kh * kw * ci * co);
  for (let b = 0; b < n; b++) {
    const rhs = viewOf(backend, dyp, b * tn * co, [tn, co]);
    for (let a = 0; a < kh; a++) {
      for (let c = 0; c < kw; c++) {
        const lhs = viewOf(backend, xp, b * (ci + 1) * tn + a * wp + c, [ci, tn]);
        const part = matMul(backend, lhs, rhs); // [Cin, Cout]
        releaseView(backend, lhs);
        const p = heapF32(backend, part);
        const base = (a * kw + c) * ci * co;
        for (let i = 0; i < p.length; i++) acc[base + i] = acc[base + i]! + p[i]!;
        release(backend, part);
      }
    }
    releaseView(backend, rhs);
  }
  release(backend, xp, dyp);
  const dw = backend.makeOutput([kh, kw, ci, co], 'float32');
  heapF32(backend, dw).set(acc);
  return dw;
}

/**
 * `Conv2DBackpropFilter`: dw `[KH, KW, Cin, Cout]` from x `[N, H, W, Cin]` and
 * dy `[N, OH, OW, Cout]`:
 * `dw[kh, kw, ci, co] = Σ_{n, oh, ow} x[n, oh*sH + kh - padTop, ow*sW + kw - padLeft, ci] · dy[n, oh, ow, co]`.
 *
 * Stride 1: {@link backpropFilterTapGemm}. Strided: a forward convolution
 * with the batch as the channel axis — input xᵀ `[Cin, H, W, N]`, filter dyᵀ
 * `[OH, OW, N, Cout]` dilated by the stride, output `[Cin, KH, KW, Cout]`,
 * transposed back. (An im2col + BatchMatMul formulation needs a transposed
 * operand, and wasm's transposed BatchMatMul is a slow loop.)
 */
export function conv2DBackpropFilterWasm(args: KernelArgs): tf.TensorInfo {
  const name = 'Conv2DBackpropFilter';
  const backend = wasmBackendOf(args, name);
  const x = inputOf(args, name, 'x');
  const dy = inputOf(args, name, 'dy');
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = conv2DInfoFor(name, x.shape, attrs.filterShape, attrs);
  const { strideHeight: sh, strideWidth: sw } = info;
  const [, oh, ow] = dy.shape as [number, number, number, number];
  if (oh !== info.outHeight || ow !== info.outWidth) {
    throw new Error(`${name}: dy has spatial shape [${oh}, ${ow}], the convolution gives [${info.outHeight}, ${info.outWidth}]`);
  }
  const { filterHeight: kh, filterWidth: kw, padInfo } = info;
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && padInfo.top === 0 && padInfo.left === 0 && padInfo.bottom === 0 && padInfo.right === 0) {
    return backpropFilterPointwise(backend, x, dy);
  }
  return sh === 1 && sw === 1 ? backpropFilterTapGemm(backend, x, dy, info) : backpropFilterTransposedConv(backend, x, dy, info);
}

/** 1×1, stride 1, unpadded: dwᵀ `[Cout, Cin]` = dyᵀ `[Cout, M]` · x `[M, Cin]` with M = N·H·W (x is used in place). */
export function backpropFilterPointwise(backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo): tf.TensorInfo {
  const ci = x.shape[3]!;
  const co = dy.shape[3]!;
  const m = tf.util.sizeFromShape(x.shape) / ci;
  const dyt = transpose(backend, alias(dy, [m, co]), [1, 0]); // [Cout, M]
  const dwt = matMul(backend, dyt, alias(x, [m, ci])); // [Cout, Cin]
  release(backend, dyt);
  const dw = transpose(backend, dwt, [1, 0]); // [Cin, Cout]
  release(backend, dwt);
  dw.shape = [1, 1, ci, co];
  return dw;
}

/** Filter gradient for any stride as a forward convolution of xᵀ `[Cin, H, W, N]` with dyᵀ `[OH, OW, N, Cout]` dilated by the stride. */
export function backpropFilterTransposedConv(backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, info: Conv2DInfo): tf.TensorInfo {
  const { inHeight: h, inWidth: w, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const [, oh, ow] = dy.shape as [number, number, number, number];
  const { top, left } = info.padInfo;
  const xt = transpose(backend, x, [3, 1, 2, 0]); // [Cin, H, W, N]
  const dyt = transpose(backend, dy, [1, 2, 0, 3]); // [OH, OW, N, Cout]
  // Output length of the dilated "valid" convolution must be at least KH: pad after as needed.
  const padBottom = Math.max(0, kh + (oh - 1) * sh - h - top);
  const padRight = Math.max(0, kw + (ow - 1) * sw - w - left);
  const full = conv2d(
    backend,
    xt,
    dyt,
    [
      [top, padBottom],
      [left, padRight],
    ],
    [sh, sw],
  ); // [Cin, >=KH, >=KW, Cout]
  release(backend, xt, dyt);
  const cropped = cropSpatial(backend, full, [0, 0], [kh, kw]); // [Cin, KH, KW, Cout]
  const dw = transpose(backend, cropped, [1, 2, 0, 3]); // [KH, KW, Cin, Cout]
  release(backend, cropped);
  return dw;
}
