// evaluatePaths, the core of `purify evaluate` and of the benchmark's scoring:
// what it refuses to score, and the absent-label rule (issue #25, item 3).
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeVolume, writeNifti, type Vec3, type VoxelArray } from '@purify/imaging';
import { writeNifti4d } from '../../test/files.test-util';
import { CliError } from '../cli-util';
import { evaluatePaths } from './evaluate';

const SHAPE: Vec3 = [2, 4, 4]; // [z, y, x]: 32 voxels, 1 mm spacing

/** A [2, 4, 4] map of `type` with `value` at the given voxel indices (C order, x fastest), 0 elsewhere. */
function map<T extends VoxelArray>(make: (n: number) => T, voxels: Readonly<Record<number, readonly number[]>> = {}): T {
  const data = make(32);
  for (const [value, indices] of Object.entries(voxels)) for (const i of indices) data[i] = Number(value);
  return data;
}
const u8 = (voxels: Readonly<Record<number, readonly number[]>> = {}): Uint8Array => map((n) => new Uint8Array(n), voxels);

/** Writes `data` as `<dir>/<name>.nii.gz` on the [2, 4, 4] grid; returns the path. */
function write(dir: string, name: string, data: VoxelArray): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.nii.gz`);
  writeNifti(path, makeVolume(data, SHAPE));
  return path;
}

const root = mkdtempSync(join(tmpdir(), 'purify-evaluate-'));
const LABEL_MAP_RULE = 'a label map holds integers ≥ 0 (an integer datatype, or float data whose values are all whole numbers)';

describe('evaluatePaths scores', () => {
  it('leaves a label absent from every case out of the table and the organ average (hand-computed)', async () => {
    const dir = join(root, 'absent');
    // Case a: label 1 G = {0,1,2,3}, P = {2,3,4,5} → Dice 2·2/8 = 0.5;
    //         label 3 G = {24..27}, P = {24,25} → Dice 2·2/6 = 2/3.
    // Case b: label 1 G = P = {0..7} → Dice 1; label 3 empty on both sides → Dice 1 (both empty,
    //         counted: label 3 is present in case a).
    // Label 2: in no prediction and no ground truth → absent.
    // Label means: 1 → 0.75, 3 → 5/6; organ average (0.75 + 5/6)/2 = 19/24 ≈ 0.7917
    // (counting label 2 as Dice 1 would give (0.75 + 1 + 5/6)/3 ≈ 0.8611).
    write(join(dir, 'gt'), 'a', u8({ 1: [0, 1, 2, 3], 3: [24, 25, 26, 27] }));
    write(join(dir, 'pred'), 'a', u8({ 1: [2, 3, 4, 5], 3: [24, 25] }));
    write(join(dir, 'gt'), 'b', u8({ 1: [0, 1, 2, 3, 4, 5, 6, 7] }));
    write(join(dir, 'pred'), 'b', u8({ 1: [0, 1, 2, 3, 4, 5, 6, 7] }));
    const s = await evaluatePaths(join(dir, 'pred'), join(dir, 'gt'), { labels: [1, 2, 3] });
    expect(s.absentLabels).toEqual([2]);
    expect(s.labels.map((l) => [l.label, l.cases, l.bothEmpty])).toEqual([
      [1, 2, 0],
      [3, 2, 1],
    ]);
    expect(s.labels[0]?.dice.mean).toBeCloseTo(0.75, 12);
    expect(s.labels[1]?.dice.mean).toBeCloseTo(5 / 6, 12);
    expect(s.organAverage.dice).toBeCloseTo(19 / 24, 12);
    expect(s.perCase.map((c) => [c.caseId, c.labels.map((m) => m.label)])).toEqual([
      ['a', [1, 3]],
      ['b', [1, 3]],
    ]);
  });

  it('without --labels or dataset.json, scores every label any ground-truth file holds', async () => {
    // Case a holds only label 1, case b only label 2: both are scored (not just the first file's).
    // Both predictions are perfect: Dice 1 each.
    const dir = join(root, 'union');
    write(join(dir, 'gt'), 'a', u8({ 1: [0, 1] }));
    write(join(dir, 'pred'), 'a', u8({ 1: [0, 1] }));
    write(join(dir, 'gt'), 'b', u8({ 2: [5, 6] }));
    write(join(dir, 'pred'), 'b', u8({ 2: [5, 6] }));
    const s = await evaluatePaths(join(dir, 'pred'), join(dir, 'gt'), {});
    expect(s.labels.map((l) => [l.label, l.cases, l.bothEmpty, l.dice.mean])).toEqual([
      [1, 2, 1, 1],
      [2, 2, 1, 1],
    ]);
  });

  it('accepts a float label map whose values are whole numbers, scoring it like uint8', async () => {
    // G = {0,1,2,3}, P = {2,3,4,5} as float32 → Dice 0.5, the same as uint8.
    const dir = join(root, 'float-labels');
    const gt = write(dir, 'gt', u8({ 1: [0, 1, 2, 3] }));
    const pred = write(dir, 'pred', map((n) => new Float32Array(n), { 1: [2, 3, 4, 5] }));
    const s = await evaluatePaths(pred, gt, { labels: [1] });
    expect(s.labels[0]?.dice.mean).toBeCloseTo(0.5, 12);
  });
});

describe('evaluatePaths refuses', () => {
  const dir = join(root, 'refuse');
  const gt = write(dir, 'gt', u8({ 1: [0, 1, 2, 3] }));
  const datasetDir = join(root, 'with-json');
  mkdirSync(join(datasetDir, 'labelsTs'), { recursive: true });
  writeFileSync(join(datasetDir, 'dataset.json'), JSON.stringify({ labels: { background: 0, liver: 1, spleen: 2 } }));
  const json = join(datasetDir, 'dataset.json');
  const gtWithJson = write(join(datasetDir, 'labelsTs'), 'c', u8({ 2: [0, 1] }));
  const gtBad = write(join(datasetDir, 'labelsTs2'), 'd', u8({ 5: [0] }));
  writeNifti4d(join(dir, 'series.nii.gz'), [makeVolume(u8(), SHAPE), makeVolume(u8({ 1: [0] }), SHAPE)]);
  symlinkSync(dir, join(root, 'refuse-link'));

  it.each([
    // [what, pred, gt, --labels, exit code, message]
    ['a float CT image', () => write(dir, 'ct', map((n) => new Float32Array(n).fill(-1000.5))), () => gt, undefined, 1, (p: string) => `prediction ${p}: voxel [z, y, x] = [0, 0, 0] is -1000.5, not a label: ${LABEL_MAP_RULE}`],
    ['an int16 CT image', () => write(dir, 'ct16', map((n) => new Int16Array(n).fill(40), { [-1024]: [5] })), () => gt, [1], 1, (p: string) => `prediction ${p}: voxel [z, y, x] = [0, 1, 1] is -1024, not a label: ${LABEL_MAP_RULE}`],
    ['a NaN-filled file', () => write(dir, 'nan', map((n) => new Float32Array(n).fill(NaN))), () => gt, [1], 1, (p: string) => `prediction ${p}: voxel [z, y, x] = [0, 0, 0] is NaN, not a label: ${LABEL_MAP_RULE}`],
    [
      'a 4D file',
      () => join(dir, 'series.nii.gz'),
      () => gt,
      [1],
      1,
      (p: string) => `prediction ${p}: holds 2 volumes (dims x, y, z, … = 4 × 4 × 2 × 2) but one 3D image is expected; pick one with a volume index in 0..1 (\`--volume-index N\` where the command has it), or save that volume as its own 3D file`,
    ],
    // whole numbers, but an MR image's, not labels 0 and 1
    ['an image with whole-number intensities', () => write(dir, 'mr', map((n) => new Uint16Array(n).fill(900), { 100: [3], 0: [4] })), () => gt, [1], 1, (p: string) => `prediction ${p}: label values 100, 900 not in the expected set {0, 1} (0 and --labels)`],
    ['a label outside --labels', () => write(dir, 'seven', u8({ 1: [0], 7: [9] })), () => gt, [1], 1, (p: string) => `prediction ${p}: label value 7 not in the expected set {0, 1} (0 and --labels)`],
    ['a label outside dataset.json', () => write(dir, 'three', u8({ 3: [9] })), () => gtWithJson, undefined, 1, (p: string) => `prediction ${p}: label value 3 not in the expected set {0, 1, 2} (the labels of ${json})`],
    ['a ground truth label outside dataset.json', () => write(dir, 'ok', u8()), () => gtBad, undefined, 1, () => `ground truth ${gtBad}: label value 5 not in the expected set {0, 1, 2} (the labels of ${json})`],
    ['--labels not in dataset.json', () => write(dir, 'ok', u8()), () => gtWithJson, [1, 4], 2, () => `--labels: 4 not declared in ${json} (declared: 0, 1, 2)`],
    ['a prediction on another grid', () => { const p = join(dir, 'small.nii.gz'); writeNifti(p, makeVolume(new Uint8Array(16), [1, 4, 4])); return p; }, () => gt, [1], 1, (p: string) => `case gt: prediction ${p} and ground truth ${gt} are on different grids: shape [z, y, x] [1, 4, 4] differs from [2, 4, 4]`],
    ['--pred = --gt', () => gt, () => gt, [1], 2, () => `--pred and --gt are the same path (${gt}): a prediction scored against itself always gets Dice 1`],
    ['--pred a link to the --gt folder', () => join(root, 'refuse-link'), () => dir, [1], 2, () => `--pred and --gt are the same path (${join(root, 'refuse-link')}): a prediction scored against itself always gets Dice 1`],
  ])('%s', async (_what, pred, gtPath, labels, exitCode, message) => {
    const p = pred();
    const result = evaluatePaths(p, gtPath(), labels === undefined ? {} : { labels });
    await expect(result).rejects.toThrow(CliError);
    await expect(result).rejects.toMatchObject({ exitCode, message: message(p) });
  });
});
