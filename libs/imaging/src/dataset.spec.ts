import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError, DatasetWriter, openDataset, openImageFolder, validateDataset } from './dataset';
import { NiftiError, encodeNifti, writeNifti } from './nifti';
import { makeVolume, type Vec3 } from './volume';

const base = mkdtempSync(join(tmpdir(), 'dataset-'));
const geometry = { spacingXyzMm: [0.8, 0.8, 2.5] as Vec3, originLpsMm: [1, 2, 3] as Vec3 };
const image = (seed: number, shape: Vec3 = [2, 3, 4]) => makeVolume(Int16Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => i * seed - 50), shape, geometry);
const label = (values: number[], shape: Vec3 = [2, 3, 4]) => makeVolume(Uint8Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => values[i % values.length]!), shape, geometry);

describe('DatasetWriter → openDataset', () => {
  const root = join(base, 'written');
  const labels = new Map([[0, 'background'], [1, 'liver'], [2, 'spleen']]);

  it('writes the nnU-Net v2 layout with dataset.json last, and reads it back', async () => {
    const w = new DatasetWriter(root, { name: 'phantom', channelNames: ['CT'], labels, extra: { seed: 7 } });
    w.writeCase({ id: 'ct_000', split: 'train', channels: [image(1)], label: label([0, 1, 2]) });
    w.writeCase({ id: 'ct_001', split: 'train', channels: [image(2)], label: label([0, 1]) });
    w.writeCase({ id: 'mr_000', split: 'test', channels: [image(3)], label: label([2]) });
    expect(existsSync(join(root, 'dataset.json'))).toBe(false);
    w.finish();
    expect(JSON.parse(readFileSync(join(root, 'dataset.json'), 'utf8'))).toEqual({
      name: 'phantom',
      description: '',
      channel_names: { '0': 'CT' },
      labels: { background: 0, liver: 1, spleen: 2 },
      numTraining: 2,
      numTest: 1,
      file_ending: '.nii.gz',
      seed: 7,
    });
    expect(readdirSync(join(root, 'imagesTr'))).toEqual(['ct_000_0000.nii.gz', 'ct_001_0000.nii.gz']);
    expect(readdirSync(join(root, 'labelsTs'))).toEqual(['mr_000.nii.gz']);

    const ds = openDataset(root);
    expect(ds.layout).toBe('msd');
    expect(ds.channelNames).toEqual(['CT']);
    expect([...ds.labels]).toEqual([...labels]);
    expect(ds.cases.map((c) => [c.id, c.split])).toEqual([['ct_000', 'train'], ['ct_001', 'train'], ['mr_000', 'test']]);
    const c = ds.getCase('ct_001')!;
    expect(Array.from((await c.loadImage()).data)).toEqual(Array.from(image(2).data));
    expect(Array.from((await c.loadLabel())!.data)).toEqual(Array.from(label([0, 1]).data));
    expect(await validateDataset(ds)).toEqual([]);
  });

  it('refuses bad cases', () => {
    const w = new DatasetWriter(join(base, 'refuse'), { name: 'x', channelNames: ['CT'], labels });
    expect(() => w.writeCase({ id: 'a_0000', split: 'train', channels: [image(1)] })).toThrow(new DatasetError('case id must be letters, digits, \'.\', \'-\', \'_\' and not end in _NNNN, got "a_0000"'));
    expect(() => w.writeCase({ id: 'a', split: 'train', channels: [image(1), image(1)] })).toThrow(new DatasetError('case a: 2 channels given, the dataset has 1 (CT)'));
    expect(() => w.writeCase({ id: 'a', split: 'train', channels: [image(1)], label: label([0], [2, 3, 5]) })).toThrow(
      new DatasetError('case a: label does not match the image: shape [z, y, x] [2, 3, 5] differs from [2, 3, 4]'),
    );
  });
});

