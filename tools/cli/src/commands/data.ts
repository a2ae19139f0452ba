import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { openDataset, orientationCode, readNiftiImage, validateDataset, type Volume } from '@purify/imaging';
import { DEFAULT_GRID, DOMAINS, generateBenchmark, intensityTable, type Domain } from '@purify/phantoms';
import { CliError, intArg, output, table } from '../cli-util';
import { Progress } from '../progress';
import { OutputPolicy } from '../write-safety';

function domainsArg(raw: string): Domain[] {
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const p of parts) {
    if (!(DOMAINS as readonly string[]).includes(p)) throw new CliError(`--domains: unknown domain "${p}" (expected a comma-separated subset of ${DOMAINS.join(',')})`, 2);
  }
  return parts as Domain[];
}

function generateCommand(): Command {
  return new Command('generate')
    .description('Generate the built-in cross-domain benchmark: abdominal phantoms as CT (labelled source) and MR / CBCT (unlabelled targets)')
    .requiredOption('--out <dir>', 'output folder (one dataset per domain, previews, intensity statistics)')
    .option('--domains <list>', 'comma-separated domains', 'ct,mr,cbct')
    .option('--seed <n>', 'random seed (same seed → identical files)', intArg(0, 2 ** 31 - 1), 1)
    .option('--train-cases <n>', 'training cases per domain', intArg(1, 10_000), 24)
    .option('--test-cases <n>', 'held-out test cases per domain', intArg(1, 10_000), 8)
    .option('--size <px>', 'in-plane size in pixels', intArg(16, 1024), DEFAULT_GRID.size)
    .option('--slices <n>', 'axial slices (CT grid; MR has 1.5× thicker slices)', intArg(2, 512), DEFAULT_GRID.slices)
    .option('--overwrite', 'write over an earlier generation in --out', false)
    .option('--json', 'print the manifest as JSON', false)
    .action((opts: { out: string; domains: string; seed: number; trainCases: number; testCases: number; size: number; slices: number; overwrite: boolean; json: boolean }) => {
      const domains = domainsArg(opts.domains);
      // What generateBenchmark writes into --out (tools/cli/src/write-safety.ts): refused when an earlier run left any of it.
      const outDir = new OutputPolicy({ overwrite: opts.overwrite }).filesIn(opts.out, '--out', {
        names: ['benchmark.json', 'intensity-stats.json', 'intensity-stats.md', 'previews', ...domains.flatMap((d) => [d, `${d}-eval`, `${d}-oracle`])],
      });
      const total = domains.length * (opts.trainCases + opts.testCases);
      const progress = new Progress('generating', total, opts.json);
      const manifest = generateBenchmark({
        outDir,
        domains,
        seed: opts.seed,
        trainCases: opts.trainCases,
        testCases: opts.testCases,
        // Keep the field of view and slab: a different pixel count changes the spacing.
        grid: { ...DEFAULT_GRID, size: opts.size, slices: opts.slices, sliceMm: (DEFAULT_GRID.sliceMm * DEFAULT_GRID.slices) / opts.slices },
        onProgress: (done, _t, id) => progress.update(done, id),
      });
      output(opts.json, manifest, () =>
        [
          `wrote ${outDir}`,
          table(
            ['DOMAIN', 'ROLE', 'DATASET', 'TRAIN', 'TEST', 'EVAL LABELS (evaluation only)'],
            manifest.domains.map((d) => [d.domain, d.role, d.dataset, String(d.trainCases.length), String(d.testCases.length), d.evalLabels ?? '(in dataset)']),
          ),
          '',
          'Per-organ intensity (mean ± std (p5–p95)):',
          intensityTable(manifest.domains),
          `previews: ${manifest.previews.length} PNG files in ${resolve(outDir, 'previews')}`,
        ].join('\n'),
      );
    });
}

interface VolumeSummary {
  shape: readonly number[];
  spacingXyzMm: readonly number[];
  originLpsMm: readonly number[];
  orientation: string;
  dtype: string;
  intensity: { min: number; max: number; mean: number; std: number; nonFinite: number };
}

