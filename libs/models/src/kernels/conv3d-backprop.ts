import * as tf from '@tensorflow/tfjs';
import { cropSpatial, heapF32, inputOf, release, runWasmKernel, transpose, wasmBackendOf, type KernelArgs, type WasmBackend } from './wasm-backend';

/**
 * 3D convolution gradients for the wasm backend, expressed through the
 * backend's forward `Conv3D` kernel (which is correct; the shipped
 * `Conv3DBackpropInputV2` is not). Layout NDHWC: x `[N, D, H, W, Cin]`,
 * filter `[KD, KH, KW, Cin, Cout]`, dy `[N, OD, OH, OW, Cout]`. Dilation is
 * always 1 in TensorFlow.js 3D convolution gradients.
 */

type Conv3DInfo = ReturnType<typeof tf.backend_util.computeConv3DInfo>;
type Shape5 = [number, number, number, number, number];

function conv3DInfoFor(kernelName: string, inShape: readonly number[], filterShape: readonly number[], attrs: tf.Conv3DBackpropInputV2Attrs | tf.Conv3DBackpropFilterV2Attrs): Conv3DInfo {
  if (inShape.length !== 5 || filterShape.length !== 5) {
    throw new Error(
      `${kernelName}: expected input [N, D, H, W, Cin] and filter [KD, KH, KW, Cin, Cout], got [${inShape.join(', ')}] and [${filterShape.join(', ')}]`,
    );
  }
  return tf.backend_util.computeConv3DInfo(inShape as Shape5, filterShape as Shape5, attrs.strides, 1, attrs.pad);
}

/** Stride-1 'valid' NDHWC convolution through the wasm `Conv3D` kernel, with per-axis dilation. */
function conv3dValid(backend: WasmBackend, x: tf.TensorInfo, filter: tf.TensorInfo, dilations: readonly [number, number, number] = [1, 1, 1]): tf.TensorInfo {
  return runWasmKernel(backend, 'Conv3D', { x, filter }, { strides: [1, 1, 1], pad: 'valid', dilations: [...dilations], dataFormat: 'NDHWC' });
}

/**
 * `Conv3DBackpropInputV2`: dx `[N, D, H, W, Cin]` as the stride-1 valid
 * convolution of dy (zero-inserted by the stride and padded by `K-1-padBefore`
 * before) with the rotated, channel-swapped filter `[KD, KH, KW, Cout, Cin]`.
 */
export function conv3DBackpropInputV2Wasm(args: KernelArgs): tf.TensorInfo {
  const name = 'Conv3DBackpropInputV2';
  const backend = wasmBackendOf(args, name);
  const dy = inputOf(args, name, 'dy');
  const filter = inputOf(args, name, 'filter');
  const attrs = args.attrs as unknown as tf.Conv3DBackpropInputV2Attrs;
  const info = conv3DInfoFor(name, attrs.inputShape, filter.shape, attrs);
  const [n, od, oh, ow, co] = dy.shape as Shape5;
  const { inDepth: d, inHeight: h, inWidth: w, filterDepth: kd, filterHeight: kh, filterWidth: kw, inChannels: ci } = info;
  const { strideDepth: sd, strideHeight: sh, strideWidth: sw } = info;
  const { front, top, left } = info.padInfo;
  if (od !== info.outDepth || oh !== info.outHeight || ow !== info.outWidth) {
    throw new Error(`${name}: dy has spatial shape [${od}, ${oh}, ${ow}], the convolution gives [${info.outDepth}, ${info.outHeight}, ${info.outWidth}]`);
  }
  // Padding before each axis; the padded length is chosen so the valid convolution yields exactly D (H, W).
  const pd = kd - 1 - front;
  const ph = kh - 1 - top;
  const pw = kw - 1 - left;
  if (pd < 0 || ph < 0 || pw < 0) {
    throw new Error(`${name}: padding [${front}, ${top}, ${left}] exceeds filter size - 1 [${kd - 1}, ${kh - 1}, ${kw - 1}]`);
  }
  const dp = d + kd - 1;
  const hp = h + kh - 1;
  const wp = w + kw - 1;

  const wf = backend.makeOutput([kd, kh, kw, co, ci], 'float32');
  const up = backend.makeOutput([n, dp, hp, wp, co], 'float32');
  {
    const src = heapF32(backend, filter);
    const dst = heapF32(backend, wf);
    for (let a = 0; a < kd; a++) {
      for (let b = 0; b < kh; b++) {
        for (let c = 0; c < kw; c++) {
          const s = (((kd - 1 - a) * kh + (kh - 1 - b)) * kw + (kw - 1 - c)) * ci * co;
          const t = ((a * kh + b) * kw + c) * co * ci;
          for (let i = 0; i < ci; i++) for (let j = 0; j < co; j++) dst[t + j * ci + i] = src[s + i * co + j]!;
        }
      }
    }
    const g = heapF32(backend, dy);
    const u = heapF32(backend, up);
    u.fill(0);
    for (let b = 0; b < n; b++) {
      for (let z = 0; z < od; z++) {
        const uz = pd + z * sd;
        if (uz >= dp) continue;
        for (let y = 0; y < oh; y++) {
          const uy = ph + y * sh;
          if (uy >= hp) continue;
          for (let x = 0; x < ow; x++) {
            const ux = pw + x * sw;
            if (ux >= wp) continue;
            const s = (((b * od + z) * oh + y) * ow + x) * co;
            u.set(g.subarray(s, s + co), (((b * dp + uz) * hp + uy) * wp + ux) * co);
          }
        }
      }
    }
  }
  const dx = conv3dValid(backend, up, wf); // [N, D, H, W, Cin]
  release(backend, up, wf);
  return dx;
}

