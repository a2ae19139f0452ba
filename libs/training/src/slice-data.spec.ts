import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetWriter, gridOf, makeVolume, openDataset, writeNifti } from '@purify/imaging';
import { TrainingDataError } from './errors';
import { tempDir, writeSquareDataset, squareCase, LABELS } from './fixtures.test-util';
import { CT_NORMALIZATION } from './normalization';
import { datasetClasses, labelledCases, loadSliceVolume, spacingForSize, workingGridOf } from './slice-data';
import { openLabelledDataset } from './source';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => (tmp = tempDir()));
afterEach(() => tmp.cleanup());

/** A one-case dataset with the given [z, y, x] image (HU) and label. */
function oneCase(image: number[], label: number[], shape: [number, number, number], spacing: [number, number, number]): string {
  const root = join(tmp.dir, 'one');
  const w = new DatasetWriter(root, { name: 'one', channelNames: ['CT'], labels: new Map([[0, 'background'], [1, 'a'], [2, 'b']]) });
  w.writeCase({ id: 'c0', split: 'train', channels: [makeVolume(Int16Array.from(image), shape, { spacingXyzMm: spacing })], label: makeVolume(Uint8Array.from(label), shape, { spacingXyzMm: spacing }) });
  w.finish();
  return root;
}

describe('loadSliceVolume', () => {
  it('normalises with the HU window and keeps the grid when the spacing matches', async () => {
    // [2, 2, 2] at (4, 4, 6) mm; HU -160 → 0, 40 → 0.5, 240 → 1.
    const root = oneCase([-160, 40, 240, 1000, 40, 40, 40, 40], [0, 1, 2, 2, 0, 0, 0, 0], [2, 2, 2], [4, 4, 6]);
    const c = openDataset(root).cases[0]!;
    const v = await loadSliceVolume(c, { normalization: CT_NORMALIZATION, spacingXyMm: [4, 4], numClasses: 3 });
    expect(v.shape).toEqual([2, 2, 2]);
    expect(Array.from(v.image)).toEqual([0, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.5]);
    expect(Array.from(v.label!)).toEqual([0, 1, 2, 2, 0, 0, 0, 0]);
    // Slice 0 holds classes 0, 1, 2; slice 1 only background.
    expect(v.sliceClasses).toEqual([[0, 1, 2], [0]]);
    expect(v.originalLabel?.shape).toEqual([2, 2, 2]);
  });

  it('resamples in-plane 2:1 (2×2 block means for the image, labels of constant blocks) and keeps z', async () => {
    // [1, 2, 4] at 2 mm → [1, 1, 2] at 4 mm. Target x' reads source (x' + 0.5)·2 − 0.5 = 2x' + 0.5, i.e. the mean
    // of x = 2x' and 2x' + 1 (same in y). Image HU -160 + 400·v with v = [[0, .5, .25, .75], [1, .5, .25, .25]]:
    // block means (0 + .5 + 1 + .5)/4 = 0.5 and (.25 + .75 + .25 + .25)/4 = 0.375.
    const v01 = [0, 0.5, 0.25, 0.75, 1, 0.5, 0.25, 0.25];
    const root = oneCase(v01.map((v) => -160 + 400 * v), [1, 1, 2, 2, 1, 1, 2, 2], [1, 2, 4], [2, 2, 3]);
    const c = openDataset(root).cases[0]!;
    const v = await loadSliceVolume(c, { normalization: CT_NORMALIZATION, spacingXyMm: [4, 4], numClasses: 3 });
    expect(v.shape).toEqual([1, 1, 2]);
    expect(v.workingGrid.spacingXyzMm).toEqual([4, 4, 3]);
    expect(Array.from(v.image)).toEqual([expect.closeTo(0.5, 6), expect.closeTo(0.375, 6)]);
    expect(Array.from(v.label!)).toEqual([1, 2]);
    expect(v.originalGrid.shape).toEqual([1, 2, 4]);
  });

  it.each([
    // 96 px of 4 mm onto 64 px: 6 mm; 80 × 3 mm rows onto 60 px: 4 mm.
    { shape: [3, 80, 96] as const, spacing: [4, 3, 5] as const, size: [60, 64] as const, want: [6, 4] },
  ])('spacingForSize $shape → $want', ({ shape, spacing, size, want }) => {
    expect(spacingForSize({ shape, spacingXyzMm: spacing, originLpsMm: [0, 0, 0], directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1] }, size)).toEqual(want);
  });

  it('workingGridOf keeps the grid object for an equal spacing', () => {
    const g = gridOf(makeVolume(new Uint8Array(8), [2, 2, 2], { spacingXyzMm: [4, 4, 6] }));
    expect(workingGridOf(g, [4, 4])).toBe(g);
    expect(workingGridOf(g, [2, 2]).shape).toEqual([2, 4, 4]);
  });
});

