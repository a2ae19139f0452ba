/**
 * Small real models for the segmenter's tests, built with @purify/models
 * (TF.js → our ONNX export) and published into a temporary registry.
 * (@purify/models and @tensorflow/tfjs are dev dependencies of this service.)
 */
import * as tf from '@tensorflow/tfjs';
import { buildUNet, exportLayersModel, exportOnnx, ONNX_INPUT_NAME, ONNX_OPSET, ONNX_OUTPUT_NAME, type UNetConfig } from '@purify/models';
import type { ModelRegistry, ModelVersion, NormalizationSpec } from '@purify/artifacts';

export interface TestModelMeta {
  readonly numClasses?: number;
  readonly metaClasses?: number;
  readonly inputChannels?: number;
  readonly inputSizeYx?: readonly [number, number];
  readonly spacingXyMm?: readonly [number, number];
  readonly normalization?: NormalizationSpec;
}

function metaFor(m: TestModelMeta, numClasses: number): Parameters<ModelRegistry['publish']>[2] {
  const classes = m.metaClasses ?? numClasses;
  return {
    classes: Array.from({ length: classes }, (_, i) => ({ index: i, name: i === 0 ? 'background' : `organ${i}` })),
    inputChannels: m.inputChannels ?? 1,
    inputSizeYx: m.inputSizeYx ?? [16, 16],
    ...(m.spacingXyMm ? { spacingXyMm: m.spacingXyMm } : {}),
    normalization: m.normalization ?? { kind: 'ct-window', lowHu: -100, highHu: 200 },
    onnx: { input: ONNX_INPUT_NAME, output: ONNX_OUTPUT_NAME, opset: ONNX_OPSET },
    provenance: { test: 'segmenter' },
    metrics: [{ name: 'dice', value: 0.5, split: 'test' }],
  };
}

let ready: Promise<void> | undefined;
function cpu(): Promise<void> {
  tf.env().set('IS_TEST', true); // silences tfjs' "install the node backend" banner
  ready ??= tf.setBackend('cpu').then(() => tf.ready());
  return ready;
}

/** A U-Net without normalisation layers (weights: the seeded init), published as a new version of `name`. */
export async function publishUNet(registry: ModelRegistry, name: string, config: Partial<UNetConfig>, meta: TestModelMeta = {}): Promise<ModelVersion> {
  await cpu();
  const model = buildUNet({ depth: 2, baseWidth: 4, norm: 'none', numClasses: meta.numClasses ?? 3, inputChannels: meta.inputChannels ?? 1, ...config });
  try {
    return registry.publish(name, { onnx: exportOnnx(model) }, metaFor(meta, model.config.numClasses));
  } finally {
    model.dispose();
  }
}

/** One 1×1 convolution + softmax: logits_k = Σ_c w[c][k]·x_c + b[k]. */
export async function publishPointwise(registry: ModelRegistry, name: string, weights: { w: number[][]; b: number[] }, meta: TestModelMeta = {}): Promise<ModelVersion> {
  await cpu();
  const channels = weights.w.length;
  const classes = weights.b.length;
  const input = tf.input({ shape: [null, null, channels] });
  const conv = tf.layers.conv2d({ filters: classes, kernelSize: 1, useBias: true });
  const net = tf.model({ inputs: input, outputs: tf.layers.softmax({ axis: -1 }).apply(conv.apply(input)) as tf.SymbolicTensor });
  try {
    conv.setWeights([tf.tensor4d(weights.w.flat(), [1, 1, channels, classes]), tf.tensor1d(weights.b)]);
    return registry.publish(name, { onnx: exportLayersModel(net) }, metaFor({ inputChannels: channels, ...meta }, classes));
  } finally {
    net.dispose();
  }
}

/** Publishes arbitrary bytes as model.onnx (corrupt-model tests). */
export function publishBytes(registry: ModelRegistry, name: string, onnx: Uint8Array, meta: TestModelMeta = {}): ModelVersion {
  return registry.publish(name, { onnx }, metaFor(meta, meta.numClasses ?? 3));
}
