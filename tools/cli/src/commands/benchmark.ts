import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hostname, cpus } from 'node:os';
import { Command } from 'commander';
import { ModelRegistry, writeJsonAtomic, type ModelMeta } from '@purify/artifacts';
import { openDataset, overlayImage, readNifti, tileHorizontally, writeNifti, writePng, type Volume } from '@purify/imaging';
import { ensureModelLoaded, segmentRemote } from '@purify/inference';
import { pairedComparison, type PairedComparison } from '@purify/metrics';
import { DEFAULT_GRID, GENERATOR_VERSION, generateBenchmark, type BenchmarkManifest, type Domain } from '@purify/phantoms';
import { SegmenterServiceClient } from '@purify/proto';
import { boxPlot, histogramChart, lineChart, meanStd, Report } from '@purify/report';
import { createClient } from '@purify/runtime';
import { AugmentLevel, defaultNormalization, gitCommit, SOURCE_SCHEDULE, trainSourceModel } from '@purify/training';
import { augmentArg, CliError, intArg, numberArg, output } from '../cli-util';
import { launchServices, type Launch } from '../launcher';
import { Progress, formatSeconds } from '../progress';
import { ROUND_FIGURE_PANELS, runAdapt, TARGET_LOSS_NAMES, targetLossArg, type AdaptSummary, type RlAblationName, type TargetLossName } from './adapt';
import { OutputPolicy } from '../write-safety';
import { evaluatePaths } from './evaluate';

/**
 * `purify benchmark` and `purify demo`: the whole pipeline on the built-in data,
 * side by side — generate the phantoms, start the four services, train the
 * source model once per benchmark and seed (shared by every method), adapt with
 * each method through the trainer service, segment the target test set with
 * every resulting model, evaluate against the target test labels (evaluation
 * only: they are read here, after training, and nowhere else), and write
 * report.md + report.html with tables and figures. Every stage records its
 * result in the run folder, so an interrupted run continues where it stopped.
 */

const BENCHMARK_TARGET: Readonly<Record<string, Domain>> = { 'ct-mr': 'mr', 'ct-cbct': 'cbct' };
const DEFAULT_METHODS = ['source-only', 'source-only+adabn', 'naive', 'confidence', 'entropy', 'consensus', 'cbst', 'rule', 'rl', 'oracle'] as const;
/** Ablation rows of `rl` (#21 item 7): opt-in with --methods, each an `rl` job with a `--rl-ablation`. */
const RL_ABLATION_ROWS: Readonly<Record<string, RlAblationName>> = { 'rl-untrained': 'untrained', 'rl-random': 'random', 'rl-confidence': 'confidence-features' };
/** The rows whose target loss `--target-loss` sets (the gated methods). */
const GATED_METHODS: ReadonlySet<string> = new Set(['cbst', 'rule', 'rl']);
const ALL_METHODS = [...DEFAULT_METHODS, ...Object.keys(RL_ABLATION_ROWS)];

export interface BenchmarkOptions {
  readonly out: string;
  readonly benchmarks: readonly string[];
  readonly methods: readonly string[];
  readonly seeds: readonly number[];
  readonly trainCases: number;
  readonly testCases: number;
  readonly size: number;
  readonly slices: number;
  readonly sourceSteps: number;
  readonly augment: AugmentLevel;
  readonly rounds: number;
  readonly stepsPerRound: number;
  readonly batchSize: number;
  /**
   * Training steps of the oracle, in one round at the source model's learning
   * rate: the oracle is the target-supervised analogue of the source model (an
   * upper bound), not a short self-training schedule with better labels.
   */
  readonly oracleSteps: number;
  /** Target loss of `cbst`, `rule` and `rl` (and the `rl` ablation rows); default `class-balanced`. */
  readonly targetLoss?: TargetLossName | undefined;
  /** Peak learning rate of the adapting methods (not the oracle); default the trainer's. */
  readonly learningRate?: number | undefined;
  readonly command: string;
}

export interface MethodResult {
  readonly benchmark: string;
  readonly seed: number;
  readonly method: string;
  readonly model: { name: string; version: number };
  readonly perOrgan: Record<string, { dice: number; hd95Mm: number; assdMm: number }>;
  readonly perCaseDice: readonly number[];
  readonly mean: { dice: number; hd95Mm: number; assdMm: number };
  readonly adapt?: AdaptSummary;
  readonly wallMs: number;
  /** Where and when the row was computed (a resumed run may span commits); absent in rows of older runs. */
  readonly provenance?: Provenance;
}

interface Provenance {
  readonly commit: string;
  readonly machine: string;
  readonly finishedAt: string;
}

/** Commit and machine of this invocation: fixed while it runs, so read once (`git rev-parse` is a child process). */
function invocationOrigin(): Omit<Provenance, 'finishedAt'> {
  return { commit: gitCommit() ?? 'unknown', machine: `${hostname()} (${cpus().length} × ${cpus()[0]?.model ?? 'cpu'})` };
}

/** What a finished source-model stage records (`source-s<seed>.json`; the optional fields are absent in runs made before they existed). */
interface SourceStage {
  readonly name: string;
  readonly version: number;
  /** Best mean CT validation Dice (the selected checkpoint) and its per-organ values. */
  readonly valDice: number;
  readonly valPerClass?: Record<string, number>;
  readonly stepsDone?: number;
  readonly bestStep?: number;
  readonly stopReason?: string;
  readonly augment?: string;
  readonly wallMs: number;
  readonly msPerStep: number;
  readonly backend: string;
}