describe('bad input', () => {
  it('a missing label file is named', async () => {
    const root = writeSquareDataset(join(tmp.dir, 'ds'), { train: 2, test: 0 });
    rmSync(join(root, 'labelsTr', 'sq_001.nii.gz'));
    const c = openDataset(root).cases[1]!;
    await expect(loadSliceVolume(c, { normalization: CT_NORMALIZATION, numClasses: 2 })).rejects.toThrow(
      new TrainingDataError(`case sq_001: label file ${join(root, 'labelsTr', 'sq_001.nii.gz')} does not exist`),
    );
  });

  it('a missing image file is named', async () => {
    const root = writeSquareDataset(join(tmp.dir, 'ds'), { train: 2, test: 0 });
    const c = openDataset(root).cases[0]!;
    rmSync(c.imagePaths[0]!);
    await expect(loadSliceVolume(c, { normalization: CT_NORMALIZATION, numClasses: 2 })).rejects.toThrow(new TrainingDataError(`case sq_000: image file ${c.imagePaths[0]} does not exist`));
  });

  it('a label value outside the declared classes names the file and voxel', async () => {
    // Class 2 at voxel [0, 0, 1] of a two-class dataset.
    const root = join(tmp.dir, 'bad');
    const w = new DatasetWriter(root, { name: 'bad', channelNames: ['CT'], labels: LABELS });
    w.writeCase({ id: 'b0', split: 'train', channels: [makeVolume(new Int16Array(4), [1, 2, 2])], label: makeVolume(Uint8Array.from([0, 2, 0, 0]), [1, 2, 2]) });
    w.finish();
    const c = openDataset(root).cases[0]!;
    await expect(loadSliceVolume(c, { normalization: CT_NORMALIZATION, numClasses: 2 })).rejects.toThrow(
      new TrainingDataError(`${c.labelPath}: label value 2 at voxel [z, y, x] = [0, 0, 1] is not a class index in [0, 1] (dataset.json declares 2 classes)`),
    );
  });

  it('a label on another grid than its image', async () => {
    const root = writeSquareDataset(join(tmp.dir, 'ds'), { train: 1, test: 0 });
    const c = openDataset(root).cases[0]!;
    writeNifti(c.labelPath!, makeVolume(new Uint8Array(4 * 16 * 8), [4, 16, 8], { spacingXyzMm: [2, 2, 5] }));
    await expect(loadSliceVolume(c, { normalization: CT_NORMALIZATION, numClasses: 2 })).rejects.toThrow(/^case sq_000: label .*labelsTr\/sq_000\.nii\.gz is not on the image's grid/);
  });

  it('a dataset without labelsTr', () => {
    const root = writeSquareDataset(join(tmp.dir, 'ds'), { train: 2, test: 0 });
    rmSync(join(root, 'labelsTr'), { recursive: true });
    expect(() => openLabelledDataset(root)).toThrow(new TrainingDataError(`${root}: the training cases have no labels (no labelsTr/ folder); train-source needs a labelled dataset`));
  });

  it('a dataset.json without labels, and with labels that are not 0..K−1', () => {
    const root = writeSquareDataset(join(tmp.dir, 'ds'), { train: 1, test: 0 });
    const json = join(root, 'dataset.json');
    writeFileSync(json, JSON.stringify({ channel_names: { 0: 'CT' }, file_ending: '.nii.gz' }));
    expect(() => datasetClasses(openDataset(root))).toThrow(
      new TrainingDataError(`${json}: the dataset declares no labels (a labelled dataset.json with "labels" such as {"background": 0, "liver": 1} is needed for training)`),
    );
    writeFileSync(json, JSON.stringify({ channel_names: { 0: 'CT' }, labels: { background: 0, liver: 1, kidney: 3 }, file_ending: '.nii.gz' }));
    expect(() => datasetClasses(openDataset(root))).toThrow(new TrainingDataError(`${json}: "labels" must be the consecutive values 0..K−1 with 0 = background and K ≥ 2, got 0, 1, 3`));
  });

  it('a folder that does not exist, and one without dataset.json', () => {
    const missing = join(tmp.dir, 'nope');
    expect(() => openLabelledDataset(missing)).toThrow(new TrainingDataError(`${missing}: no such file or folder`));
    const plain = join(tmp.dir, 'plain');
    mkdirSync(plain);
    const { image } = squareCase([1, 4, 4], [1, 1, 1], { lo: 1, hi: 2 });
    writeNifti(join(plain, 'a.nii.gz'), image);
    expect(() => openLabelledDataset(plain)).toThrow(new TrainingDataError(`${plain}: no dataset.json; train-source needs a labelled dataset folder (dataset.json, imagesTr/, labelsTr/)`));
  });

  it('a dataset with only test cases', () => {
    const root = writeSquareDataset(join(tmp.dir, 'ds'), { train: 0, test: 1 });
    expect(existsSync(join(root, 'imagesTs'))).toBe(true);
    expect(() => labelledCases(openDataset(root))).toThrow(new TrainingDataError(`${root}: the dataset has no training cases (imagesTr/ is empty or missing)`));
  });
});
