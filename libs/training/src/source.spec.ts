import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { gridDifference, openDataset, readNifti } from '@purify/imaging';
import { TrainingDataError } from './errors';
import { tempDir, writeSquareDataset } from './fixtures.test-util';
import { trainSourceModel } from './source';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

describe('trainSourceModel', () => {
  it('trains on the working grid, publishes a version and writes test predictions on the original grids', async () => {
    // 3 training + 2 test cases [4, 16, 16] at 2 mm; size 8 → working spacing 4 mm; 1 validation case.
    const data = writeSquareDataset(join(tmp.dir, 'ds'), { train: 3, test: 2 });
    const out = join(tmp.dir, 'artifacts');
    const preds = join(tmp.dir, 'pred');
    const loaded: string[] = [];
    const r = await trainSourceModel(
      { dataPath: data, artifactsDir: out, name: 'sq', size: 8, steps: 2, batchSize: 2, valEvery: 1, valCases: 1, augment: 'light', unet: { depth: 2, baseWidth: 2 }, backend: 'cpu', predictTestDir: preds },
      { onLoad: (e) => loaded.push(e.id) },
    );
    const numTensors = tf.memory().numTensors;
    expect(r.backend.backend).toBe('cpu');
    expect(r.spacingXyMm).toEqual([4, 4]);
    expect(loaded).toHaveLength(3);
    expect(r.valCases).toHaveLength(1);
    expect(r.training.validations.map((v) => v.step)).toEqual([1, 2]);
    expect(r.version?.meta).toMatchObject({
      name: 'sq',
      version: 1,
      classes: [{ index: 0, name: 'background' }, { index: 1, name: 'square' }],
      inputSizeYx: [8, 8],
      spacingXyMm: [4, 4],
      normalization: { kind: 'ct-window', lowHu: -160, highHu: 240 },
      onnx: { input: 'image', output: 'probabilities', opset: 17 },
      provenance: { dataset: data, seed: '1', steps: '2', backend: 'cpu' },
    });
    expect(r.version?.meta.metrics.map((m) => [m.name, m.split])).toEqual([
      ['dice_square', 'source-val'],
      ['dice_mean', 'source-val'],
    ]);
    expect(existsSync(join(out, 'checkpoints', 'sq', 'last', 'manifest.json'))).toBe(true);
    const tests = openDataset(data).cases.filter((c) => c.split === 'test');
    expect(r.predictions).toEqual(tests.map((c) => join(preds, `${c.id}.nii.gz`)));
    for (const c of tests) {
      const pred = await readNifti(join(preds, `${c.id}.nii.gz`));
      expect(gridDifference(pred, await c.loadImage())).toBeUndefined();
      expect([...new Set(pred.data)].every((v) => v === 0 || v === 1)).toBe(true);
    }
    expect(tf.memory().numTensors).toBe(numTensors);
  });

  it('bad input is refused before training, naming the file', async () => {
    const data = writeSquareDataset(join(tmp.dir, 'ds'), { train: 2, test: 0 });
    const base = { artifactsDir: join(tmp.dir, 'a'), steps: 1, backend: 'cpu' as const };
    await expect(trainSourceModel({ ...base, dataPath: join(tmp.dir, 'missing') })).rejects.toThrow(new TrainingDataError(`${join(tmp.dir, 'missing')}: no such file or folder`));
    await expect(trainSourceModel({ ...base, dataPath: data, valCases: 2 })).rejects.toThrow('valCases must be an integer in [0, 1] (the dataset has 2 labelled training cases), got 2');
    await expect(trainSourceModel({ ...base, dataPath: data, predictTestDir: join(tmp.dir, 'p'), size: 8, unet: { depth: 1, baseWidth: 2 } })).rejects.toThrow(
      new TrainingDataError(`${data}: --predict-test: the dataset has no test cases (imagesTs/ is empty or missing)`),
    );
  });
});