/** A JSON file that marks a finished stage: the stage runs only when the file is missing. */
async function stage<T>(file: string, run: () => Promise<T>): Promise<T> {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as T;
  const value = await run();
  writeJsonAtomic(file, value);
  return value;
}

const say = (message: string): void => {
  process.stderr.write(`[purify] ${message}\n`);
};

/** Republishes a model version's graph and weights under `name` with another input normalisation. */
function republish(registry: ModelRegistry, from: { name: string; version: number }, name: string, normalization: ModelMeta['normalization']): { name: string; version: number } {
  const source = registry.get(from.name, from.version);
  const onnx = readFileSync(join(source.dir, 'model.onnx'));
  const weightsPath = join(source.dir, 'weights.bin');
  const { name: _n, version: _v, createdAt: _c, onnx: onnxMeta, ...rest } = source.meta;
  const published = registry.publish(
    name,
    { onnx, ...(existsSync(weightsPath) ? { weights: readFileSync(weightsPath) } : {}) },
    { ...rest, normalization, onnx: { input: onnxMeta.input, output: onnxMeta.output, opset: onnxMeta.opset }, provenance: { ...rest.provenance, republishedFrom: `${from.name}:${from.version}` } },
  );
  return { name, version: published.meta.version };
}

/** Segments every image of `cases` through the segmenter; writes `<dir>/<id>.nii.gz` on each image's grid. */
async function segmentAll(client: SegmenterServiceClient, model: { name: string; version: number }, cases: readonly { id: string; load: () => Promise<Volume> }[], dir: string, progress: Progress): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await ensureModelLoaded(client, model, { timeoutMs: 120_000 });
  let done = 0;
  for (const c of cases) {
    const path = join(dir, `${c.id}.nii.gz`);
    if (!existsSync(path)) {
      const image = await c.load();
      const { labels } = await segmentRemote(client, image, { model, caseId: c.id, timeoutMs: 600_000 });
      writeNifti(path, labels);
    }
    progress.update(++done, `${model.name}:${model.version} ${c.id}`);
  }
}

/**
 * Settings that only some methods' rows depend on. Changing one is allowed once
 * no finished row of those methods is left in the run folder (delete them to
 * rerun just those rows with the new value); every other row stays valid.
 */
const METHOD_SCOPED_SETTINGS: Readonly<Record<string, readonly string[]>> = { oracleSteps: ['oracle'], targetLoss: ['cbst', 'rule', 'rl', 'rl-untrained', 'rl-random', 'rl-confidence'] };

/** `<out>/<benchmark>/s<seed>/<method>` folders holding a finished row of one of `methods`. */
function finishedRows(out: string, methods: readonly string[]): string[] {
  const rows: string[] = [];
  for (const benchmark of Object.keys(BENCHMARK_TARGET)) {
    const dir = join(out, benchmark);
    if (!existsSync(dir)) continue;
    for (const seed of readdirSync(dir).filter((d) => /^s\d+$/.test(d)).sort()) {
      for (const m of methods) if (existsSync(join(dir, seed, m, 'result.json'))) rows.push(join(dir, seed, m));
    }
  }
  return rows;
}

/**
 * The settings every finished stage depends on are recorded in `<out>/config.json`
 * at the first run; continuing with different ones would mix incomparable rows, so
 * it is refused (benchmarks, methods and seeds may change: they only add rows).
 * A method-scoped setting ({@link METHOD_SCOPED_SETTINGS}) may change when none of
 * its methods' rows are finished; the record is then updated.
 */
export function checkRunConfig(out: string, o: BenchmarkOptions): void {
  const { out: _o, benchmarks: _b, methods: _m, seeds: _s, command: _c, ...settings } = o;
  const current = { generatorVersion: GENERATOR_VERSION, ...settings };
  const file = join(out, 'config.json');
  if (!existsSync(file)) {
    writeJsonAtomic(file, current);
    return;
  }
  const recorded = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const differing = Object.entries(current).filter(([k, v]) => JSON.stringify(recorded[k]) !== JSON.stringify(v));
  const describe = (list: typeof differing): string => list.map(([k, v]) => `${k}: ${JSON.stringify(recorded[k])} there, ${JSON.stringify(v)} now`).join('; ');
  const global = differing.filter(([k]) => METHOD_SCOPED_SETTINGS[k] === undefined);
  if (global.length > 0) {
    throw new CliError(`${out} holds a run made with other settings (${describe(global)}); use the same settings to continue it, or another --out`, 2);
  }
  if (differing.length === 0) return;
  const blocking = differing.flatMap(([k]) => finishedRows(out, METHOD_SCOPED_SETTINGS[k] ?? []));
  if (blocking.length > 0) {
    throw new CliError(
      `${out} holds rows made with other settings (${describe(differing)}): ${blocking.join(', ')}; delete those folders to rerun them with the new settings, use the same settings to continue, or another --out`,
      2,
    );
  }
  writeJsonAtomic(file, { ...recorded, ...current });
}

