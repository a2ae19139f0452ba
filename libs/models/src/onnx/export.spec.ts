import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { Norm, Upsampling, type UNetConfig } from '../config';
import { OnnxExportError } from '../errors';
import { Rng } from '../rng';
import type { SegModel } from '../seg-model';
import { createAdam, trainStep } from '../train';
import { buildUNet } from '../unet';
import { exportLayersModel, exportOnnx, ONNX_INPUT_NAME, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUT_NAME } from './export';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface Parity {
  maxAbsDiff: number;
  argmaxAgreement: number;
  pixels: number;
}

/** Runs TF.js (NHWC) and onnxruntime (NCHW) on the same images and compares the probabilities. */
async function parity(model: SegModel, session: ort.InferenceSession, shape: [number, number, number, number], seed: number): Promise<Parity> {
  const x = tf.randomNormal<tf.Rank.R4>(shape, 0, 1, 'float32', seed); // [N, H, W, C]
  const xNchw = tf.transpose(x, [0, 3, 1, 2]);
  const pNhwc = model.predict(x);
  const ours = tf.transpose(pNhwc, [0, 3, 1, 2]); // [N, K, H, W]
  const outputs = await session.run({ [ONNX_INPUT_NAME]: new ort.Tensor('float32', xNchw.dataSync() as Float32Array, xNchw.shape) });
  const theirs = outputs[ONNX_OUTPUT_NAME]!;
  expect(theirs.dims).toEqual(ours.shape);
  const a = ours.dataSync();
  const b = theirs.data as Float32Array;
  const [n, k, h, w] = ours.shape;
  let maxAbsDiff = 0;
  let agree = 0;
  for (let i = 0; i < a.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i]! - b[i]!));
  const plane = h * w;
  for (let img = 0; img < n; img++) {
    for (let p = 0; p < plane; p++) {
      let [ba, bb] = [0, 0];
      for (let c = 1; c < k; c++) {
        const idx = (img * k + c) * plane + p;
        if (a[idx]! > a[(img * k + ba) * plane + p]!) ba = c;
        if (b[idx]! > b[(img * k + bb) * plane + p]!) bb = c;
      }
      if (ba === bb) agree++;
    }
  }
  tf.dispose([x, xNchw, pNhwc, ours]);
  return { maxAbsDiff, argmaxAgreement: agree / (n * plane), pixels: n * plane };
}

async function expectParity(model: SegModel, sizes: [number, number][], foldBatchNorm = true): Promise<void> {
  const session = await ort.InferenceSession.create(exportOnnx(model, { foldBatchNorm }));
  try {
    for (const [i, [h, w]] of sizes.entries()) {
      const r = await parity(model, session, [3, h, w, model.config.inputChannels], 100 + i);
      expect(r.maxAbsDiff).toBeLessThanOrEqual(1e-4);
      expect(r.argmaxAgreement).toBeGreaterThanOrEqual(0.9999);
    }
  } finally {
    await session.release();
  }
}

/** Every weight (BatchNorm statistics included) replaced by a seeded random value, variances kept positive. */
function randomiseWeights(model: SegModel, seed: number): void {
  const rng = new Rng(seed);
  model.setWeights(
    model.getWeights().map((w) => ({
      ...w,
      values: w.values.map(() => (w.name.endsWith('moving_variance') ? 0.2 + rng.next() * 2 : w.name.endsWith('gamma') ? 0.5 + rng.next() : (rng.next() - 0.5) * 0.8)),
    })),
  );
}

/** A few Adam steps with a high rate so that weights and BatchNorm statistics move. */
function trainAFewSteps(model: SegModel, steps: number): void {
  const optimizer = createAdam(model, { learningRate: 0.05 });
  const images = tf.randomNormal<tf.Rank.R4>([2, 4, 8, model.config.inputChannels], 0, 1, 'float32', 5);
  const labels = tf.randomUniform<tf.Rank.R3>([2, 4, 8], 0, model.config.numClasses, 'int32', 6);
  const weights = tf.randomUniform<tf.Rank.R3>([2, 4, 8], 0, 1, 'float32', 7);
  for (let i = 0; i < steps; i++) trainStep(model, { images, labels, weights }, { optimizer, clipNorm: 5 });
  tf.dispose([images, labels, weights]);
  optimizer.dispose();
}

// Every architecture option: norm × upsampling × depth, always with dropout on.
const ARCHS: [Norm, Upsampling, number][] = [];
for (const norm of Object.values(Norm)) for (const up of Object.values(Upsampling)) for (const depth of [2, 3]) ARCHS.push([norm, up, depth]);
// Spatial sizes (H, W) divisible by 2^(depth−1); batch 3.
const SIZES: Record<number, [number, number][]> = {
  2: [[8, 8], [6, 10], [16, 4]],
  3: [[8, 8], [12, 20], [4, 16]],
};

