import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { gridDifference, NiftiError, readNifti, type Volume } from '@purify/imaging';
import { computeCaseMetrics, labelValues, MetricsAccumulator, MetricsError, type MeanStd, type MetricsSummary } from '@purify/metrics';
import { CliError, output, table } from '../cli-util';
import { Progress } from '../progress';
import { canonicalPath } from '../write-safety';

const NIFTI = /\.nii(\.gz)?$/;

/** Case id of a label-map file: its name without .nii/.nii.gz. */
function caseIdOf(path: string): string {
  return basename(path).replace(NIFTI, '');
}

/** A file, or every NIfTI file in a folder, keyed by case id. */
function collect(path: string, what: string): Map<string, string> {
  const abs = resolve(path);
  let isDir: boolean;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    throw new CliError(`--${what}: ${abs} does not exist`, 2);
  }
  if (!isDir) {
    if (!NIFTI.test(abs)) throw new CliError(`--${what}: ${abs} is not a .nii or .nii.gz file`, 2);
    return new Map([[caseIdOf(abs), abs]]);
  }
  const files = readdirSync(abs).filter((f) => NIFTI.test(f)).sort();
  if (files.length === 0) throw new CliError(`--${what}: ${abs} holds no .nii/.nii.gz files`, 2);
  return new Map(files.map((f) => [caseIdOf(f), join(abs, f)]));
}

/** The label set a dataset.json in or up to two folders above the ground truth declares: value → name, and the file. */
function datasetLabels(gtPath: string): { names: Map<number, string>; jsonPath: string } | undefined {
  let dir = statSync(gtPath).isDirectory() ? gtPath : dirname(gtPath);
  for (let i = 0; i < 3; i++) {
    const json = join(dir, 'dataset.json');
    if (existsSync(json)) {
      try {
        const labels = (JSON.parse(readFileSync(json, 'utf8')) as { labels?: Record<string, unknown> }).labels ?? {};
        // nnU-Net v2 maps name → int; MSD/AMOS map "int" → name. Region-based (list) labels are skipped.
        const entries = Object.entries(labels).map(([k, v]): [number, string] => (typeof v === 'number' ? [v, k] : [Number(k), String(v)]));
        const names = new Map(entries.filter(([value]) => Number.isInteger(value) && value >= 0));
        return names.size === 0 ? undefined : { names, jsonPath: json };
      } catch {
        return undefined;
      }
    }
    dir = dirname(dir);
  }
  return undefined;
}

function labelsArg(raw: string): number[] {
  const labels = raw.split(',').map((s) => s.trim());
  if (labels.some((l) => !/^\d+$/.test(l) || Number(l) === 0)) {
    throw new CliError(`--labels must be a comma-separated list of positive integers, got "${raw}"`, 2);
  }
  return labels.map(Number);
}

const fmt = (m: MeanStd, digits: number): string => (m.n === 0 ? '–' : `${m.mean.toFixed(digits)} ± ${m.std.toFixed(digits)}`);

