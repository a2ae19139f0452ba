import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { openDataset, readNifti } from '@purify/imaging';
import { GenerateError, caseSeed, generateBenchmark, validateGenerateOptions, type GenerateOptions } from './generate';
import { MR_SLICE_FACTOR } from './render';

// A small grid keeps the suite fast: 32×32 pixels of 12 mm, 8 slices of 24 mm.
const small = { size: 32, slices: 8, fovMm: 384, sliceMm: 24 };
const options = (outDir: string, seed = 3): GenerateOptions => ({ outDir, domains: ['ct', 'mr', 'cbct'], seed, trainCases: 2, testCases: 1, grid: small });

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? files(full) : [full];
  });
}

function snapshot(dir: string): Map<string, Buffer> {
  return new Map(files(dir).map((f) => [relative(dir, f), readFileSync(f)]));
}

describe('generateBenchmark', () => {
  const a = mkdtempSync(join(tmpdir(), 'phantoms-a-'));
  const b = mkdtempSync(join(tmpdir(), 'phantoms-b-'));
  const c = mkdtempSync(join(tmpdir(), 'phantoms-c-'));
  const manifest = generateBenchmark(options(a));
  generateBenchmark(options(b));
  generateBenchmark(options(c, 4));

  it('is deterministic: the same seed writes identical bytes', () => {
    const sa = snapshot(a);
    const sb = snapshot(b);
    expect([...sa.keys()].sort()).toEqual([...sb.keys()].sort());
    for (const [name, bytes] of sa) expect({ name, same: bytes.equals(sb.get(name) as Buffer) }).toEqual({ name, same: true });
  });

  it('a different seed gives different images', () => {
    expect(readFileSync(join(a, 'ct/imagesTr/ct_tr_000_0000.nii.gz')).equals(readFileSync(join(c, 'ct/imagesTr/ct_tr_000_0000.nii.gz')))).toBe(false);
  });

  it('keeps target labels out of the target datasets', () => {
    for (const domain of ['mr', 'cbct']) {
      expect(readdirSync(join(a, domain)).sort()).toEqual(['dataset.json', 'imagesTr', 'imagesTs']);
      expect(readdirSync(join(a, `${domain}-eval`, 'labelsTs'))).toEqual([`${domain}_ts_000.nii.gz`]);
      expect(readdirSync(join(a, `${domain}-oracle`, 'labelsTr')).sort()).toEqual([`${domain}_tr_000.nii.gz`, `${domain}_tr_001.nii.gz`]);
    }
    expect(readdirSync(join(a, 'ct')).sort()).toEqual(['dataset.json', 'imagesTr', 'imagesTs', 'labelsTr', 'labelsTs']);
  });

  it('writes datasets that the dataset reader opens, with the declared labels', async () => {
    const ct = openDataset(join(a, 'ct'));
    expect(ct.cases.map((x) => x.id).sort()).toEqual(['ct_tr_000', 'ct_tr_001', 'ct_ts_000']);
    expect([...ct.labels.entries()].sort((x, y) => x[0] - y[0])).toEqual([
      [0, 'background'],
      [1, 'liver'],
      [2, 'spleen'],
      [3, 'right_kidney'],
      [4, 'left_kidney'],
    ]);
    const mrLabels = await Promise.all(openDataset(join(a, 'mr')).cases.map((x) => x.loadLabel()));
    expect(mrLabels).toEqual([undefined, undefined, undefined]);
  });

  it('gives MR thicker, fewer slices and every organ in every labelled case', async () => {
    const mr = await readNifti(join(a, 'mr-eval/labelsTs/mr_ts_000.nii.gz'));
    // 8 CT slices of 24 mm → round(8 / 1.5) = 5 MR slices of 36 mm.
    expect(mr.shape).toEqual([Math.round(8 / MR_SLICE_FACTOR), 32, 32]);
    expect(mr.spacingXyzMm).toEqual([12, 12, 24 * MR_SLICE_FACTOR]);
    for (const path of ['ct/labelsTr/ct_tr_000.nii.gz', 'ct/labelsTr/ct_tr_001.nii.gz', 'cbct-oracle/labelsTr/cbct_tr_000.nii.gz']) {
      const labels = await readNifti(join(a, path));
      const present = new Set(labels.data);
      expect({ path, organs: [1, 2, 3, 4].every((l) => present.has(l)) }).toEqual({ path, organs: true });
    }
  });

  it('shifts the intensity ordering of organs between CT and MR', () => {
    const order = (domain: string) =>
      [...(manifest.domains.find((d) => d.domain === domain)?.intensity ?? [])]
        .filter((s) => s.label >= 1)
        .sort((x, y) => x.mean - y.mean)
        .map((s) => s.name);
    // CT: liver darkest of the four organs; MR (fat-suppressed T2): the liver is still darkest but
    // spleen and kidneys sit far above it.
    expect(order('ct')[0]).toBe('liver');
    const ct = manifest.domains.find((d) => d.domain === 'ct')?.intensity ?? [];
    const mr = manifest.domains.find((d) => d.domain === 'mr')?.intensity ?? [];
    const liverCt = ct.find((s) => s.label === 1)?.mean ?? NaN;
    const spleenCt = ct.find((s) => s.label === 2)?.mean ?? NaN;
    const liverMr = mr.find((s) => s.label === 1)?.mean ?? NaN;
    const spleenMr = mr.find((s) => s.label === 2)?.mean ?? NaN;
    // Spleen/liver contrast: ~1.2× in CT HU, ~1.5× or more in MR.
    expect(spleenCt / liverCt).toBeLessThan(1.35);
    expect(spleenMr / liverMr).toBeGreaterThan(1.35);
    expect(existsSync(join(a, 'intensity-stats.md'))).toBe(true);
  });

  it('derives distinct per-case seeds', () => {
    const seeds = new Set<number>();
    for (const d of ['ct', 'mr', 'cbct'] as const) for (const s of ['train', 'test'] as const) for (let i = 0; i < 50; i++) seeds.add(caseSeed(1, d, s, i));
    expect(seeds.size).toBe(300);
  });

  it.each([
    // [case, override, message]
    ['no domains', { domains: [] }, '--domains must name at least one of ct, mr, cbct'],
    ['unknown domain', { domains: ['pet'] }, 'unknown domain "pet" (expected ct, mr or cbct)'],
    ['negative seed', { seed: -1 }, '--seed must be a non-negative integer, got -1'],
    ['tiny image', { grid: { ...small, size: 8 } }, '--size must be an integer in [16, 1024], got 8'],
    ['no training cases', { trainCases: 0 }, 'train cases must be an integer ≥ 1, got 0'],
  ])('refuses %s', (_name, override, message) => {
    expect(() => validateGenerateOptions({ ...options('/tmp/x'), ...(override as Partial<GenerateOptions>) })).toThrow(new GenerateError(message));
  });
});
