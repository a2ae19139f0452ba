/**
 * Stage A ablation (issue #20): source-only target Dice of source models trained
 * with each augmentation preset, with and without AdaBN, on both built-in
 * benchmarks over several seeds, with the wall time of source training.
 *
 *   npx tsx --conditions=@purify/source tools/bench/augment/ablation.ts --out runs/ablation \
 *     [--presets light,strong,gin,classwise,gin-classwise] [--seeds 1,2,3] [--train-cases 16] [--test-cases 6] [--size 96] \
 *     [--max-steps N] [--val-every N] [--patience N] [--min-delta D] [--anneal-fraction F]   (default: SOURCE_SCHEDULE)
 *
 * Data: `<out>/data-s<seed>`, generated exactly as `purify benchmark` generates
 * it (same generator, seed and grid), so the numbers compare with its
 * `source-only` row. Per preset and seed: `trainSourceModel` on the CT
 * training cases (model selection on the CT validation cases: source labels
 * only), then each target's test set is segmented in-process through
 * onnxruntime with the segmenter's own code path (`segmentVolume`, overlap
 * 0.5, target normalisation as the benchmark's `source-only` row) — once with
 * the source model as is, once after AdaBN on the target's unlabelled
 * training images. Target test labels are read by the evaluation only.
 *
 * Resumable: every finished (preset, seed) is stored in `<out>/results.json`
 * (written atomically after each entry); `<out>/report.md` holds the tables.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ModelRegistry, writeFileAtomic, writeJsonAtomic, type NormalizationSpec } from '@purify/artifacts';
import { openDataset, readNifti, type DatasetCase } from '@purify/imaging';
import { DEFAULT_SESSION_CONFIG, LoadedModel, segmentVolume, type SegmentationModel } from '@purify/inference';
import { computeCaseMetrics, MetricsAccumulator } from '@purify/metrics';
import { DEFAULT_GRID, generateBenchmark, type BenchmarkManifest, type Domain } from '@purify/phantoms';
import {
  adaptBatchNorm,
  augmentPresetId,
  defaultNormalization,
  gitCommit,
  loadSliceVolume,
  modelFromWeights,
  parseAugmentLevel,
  publishSegmentationModel,
  trainSourceModel,
} from '@purify/training';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/ablation' },
    presets: { type: 'string', default: 'light,strong,gin,classwise,gin-classwise' },
    seeds: { type: 'string', default: '1,2,3' },
    // Schedule overrides; absent = the library's SOURCE_SCHEDULE (what train-source and the benchmark use).
    'max-steps': { type: 'string' },
    'val-every': { type: 'string' },
    patience: { type: 'string' },
    'min-delta': { type: 'string' },
    'anneal-fraction': { type: 'string' },
    'train-cases': { type: 'string', default: '16' },
    'test-cases': { type: 'string', default: '6' },
    size: { type: 'string', default: '96' },
    slices: { type: 'string', default: '32' },
    targets: { type: 'string', default: 'mr,cbct' },
  },
});
const out = resolve(values.out);
const presets = values.presets.split(',').map((p) => parseAugmentLevel(p.trim()));
const seeds = values.seeds.split(',').map(Number);
const targets = values.targets.split(',') as Domain[];
const num = (k: keyof typeof values): number => Number(values[k]);
const optionalNum = (k: keyof typeof values): number | undefined => (values[k] === undefined ? undefined : Number(values[k]));

interface TargetResult {
  readonly dice: number;
  readonly perOrgan: Record<string, number>;
  readonly adabnDice: number;
  readonly adabnPerOrgan: Record<string, number>;
}
interface Entry {
  readonly preset: string;
  readonly seed: number;
  readonly valDice: number;
  readonly valPerClass: Record<string, number>;
  readonly bestStep: number;
  readonly stepsDone: number;
  /** Steps of the explore phase (the rest annealed). */
  readonly exploreSteps?: number;
  readonly stopReason: string;
  readonly trainWallS: number;
  readonly msPerStep: number;
  readonly targets: Record<string, TargetResult>;
  readonly commit: string;
  readonly finishedAt: string;
}

