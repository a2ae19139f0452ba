// Issue #25, items 1, 2 and 4, as a user meets them: commands that would have
// written over ground truth or over their own input, or worked on one volume of
// a 4D file, with exit code 0. Each refusal happens before anything is trained
// or sent (the segmenter address is a closed port, so a command that got past
// its checks fails with "cannot reach the segmenter" instead).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNifti } from '@purify/imaging';
import { purify, squareCase, writeNifti4d, writeSquareDataset } from './files.test-util';

const NEVER_INTO_DATASET = "; purify never writes into a dataset's image or label folders (that is how ground truth gets replaced). Choose a folder outside the dataset.";
const CLOSED = ['--segmenter', '127.0.0.1:1'];

describe('train-source --predict-test (item 1)', () => {
  const root = mkdtempSync(join(tmpdir(), 'purify-predict-test-'));
  // 3 training cases, test case sq_003 with ground truth in labelsTs/.
  const data = writeSquareDataset(join(root, 'ct'), 3, 1);
  const gtFile = join(data, 'labelsTs', 'sq_003.nii.gz');
  const trainArgs = ['train-source', '--data', data, '--steps', '1', '--size', '16', '--batch-size', '2', '--val-cases', '1', '--backend', 'cpu', '--workers', '1'];

  it("is refused when it names the dataset's labelsTs/, before training, and the ground truth stays", () => {
    const before = readFileSync(gtFile);
    const artifacts = join(root, 'artifacts-refused');
    const result = purify([...trainArgs, '--out', artifacts, '--predict-test', join(data, 'labelsTs')]);
    expect(result.stderr.trim()).toBe(`purify: --predict-test: ${data}/labelsTs is inside labelsTs/, a dataset's label folder${NEVER_INTO_DATASET}`);
    expect(result.status).toBe(2);
    expect(readFileSync(gtFile).equals(before)).toBe(true);
    expect(existsSync(artifacts)).toBe(false); // nothing trained or published
  });

  it('writes to a fresh folder, then refuses to replace those predictions without --overwrite', () => {
    const preds = join(root, 'predictions');
    const first = purify([...trainArgs, '--out', join(root, 'artifacts'), '--predict-test', preds]);
    expect(first.status).toBe(0);
    expect(first.stdout).toContain(`evaluate with: purify evaluate --pred ${preds} --gt ${data}/labelsTs`);
    expect(existsSync(join(preds, 'sq_003.nii.gz'))).toBe(true);

    const again = purify([...trainArgs, '--out', join(root, 'artifacts'), '--predict-test', preds]);
    expect(again.stderr.trim()).toBe(`purify: --predict-test: ${preds}/sq_003.nii.gz already exists; pass --overwrite to replace it.`);
    expect(again.status).toBe(2);
  });
});

describe('segment (item 2)', () => {
  const root = mkdtempSync(join(tmpdir(), 'purify-segment-out-'));
  const image = join(root, 'ct.nii.gz');
  writeNifti(image, squareCase([4, 16, 16], 3).image);
  const existing = join(root, 'old-labels.nii.gz');
  writeFileSync(existing, 'an earlier result');
  mkdirSync(join(root, 'ds', 'labelsTr'), { recursive: true });

  it.each([
    // [what, extra args, stderr]
    ['--out = --input', ['--out', image], `purify: --out: ${image} is the --input image, an input of this command; purify never writes over its own input. Choose another path.`],
    ['--out = --input, even with --overwrite', ['--out', image, '--overwrite'], `purify: --out: ${image} is the --input image, an input of this command; purify never writes over its own input. Choose another path.`],
    ['--out inside labelsTr/', ['--out', join(root, 'ds', 'labelsTr', 'x.nii.gz')], `purify: --out: ${root}/ds/labelsTr is inside labelsTr/, a dataset's label folder${NEVER_INTO_DATASET}`],
    ['an existing --out', ['--out', existing], `purify: --out: ${existing} already exists; pass --overwrite to replace it.`],
    [
      '--probabilities = --out',
      ['--out', join(root, 'new.nii.gz'), '--probabilities', join(root, 'new.nii.gz')],
      `purify: --probabilities: ${root}/new.nii.gz is also the --out output; give each output its own path.`,
    ],
    ['--probabilities = --input', ['--out', join(root, 'new.nii.gz'), '--probabilities', image], `purify: --probabilities: ${image} is the --input image, an input of this command; purify never writes over its own input. Choose another path.`],
  ])('refuses %s, leaving the files as they were', (_what, args, stderr) => {
    const before = [readFileSync(image), readFileSync(existing)];
    const result = purify(['segment', '--model', 'm', '--input', image, ...args, ...CLOSED]);
    expect(result.stderr.trim()).toBe(stderr);
    expect(result.status).toBe(2);
    expect(readFileSync(image).equals(before[0] as Buffer)).toBe(true);
    expect(readFileSync(existing).equals(before[1] as Buffer)).toBe(true);
  });

  it('with --overwrite, an existing --out passes the checks (and the command goes on to the segmenter)', () => {
    const result = purify(['segment', '--model', 'm', '--input', image, '--out', existing, '--overwrite', ...CLOSED]);
    expect(result.stderr).toContain('cannot reach the segmenter at 127.0.0.1:1');
    expect(result.status).toBe(1);
  });
});