/** True when two paths name one file or folder (after resolving links; hard links by inode). */
function samePath(a: string, b: string): boolean {
  if (canonicalPath(a) === canonicalPath(b)) return true;
  try {
    const [sa, sb] = [statSync(a), statSync(b)];
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Reads one label map and checks it is one (see labelValues in @purify/metrics):
 * a 3D NIfTI whose voxels are all integers ≥ 0. `role` ("prediction" or "ground
 * truth") starts the message, which names the file. Returns the volume and its
 * distinct values.
 */
async function readLabelMap(path: string, role: string): Promise<{ volume: Volume; values: number[] }> {
  let volume: Volume;
  try {
    volume = await readNifti(path);
  } catch (err) {
    if (err instanceof NiftiError) throw new CliError(`${role} ${err.message}`);
    throw err;
  }
  try {
    return { volume, values: labelValues(volume, path) };
  } catch (err) {
    if (err instanceof MetricsError) throw new CliError(`${role} ${err.message}`);
    throw err;
  }
}

/** Throws unless every value is in `declared`; the message names the file, the values and the set. */
function checkDeclared(values: readonly number[], declared: { values: ReadonlySet<number>; source: string }, path: string, role: string): void {
  const outside = values.filter((v) => !declared.values.has(v));
  if (outside.length === 0) return;
  throw new CliError(
    `${role} ${path}: label value${outside.length > 1 ? 's' : ''} ${outside.slice(0, 5).join(', ')}${outside.length > 5 ? ', …' : ''} not in the expected set {${[...declared.values].sort((a, b) => a - b).join(', ')}} (${declared.source})`,
  );
}

/**
 * Evaluates predictions against ground truth, case by case; the tested core of
 * `purify evaluate` (and of the benchmark). Refuses, rather than scores:
 * `--pred` and `--gt` naming the same path (or a case's two files being one file);
 * a file that is not a 3D integer label map (float images, NaN, negative values,
 * 4D files); prediction and ground truth on different grids; and label values
 * outside the declared set — the dataset.json labels found near the ground truth,
 * else 0 and `labels`, else the values the ground-truth files hold (read in a
 * first pass). Labels empty on both sides in every case come back in
 * `absentLabels` and are scored nowhere (docs/metrics.md).
 */
export async function evaluatePaths(predPath: string, gtPath: string, options: { labels?: number[]; toleranceMm?: number; onCase?: (done: number, total: number, id: string) => void }): Promise<MetricsSummary & { labelNames: Record<number, string> }> {
  const preds = collect(predPath, 'pred');
  const gts = collect(gtPath, 'gt');
  if (samePath(predPath, gtPath)) {
    throw new CliError(`--pred and --gt are the same path (${resolve(predPath)}): a prediction scored against itself always gets Dice 1`, 2);
  }
  const unmatchedPred = [...preds.keys()].filter((id) => !gts.has(id));
  const unmatchedGt = [...gts.keys()].filter((id) => !preds.has(id));
  if (preds.size === 1 && gts.size === 1 && unmatchedPred.length === 1) {
    // Two single files: compare them whatever their names.
    preds.set([...gts.keys()][0] as string, [...preds.values()][0] as string);
    preds.delete(unmatchedPred[0] as string);
  } else if (unmatchedPred.length > 0 || unmatchedGt.length > 0) {
    throw new CliError(
      `cases do not match by id: ${unmatchedGt.length > 0 ? `no prediction for ${unmatchedGt.join(', ')}` : ''}${unmatchedGt.length > 0 && unmatchedPred.length > 0 ? '; ' : ''}${unmatchedPred.length > 0 ? `no ground truth for ${unmatchedPred.join(', ')}` : ''}`,
    );
  }
  const ids = [...gts.keys()];
  for (const id of ids) {
    if (samePath(preds.get(id) as string, gts.get(id) as string)) {
      throw new CliError(`case ${id}: the prediction and the ground truth are the same file ${gts.get(id)}: a prediction scored against itself always gets Dice 1`, 2);
    }
  }

  const fromJson = datasetLabels(resolve(gtPath));
  const names = fromJson?.names ?? new Map<number, string>();
  let declared: { values: ReadonlySet<number>; source: string };
  let labels: number[];
  if (fromJson !== undefined) {
    declared = { values: new Set([0, ...fromJson.names.keys()]), source: `the labels of ${fromJson.jsonPath}` };
    const undeclared = (options.labels ?? []).filter((l) => !declared.values.has(l));
    if (undeclared.length > 0) throw new CliError(`--labels: ${undeclared.join(', ')} not declared in ${fromJson.jsonPath} (declared: ${[...declared.values].sort((a, b) => a - b).join(', ')})`, 2);
    labels = options.labels ?? [...fromJson.names.keys()].filter((l) => l !== 0).sort((a, b) => a - b);
  } else if (options.labels !== undefined) {
    declared = { values: new Set([0, ...options.labels]), source: '0 and --labels' };
    labels = options.labels;
  } else {
    // Nothing declares the labels: the ground truth does (first pass over its files).
    const found = new Set<number>([0]);
    for (const id of ids) for (const v of (await readLabelMap(gts.get(id) as string, 'ground truth')).values) found.add(v);
    declared = { values: found, source: 'the values in the ground-truth files; pass --labels to declare others' };
    labels = [...found].filter((l) => l !== 0).sort((a, b) => a - b);
  }

  const accumulator = new MetricsAccumulator();
  let done = 0;
  for (const id of ids) {
    const predFile = preds.get(id) as string;
    const gtFile = gts.get(id) as string;
    const [pred, gt] = await Promise.all([readLabelMap(predFile, 'prediction'), readLabelMap(gtFile, 'ground truth')]);
    // How the prediction's grid differs from the ground truth's (the reference).
    const diff = gridDifference(gt.volume, pred.volume);
    if (diff !== undefined) throw new CliError(`case ${id}: prediction ${predFile} and ground truth ${gtFile} are on different grids: ${diff}`);
    checkDeclared(gt.values, declared, gtFile, 'ground truth');
    checkDeclared(pred.values, declared, predFile, 'prediction');
    accumulator.update(id, computeCaseMetrics(pred.volume, gt.volume, labels, options.toleranceMm === undefined ? {} : { surfaceToleranceMm: options.toleranceMm }));
    options.onCase?.(++done, ids.length, id);
  }
  const labelNamesOut = Object.fromEntries(labels.map((l) => [l, names.get(l) ?? `label_${l}`]));
  return { ...accumulator.aggregate(), labelNames: labelNamesOut };
}

export function evaluateCommand(): Command {
  return new Command('evaluate')
    .description('Dice, HD95, ASSD, HD and surface Dice per case and label, with mean ± std and the organ average (conventions in docs/metrics.md); predictions must be 3D integer label maps on the ground truth\'s grid')
    .requiredOption('--pred <path>', 'predicted label map (.nii/.nii.gz) or a folder of them')
    .requiredOption('--gt <path>', 'ground-truth label map or a folder of them; files are matched by case id (file name)')
    .option('--labels <list>', 'labels to score, e.g. 1,2,3,4 (default: from dataset.json near --gt, else those in the ground truth); without a dataset.json also the only values (with 0) the files may hold', labelsArg)
    .option('--tolerance-mm <mm>', 'surface Dice tolerance', (raw: string) => {
      const v = Number(raw);
      if (!Number.isFinite(v) || v < 0) throw new CliError(`--tolerance-mm must be a number ≥ 0, got "${raw}"`, 2);
      return v;
    })
    .option('--json', 'machine-readable output (NaN distances, i.e. one mask empty, appear as null)', false)
    .action(async (opts: { pred: string; gt: string; labels?: number[]; toleranceMm?: number; json: boolean }) => {
      let bar: Progress | undefined;
      const summary = await evaluatePaths(opts.pred, opts.gt, {
        ...(opts.labels ? { labels: opts.labels } : {}),
        ...(opts.toleranceMm === undefined ? {} : { toleranceMm: opts.toleranceMm }),
        onCase: (done, total, id) => {
          bar ??= new Progress('evaluating', total, opts.json);
          bar.update(done, id);
        },
      });
      const name = (l: number): string => summary.labelNames[l] ?? `label_${l}`;
      output(opts.json, summary, () =>
        [
          table(
            ['CASE', 'LABEL', 'DICE', 'HD95 mm', 'ASSD mm', 'HD mm'],
            summary.perCase.flatMap((c) => c.labels.map((m) => [c.caseId, name(m.label), m.dice.toFixed(4), m.hd95Mm.toFixed(2), m.assdMm.toFixed(2), m.hdMm.toFixed(2)])),
          ),
          '',
          table(
            ['LABEL', 'CASES', 'DICE', 'HD95 mm', 'ASSD mm', 'HD mm', 'BOTH EMPTY', 'ONE EMPTY'],
            summary.labels.map((l) => [name(l.label), String(l.cases), fmt(l.dice, 4), fmt(l.hd95Mm, 2), fmt(l.assdMm, 2), fmt(l.hdMm, 2), String(l.bothEmpty), String(l.oneEmpty)]),
          ),
          '',
          ...(summary.absentLabels.length > 0 ? [`absent (empty in every prediction and ground truth; not scored, not averaged): ${summary.absentLabels.map(name).join(', ')}`] : []),
          `organ average over ${summary.labels.length} labels, ${summary.cases} cases: Dice ${summary.organAverage.dice.toFixed(4)}, HD95 ${summary.organAverage.hd95Mm.toFixed(2)} mm, ASSD ${summary.organAverage.assdMm.toFixed(2)} mm`,
          'Dice = 2|P∩G|/(|P|+|G|); HD95 = max of the two directed 95th percentiles; ASSD = mean of the two directed means; std over cases (population); one-empty cases give Dice 0 and no distances; a case where both are empty gives Dice 1 (BOTH EMPTY); a label empty everywhere is absent.',
        ].join('\n'),
      );
    });
}