const resultsFile = join(out, 'results.json');
const results: Entry[] = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Entry[]) : [];
const say = (m: string): void => {
  process.stderr.write(`[ablation ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
};

async function data(seed: number): Promise<{ dir: string; manifest: BenchmarkManifest }> {
  const dir = join(out, `data-s${seed}`);
  const marker = join(dir, '.done.json');
  if (existsSync(marker)) return { dir, manifest: JSON.parse(readFileSync(marker, 'utf8')) as BenchmarkManifest };
  say(`generating data for seed ${seed}`);
  const slices = num('slices');
  const manifest = generateBenchmark({
    outDir: dir,
    domains: ['ct', 'mr', 'cbct'],
    seed,
    trainCases: num('train-cases'),
    testCases: num('test-cases'),
    grid: { ...DEFAULT_GRID, size: num('size'), slices, sliceMm: (DEFAULT_GRID.sliceMm * DEFAULT_GRID.slices) / slices },
  });
  writeJsonAtomic(marker, manifest);
  return { dir, manifest };
}

/** Organ-average Dice (and per organ) of `model` on a target's test cases, against the evaluation labels. */
async function evaluate(model: SegmentationModel, cases: readonly DatasetCase[], labelsDir: string, organs: Record<string, string>): Promise<{ dice: number; perOrgan: Record<string, number> }> {
  const acc = new MetricsAccumulator();
  const labels = Object.keys(organs).map(Number).filter((l) => l > 0);
  for (const c of cases) {
    const { labels: pred } = await segmentVolume(model, await c.loadImage(), { overlap: 0.5 });
    // Evaluation only: the target test labels are read here and nowhere else.
    const gt = await readNifti(join(labelsDir, `${c.id}.nii.gz`));
    acc.update(c.id, computeCaseMetrics(pred, gt, labels));
  }
  const summary = acc.aggregate();
  return { dice: summary.organAverage.dice, perOrgan: Object.fromEntries(summary.labels.map((l) => [organs[String(l.label)] ?? String(l.label), l.dice.mean])) };
}

/** The loaded model seen with another input normalisation (what the benchmark's republish does). */
function withNormalization(model: LoadedModel, normalization: NormalizationSpec): SegmentationModel {
  return { key: model.key, meta: { ...model.meta, normalization }, numClasses: model.numClasses, sizeMultiple: model.sizeMultiple, predictBatch: (b) => model.predictBatch(b) };
}

async function run(preset: string, seed: number): Promise<Entry> {
  const { dir, manifest } = await data(seed);
  const artifacts = join(out, 'artifacts');
  const name = `src-${preset}-s${seed}`;
  const level = parseAugmentLevel(preset);
  say(`${name}: training (${augmentPresetId(level)})`);
  let lastLog = 0;
  const trained = await trainSourceModel(
    {
      dataPath: join(dir, 'ct'),
      artifactsDir: artifacts,
      name,
      size: num('size'),
      tile: Math.min(num('size'), 64),
      steps: optionalNum('max-steps'),
      augment: level,
      seed,
      valEvery: optionalNum('val-every'),
      patience: optionalNum('patience'),
      minDelta: optionalNum('min-delta'),
      annealFraction: optionalNum('anneal-fraction'),
    },
    {
      onValidation: (e) => {
        if (Date.now() - lastLog > 20_000 || e.improved) {
          lastLog = Date.now();
          say(`${name} step ${e.step}: val Dice ${e.meanDice.toFixed(3)} (best ${e.bestMeanDice.toFixed(3)} at ${e.bestStep}) [${[...e.dicePerClass.values()].map((d) => d.toFixed(2)).join(' ')}]`);
        }
      },
    },
  );
  if (trained.version === undefined) throw new Error(`${name}: nothing published`);
  const registry = new ModelRegistry(artifacts);
  const version = trained.version;
  const classes = trained.classes;
  const targetResults: Record<string, TargetResult> = {};
  for (const target of targets) {
    const domain = manifest.domains.find((d) => d.domain === target);
    if (!domain?.evalLabels) throw new Error(`no ${target} data in ${dir}`);
    const ds = openDataset(join(dir, domain.dataset));
    const norm = defaultNormalization(ds.channelNames[0] ?? '');
    const tests = ds.cases.filter((c) => c.split === 'test');
    const organs = manifest.labels;
    const loaded = await LoadedModel.load(version, DEFAULT_SESSION_CONFIG);
    let plain;
    try {
      plain = await evaluate(withNormalization(loaded, norm), tests, join(dir, domain.evalLabels), organs);
    } finally {
      await loaded.dispose();
    }
    // AdaBN: the BatchNorm statistics re-estimated on the target's unlabelled training images.
    const model = modelFromWeights(readFileSync(join(version.dir, 'weights.bin')));
    let adapted;
    try {
      const volumes = [];
      for (const c of ds.cases.filter((x) => x.split !== 'test')) {
        volumes.push(await loadSliceVolume(c, { normalization: norm, spacingXyMm: trained.spacingXyMm, numClasses: classes.length, requireLabel: false, keepOriginalLabel: false }));
      }
      adaptBatchNorm(model, volumes);
      adapted = publishSegmentationModel({
        artifactsDir: artifacts,
        name: `${name}-${target}-adabn`,
        model,
        classes,
        inputSizeYx: trained.tileYx,
        spacingXyMm: trained.spacingXyMm,
        normalization: norm,
        provenance: { adabnFrom: `${version.meta.name}:${version.meta.version}`, adabnTarget: target },
        metrics: [],
      });
    } finally {
      model.dispose();
    }
    const loadedAda = await LoadedModel.load(registry.get(adapted.meta.name, adapted.meta.version), DEFAULT_SESSION_CONFIG);
    let ada;
    try {
      ada = await evaluate(loadedAda, tests, join(dir, domain.evalLabels), organs);
    } finally {
      await loadedAda.dispose();
    }
    say(`${name} → ${target}: Dice ${plain.dice.toFixed(3)}, with AdaBN ${ada.dice.toFixed(3)}`);
    targetResults[target] = { dice: plain.dice, perOrgan: plain.perOrgan, adabnDice: ada.dice, adabnPerOrgan: ada.perOrgan };
  }
  const best = trained.training.best;
  return {
    preset: augmentPresetId(level),
    seed,
    valDice: best?.meanDice ?? Number.NaN,
    valPerClass: Object.fromEntries(Object.entries(best?.dicePerClass ?? {}).map(([k, v]) => [classes[Number(k)]?.name ?? k, v])),
    bestStep: trained.training.bestStep,
    stepsDone: trained.training.stepsDone,
    exploreSteps: trained.training.exploreSteps,
    stopReason: trained.training.stopReason,
    trainWallS: trained.wallMs / 1000,
    msPerStep: trained.training.msPerStep,
    targets: targetResults,
    commit: gitCommit() ?? 'unknown',
    finishedAt: new Date().toISOString(),
  };
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function report(): string {
  const lines = [
    '# Stage A ablation: source-only target Dice by augmentation preset',
    '',
    `Command: \`npx tsx --conditions=@purify/source tools/bench/augment/ablation.ts ${process.argv.slice(2).join(' ')}\` — machine ${hostname()} (${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}) — ${new Date().toISOString()}.`,
    'Organ-average Dice on the target test set (6 cases), mean over seeds, per-seed values in brackets; ± AdaBN on the target training images. CT val = best CT validation Dice (model selection on source labels only). Train = wall time of source training.',
    '',
    `| preset | CT val | min class | CT → MR | + AdaBN | CT → CBCT | + AdaBN | steps: explore + anneal | train wall |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const fmt = (xs: number[]): string => `${mean(xs).toFixed(3)} (${xs.map((x) => x.toFixed(2)).join(' / ')})`;
  for (const preset of [...new Set(results.map((r) => r.preset))]) {
    const rs = results.filter((r) => r.preset === preset).sort((a, b) => a.seed - b.seed);
    const t = (target: string, ada: boolean): string => (rs.every((r) => r.targets[target]) ? fmt(rs.map((r) => (ada ? r.targets[target]!.adabnDice : r.targets[target]!.dice))) : '–');
    lines.push(
      `| ${preset} (seeds ${rs.map((r) => r.seed).join(',')}) | ${fmt(rs.map((r) => r.valDice))} | ${Math.min(...rs.flatMap((r) => Object.values(r.valPerClass))).toFixed(2)} | ${t('mr', false)} | ${t('mr', true)} | ${t('cbct', false)} | ${t('cbct', true)} | ${rs.map((r) => (r.exploreSteps === undefined ? `${r.stepsDone}` : `${r.exploreSteps} + ${r.stepsDone - r.exploreSteps}`)).join(', ')} | ${rs.map((r) => `${Math.round(r.trainWallS)} s`).join(', ')} |`,
    );
  }
  lines.push('', 'Per organ (mean over seeds), source-only / + AdaBN:', '', '| preset | target | liver | spleen | right kidney | left kidney |', '|---|---|---|---|---|---|');
  for (const preset of [...new Set(results.map((r) => r.preset))]) {
    const rs = results.filter((r) => r.preset === preset);
    for (const target of targets) {
      if (!rs.every((r) => r.targets[target])) continue;
      const organ = (o: string): string => `${mean(rs.map((r) => r.targets[target]!.perOrgan[o] ?? Number.NaN)).toFixed(2)} / ${mean(rs.map((r) => r.targets[target]!.adabnPerOrgan[o] ?? Number.NaN)).toFixed(2)}`;
      lines.push(`| ${preset} | ${target} | ${organ('liver')} | ${organ('spleen')} | ${organ('right_kidney')} | ${organ('left_kidney')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  for (const seed of seeds) {
    for (const preset of presets) {
      if (results.some((r) => r.preset === augmentPresetId(preset) && r.seed === seed)) continue;
      results.push(await run(preset, seed));
      writeJsonAtomic(resultsFile, results);
      writeFileAtomic(join(out, 'report.md'), report());
    }
  }
  writeFileAtomic(join(out, 'report.md'), report());
  process.stdout.write(report());
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
