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
      { dataPath: data, artifactsDir: out, name: 'sq', size: 8, steps: 2, annealFraction: 0, batchSize: 2, valEvery: 1, valCases: 1, augment: 'light', unet: { depth: 2, baseWidth: 2 }, backend: 'cpu', predictTestDir: preds },
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

  it('the default two-phase schedule: explore at a constant rate until converged, then anneal to 0 from the best weights; a resume after the explore phase goes on with the anneal', async () => {
    // minDelta 1: only the first validation of a phase counts as a gain, so with patience 2 the explore phase
    // converges at step 3 (validations at 1, 2, 3); annealFraction 1 → 3 anneal steps (global 4–6).
    const data = writeSquareDataset(join(tmp.dir, 'ds'), { train: 3, test: 0 });
    const options = { dataPath: data, artifactsDir: join(tmp.dir, 'a'), name: 'sq', size: 8, steps: 50, patience: 2, minDelta: 1, annealFraction: 1, learningRate: 1e-2, batchSize: 2, valEvery: 1, valCases: 1, augment: 'none', unet: { depth: 2, baseWidth: 2 }, backend: 'cpu' as const };
    const steps: [number, number][] = [];
    const r = await trainSourceModel(options, { onStep: (e) => steps.push([e.step, e.learningRate]) });
    expect(r.training.exploreSteps).toBe(3);
    expect(r.training.stepsDone).toBe(6);
    expect(steps.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.training.validations.map((v) => v.step)).toEqual([1, 2, 3, 4, 5, 6]);
    // Explore: the peak rate (no warm-up at 50 steps / 10 → 5: steps 1–3 rise linearly); anneal: poly 0.9 from the peak
    // towards 0 over 3 steps (no warm-up: ⌊3/10⌋ = 0): lr = 1e-2 · (1 − (k−1)/3)^0.9 at anneal step k.
    expect(steps.slice(0, 3).map(([, lr]) => lr)).toEqual([1e-2 / 5, 2e-2 / 5, 3e-2 / 5]);
    steps.slice(3).forEach(([, lr], k) => expect(lr).toBeCloseTo(1e-2 * (1 - k / 3) ** 0.9, 8));
    // The model is the anneal's best validation: its first (the only gain beyond minDelta 1 is the first).
    expect(r.training.bestStep).toBe(4);
    expect(r.version?.meta.provenance['exploreSteps']).toBe('3');
    // Resuming finds the explore phase done and the anneal finished: no step runs again.
    const again: number[] = [];
    const resumed = await trainSourceModel({ ...options, resume: true, name: 'sq' }, { onStep: (e) => again.push(e.step) });
    expect(again).toEqual([]);
    expect(resumed.training.stepsDone).toBe(6);
    expect(resumed.training.exploreSteps).toBe(3);
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
