import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { ModelRegistry } from '@purify/artifacts';
import { buildUNet, createAdam, selectBackend, trainStep } from '@purify/models';
import { TrainingDataError } from './errors';
import { tempDir } from './fixtures.test-util';
import { CT_NORMALIZATION } from './normalization';
import { publishSegmentationModel } from './publish';
import { decodeWeights, modelFromWeights } from './weights';

const CLASSES = [
  { index: 0, name: 'background' },
  { index: 1, name: 'liver' },
  { index: 2, name: 'spleen' },
];

let tmp: ReturnType<typeof tempDir>;
beforeAll(async () => {
  await selectBackend('cpu');
});
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

describe('publishSegmentationModel', () => {
  it('writes a registry version whose ONNX (onnxruntime-node) agrees with the tfjs model, with weights and meta', async () => {
    // U-Net depth 2, width 4, batch norm, 3 classes; two Adam steps so weights and BatchNorm statistics move.
    const model = buildUNet({ depth: 2, baseWidth: 4, numClasses: 3, seed: 3 });
    const opt = createAdam(model, { learningRate: 1e-2 });
    const images = tf.randomUniform<tf.Rank.R4>([2, 8, 8, 1], 0, 1, 'float32', 1);
    const labels = tf.randomUniform<tf.Rank.R3>([2, 8, 8], 0, 3, 'int32', 2);
    for (let i = 0; i < 2; i++) trainStep(model, { images, labels }, { optimizer: opt });
    const before = tf.memory().numTensors;
    const v = publishSegmentationModel({
      artifactsDir: tmp.dir,
      name: 'src-test',
      model,
      classes: CLASSES,
      inputSizeYx: [8, 8],
      spacingXyMm: [4, 4],
      normalization: CT_NORMALIZATION,
      provenance: { seed: '1' },
      metrics: [{ name: 'dice_mean', value: 0.5, split: 'source-val' }],
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(v.dir).toBe(join(tmp.dir, 'models', 'src-test', '1'));
    expect(new ModelRegistry(tmp.dir).get('src-test', 1).meta).toEqual(v.meta);
    expect(v.meta).toMatchObject({
      classes: CLASSES,
      inputChannels: 1,
      inputSizeYx: [8, 8],
      spacingXyMm: [4, 4],
      normalization: CT_NORMALIZATION,
      onnx: { input: 'image', output: 'probabilities', opset: 17 },
      provenance: { seed: '1' },
      metrics: [{ name: 'dice_mean', value: 0.5, split: 'source-val' }],
    });

    // ONNX input [N, C, H, W]: for C = 1 the NHWC batch is the same memory.
    const x = tf.randomUniform<tf.Rank.R4>([3, 8, 8, 1], 0, 1, 'float32', 4);
    const session = await ort.InferenceSession.create(readFileSync(join(v.dir, 'model.onnx')));
    const out = await session.run({ image: new ort.Tensor('float32', x.dataSync() as Float32Array, [3, 1, 8, 8]) });
    const onnxProbs = out['probabilities']!.data as Float32Array; // [3, 3, 8, 8]
    const tfProbs = model.predict(x); // [3, 8, 8, 3]
    const p = tfProbs.dataSync();
    let maxDiff = 0;
    for (let n = 0; n < 3; n++) for (let k = 0; k < 3; k++) for (let i = 0; i < 64; i++) maxDiff = Math.max(maxDiff, Math.abs(onnxProbs[(n * 3 + k) * 64 + i]! - p[(n * 64 + i) * 3 + k]!));
    expect(maxDiff).toBeLessThanOrEqual(1e-4);

    // weights.bin rebuilds the same network.
    const bytes = new Uint8Array(readFileSync(join(v.dir, 'weights.bin')));
    expect(decodeWeights(bytes).unet).toEqual(model.config);
    const again = modelFromWeights(bytes);
    const q = again.predict(x);
    expect(Array.from(q.dataSync())).toEqual(Array.from(p));
    tf.dispose([images, labels, x, tfProbs, q]);
    again.dispose();
    opt.dispose();
    model.dispose();
  });

  it('refuses classes that do not match the model or the registry', () => {
    const model = buildUNet({ depth: 1, baseWidth: 2, numClasses: 3 });
    const base = { artifactsDir: tmp.dir, name: 'm', model, inputSizeYx: [8, 8] as const, normalization: CT_NORMALIZATION, provenance: {}, metrics: [] };
    expect(() => publishSegmentationModel({ ...base, classes: CLASSES.slice(0, 2) })).toThrow(
      new TrainingDataError('classes must list indices 0..2 for a model with 3 outputs, got [0:background, 1:liver]'),
    );
    publishSegmentationModel({ ...base, classes: CLASSES });
    const renamed = [CLASSES[0]!, CLASSES[1]!, { index: 2, name: 'kidney' }];
    expect(() => publishSegmentationModel({ ...base, classes: renamed })).toThrow(
      new TrainingDataError(
        `class mismatch: model "m" version 1 in ${join(tmp.dir, 'models')} has classes [0:background, 1:liver, 2:spleen], this training has [0:background, 1:liver, 2:kidney]; publish under another name`,
      ),
    );
    model.dispose();
  });

  it('a corrupt weights file is refused, naming it', () => {
    expect(() => decodeWeights(new Uint8Array(20), '/x/weights.bin')).toThrow(new TrainingDataError('/x/weights.bin: not a purify weights file (expected the magic PURIFYW1)'));
  });
});
