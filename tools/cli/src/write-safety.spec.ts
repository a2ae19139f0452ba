// The write rule every writing command goes through (issue #25, items 1 and 2).
import { linkSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './cli-util';
import { OutputPolicy, canonicalPath, datasetFolderReason } from './write-safety';

const root = mkdtempSync(join(tmpdir(), 'purify-write-safety-'));
// root/ct: a dataset with dataset.json; root/amos: an MSD-style dataset whose list names
// its labels in "segmentations/"; root/runs: our own run folders.
mkdirSync(join(root, 'ct', 'labelsTs'), { recursive: true });
mkdirSync(join(root, 'ct', 'imagesTr'), { recursive: true });
writeFileSync(join(root, 'ct', 'dataset.json'), JSON.stringify({ labels: { background: 0, liver: 1 } }));
writeFileSync(join(root, 'ct', 'labelsTs', 'ct_ts_000.nii.gz'), 'ground truth');
mkdirSync(join(root, 'amos', 'segmentations'), { recursive: true });
writeFileSync(join(root, 'amos', 'dataset.json'), JSON.stringify({ training: [{ image: './scans/a.nii.gz', label: './segmentations/a.nii.gz' }], test: ['./a.nii.gz'] }));
mkdirSync(join(root, 'runs', 'x'), { recursive: true });
writeFileSync(join(root, 'runs', 'x', 'ct.nii.gz'), 'a CT image');
symlinkSync(join(root, 'ct', 'labelsTs'), join(root, 'runs', 'gt-link'));

/** Runs `f`, expecting a CliError with exit code 2 and exactly `message`. */
function refused(f: () => unknown, message: string): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CliError);
  expect(err).toMatchObject({ exitCode: 2, message });
}

const NEVER_INTO_DATASET = "; purify never writes into a dataset's image or label folders (that is how ground truth gets replaced). Choose a folder outside the dataset.";

describe('datasetFolderReason', () => {
  it.each([
    // [folder relative to root, reason or undefined]
    ['ct/labelsTs', `${root}/ct/labelsTs is inside labelsTs/, a dataset's label folder`],
    ['ct/labelsTs/sub', `${root}/ct/labelsTs/sub is inside labelsTs/, a dataset's label folder`],
    ['elsewhere/LABELSTR', `${root}/elsewhere/LABELSTR is inside LABELSTR/, a dataset's label folder`], // any folder of that name, any case
    ['ct/imagesTr', `${root}/ct/imagesTr is inside imagesTr/, a dataset's image folder`],
    ['amos/segmentations', `${root}/amos/segmentations is a folder that ${root}/amos/dataset.json lists images or labels in`],
    ['amos/segmentations/sub', `${root}/amos/segmentations/sub is inside ${root}/amos/segmentations, a folder that ${root}/amos/dataset.json lists images or labels in`],
    ['amos/scans', `${root}/amos/scans is a folder that ${root}/amos/dataset.json lists images or labels in`],
    // a symbolic link to a label folder is that folder
    ['runs/gt-link', `${root}/ct/labelsTs is inside labelsTs/, a dataset's label folder`],
    // the dataset root itself (its "test" list names files there), run folders, siblings: writable
    ['amos', undefined],
    ['ct', undefined],
    ['ct/predictionsTs', undefined],
    ['runs/x', undefined],
  ])('%s → %p', (folder, reason) => {
    expect(datasetFolderReason(join(root, folder))).toBe(reason);
  });
});

