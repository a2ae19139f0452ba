/**
 * Small real models for tests, built with @purify/models (TF.js → our ONNX
 * export) and published into a registry. Tests only (@purify/models and
 * @tensorflow/tfjs are dev dependencies of this package).
 */
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { buildUNet, exportLayersModel, exportOnnx, ONNX_INPUT_NAME, ONNX_OPSET, ONNX_OUTPUT_NAME, type UNetConfig } from '@purify/models';
import type { ModelMeta, ModelRegistry, ModelVersion, NormalizationSpec } from '@purify/artifacts';

export const PYTHON = '/usr/bin/python3';

/** Runs `script` with `args` and returns its stdout parsed as JSON; `input` goes to stdin. */
export function runPythonJson<T>(script: string, args: readonly string[] = [], input?: string): T {
  const out = execFileSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...(input === undefined ? {} : { input }) });
  return JSON.parse(out) as T;
}

export interface TestModelMeta {
  readonly numClasses?: number;
  /** Classes written to meta.json when they differ from the graph's (class-count mismatch tests). */
  readonly metaClasses?: number;
  readonly inputChannels?: number;
  readonly inputSizeYx?: readonly [number, number];
  readonly spacingXyMm?: readonly [number, number];
  readonly normalization?: NormalizationSpec;
}

type PublishMeta = Parameters<ModelRegistry['publish']>[2];

function metaFor(m: TestModelMeta, numClasses: number): PublishMeta {
  const classes = m.metaClasses ?? numClasses;
  return {
    classes: Array.from({ length: classes }, (_, i) => ({ index: i, name: i === 0 ? 'background' : `organ${i}` })),
    inputChannels: m.inputChannels ?? 1,
    inputSizeYx: m.inputSizeYx ?? [16, 16],
    ...(m.spacingXyMm ? { spacingXyMm: m.spacingXyMm } : {}),
    normalization: m.normalization ?? { kind: 'ct-window', lowHu: -100, highHu: 200 },
    onnx: { input: ONNX_INPUT_NAME, output: ONNX_OUTPUT_NAME, opset: ONNX_OPSET },
    provenance: { test: 'inference' },
    metrics: [],
  };
}

let ready: Promise<void> | undefined;
async function cpu(): Promise<void> {
  // IS_TEST silences tfjs' "install the node backend" banner.
  tf.env().set('IS_TEST', true);
  ready ??= tf.setBackend('cpu').then(() => tf.ready());
  return ready;
}

/** A U-Net (no normalisation layers, so weights are the He-normal init of `seed`), published as a new version of `name`. */
export async function publishUNet(registry: ModelRegistry, name: string, config: Partial<UNetConfig>, meta: TestModelMeta = {}): Promise<ModelVersion> {
  await cpu();
  const model = buildUNet({ depth: 2, baseWidth: 4, norm: 'none', numClasses: meta.numClasses ?? 3, inputChannels: meta.inputChannels ?? 1, ...config });
  try {
    return registry.publish(name, { onnx: exportOnnx(model) }, metaFor(meta, model.config.numClasses));
  } finally {
    model.dispose();
  }
}

/** Weights of a pointwise model: logits_k = Σ_c w[c][k]·x_c + b[k]. */
export interface PointwiseWeights {
  readonly w: readonly (readonly number[])[];
  readonly b: readonly number[];
}

/**
 * The ONNX bytes of a single 1×1 convolution followed by a softmax (translation
 * equivariant, no size multiple beyond 1, no purify metadata).
 */
export async function pointwiseOnnx(weights: PointwiseWeights): Promise<Uint8Array> {
  await cpu();
  const channels = weights.w.length;
  const classes = weights.b.length;
  const input = tf.input({ shape: [null, null, channels] });
  const conv = tf.layers.conv2d({ filters: classes, kernelSize: 1, useBias: true });
  const out = tf.layers.softmax({ axis: -1 }).apply(conv.apply(input)) as tf.SymbolicTensor;
  const net = tf.model({ inputs: input, outputs: out });
  try {
    conv.setWeights([tf.tensor4d(weights.w.flat(), [1, 1, channels, classes]), tf.tensor1d([...weights.b])]);
    return exportLayersModel(net);
  } finally {
    net.dispose();
  }
}

/** Publishes the pointwise model of {@link pointwiseOnnx}. */
export async function publishPointwise(registry: ModelRegistry, name: string, weights: PointwiseWeights, meta: TestModelMeta = {}): Promise<ModelVersion> {
  return registry.publish(name, { onnx: await pointwiseOnnx(weights) }, metaFor({ inputChannels: weights.w.length, ...meta }, weights.b.length));
}

/** Publishes arbitrary bytes as model.onnx (corrupt-model tests). */
export function publishBytes(registry: ModelRegistry, name: string, onnx: Uint8Array, meta: TestModelMeta = {}): ModelVersion {
  return registry.publish(name, { onnx }, metaFor(meta, meta.numClasses ?? 3));
}

export type { ModelMeta };