describe('MSD / AMOS dataset.json (int → name labels, training list)', () => {
  const root = join(base, 'amos');
  mkdirSync(join(root, 'imagesTr'), { recursive: true });
  writeNifti(join(root, 'imagesTr', 'amos_0001.nii.gz'), image(1));
  writeNifti(join(root, 'labelsTr', 'amos_0001.nii.gz'), label([0, 1, 6]));
  // amos_0002: label declares 7 (undeclared) and has another shape
  writeNifti(join(root, 'imagesTr', 'amos_0002.nii.gz'), image(2));
  writeNifti(join(root, 'labelsTr', 'amos_0002.nii.gz'), label([0, 7], [2, 3, 5]));
  // amos_0003: the image file is missing
  writeNifti(join(root, 'labelsTr', 'amos_0003.nii.gz'), label([0]));
  // amos_0004: label origin shifted by 5 mm
  writeNifti(join(root, 'imagesTr', 'amos_0004.nii.gz'), image(4));
  writeNifti(join(root, 'labelsTr', 'amos_0004.nii.gz'), makeVolume(new Uint8Array(24), [2, 3, 4], { ...geometry, originLpsMm: [6, 2, 3] }));
  writeFileSync(
    join(root, 'dataset.json'),
    JSON.stringify({
      name: 'AMOS',
      modality: { '0': 'CT' },
      labels: { '0': 'background', '1': 'spleen', '6': 'liver' },
      numTraining: 5,
      training: [1, 2, 3, 4].map((i) => ({ image: `./imagesTr/amos_000${i}.nii.gz`, label: `./labelsTr/amos_000${i}.nii.gz` })),
      test: [],
    }),
  );

  it('reads labels int → name and the case list', () => {
    const ds = openDataset(join(root, 'dataset.json'));
    expect([...ds.labels]).toEqual([[0, 'background'], [1, 'spleen'], [6, 'liver']]);
    expect(ds.cases.map((c) => c.id)).toEqual(['amos_0001', 'amos_0002', 'amos_0003', 'amos_0004']);
    expect(ds.getCase('amos_0001')!.imagePaths).toEqual([join(root, 'imagesTr', 'amos_0001.nii.gz')]);
  });

  it('reports every problem with file names', async () => {
    const ds = openDataset(root);
    const problems = await validateDataset(ds);
    const f = (p: string) => join(root, p);
    expect(problems.map((p) => [p.kind, p.message])).toEqual([
      // numTraining 5 vs 4 listed
      ['count-mismatch', `${f('dataset.json')}: numTraining is 5 but 4 training cases were found`],
      // amos_0002: shape [2, 3, 5] vs [2, 3, 4], and value 7 undeclared
      ['shape-mismatch', `${f('labelsTr/amos_0002.nii.gz')}: label does not match image ${f('imagesTr/amos_0002.nii.gz')}: shape [z, y, x] [2, 3, 5] differs from [2, 3, 4]`],
      ['undeclared-label', `${f('labelsTr/amos_0002.nii.gz')}: label value 7 not declared in dataset.json labels (declared: 0, 1, 6)`],
      // amos_0003: missing image
      ['missing-file', `${f('imagesTr/amos_0003.nii.gz')}: file not found (case amos_0003, image channel 0)`],
      // amos_0004: origin (6, 2, 3) vs (1, 2, 3)
      ['geometry-mismatch', `${f('labelsTr/amos_0004.nii.gz')}: label does not match image ${f('imagesTr/amos_0004.nii.gz')}: origin (LPS) [6, 2, 3] mm differs from [1, 2, 3] mm`],
    ]);
    expect(problems.map((p) => p.caseId)).toEqual([undefined, 'amos_0002', 'amos_0002', 'amos_0003', 'amos_0004']);
  });
});

describe('nnU-Net v1 list with _0000 files, NaN images', () => {
  const root = join(base, 'v1');
  writeNifti(join(root, 'imagesTr', 'liver_0_0000.nii.gz'), makeVolume(new Float32Array([0, NaN, 1, 2]), [1, 2, 2]));
  writeNifti(join(root, 'labelsTr', 'liver_0.nii.gz'), makeVolume(new Uint8Array([0, 1, 1, 0]), [1, 2, 2]));
  writeFileSync(
    join(root, 'dataset.json'),
    JSON.stringify({ name: 'Task03_Liver', modality: { '0': 'CT' }, labels: { '0': 'background', '1': 'liver' }, numTraining: 1, training: [{ image: './imagesTr/liver_0.nii.gz', label: './labelsTr/liver_0.nii.gz' }] }),
  );

  it('resolves the channel suffix and reports NaN voxels', async () => {
    const ds = openDataset(root);
    expect(ds.cases[0]!.imagePaths).toEqual([join(root, 'imagesTr', 'liver_0_0000.nii.gz')]);
    const problems = await validateDataset(ds);
    expect(problems.map((p) => p.message)).toEqual([`${join(root, 'imagesTr', 'liver_0_0000.nii.gz')}: voxel [z, y, x] = [0, 0, 1] is NaN; images must be finite`]);
  });
});