describe.each(ARCHS)('ONNX parity with onnxruntime: norm %s, upsampling %s, depth %d (dropout 0.25)', (norm, upsampling, depth) => {
  const config: Partial<UNetConfig> = { norm, upsampling, depth, dropout: 0.25, baseWidth: 4, inputChannels: 2, numClasses: 3, seed: depth * 7 };
  let model: SegModel;
  beforeAll(() => {
    model = buildUNet(config);
  });
  afterAll(() => model.dispose());
  const folds = norm === Norm.Batch ? [true, false] : [true];

  it('as initialised', async () => {
    for (const fold of folds) await expectParity(model, SIZES[depth]!, fold);
  });

  it('after 2 training steps', async () => {
    trainAFewSteps(model, 2);
    for (const fold of folds) await expectParity(model, SIZES[depth]!, fold);
  });

  it('with every weight randomised', async () => {
    randomiseWeights(model, depth * 13);
    for (const fold of folds) await expectParity(model, SIZES[depth]!, fold);
  });
});

describe('exportOnnx: the reference U-Net', () => {
  it('matches onnxruntime on 3×32×32 with random weights and statistics', async () => {
    const model = buildUNet();
    randomiseWeights(model, 5);
    await expectParity(model, [[32, 32]]);
    model.dispose();
  });
});

describe('exportOnnx: graph contract', () => {
  const decode = (bytes: Uint8Array): onnx.ModelProto => onnx.ModelProto.decode(bytes);
  const dims = (v: onnx.IValueInfoProto): (number | string)[] =>
    (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));

  it('declares IR 8, opset 17, input image [N, C, H, W] and output probabilities [N, K, H, W]', () => {
    const model = buildUNet({ baseWidth: 2, inputChannels: 2, numClasses: 4, dropout: 0.1 });
    const m = decode(exportOnnx(model));
    expect(Number(m.irVersion)).toBe(ONNX_IR_VERSION);
    expect(ONNX_IR_VERSION).toBe(8);
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', ONNX_OPSET]]);
    expect(ONNX_OPSET).toBe(17);
    expect((m.graph?.input ?? []).map((i) => [i.name, dims(i)])).toEqual([['image', ['N', 2, 'H', 'W']]]);
    expect((m.graph?.output ?? []).map((o) => [o.name, dims(o)])).toEqual([['probabilities', ['N', 4, 'H', 'W']]]);
    const ops = new Set((m.graph?.node ?? []).map((n) => n.opType));
    // Batch norm folded, dropout dropped.
    expect([...ops].sort()).toEqual(['Concat', 'Conv', 'ConvTranspose', 'MaxPool', 'Relu', 'Softmax']);
    const meta = Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta['purify.unet_config'])).toEqual(model.config);
    expect(meta['purify.layout']).toBe('NCHW');
    model.dispose();
  });

  it.each<[string, Partial<UNetConfig>, boolean, string[]]>([
    ['batch norm unfolded', { norm: Norm.Batch }, false, ['BatchNormalization', 'Concat', 'Conv', 'ConvTranspose', 'MaxPool', 'Relu', 'Softmax']],
    ['instance norm + bilinear', { norm: Norm.Instance, upsampling: Upsampling.Bilinear }, true, ['Concat', 'Conv', 'InstanceNormalization', 'MaxPool', 'Relu', 'Resize', 'Softmax']],
  ])('emits the expected operators: %s', (_name, config, foldBatchNorm, expected) => {
    const model = buildUNet({ baseWidth: 2, ...config });
    const ops = new Set((decode(exportOnnx(model, { foldBatchNorm })).graph?.node ?? []).map((n) => n.opType));
    expect([...ops].sort()).toEqual(expected);
    model.dispose();
  });

  it('refuses a layer it cannot express, naming it', () => {
    const input = tf.input({ shape: [8, 8, 1] });
    const out = tf.layers.averagePooling2d({ poolSize: 2, name: 'avg' }).apply(input) as tf.SymbolicTensor;
    const net = tf.model({ inputs: input, outputs: out });
    expect(() => exportLayersModel(net)).toThrow(new OnnxExportError("layer 'avg' of class AveragePooling2D has no ONNX export"));
    net.dispose();
  });

  it('refuses a disposed model', () => {
    const model = buildUNet({ baseWidth: 2 });
    model.dispose();
    expect(() => exportOnnx(model)).toThrow(new OnnxExportError(`model '${model.namePrefix}' has been disposed`));
  });
});