describe('other writing commands', () => {
  const root = mkdtempSync(join(tmpdir(), 'purify-writers-'));

  it('data generate refuses an --out holding an earlier generation', () => {
    mkdirSync(join(root, 'gen', 'ct'), { recursive: true });
    const result = purify(['data', 'generate', '--out', join(root, 'gen'), '--domains', 'ct']);
    expect(result.stderr.trim()).toBe(`purify: --out: ${root}/gen already holds ct from an earlier run; pass --overwrite to replace them, or choose another folder.`);
    expect(result.status).toBe(2);
  });

  it('pacs export-phantom refuses a folder holding another series, and writes it with --overwrite', () => {
    mkdirSync(join(root, 'dicom'));
    writeFileSync(join(root, 'dicom', '0001.dcm'), 'another series');
    const refused = purify(['pacs', 'export-phantom', '--out', join(root, 'dicom'), '--size', '16', '--slices', '2']);
    expect(refused.stderr.trim()).toBe(`purify: --out: ${root}/dicom already holds 0001.dcm from an earlier run; pass --overwrite to replace them, or choose another folder.`);
    expect(refused.status).toBe(2);
    expect(readFileSync(join(root, 'dicom', '0001.dcm'), 'utf8')).toBe('another series');
    const replaced = purify(['pacs', 'export-phantom', '--out', join(root, 'dicom'), '--size', '16', '--slices', '2', '--overwrite']);
    expect(replaced.status).toBe(0);
    expect(readFileSync(join(root, 'dicom', '0001.dcm')).subarray(128, 132).toString('latin1')).toBe('DICM');
  });

  it('reliability refuses an --out holding its files from an earlier run', () => {
    const image = join(root, 'ct.nii.gz');
    writeNifti(image, squareCase([4, 16, 16], 3).image);
    mkdirSync(join(root, 'rel'));
    writeFileSync(join(root, 'rel', 'pseudo-label.nii.gz'), 'earlier');
    const result = purify(['reliability', '--model', 'm', '--input', image, '--out', join(root, 'rel'), '--reliability', '127.0.0.1:1']);
    expect(result.stderr.trim()).toBe(`purify: --out: ${root}/rel already holds pseudo-label.nii.gz from an earlier run; pass --overwrite to replace them, or choose another folder.`);
    expect(result.status).toBe(2);
  });

  it('adapt refuses a run folder inside a dataset label folder', () => {
    const result = purify(['adapt', '--source', join(root, 'ct'), '--target', join(root, 'mr'), '--out', join(root, 'mr', 'labelsTr', 'run'), '--trainer', '127.0.0.1:1']);
    expect(result.stderr.trim()).toBe(`purify: --out: ${root}/mr/labelsTr/run is inside labelsTr/, a dataset's label folder${NEVER_INTO_DATASET}`);
    expect(result.status).toBe(2);
  });
});

describe('4D input (item 4)', () => {
  const root = mkdtempSync(join(tmpdir(), 'purify-4d-'));
  // Two volumes of [4, 16, 16]: dims (x, y, z, t) = 16 × 16 × 4 × 2.
  const series = join(root, 'series.nii.gz');
  writeNifti4d(series, [squareCase([4, 16, 16], 3).image, squareCase([4, 16, 16], 5).image]);
  const refusal = (path: string): string =>
    `${path}: holds 2 volumes (dims x, y, z, … = 16 × 16 × 4 × 2) but one 3D image is expected; pick one with a volume index in 0..1 (\`--volume-index N\` where the command has it), or save that volume as its own 3D file`;

  it('segment refuses it without --volume-index, naming the file, its dims and how to pick a volume', () => {
    const result = purify(['segment', '--model', 'm', '--input', series, '--out', join(root, 'labels.nii.gz'), ...CLOSED]);
    expect(result.stderr.trim()).toBe(`purify: --input: ${refusal(series)}`);
    expect(result.status).toBe(2);
  });

  it.each([
    // [--volume-index, stderr fragment, exit code]: 1 is read (the command goes on to the segmenter), 2 is out of range
    ['1', 'cannot reach the segmenter at 127.0.0.1:1', 1],
    ['2', `purify: --input: ${series}: volume index must be an integer in 0..1 (the file holds 2 volumes, dims 16 × 16 × 4 × 2), got 2`, 2],
  ])('segment --volume-index %s', (index, stderr, code) => {
    const result = purify(['segment', '--model', 'm', '--input', series, '--out', join(root, `labels-${index}.nii.gz`), '--volume-index', index, ...CLOSED]);
    expect(result.stderr).toContain(stderr);
    expect(result.status).toBe(code);
  });

  it.each([
    // [which training image is 4D, expected last line of stderr]: the first one is read
    // first (to choose the working spacing), any other while the cases load
    ['sq_000', (image: string) => `purify: case sq_000: cannot read image ${image}: ${refusal(image)}`],
    ['sq_002', (image: string) => `purify: ${refusal(image)}`],
  ])('train-source refuses a dataset whose image %s is 4D', (id, message) => {
    const data = writeSquareDataset(join(root, `ct-${id}`), 3, 0);
    const image = join(data, 'imagesTr', `${id}_0000.nii.gz`);
    writeNifti4d(image, [squareCase([4, 16, 16], 3).image, squareCase([4, 16, 16], 4).image]);
    // --val-cases 0: every case trains, in dataset order, so sq_000 is the first image read.
    const result = purify(['train-source', '--data', data, '--out', join(root, `artifacts-${id}`), '--steps', '1', '--size', '16', '--val-cases', '0', '--backend', 'cpu', '--workers', '1']);
    expect(result.stderr.trim().split('\n').at(-1)).toBe(message(image));
    expect(result.status).toBe(2);
  });
});