describe('4D images in a dataset', () => {
  // imagesTr/series_0000.nii holds 2 volumes of [2, 3, 4] (dims 4 × 3 × 2 × 2); taking the
  // first one silently would train on half a series, so loading and validation refuse it.
  const root = join(base, 'four-d');
  const path = join(root, 'imagesTr', 'series_0000.nii');
  mkdirSync(join(root, 'imagesTr'), { recursive: true });
  const bytes = encodeNifti(image(1, [4, 3, 4]));
  [4, 4, 3, 2, 2].forEach((d, i) => new DataView(bytes.buffer).setInt16(40 + 2 * i, d, true));
  writeFileSync(path, bytes);
  writeFileSync(join(root, 'dataset.json'), JSON.stringify({ name: 'fourd', channel_names: { '0': 'MR' }, labels: { background: 0, liver: 1 }, file_ending: '.nii' }));
  const message = `${path}: holds 2 volumes (dims x, y, z, … = 4 × 3 × 2 × 2) but one 3D image is expected; pick one with a volume index in 0..1 (\`--volume-index N\` where the command has it), or save that volume as its own 3D file`;

  it('loadImage refuses it, naming the file, its dims and how to pick a volume', async () => {
    const load = openDataset(root).getCase('series')!.loadImage();
    await expect(load).rejects.toThrow(NiftiError);
    await expect(load).rejects.toThrow(message);
  });

  it('validateDataset reports it as unreadable', async () => {
    const problems = await validateDataset(openDataset(root));
    expect(problems.map((p) => [p.kind, p.message])).toEqual([['unreadable', message]]);
  });
});

describe('plain folders', () => {
  it('pairs images with labels by case id and reports missing labels', async () => {
    const images = join(base, 'target', 'images');
    const labels = join(base, 'target', 'labels');
    writeNifti(join(images, 'b.nii.gz'), image(1));
    writeNifti(join(images, 'a.nii'), image(2));
    writeNifti(join(labels, 'a.nii.gz'), label([0, 3]));
    const ds = openDataset(images, { labelsDir: labels });
    expect(ds.layout).toBe('folder');
    expect(ds.cases.map((c) => [c.id, c.labelPath])).toEqual([
      ['a', join(labels, 'a.nii.gz')],
      ['b', join(labels, 'b.nii.gz')],
    ]);
    expect((await validateDataset(ds)).map((p) => p.message)).toEqual([`${join(labels, 'b.nii.gz')}: file not found (case b, label)`]);
  });

  it('reads an unlabelled folder with channel suffixes', async () => {
    const images = join(base, 'unlabelled');
    writeNifti(join(images, 'c1_0000.nii.gz'), image(1));
    writeNifti(join(images, 'c1_0001.nii.gz'), image(2));
    const ds = openImageFolder(images);
    expect(ds.channelNames).toEqual(['0', '1']);
    expect(ds.cases.map((c) => [c.id, c.imagePaths.length, c.labelPath])).toEqual([['c1', 2, undefined]]);
    expect(await ds.cases[0]!.loadLabel()).toBeUndefined();
    expect(await validateDataset(ds)).toEqual([]);
  });
});

describe('bad dataset.json', () => {
  const cases = [
    // not JSON
    { name: 'invalid JSON', json: '{"name": ', message: 'invalid dataset.json: Unexpected end of JSON input' },
    // a label value that is a list (nnU-Net region-based)
    { name: 'region labels', json: JSON.stringify({ labels: { background: 0, tumour: [1, 2] } }), message: '"labels" entry "tumour": [1,2] is neither name → integer (nnU-Net v2) nor integer → name (MSD); region-based labels are not supported' },
    // training entry without image
    { name: 'bad training entry', json: JSON.stringify({ labels: { '0': 'bg' }, training: [{ label: 'x' }] }), message: '"training"[0] must be a path or {"image": path, "label": path}, got {"label":"x"}' },
  ];
  it.each(cases)('$name', ({ name, json, message }) => {
    const root = join(base, `bad-${name.replace(/ /g, '-')}`);
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'dataset.json'), json);
    let err: unknown;
    try {
      openDataset(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toBe(`${join(root, 'dataset.json')}: ${message}`);
  });

  it('names a missing path', () => {
    expect(() => openDataset(join(base, 'nope'))).toThrow(new DatasetError(`${join(base, 'nope')}: no such file or folder`));
  });
});
