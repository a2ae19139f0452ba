import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DatasetWriter, makeVolume, openDataset } from '@purify/imaging';
import { selectBackend, type SegModel } from '@purify/models';
import { tempDir } from './fixtures.test-util';
import { CT_NORMALIZATION } from './normalization';
import { predictLabelVolume, predictSlices, validate } from './predict';
import { loadSliceVolume } from './slice-data';

/** A stand-in network: P(class 1) = the normalised intensity, P(class 0) = 1 − it. */
const intensityModel = (sizeMultiple = 1): SegModel =>
  ({
    config: { numClasses: 2 },
    sizeMultiple,
    predict: (x: tf.Tensor4D) => tf.tidy(() => tf.concat([tf.sub(1, x), x], -1)),
  }) as unknown as SegModel;

let tmp: ReturnType<typeof tempDir>;
beforeAll(async () => {
  await selectBackend('cpu');
});
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

/** A case [1, 2, 8] at 2 mm whose label is 1 in the given columns (every row); HU = 400·label − 160 → intensity = label. */
function writeColumns(root: string, cases: Record<string, number[]>): void {
  const w = new DatasetWriter(root, { name: 'cols', channelNames: ['CT'], labels: new Map([[0, 'background'], [1, 'fg']]) });
  for (const [id, cols] of Object.entries(cases)) {
    const lab = Uint8Array.from({ length: 16 }, (_, i) => (cols.includes(i % 8) ? 1 : 0));
    const img = Int16Array.from(lab, (l) => 400 * l - 160);
    w.writeCase({ id, split: 'train', channels: [makeVolume(img, [1, 2, 8], { spacingXyzMm: [2, 2, 3] })], label: makeVolume(lab, [1, 2, 8], { spacingXyzMm: [2, 2, 3] }) });
  }
  w.finish();
}

describe('predictSlices', () => {
  it('pads to the size multiple and crops back: [2, 3, 5] slices → [2, 3, 5, 2] probabilities', () => {
    const image = Float32Array.from({ length: 30 }, (_, i) => i / 30);
    const before = tf.memory().numTensors;
    const p = predictSlices(intensityModel(4), image, [2, 3, 5], 1);
    expect(tf.memory().numTensors).toBe(before);
    // Pixel i: [1 − i/30, i/30].
    expect(Array.from(p)).toEqual(Array.from(image).flatMap((v): unknown[] => [expect.closeTo(1 - v, 6), expect.closeTo(v, 6)]));
  });
});

describe('predictLabelVolume / validate on the original grid', () => {
  it('maps working-grid probabilities back (linear) and scores volume Dice per case', async () => {
    // x resampled 2 mm → 4 mm (8 → 4 columns), then back. Working columns are pair means.
    // Case "wide", label columns 0–2: working [1, .5, 0, 0]; back at x reads u = x/2 − 0.25:
    //   x0 → 1, x1 → .875, x2 → .625, x3 → .375 → columns 0–2 again: Dice 1.
    // Case "thin", column 5: working [0, 0, .5, 0]; back x4 → .375, x5 → .375 → nothing > .5: Dice 0 (one empty).
    const root = join(tmp.dir, 'ds');
    writeColumns(root, { wide: [0, 1, 2], thin: [5] });
    const ds = openDataset(root);
    const volumes = await Promise.all(ds.cases.map((c) => loadSliceVolume(c, { normalization: CT_NORMALIZATION, spacingXyMm: [4, 2], numClasses: 2 })));
    expect(volumes[0]!.shape).toEqual([1, 2, 4]);
    const wide = predictLabelVolume(intensityModel(), volumes.find((v) => v.id === 'wide')!);
    expect(wide.shape).toEqual([1, 2, 8]);
    expect(wide.spacingXyzMm).toEqual([2, 2, 3]);
    expect(Array.from(wide.data.subarray(0, 8))).toEqual([1, 1, 1, 0, 0, 0, 0, 0]);
    const v = validate(intensityModel(), volumes);
    expect(v.dicePerClass.get(1)).toBeCloseTo(0.5, 10); // mean of 1 and 0
    expect(v.meanDice).toBeCloseTo(0.5, 10);
    expect(v.summary.labels[0]!.oneEmpty).toBe(1);
  });
});
