import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { gridDifference, readNifti } from '@purify/imaging';
import { computeCaseMetrics, MetricsAccumulator, type MeanStd, type MetricsSummary } from '@purify/metrics';
import { CliError, output, table } from '../cli-util';
import { Progress } from '../progress';

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

/** Label names from a dataset.json in or above the ground-truth folder, if any. */
function labelNames(gtPath: string): Map<number, string> {
  let dir = statSync(gtPath).isDirectory() ? gtPath : dirname(gtPath);
  for (let i = 0; i < 3; i++) {
    const json = join(dir, 'dataset.json');
    if (existsSync(json)) {
      try {
        const labels = (JSON.parse(readFileSync(json, 'utf8')) as { labels?: Record<string, unknown> }).labels ?? {};
        const entries = Object.entries(labels);
        // nnU-Net v2 maps name → int; MSD/AMOS map "int" → name.
        return new Map(entries.map(([k, v]) => (typeof v === 'number' ? [v, k] : [Number(k), String(v)])));
      } catch {
        return new Map();
      }
    }
    dir = dirname(dir);
  }
  return new Map();
}

function labelsArg(raw: string): number[] {
  const labels = raw.split(',').map((s) => s.trim());
  if (labels.some((l) => !/^\d+$/.test(l) || Number(l) === 0)) {
    throw new CliError(`--labels must be a comma-separated list of positive integers, got "${raw}"`, 2);
  }
  return labels.map(Number);
}

const fmt = (m: MeanStd, digits: number): string => (m.n === 0 ? '–' : `${m.mean.toFixed(digits)} ± ${m.std.toFixed(digits)}`);

/** Evaluates predictions against ground truth, case by case; the tested core of `purify evaluate`. */
export async function evaluatePaths(predPath: string, gtPath: string, options: { labels?: number[]; toleranceMm?: number; onCase?: (done: number, total: number, id: string) => void }): Promise<MetricsSummary & { labelNames: Record<number, string> }> {
  const preds = collect(predPath, 'pred');
  const gts = collect(gtPath, 'gt');
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
  const accumulator = new MetricsAccumulator();
  const names = labelNames(resolve(gtPath));
  let labels = options.labels;
  const ids = [...gts.keys()];
  let done = 0;
  for (const id of ids) {
    const [pred, gt] = await Promise.all([readNifti(preds.get(id) as string), readNifti(gts.get(id) as string)]);
    const diff = gridDifference(pred, gt);
    if (diff !== undefined) throw new CliError(`case ${id}: prediction ${preds.get(id)} and ground truth ${gts.get(id)} are on different grids: ${diff}`);
    labels ??= [...names.keys()].filter((l) => l !== 0).sort((a, b) => a - b);
    if (labels.length === 0) {
      labels = [...new Set(gt.data)].filter((l) => l !== 0).sort((a, b) => a - b);
    }
    accumulator.update(id, computeCaseMetrics(pred, gt, labels, options.toleranceMm === undefined ? {} : { surfaceToleranceMm: options.toleranceMm }));
    options.onCase?.(++done, ids.length, id);
  }
  const labelNamesOut = Object.fromEntries((labels ?? []).map((l) => [l, names.get(l) ?? `label_${l}`]));
  return { ...accumulator.aggregate(), labelNames: labelNamesOut };
}

export function evaluateCommand(): Command {
  return new Command('evaluate')
    .description('Dice, HD95, ASSD, HD and surface Dice per case and label, with mean ± std and the organ average (conventions in docs/metrics.md)')
    .requiredOption('--pred <path>', 'predicted label map (.nii/.nii.gz) or a folder of them')
    .requiredOption('--gt <path>', 'ground-truth label map or a folder of them; files are matched by case id (file name)')
    .option('--labels <list>', 'labels to score, e.g. 1,2,3,4 (default: from dataset.json near --gt, else those in the ground truth)', labelsArg)
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
          `organ average over ${summary.labels.length} labels, ${summary.cases} cases: Dice ${summary.organAverage.dice.toFixed(4)}, HD95 ${summary.organAverage.hd95Mm.toFixed(2)} mm, ASSD ${summary.organAverage.assdMm.toFixed(2)} mm`,
          'Dice = 2|P∩G|/(|P|+|G|); HD95 = max of the two directed 95th percentiles; ASSD = mean of the two directed means; std over cases (population); one-empty cases give Dice 0 and no distances.',
        ].join('\n'),
      );
    });
}