describe('OutputPolicy.file', () => {
  const input = join(root, 'runs', 'x', 'ct.nii.gz');
  const hardLink = join(root, 'runs', 'x', 'ct-hardlink.nii.gz');
  linkSync(input, hardLink);
  const policy = (overwrite = false): OutputPolicy => new OutputPolicy({ inputs: [{ path: input, what: 'the --input image' }], overwrite });

  it.each([
    // [output, overwrite, message]
    [join(root, 'ct', 'labelsTs', 'ct_ts_000.nii.gz'), true, `--out: ${root}/ct/labelsTs is inside labelsTs/, a dataset's label folder${NEVER_INTO_DATASET}`],
    [join(root, 'runs', 'gt-link', 'new.nii.gz'), true, `--out: ${root}/ct/labelsTs is inside labelsTs/, a dataset's label folder${NEVER_INTO_DATASET}`],
    [input, true, `--out: ${input} is the --input image, an input of this command; purify never writes over its own input. Choose another path.`],
    // another spelling of the input, and a hard link to it
    [join(root, 'runs', 'x', '..', 'x', 'ct.nii.gz'), true, `--out: ${input} is the --input image, an input of this command; purify never writes over its own input. Choose another path.`],
    [hardLink, true, `--out: ${hardLink} is the --input image, an input of this command; purify never writes over its own input. Choose another path.`],
    [join(root, 'ct', 'dataset.json'), false, `--out: ${root}/ct/dataset.json already exists; pass --overwrite to replace it.`],
    [join(root, 'runs', 'x'), true, `--out: ${root}/runs/x is a folder; expected a file name.`],
  ])('refuses %s (overwrite %p)', (out, overwrite, message) => {
    refused(() => policy(overwrite).file(out, '--out'), message);
  });

  it('allows a new file, and an existing one with --overwrite', () => {
    expect(policy().file(join(root, 'runs', 'x', 'labels.nii.gz'), '--out')).toBe(join(root, 'runs', 'x', 'labels.nii.gz'));
    expect(policy(true).file(join(root, 'ct', 'dataset.json'), '--out')).toBe(join(root, 'ct', 'dataset.json'));
  });

  it('refuses two outputs on one path', () => {
    const p = policy();
    p.file(join(root, 'runs', 'x', 'labels.nii.gz'), '--out');
    refused(() => p.file(join(root, 'runs', 'x', 'labels.nii.gz'), '--probabilities'), `--probabilities: ${root}/runs/x/labels.nii.gz is also the --out output; give each output its own path.`);
  });
});

describe('OutputPolicy.filesIn', () => {
  const dir = join(root, 'runs', 'reliability');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'slice-004.png'), 'earlier figure');
  writeFileSync(join(dir, 'notes.txt'), 'not ours');
  const outputs = { names: ['result.json'], pattern: /^slice-\d{3,}\.png$/ };

  it('refuses a folder holding files of an earlier run, and allows it with --overwrite', () => {
    refused(() => new OutputPolicy().filesIn(dir, '--out', outputs), `--out: ${dir} already holds slice-004.png from an earlier run; pass --overwrite to replace them, or choose another folder.`);
    expect(new OutputPolicy({ overwrite: true }).filesIn(dir, '--out', outputs)).toBe(dir);
  });

  it('allows a folder holding only other files, or none yet', () => {
    expect(new OutputPolicy().filesIn(dir, '--out', { names: ['result.json'] })).toBe(dir);
    expect(new OutputPolicy().filesIn(join(root, 'runs', 'new'), '--out', outputs)).toBe(join(root, 'runs', 'new'));
  });

  it('refuses, even with --overwrite, a folder where an output would replace an input', () => {
    const input = { path: join(dir, 'result.json'), what: 'the --input image' };
    refused(
      () => new OutputPolicy({ inputs: [input], overwrite: true }).filesIn(dir, '--out', outputs),
      `--out: ${dir} would get result.json, which is the --input image, an input of this command; purify never writes over its own input. Choose another folder.`,
    );
  });

  it('refuses a dataset label folder', () => {
    refused(() => new OutputPolicy({ overwrite: true }).filesIn(join(root, 'ct', 'labelsTs'), '--out', outputs), `--out: ${root}/ct/labelsTs is inside labelsTs/, a dataset's label folder${NEVER_INTO_DATASET}`);
  });
});

describe('canonicalPath', () => {
  it.each([
    // [path, canonical]: links resolved in the part that exists, the rest kept as written
    [join(root, 'runs', 'gt-link', 'ct_ts_000.nii.gz'), join(root, 'ct', 'labelsTs', 'ct_ts_000.nii.gz')],
    [join(root, 'runs', 'gt-link', 'missing', 'p.nii.gz'), join(root, 'ct', 'labelsTs', 'missing', 'p.nii.gz')],
    [join(root, 'runs', '..', 'ct'), join(root, 'ct')],
  ])('%s → %s', (path, canonical) => {
    // tmpdir() itself may be a link (macOS /var → /private/var): compare with the real root.
    expect(canonicalPath(path)).toBe(canonical.replace(root, canonicalPath(root)));
  });
});