/**
 * `Conv3DBackpropFilterV2`: dw `[KD, KH, KW, Cin, Cout]` as a forward
 * convolution with the batch as the channel axis: input xᵀ `[Cin, D, H, W, N]`
 * (padded as the forward pass pads x), filter dyᵀ `[OD, OH, OW, N, Cout]`
 * dilated by the stride, output `[Cin, KD, KH, KW, Cout]`, transposed back.
 */
export function conv3DBackpropFilterV2Wasm(args: KernelArgs): tf.TensorInfo {
  const name = 'Conv3DBackpropFilterV2';
  const backend = wasmBackendOf(args, name);
  const x = inputOf(args, name, 'x');
  const dy = inputOf(args, name, 'dy');
  const attrs = args.attrs as unknown as tf.Conv3DBackpropFilterV2Attrs;
  const info = conv3DInfoFor(name, x.shape, attrs.filterShape, attrs);
  const [, od, oh, ow] = dy.shape as Shape5;
  const { inDepth: d, inHeight: h, inWidth: w, filterDepth: kd, filterHeight: kh, filterWidth: kw } = info;
  const { strideDepth: sd, strideHeight: sh, strideWidth: sw } = info;
  const { front, top, left } = info.padInfo;
  if (od !== info.outDepth || oh !== info.outHeight || ow !== info.outWidth) {
    throw new Error(`${name}: dy has spatial shape [${od}, ${oh}, ${ow}], the convolution gives [${info.outDepth}, ${info.outHeight}, ${info.outWidth}]`);
  }
  const xt = transpose(backend, x, [4, 1, 2, 3, 0]); // [Cin, D, H, W, N]
  const after = (k: number, o: number, s: number, len: number, before: number): number => Math.max(0, k + (o - 1) * s - len - before);
  const paddings = [
    [0, 0],
    [front, after(kd, od, sd, d, front)],
    [top, after(kh, oh, sh, h, top)],
    [left, after(kw, ow, sw, w, left)],
    [0, 0],
  ];
  const needsPad = paddings.some(([a, b]) => a !== 0 || b !== 0);
  const xp = needsPad ? runWasmKernel(backend, 'PadV2', { x: xt }, { paddings, constantValue: 0 }) : xt;
  if (xp !== xt) release(backend, xt);
  const dyt = transpose(backend, dy, [1, 2, 3, 0, 4]); // [OD, OH, OW, N, Cout]
  const full = conv3dValid(backend, xp, dyt, [sd, sh, sw]); // [Cin, >=KD, >=KH, >=KW, Cout]
  release(backend, xp, dyt);
  const cropped = cropSpatial(backend, full, [0, 0, 0], [kd, kh, kw]);
  const dw = transpose(backend, cropped, [1, 2, 3, 0, 4]); // [KD, KH, KW, Cin, Cout]
  release(backend, cropped);
  return dw;
}