function summarise(v: Volume): Omit<VolumeSummary, 'dtype'> {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  let nonFinite = 0;
  for (const x of v.data) {
    if (!Number.isFinite(x)) {
      nonFinite++;
      continue;
    }
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    sumSq += x * x;
    n++;
  }
  const mean = n > 0 ? sum / n : Number.NaN;
  return {
    shape: v.shape,
    spacingXyzMm: v.spacingXyzMm,
    originLpsMm: v.originLpsMm,
    orientation: orientationCode(v),
    intensity: { min, max, mean, std: n > 0 ? Math.sqrt(Math.max(0, sumSq / n - mean * mean)) : Number.NaN, nonFinite },
  };
}

function inspectCommand(): Command {
  return new Command('inspect')
    .description('Describe a NIfTI file (header, geometry, intensities) or check a dataset folder and list every problem found')
    .argument('<path>', 'a .nii / .nii.gz file or a dataset folder (dataset.json layout or a plain folder of images)')
    .option('--labels-dir <dir>', 'for a plain image folder: where the label maps are')
    .option('--json', 'machine-readable output', false)
    .action(async (path: string, opts: { labelsDir?: string; json: boolean }) => {
      const abs = resolve(path);
      let isDir: boolean;
      try {
        isDir = statSync(abs).isDirectory();
      } catch {
        throw new CliError(`${abs}: no such file or folder`, 2);
      }
      if (!isDir) {
        // Volume 0 of a 4D file (the table says how many it holds): inspecting must not refuse what it describes.
        const { volume, header } = await readNiftiImage(abs, { volumeIndex: 0 });
        const summary = { path: abs, ...summarise(volume), dtype: header.datatype, header };
        output(opts.json, summary, () =>
          table(
            ['FIELD', 'VALUE'],
            [
              ['file', abs],
              ['shape [z,y,x]', summary.shape.join(' × ')],
              ['volumes', header.volumes === 1 ? '1' : `${header.volumes} (dims ${header.dims.slice(1, (header.dims[0] ?? 3) + 1).join(' × ')}; the rest describes volume 0)`],
              ['spacing (x,y,z) mm', summary.spacingXyzMm.map((s) => s.toFixed(4)).join(', ')],
              ['origin LPS mm', summary.originLpsMm.map((s) => s.toFixed(2)).join(', ')],
              ['orientation', summary.orientation],
              ['dtype', String(header.datatype)],
              ['geometry from', String(header.geometrySource)],
              ['intensity', `min ${summary.intensity.min} max ${summary.intensity.max} mean ${summary.intensity.mean.toFixed(3)} std ${summary.intensity.std.toFixed(3)}`],
              ['non-finite voxels', String(summary.intensity.nonFinite)],
            ],
          ),
        );
        if (summary.intensity.nonFinite > 0) process.exitCode = 1;
        return;
      }
      const dataset = openDataset(abs, opts.labelsDir === undefined ? {} : { labelsDir: opts.labelsDir });
      const progress = new Progress('checking', dataset.cases.length, opts.json);
      let checked = 0;
      const problems = await validateDataset(dataset, { onCase: () => progress.update(++checked) });
      const counts = { train: 0, test: 0, val: 0, labelled: 0 } as Record<string, number>;
      for (const c of dataset.cases) {
        counts[c.split] = (counts[c.split] ?? 0) + 1;
        if (c.labelPath !== undefined) counts['labelled'] = (counts['labelled'] ?? 0) + 1;
      }
      const summary = {
        path: abs,
        layout: dataset.layout,
        name: dataset.name,
        channels: dataset.channelNames,
        labels: Object.fromEntries(dataset.labels),
        cases: counts,
        problems,
      };
      output(opts.json, summary, () =>
        [
          `${dataset.name} (${dataset.layout}) at ${abs}`,
          `channels: ${dataset.channelNames.join(', ')}; labels: ${[...dataset.labels].map(([k, v]) => `${k}=${v}`).join(', ') || 'none declared'}`,
          `cases: ${counts['train'] ?? 0} train, ${counts['test'] ?? 0} test, ${counts['val'] ?? 0} validation; ${counts['labelled']} with labels`,
          problems.length === 0 ? 'no problems found' : `${problems.length} problem(s):\n${table(['KIND', 'CASE', 'FILE', 'PROBLEM'], problems.map((p) => [p.kind, p.caseId ?? '-', p.file, p.message]))}`,
        ].join('\n'),
      );
      if (problems.length > 0) process.exitCode = 1;
    });
}

export function dataCommand(): Command {
  return new Command('data').description('Built-in benchmark data and dataset checks').addCommand(generateCommand()).addCommand(inspectCommand());
}