export async function runBenchmark(o: BenchmarkOptions): Promise<{ report: string; results: MethodResult[] }> {
  const started = Date.now();
  const origin = invocationOrigin();
  // Our own run folder, resumed by design: only the dataset-folder rule applies (tools/cli/src/write-safety.ts).
  const out = new OutputPolicy().folder(o.out, '--out');
  mkdirSync(out, { recursive: true });
  for (const b of o.benchmarks) if (!(b in BENCHMARK_TARGET)) throw new CliError(`--benchmarks: unknown benchmark "${b}" (expected ${Object.keys(BENCHMARK_TARGET).join(', ')})`, 2);
  for (const m of o.methods) if (!(ALL_METHODS as readonly string[]).includes(m)) throw new CliError(`--methods: unknown method "${m}" (expected ${ALL_METHODS.join(', ')})`, 2);
  checkRunConfig(out, o);
  const artifacts = join(out, 'artifacts');
  const registry = new ModelRegistry(artifacts);
  const results: MethodResult[] = [];
  let launch: Launch | undefined;
  const stop = async (): Promise<void> => {
    if (launch) {
      say('stopping the services');
      await launch.stop();
      launch = undefined;
    }
  };
  const onSignal = (): void => {
    void stop().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    for (const seed of o.seeds) {
      // 1. Data: one generation per seed holds every domain the benchmarks need.
      const dataDir = join(out, `data-s${seed}`);
      // A run folder first made for other benchmarks may lack a domain: regenerate with every domain
      // (generation is deterministic, so the files finished stages used stay byte-identical).
      const marker = join(dataDir, '.done.json');
      const have = existsSync(marker) ? (JSON.parse(readFileSync(marker, 'utf8')) as BenchmarkManifest).domains.map((d) => d.domain) : [];
      const domains: Domain[] = [...new Set<Domain>(['ct', ...have, ...o.benchmarks.map((b) => BENCHMARK_TARGET[b] as Domain)])];
      if (existsSync(marker) && domains.some((d) => !have.includes(d))) rmSync(marker);
      const manifest = await stage<BenchmarkManifest>(marker, async () => {
        const total = domains.length * (o.trainCases + o.testCases);
        const bar = new Progress(`data (seed ${seed})`, total);
        say(`generating ${domains.join(', ')} phantoms into ${dataDir}`);
        return generateBenchmark({
          outDir: dataDir,
          domains,
          seed,
          trainCases: o.trainCases,
          testCases: o.testCases,
          grid: { ...DEFAULT_GRID, size: o.size, slices: o.slices, sliceMm: (DEFAULT_GRID.sliceMm * DEFAULT_GRID.slices) / o.slices },
          onProgress: (done, _t, id) => bar.update(done, id),
        });
      });

      // 2. Services (once per run).
      if (!launch) {
        say('starting segmenter, agent, reliability and trainer');
        launch = await launchServices({
          host: '127.0.0.1',
          ports: { segmenter: 0, reliability: 0, agent: 0, trainer: 0 },
          artifactsDir: artifacts,
          logDir: join(out, 'logs'),
          readyTimeoutMs: 120_000,
          shutdownGraceMs: 5_000,
          onProgress: say,
        });
        void launch.unexpectedExit.then((e) => say(`WARNING: ${e.kind} exited unexpectedly (code ${e.code ?? e.signal}); see ${join(out, 'logs', `${e.kind}.log`)}`));
      }
      const address = (kind: string): string => launch?.services.find((s) => s.kind === kind)?.address ?? '';
      const segmenter = createClient(SegmenterServiceClient, 'segmenter', { addresses: [address('segmenter')], defaultTimeoutMs: 120_000 });

      try {
        // 3. The source model: trained once per seed, shared by every method and benchmark.
        const sourceName = `source-ct-s${seed}`;
        const source = await stage<SourceStage>(join(out, `source-s${seed}.json`), async () => {
          say(`training the source model on CT (at most ${o.sourceSteps} steps, until the CT validation Dice converges; ${o.augment} augmentation)`);
          const bar = new Progress('source model', o.sourceSteps);
          let val = '';
          const result = await trainSourceModel(
            // The default schedule of @purify/training (SOURCE_SCHEDULE): validation every 100 steps, stop once converged, best checkpoint kept.
            { dataPath: join(dataDir, 'ct'), artifactsDir: artifacts, name: sourceName, size: o.size, tile: Math.min(o.size, 64), steps: o.sourceSteps, augment: o.augment, seed },
            {
              onStep: (e) => {
                // At most `sourceSteps` while exploring; exact once the anneal is sized.
                bar.setTotal(e.totalSteps);
                bar.update(e.step, `loss ${e.loss.toFixed(3)} ${e.ms.toFixed(0)} ms/step${val}`);
              },
              onValidation: (e) => {
                val = ` val Dice ${e.meanDice.toFixed(3)}`;
              },
            },
          );
          if (!result.version) throw new CliError('source training published no model');
          return {
            name: sourceName,
            version: result.version.meta.version,
            valDice: result.training.best?.meanDice ?? Number.NaN,
            valPerClass: Object.fromEntries(Object.entries(result.training.best?.dicePerClass ?? {}).map(([k, v]) => [result.classes[Number(k)]?.name ?? k, v])),
            stepsDone: result.training.stepsDone,
            bestStep: result.training.bestStep,
            stopReason: result.training.stopReason,
            augment: result.version.meta.provenance['augment'] ?? o.augment,
            wallMs: result.wallMs,
            msPerStep: result.training.msPerStep,
            // The kernel set is part of the result: the native kernels round differently from the wasm ones.
            backend: `${result.backend.backend}${result.backend.wasmKernels === 'purify-native' ? ' (native kernels)' : result.backend.wasmKernels === 'purify' ? ' (wasm kernels)' : ''}`,
          };
        });

        for (const benchmark of o.benchmarks) {
          const target = BENCHMARK_TARGET[benchmark] as Domain;
          const domain = manifest.domains.find((d) => d.domain === target);
          if (!domain || !domain.evalLabels) throw new CliError(`${dataDir}: no ${target} data in the benchmark manifest`);
          const targetDir = join(dataDir, domain.dataset);
          const targetSet = openDataset(targetDir);
          const testCases = targetSet.cases.filter((c) => c.split === 'test').map((c) => ({ id: c.id, load: () => c.loadImage() }));
          const targetNorm = defaultNormalization(targetSet.channelNames[0] ?? '');

          for (const method of o.methods) {
            const runDir = join(out, benchmark, `s${seed}`, method);
            const result = await stage<MethodResult>(join(runDir, 'result.json'), async () => {
              const t0 = Date.now();
              let model: { name: string; version: number };
              let adapt: AdaptSummary | undefined;
              if (method === 'source-only') {
                // The source network as is, fed target images normalised the way every adapted model is.
                model = republish(registry, source, `${sourceName}-${target}`, targetNorm);
              } else {
                say(`${benchmark} seed ${seed}: adapting with ${method}`);
                // `source-only+adabn`: the source model with BatchNorm statistics re-estimated on the target training images (a source-only job trains nothing).
                const adabn = method === 'source-only+adabn';
                adapt = await runAdapt({
                  source: join(dataDir, 'ct'),
                  target: targetDir,
                  method: adabn ? 'source-only' : RL_ABLATION_ROWS[method] !== undefined ? 'rl' : method,
                  adabn,
                  ...(RL_ABLATION_ROWS[method] === undefined ? {} : { rlAblation: RL_ABLATION_ROWS[method] }),
                  ...(o.targetLoss !== undefined && o.targetLoss !== 'class-balanced' && (GATED_METHODS.has(method) || RL_ABLATION_ROWS[method] !== undefined) ? { targetLoss: o.targetLoss } : {}),
                  out: join(runDir, 'job'),
                  ...(method === 'oracle' ? { rounds: 1, stepsPerRound: o.oracleSteps, learningRate: SOURCE_SCHEDULE.learningRate } : { rounds: o.rounds, stepsPerRound: o.stepsPerRound, ...(o.learningRate === undefined ? {} : { learningRate: o.learningRate }) }),
                  batchSize: o.batchSize,
                  seed,
                  initModel: `${source.name}:${source.version}`,
                  outputModel: `${benchmark}-s${seed}-${method.replace(/[^A-Za-z0-9._-]/g, '-')}`, // registry names allow [A-Za-z0-9._-]
                  ...(method === 'oracle' ? { oracleLabels: join(dataDir, domain.oracleLabels ?? '') } : {}),
                  onlineFinetuning: false,
                  trainer: address('trainer'),
                  runDir: join(out, '.purify'),
                  timeoutMs: 120_000,
                  json: false, // progress on stderr; stdout carries only the benchmark's own table or JSON
                  summaryStream: process.stderr,
                });
                if (!adapt.resultModel) throw new CliError(`${method}: the job published no model`);
                model = adapt.resultModel;
              }
              // Evaluation only: the target test labels are read here, after every model is final.
              const predDir = join(runDir, 'predictions');
              await segmentAll(segmenter, model, testCases, predDir, new Progress(`segment ${method}`, testCases.length));
              const summary = await evaluatePaths(predDir, join(dataDir, domain.evalLabels ?? ''), { labels: [1, 2, 3, 4] });
              const perOrgan = Object.fromEntries(
                summary.labels.map((l) => [manifest.labels[String(l.label)] ?? `label_${l.label}`, { dice: l.dice.mean, hd95Mm: l.hd95Mm.mean, assdMm: l.assdMm.mean }]),
              );
              return {
                benchmark,
                seed,
                method,
                model,
                perOrgan,
                perCaseDice: summary.perCase.map((c) => c.labels.reduce((a, m) => a + m.dice, 0) / Math.max(1, c.labels.length)),
                mean: { dice: summary.organAverage.dice, hd95Mm: summary.organAverage.hd95Mm, assdMm: summary.organAverage.assdMm },
                ...(adapt ? { adapt } : {}),
                wallMs: Date.now() - t0,
                provenance: { ...origin, finishedAt: new Date().toISOString() },
              };
            });
            say(`${benchmark} seed ${seed} ${method}: target Dice ${result.mean.dice.toFixed(3)}`);
            results.push(result);
          }
        }
        // Overlays for the report: the first target test case of each benchmark.
        for (const benchmark of o.benchmarks) await overlayFigure(out, benchmark, seed, o.methods, dataDir, manifest);
      } finally {
        segmenter.close();
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await stop();
  }
  const wallMs = Date.now() - started;
  writeJsonAtomic(join(out, 'benchmark.json'), benchmarkSummary(o, results, wallMs, origin));
  const report = writeReport(out, o, results, wallMs, origin);
  return { report, results };
}

/** Mean and per-seed organ-average Dice of one method on one benchmark (seeds ascending). */
interface MethodSummary {
  readonly mean: number;
  readonly std: number;
  readonly perSeed: number[];
  readonly seeds: number[];
  readonly perOrgan: Record<string, number>;
  readonly hd95Mm: number;
  readonly assdMm: number;
  /** (method − source-only) / (oracle − source-only), when both rows exist. */
  readonly gapClosure?: number;
}

/** Rows that are neither our method (nor its ablations) nor the oracle: what `rl` must beat. */
const isBaseline = (method: string): boolean => method !== 'rl' && RL_ABLATION_ROWS[method] === undefined && method !== 'oracle';

/**
 * `rl` against the baseline with the highest mean Dice on one benchmark,
 * paired by seed and test case (`pairedComparison` of @purify/metrics), or
 * undefined without an `rl` row or a baseline row.
 */
export function rlVersusBestBaseline(results: readonly MethodResult[], benchmark: string): (PairedComparison & { method: 'rl'; against: string }) | undefined {
  const rows = results.filter((r) => r.benchmark === benchmark);
  const scores = (m: string) => rows.filter((r) => r.method === m).map((r) => ({ seed: r.seed, dice: r.mean.dice, perCaseDice: r.perCaseDice }));
  const rl = scores('rl');
  const baselines = [...new Set(rows.map((r) => r.method))].filter(isBaseline);
  if (rl.length === 0 || baselines.length === 0) return undefined;
  const mean = (m: string): number => scores(m).reduce((a, x) => a + x.dice, 0) / scores(m).length;
  const against = baselines.reduce((best, m) => (mean(m) > mean(best) ? m : best));
  return { method: 'rl', against, ...pairedComparison(rl, scores(against)) };
}

/**
 * The machine-readable result (`<out>/benchmark.json`, committed as
 * docs/results/benchmark.json): commit, date, wall time of this invocation and,
 * per benchmark and method, the mean over seeds and the per-seed values of the
 * organ-average target test Dice.
 */
export function benchmarkSummary(o: BenchmarkOptions, results: readonly MethodResult[], wallMs: number, origin: Omit<Provenance, 'finishedAt'>): unknown {
  const avg = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const benchmarks: Record<string, { methods: Record<string, MethodSummary>; paired?: ReturnType<typeof rlVersusBestBaseline> }> = {};
  for (const benchmark of o.benchmarks) {
    const methods: Record<string, MethodSummary> = {};
    for (const method of o.methods) {
      const rows = results.filter((r) => r.benchmark === benchmark && r.method === method).sort((a, b) => a.seed - b.seed);
      if (rows.length === 0) continue;
      const dice = rows.map((r) => r.mean.dice);
      const mean = avg(dice);
      const organs = Object.keys(rows[0]!.perOrgan);
      methods[method] = {
        mean,
        std: Math.sqrt(avg(dice.map((d) => (d - mean) ** 2))),
        perSeed: dice,
        seeds: rows.map((r) => r.seed),
        perOrgan: Object.fromEntries(organs.map((g) => [g, avg(rows.map((r) => r.perOrgan[g]?.dice ?? Number.NaN))])),
        hd95Mm: avg(rows.map((r) => r.mean.hd95Mm)),
        assdMm: avg(rows.map((r) => r.mean.assdMm)),
      };
    }
    const so = methods['source-only']?.mean;
    const or = methods['oracle']?.mean;
    if (so !== undefined && or !== undefined && or > so) {
      for (const [m, v] of Object.entries(methods)) if (m !== 'source-only' && m !== 'oracle') methods[m] = { ...v, gapClosure: (v.mean - so) / (or - so) };
    }
    const paired = rlVersusBestBaseline(results, benchmark);
    benchmarks[benchmark] = { methods, ...(paired === undefined ? {} : { paired }) };
  }
  const { command, ...settings } = o;
  return { commit: origin.commit, date: new Date().toISOString(), wallSeconds: Math.round(wallMs / 1000), command, machine: origin.machine, settings, benchmarks };
}

/** image | ground truth (evaluation) | each method's prediction, middle slice of the first test case. */
async function overlayFigure(out: string, benchmark: string, seed: number, methods: readonly string[], dataDir: string, manifest: BenchmarkManifest): Promise<void> {
  const target = BENCHMARK_TARGET[benchmark] as Domain;
  const domain = manifest.domains.find((d) => d.domain === target);
  const id = domain?.testCases[0];
  if (!domain || !id || !domain.evalLabels) return;
  const c = openDataset(join(dataDir, domain.dataset)).getCase(id);
  if (!c) return;
  const image = await c.loadImage();
  const gt = await readNifti(join(dataDir, domain.evalLabels, `${id}.nii.gz`));
  const [nz, ny, nx] = image.shape;
  // The slice with the most labelled voxels shows every organ best.
  let z = Math.floor(nz / 2);
  let best = -1;
  for (let k = 0; k < nz; k++) {
    let n = 0;
    for (let i = k * ny * nx; i < (k + 1) * ny * nx; i++) if ((gt.data[i] as number) > 0) n++;
    if (n > best) [best, z] = [n, k];
  }
  const slab = (v: Volume): ArrayLike<number> => v.data.subarray(z * ny * nx, (z + 1) * ny * nx);
  const pixels = Array.from(slab(image)).sort((a, b) => a - b);
  const window = { min: pixels[Math.floor(pixels.length * 0.01)] ?? 0, max: pixels[Math.floor(pixels.length * 0.99)] ?? 1 };
  const panels = [overlayImage({ data: slab(image), shape: [ny, nx] }, window), overlayImage({ data: slab(image), shape: [ny, nx] }, { ...window, labels: slab(gt) })];
  for (const method of methods) {
    const path = join(out, benchmark, `s${seed}`, method, 'predictions', `${id}.nii.gz`);
    if (!existsSync(path)) continue;
    panels.push(overlayImage({ data: slab(image), shape: [ny, nx] }, { ...window, labels: slab(await readNifti(path)) }));
  }
  writePng(join(out, `overlay-${benchmark}-s${seed}.png`), tileHorizontally(panels));
}

function writeReport(out: string, o: BenchmarkOptions, results: readonly MethodResult[], wallMs: number, origin: Omit<Provenance, 'finishedAt'>): string {
  const organs = ['liver', 'spleen', 'right_kidney', 'left_kidney'];
  const report = new Report('purify benchmark');
  report.paragraph(
    `Command: \`${o.command}\` — commit ${origin.commit} — machine ${origin.machine} — ${new Date().toISOString()} — wall time ${formatSeconds(wallMs / 1000)} for the stages run in this invocation (finished stages are reused; the provenance table at the end says where each row was computed).`,
  );
  report.paragraph(
    'Dice = 2|P∩G|/(|P|+|G|) per organ and case on the original grid; HD95 = max of the two directed 95th percentiles (mm); ASSD = mean of the two directed means (mm); mean ± std over seeds of the per-seed organ averages. Gap closure = (method − source-only) / (oracle − source-only). Target labels are used for this evaluation only — never for training, pseudo-labels, model selection or rewards.',
  );
  for (const benchmark of o.benchmarks) {
    const rows = results.filter((r) => r.benchmark === benchmark);
    if (rows.length === 0) continue;
    report.heading(`${benchmark}: target test set`);
    const byMethod = (m: string) => rows.filter((r) => r.method === m);
    const avg = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
    const so = avg(byMethod('source-only').map((r) => r.mean.dice));
    const or = avg(byMethod('oracle').map((r) => r.mean.dice));
    report.table(
      ['method', ...organs.map((g) => `${g} Dice`), 'mean Dice', 'HD95 mm', 'ASSD mm', 'gap closure', 'seeds'],
      o.methods.filter((m) => byMethod(m).length > 0).map((m) => {
        const rs = byMethod(m);
        const gap = byMethod('oracle').length > 0 && byMethod('source-only').length > 0 && m !== 'source-only' && m !== 'oracle' ? `${(((avg(rs.map((r) => r.mean.dice)) - so) / (or - so)) * 100).toFixed(0)} %` : '–';
        return [m, ...organs.map((g) => meanStd(rs.map((r) => r.perOrgan[g]?.dice ?? Number.NaN))), meanStd(rs.map((r) => r.mean.dice)), meanStd(rs.map((r) => r.mean.hd95Mm), 1), meanStd(rs.map((r) => r.mean.assdMm), 1), gap, String(rs.length)];
      }),
    );
    const seedsRun = [...new Set(rows.map((r) => r.seed))].sort((a, b) => a - b);
    report.paragraph(`Per seed: organ-average Dice of each seed (seeds ${seedsRun.join(', ')}).`);
    report.table(
      ['method', ...seedsRun.map((s) => `seed ${s}`)],
      o.methods.filter((m) => byMethod(m).length > 0).map((m) => [m, ...seedsRun.map((s) => byMethod(m).find((r) => r.seed === s)?.mean.dice.toFixed(3) ?? '–')]),
    );
    const paired = rlVersusBestBaseline(results, benchmark);
    if (paired !== undefined) {
      const f = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
      report.paragraph(
        `Paired: rl − ${paired.against} (the best baseline by mean Dice), per seed ${paired.seeds.map((s, i) => `s${s} ${f(paired.perSeed[i]!)}`).join(', ')}; mean ${f(paired.meanDifference)}; rl ahead on ${paired.wins} of ${paired.seeds.length} seeds, behind on ${paired.losses}; 95 % bootstrap interval of the mean difference [${f(paired.ci95[0])}, ${f(paired.ci95[1])}] (${paired.resamples} resamples of seeds, then of test cases within each seed).`,
      );
    }
    report.figure(`dice-${benchmark}.png`, boxPlot({ title: `${benchmark}: organ-average Dice per test case`, yLabel: 'Dice', yRange: [0, 1] }, o.methods.filter((m) => byMethod(m).length > 0).map((m) => ({ name: m, values: byMethod(m).flatMap((r) => r.perCaseDice) }))), 'Dice per case, all seeds');
    const adapted = rows.filter((r) => r.adapt && r.adapt.rounds.length > 0);
    if (adapted.length > 0) {
      const metricNames = [...new Set(adapted.flatMap((r) => r.adapt?.rounds.flatMap((x) => Object.keys(x.metrics)) ?? []))];
      const curve = metricNames.find((n) => n === 'source_val_dice') ?? metricNames[0];
      if (curve) {
        report.figure(
          `curve-${benchmark}.png`,
          lineChart({ title: `${benchmark}: ${curve} per round (label-free)`, xLabel: 'round', yLabel: curve }, adapted.map((r) => ({ name: `${r.method} s${r.seed}`, points: (r.adapt?.rounds ?? []).map((x) => [x.round, x.metrics[curve] ?? Number.NaN] as const) }))),
          'learning curves from the trainer’s round events',
        );
      }
      const rl = adapted.find((r) => r.method === 'rl' && (r.adapt?.weights.length ?? 0) > 0);
      if (rl?.adapt) {
        report.figure(`weights-${benchmark}.png`, histogramChart({ title: `${benchmark}: supervision weights chosen by the agent, per round`, xLabel: 'weight', yLabel: 'fraction of pixels' }, rl.adapt.weights.map((w) => ({ name: `round ${w.round}`, counts: w.histogram }))), 'distribution of the RL agent’s pixel weights over rounds');
      }
    }
    for (const seed of o.seeds) {
      if (existsSync(join(out, `overlay-${benchmark}-s${seed}.png`))) report.image(`overlay-${benchmark}-s${seed}.png`, `image | ground truth (evaluation only) | ${o.methods.join(' | ')} — seed ${seed}`);
    }
    // What the last round of `rule` and `rl` did to one target training slice (label-free; written by `purify adapt`).
    for (const r of rows.filter((x) => (x.method === 'rl' || x.method === 'rule') && (x.adapt?.figures?.length ?? 0) > 0)) {
      const f = r.adapt!.figures![r.adapt!.figures!.length - 1]!;
      const file = join(benchmark, `s${r.seed}`, r.method, 'job', f.file);
      if (existsSync(join(out, file))) report.image(file, `${r.method}, seed ${r.seed}, round ${f.round}: ${ROUND_FIGURE_PANELS.join(' | ')} — target training case ${f.caseId}, slice ${f.slice} (reliability and weights: blue 0 → red 1)`);
    }
  }
  const sources = readdirSync(out).filter((f) => /^source-s\d+\.json$/.test(f));
  if (sources.length > 0) {
    report.heading('Source models');
    report.table(['file', 'model', 'CT validation Dice', 'lowest organ', 'steps (best)', 'augmentation', 'steps/s', 'backend', 'wall'], sources.map((f) => {
      const s = JSON.parse(readFileSync(join(out, f), 'utf8')) as SourceStage;
      const organs = Object.entries(s.valPerClass ?? {});
      const lowest = organs.length === 0 ? '–' : organs.reduce((a, b) => (b[1] < a[1] ? b : a));
      return [
        f,
        `${s.name}:${s.version}`,
        s.valDice.toFixed(3),
        typeof lowest === 'string' ? lowest : `${lowest[0]} ${lowest[1].toFixed(3)}`,
        s.stepsDone === undefined ? '–' : `${s.stepsDone} (${s.bestStep}, ${s.stopReason})`,
        s.augment ?? '–',
        (1000 / s.msPerStep).toFixed(2),
        s.backend,
        formatSeconds(s.wallMs / 1000),
      ];
    }));
  }
  report.heading('Provenance');
  report.table(['commit', 'machine', 'rows finished', 'rows'], provenanceRows(results));
  return report.write(out).markdown;
}

/** One line per (commit, machine): when its rows finished, and which rows (benchmark: method seeds) were computed there. */
export function provenanceRows(results: readonly Pick<MethodResult, 'benchmark' | 'method' | 'seed' | 'provenance'>[]): string[][] {
  const groups = new Map<string, { p: Provenance | undefined; rows: Map<string, number[]>; times: string[] }>();
  for (const r of results) {
    const key = r.provenance ? `${r.provenance.commit} ${r.provenance.machine}` : '';
    const g = groups.get(key) ?? { p: r.provenance, rows: new Map<string, number[]>(), times: [] };
    const row = `${r.benchmark}: ${r.method}`;
    g.rows.set(row, [...(g.rows.get(row) ?? []), r.seed]);
    if (r.provenance) g.times.push(r.provenance.finishedAt);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => {
    const times = [...g.times].sort();
    const rows = [...g.rows].map(([row, seeds]) => `${row} s${[...seeds].sort((a, b) => a - b).join(',')}`);
    return [g.p?.commit ?? 'not recorded', g.p?.machine ?? 'not recorded', times.length > 0 ? `${times[0]} … ${times[times.length - 1]}` : '–', rows.join('; ')];
  });
}

function listArg(raw: string): string[] {
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function benchmarkOptions(cmd: Command): Command {
  return cmd
    .option('--out <dir>', 'run folder (resumable: rerun with the same folder to continue)')
    .option('--train-cases <n>', 'training cases per domain', intArg(2, 1000))
    .option('--test-cases <n>', 'target test cases', intArg(1, 1000))
    .option('--size <px>', 'in-plane size', intArg(32, 512))
    .option('--slices <n>', 'axial slices of the CT grid', intArg(4, 256))
    .option('--source-steps <n>', 'most source training steps (it stops earlier once the CT validation Dice has converged)', intArg(1, 100_000))
    .option('--augment <preset>', `source augmentation preset (name or name@version): ${Object.values(AugmentLevel).join(', ')}`, augmentArg)
    .option('--rounds <n>', 'adaptation rounds', intArg(1, 1000))
    .option('--steps-per-round <n>', 'training steps per round', intArg(1, 100_000))
    .option('--batch-size <n>', 'slices per step', intArg(2, 256))
    .option('--oracle-steps <n>', 'training steps of the oracle (one round, target labels, source learning rate)', intArg(1, 100_000))
    .option('--learning-rate <x>', 'peak learning rate of the adapting methods (default: the trainer default, 1e-4; the oracle keeps the source schedule\'s)', numberArg(0, 1, { min: true }))
    .option('--target-loss <kind>', `target loss of cbst, rule and rl: ${Object.keys(TARGET_LOSS_NAMES).join(', ')} (default class-balanced)`, targetLossArg)
    .option('--json', 'print the results as JSON', false);
}

interface CliOptions {
  out?: string;
  benchmarks?: string;
  methods?: string;
  seeds?: number;
  trainCases?: number;
  testCases?: number;
  size?: number;
  slices?: number;
  sourceSteps?: number;
  augment?: AugmentLevel;
  rounds?: number;
  stepsPerRound?: number;
  batchSize?: number;
  oracleSteps?: number;
  targetLoss?: TargetLossName;
  learningRate?: number;
  json: boolean;
}

function resolveOptions(opts: CliOptions, defaults: Omit<BenchmarkOptions, 'command'>): BenchmarkOptions {
  const augment = opts.augment ?? defaults.augment;
  return {
    out: opts.out ?? defaults.out,
    benchmarks: opts.benchmarks ? listArg(opts.benchmarks) : defaults.benchmarks,
    methods: opts.methods ? listArg(opts.methods) : defaults.methods,
    seeds: opts.seeds ? Array.from({ length: opts.seeds }, (_, i) => i + 1) : defaults.seeds,
    trainCases: opts.trainCases ?? defaults.trainCases,
    testCases: opts.testCases ?? defaults.testCases,
    size: opts.size ?? defaults.size,
    slices: opts.slices ?? defaults.slices,
    sourceSteps: opts.sourceSteps ?? defaults.sourceSteps,
    augment,
    rounds: opts.rounds ?? defaults.rounds,
    stepsPerRound: opts.stepsPerRound ?? defaults.stepsPerRound,
    batchSize: opts.batchSize ?? defaults.batchSize,
    oracleSteps: opts.oracleSteps ?? defaults.oracleSteps,
    ...(opts.targetLoss === undefined || opts.targetLoss === 'class-balanced' ? {} : { targetLoss: opts.targetLoss }),
    ...(opts.learningRate === undefined ? {} : { learningRate: opts.learningRate }),
    command: `purify ${process.argv.slice(2).join(' ')}`,
  };
}

async function runAndPrint(o: BenchmarkOptions, json: boolean): Promise<void> {
  const { report, results } = await runBenchmark(o);
  output(json, results.map(({ adapt: _a, ...r }) => r), () => `${readFileSync(report, 'utf8')}\nreport: ${report} (and report.html beside it)`);
}

/**
 * Defaults sized for this 2-core machine: the whole table (2 benchmarks × 3
 * seeds × 8 methods) within about 2 hours. A training step of batch 8 costs
 * ~0.65 s in the adaptation loop at 64 or 96 px alike (per-op overhead
 * dominates), so the budget is set by the number of steps and rounds: each
 * round adds a teacher pass, and for rule/rl a reliability pass and episodes.
 */
const BENCHMARK_DEFAULTS: Omit<BenchmarkOptions, 'command'> = {
  out: 'runs/benchmark',
  benchmarks: ['ct-mr', 'ct-cbct'],
  methods: [...DEFAULT_METHODS],
  seeds: [1, 2, 3],
  trainCases: 16,
  testCases: 6,
  size: 96,
  slices: 32,
  sourceSteps: SOURCE_SCHEDULE.maxSteps,
  augment: SOURCE_SCHEDULE.augment,
  rounds: 2,
  stepsPerRound: 50,
  batchSize: 8,
  oracleSteps: 300,
};

/** Defaults of `npm start`: one benchmark, one seed, rl and one baseline, within 15 minutes. */
const DEMO_DEFAULTS: Omit<BenchmarkOptions, 'command'> = {
  ...BENCHMARK_DEFAULTS,
  out: 'runs/demo',
  benchmarks: ['ct-mr'],
  methods: ['source-only', 'naive', 'rl'],
  seeds: [1],
  trainCases: 12,
  testCases: 4,
  sourceSteps: 1500,
  rounds: 2,
  stepsPerRound: 30,
};

export function benchmarkCommand(): Command {
  return benchmarkOptions(
    new Command('benchmark')
      .description('Every method side by side on the built-in benchmarks, over several seeds: tables (Dice, HD95, ASSD, gap closure) and figures in report.md / report.html; resumable')
      .option('--benchmarks <list>', 'ct-mr, ct-cbct', BENCHMARK_DEFAULTS.benchmarks.join(','))
      .option('--methods <list>', ALL_METHODS.join(', '), BENCHMARK_DEFAULTS.methods.join(','))
      .option('--seeds <n>', 'number of seeds (1..n)', intArg(1, 100)),
  ).action(async (opts: CliOptions) => runAndPrint(resolveOptions(opts, BENCHMARK_DEFAULTS), opts.json));
}

export function demoCommand(): Command {
  return benchmarkOptions(
    new Command('demo')
      .description('The whole pipeline on built-in CT→MR data: generate, start the services, train the source model, adapt with rl and a baseline, evaluate, report, stop (npm start)')
      .option('--methods <list>', ALL_METHODS.join(', '), DEMO_DEFAULTS.methods.join(',')),
  ).action(async (opts: CliOptions) => runAndPrint(resolveOptions(opts, DEMO_DEFAULTS), opts.json));
}
