/**
 * The reference U-Net of issues #4/#10, built with tf.layers directly (the
 * benchmarks do not depend on the library's builder), and one training step.
 *
 * Architecture (mirrored exactly by torch_unet_step.py): input [N, H, W, 1];
 * 3 levels of two 3×3 'same' conv + ReLU with 16-32-64 channels, 2×2 max-pool
 * down, 2×2 stride-2 transposed-conv up, skip concatenation, 1×1 conv to
 * `classes` logits. No normalisation. 116,821 parameters for 5 classes.
 * Loss: mean softmax cross-entropy against one-hot labels; the library's Adam
 * (lr 1e-3; fused into one native kernel per variable where the addon is built).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
// tools/bench is not a package: import the kernels by path (the library's index may not re-export them yet).
import { Adam, WASM_TRAINING_KERNELS, registerWasmTrainingKernels } from '@purify/models';

export const CLASSES = 5;
export const WIDTHS = [16, 32, 64] as const;

/**
 * Which wasm kernels are used. 'ours': the library's (native where the addon
 * is built); 'wasm': the library's pure-wasm ones; 'shipped':
 * tfjs-backend-wasm's own, plus our Conv2DBackpropFilter (it ships none).
 */
export type KernelSet = 'ours' | 'wasm' | 'shipped';
export const KERNEL_SETS: readonly KernelSet[] = ['ours', 'wasm', 'shipped'];

export async function useWasm(kernels: KernelSet): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
  if (kernels !== 'shipped') {
    registerWasmTrainingKernels({ native: kernels === 'ours' });
    return;
  }
  const filter = WASM_TRAINING_KERNELS.find((k) => k.kernelName === tf.Conv2DBackpropFilter);
  if (filter == null) throw new Error('no Conv2DBackpropFilter in WASM_TRAINING_KERNELS');
  if (tf.getKernel(tf.Conv2DBackpropFilter, 'wasm') == null) {
    tf.registerKernel({ kernelName: filter.kernelName, backendName: 'wasm', kernelFunc: filter.make(undefined) });
  }
}

/** Reference U-Net: [N, H, W, 1] -> logits [N, H, W, classes]. */
export function buildReferenceUnet(classes = CLASSES): tf.LayersModel {
  const conv = (c: number) => tf.layers.conv2d({ filters: c, kernelSize: 3, padding: 'same', activation: 'relu' });
  const input = tf.input({ shape: [null, null, 1] });
  let x = input;
  const skips: tf.SymbolicTensor[] = [];
  WIDTHS.forEach((c, level) => {
    x = conv(c).apply(x) as tf.SymbolicTensor;
    x = conv(c).apply(x) as tf.SymbolicTensor;
    if (level < WIDTHS.length - 1) {
      skips.push(x);
      x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }).apply(x) as tf.SymbolicTensor;
    }
  });
  for (let level = WIDTHS.length - 2; level >= 0; level--) {
    const c = WIDTHS[level]!;
    x = tf.layers.conv2dTranspose({ filters: c, kernelSize: 2, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.concatenate({ axis: -1 }).apply([x, skips[level]!]) as tf.SymbolicTensor;
    x = conv(c).apply(x) as tf.SymbolicTensor;
    x = conv(c).apply(x) as tf.SymbolicTensor;
  }
  const logits = tf.layers.conv2d({ filters: classes, kernelSize: 1, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

export interface StepFixture {
  readonly model: tf.LayersModel;
  readonly optimizer: Adam;
  readonly x: tf.Tensor4D;
  readonly y: tf.Tensor4D;
  /** One training step (forward, backward, Adam update); returns the loss. */
  step(): number;
  dispose(): void;
}

/** Model, Adam optimizer and a random batch [n, h, w, 1] with random one-hot labels. */
export function stepFixture(n: number, h: number, w: number): StepFixture {
  const model = buildReferenceUnet();
  const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
  const optimizer = new Adam(vars, { learningRate: 1e-3 });
  const x = tf.randomNormal<tf.Rank.R4>([n, h, w, 1], 0, 1, 'float32', 1);
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([n, h, w], 0, CLASSES, 'int32', 2), CLASSES).toFloat()) as tf.Tensor4D;
  return {
    model,
    optimizer,
    x,
    y,
    step(): number {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy<tf.Tensor4D, tf.Scalar>(y, model.apply(x) as tf.Tensor4D), vars);
      optimizer.apply(vars.map((v) => grads[v.name]!));
      const loss = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    },
    dispose(): void {
      tf.dispose([x, y]);
      optimizer.dispose();
      model.dispose();
    },
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function parseShape(s: string): [number, number, number] {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(s);
  if (m == null) throw new Error(`shape must look like NxHxW (e.g. 8x96x96), got '${s}'`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}
