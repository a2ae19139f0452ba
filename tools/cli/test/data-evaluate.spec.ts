// Integration: `purify data generate`, `data inspect` and `evaluate` as a user runs
// them, with `evaluate` checked against an independent numpy/scipy oracle.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readNifti, writeNifti, makeVolume } from '@purify/imaging';

const BIN = join(__dirname, '..', 'bin', 'purify.js');
const ORACLE = join(dirname(require.resolve('@purify/metrics/package.json')), 'test', 'scipy_oracle.py');
const PYTHON = process.env['PURIFY_TEST_PYTHON'] ?? '/usr/bin/python3';

function purify(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

describe('purify data and evaluate', () => {
  const out = mkdtempSync(join(tmpdir(), 'purify-data-'));
  const gen = purify(['data', 'generate', '--out', out, '--train-cases', '1', '--test-cases', '2', '--size', '48', '--slices', '12', '--json']);

  it('generates all three domains with previews', () => {
    expect(gen.status).toBe(0);
    const manifest = JSON.parse(gen.stdout) as { domains: { domain: string; testCases: string[] }[]; previews: string[] };
    expect(manifest.domains.map((d) => d.domain)).toEqual(['ct', 'mr', 'cbct']);
    expect(manifest.previews.length).toBe(3 * 3);
    expect(readdirSync(join(out, 'previews')).filter((f) => f.endsWith('.png')).length).toBe(9);
  });

  it('inspect finds no problem in a generated dataset and lists a broken one', () => {
    expect(purify(['data', 'inspect', join(out, 'ct')]).stdout).toContain('no problems found');
    // Break a copy: a label with a value dataset.json does not declare.
    const broken = mkdtempSync(join(tmpdir(), 'purify-broken-'));
    execFileSync('cp', ['-r', join(out, 'ct'), broken]);
    return readNifti(join(broken, 'ct/labelsTr/ct_tr_000.nii.gz')).then((label) => {
      const data = Uint8Array.from(label.data);
      data[0] = 9;
      writeNifti(join(broken, 'ct/labelsTr/ct_tr_000.nii.gz'), makeVolume(data, label.shape, label));
      const result = purify(['data', 'inspect', join(broken, 'ct')]);
      expect(result.status).toBe(1);
      expect(result.stdout).toContain('label value 9 not declared in dataset.json labels (declared: 0, 1, 2, 3, 4)');
    });
  });

  it('evaluate agrees with the scipy oracle (Dice 1e-4, distances 1e-3 mm)', async () => {
    // Predictions: the other test case's labels on this case's grid — a realistic, imperfect segmentation.
    const gtDir = join(out, 'ct', 'labelsTs');
    const predDir = join(out, 'pred');
    mkdirSync(predDir);
    const ids = ['ct_ts_000', 'ct_ts_001'];
    const gts = await Promise.all(ids.map((id) => readNifti(join(gtDir, `${id}.nii.gz`))));
    ids.forEach((id, i) => {
      const other = gts[1 - i];
      const mine = gts[i];
      if (!other || !mine) throw new Error('missing case');
      writeNifti(join(predDir, `${id}.nii.gz`), makeVolume(Uint8Array.from(other.data), mine.shape, mine));
    });
    const result = purify(['evaluate', '--pred', predDir, '--gt', gtDir, '--labels', '1,2,3,4', '--json']);
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout) as { perCase: { caseId: string; labels: { label: number; dice: number; hd95Mm: number | null; assdMm: number | null; hdMm: number | null }[] }[] };

    const request = {
      op: 'metrics',
      cases: ids.map((id, i) => {
        const gt = gts[i];
        const pred = gts[1 - i];
        if (!gt || !pred) throw new Error('missing case');
        return { shape: gt.shape, spacingXyzMm: gt.spacingXyzMm, pred: Array.from(pred.data), gt: Array.from(gt.data), labels: [1, 2, 3, 4], toleranceMm: 1 };
      }),
    };
    const oracle = JSON.parse(execFileSync(PYTHON, [ORACLE], { input: JSON.stringify(request), maxBuffer: 1 << 28 }).toString()) as {
      results: { label: number; dice: number; hd95: number | null; assd: number | null; hd: number | null }[][];
    };
    ids.forEach((id, i) => {
      const mine = summary.perCase.find((c) => c.caseId === id);
      for (const ref of oracle.results[i] ?? []) {
        const m = mine?.labels.find((l) => l.label === ref.label);
        expect(m?.dice).toBeCloseTo(ref.dice, 4);
        for (const [ours, theirs] of [[m?.hd95Mm, ref.hd95], [m?.assdMm, ref.assd], [m?.hdMm, ref.hd]] as const) {
          if (theirs === null) expect(ours).toBeNull();
          else expect(Math.abs((ours as number) - theirs)).toBeLessThan(1e-3);
        }
      }
    });
  });

  it('evaluate refuses ground truth and predictions on different grids, naming the case', () => {
    const a = mkdtempSync(join(tmpdir(), 'purify-grid-'));
    writeNifti(join(a, 'p.nii.gz'), makeVolume(new Uint8Array(8), [2, 2, 2], { spacingXyzMm: [1, 1, 1] }));
    writeNifti(join(a, 'g.nii.gz'), makeVolume(new Uint8Array(8), [2, 2, 2], { spacingXyzMm: [1, 1, 2] }));
    const result = purify(['evaluate', '--pred', join(a, 'p.nii.gz'), '--gt', join(a, 'g.nii.gz')]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^purify: case g: prediction .*p\.nii\.gz and ground truth .*g\.nii\.gz are on different grids: spacing/);
  });

  it('evaluate names cases without a counterpart', () => {
    const a = mkdtempSync(join(tmpdir(), 'purify-match-'));
    mkdirSync(join(a, 'p'));
    mkdirSync(join(a, 'g'));
    const v = makeVolume(new Uint8Array(8), [2, 2, 2]);
    writeNifti(join(a, 'p', 'case1.nii.gz'), v);
    writeNifti(join(a, 'g', 'case1.nii.gz'), v);
    writeNifti(join(a, 'g', 'case2.nii.gz'), v);
    copyFileSync(join(a, 'g', 'case1.nii.gz'), join(a, 'p', 'case3.nii.gz'));
    writeFileSync(join(a, 'p', 'notes.txt'), 'ignored');
    const result = purify(['evaluate', '--pred', join(a, 'p'), '--gt', join(a, 'g')]);
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe('purify: cases do not match by id: no prediction for case2; no ground truth for case3');
  });

  it('evaluate refuses --pred and --gt naming the same folder (issue #25: it reported Dice 1.0000)', () => {
    const gt = join(out, 'ct', 'labelsTs');
    const result = purify(['evaluate', '--pred', gt, '--gt', gt]);
    expect(result.stderr.trim()).toBe(`purify: --pred and --gt are the same path (${gt}): a prediction scored against itself always gets Dice 1`);
    expect(result.status).toBe(2);
  });

  it('evaluate names a label that no case contains as absent and averages without it', () => {
    // One case: label 1 G = {0, 1}, P = {1, 2} → Dice 0.5; label 2 is in neither → absent.
    const a = mkdtempSync(join(tmpdir(), 'purify-absent-'));
    writeNifti(join(a, 'p.nii.gz'), makeVolume(Uint8Array.from([0, 1, 1, 0]), [1, 2, 2]));
    writeNifti(join(a, 'g.nii.gz'), makeVolume(Uint8Array.from([1, 1, 0, 0]), [1, 2, 2]));
    const result = purify(['evaluate', '--pred', join(a, 'p.nii.gz'), '--gt', join(a, 'g.nii.gz'), '--labels', '1,2']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('absent (empty in every prediction and ground truth; not scored, not averaged): label_2');
    expect(result.stdout).toContain('organ average over 1 labels, 1 cases: Dice 0.5000');
  });

  it.each([
    // [args, exit code, stderr fragment]
    [['data', 'generate', '--out', '/tmp/x', '--domains', 'ct,pet'], 2, 'purify: --domains: unknown domain "pet" (expected a comma-separated subset of ct,mr,cbct)'],
    [['data', 'generate', '--out', '/tmp/x', '--size', '8'], 1, "option '--size <px>' argument '8' is invalid. must be an integer in [16, 1024], got \"8\""],
    [['data', 'inspect', '/nonexistent/file.nii.gz'], 2, 'purify: /nonexistent/file.nii.gz: no such file or folder'],
    [['evaluate', '--pred', '/nonexistent', '--gt', '/tmp'], 2, 'purify: --pred: /nonexistent does not exist'],
    [['evaluate', '--pred', '/tmp', '--gt', '/tmp', '--labels', '1,x'], 2, 'purify: --labels must be a comma-separated list of positive integers, got "1,x"'],
  ])('refuses bad input: %p', (args, code, message) => {
    const result = purify(args);
    expect(result.status).toBe(code);
    expect(result.stderr).toContain(message);
  });
});
