/**
 * Evidence for the reliability features (issue #5): do they detect wrong
 * pseudo-label regions better than confidence alone? And how fast is scoring?
 *
 *   npx tsx --conditions=@purify/source tools/bench/reliability.ts --data DIR --model NAME[:VERSION] \
 *     [--artifacts-dir artifacts | --segmenter HOST:PORT] [--domains mr,cbct] [--patch-size 32] [--stride 16] \
 *     [--source-cases 8] [--shifts 3] [--max-cases 0] [--views] [--timing-only] [--out FILE.md]
 *
 * DIR is the output of `purify data generate` (ct = labelled source; mr, cbct =
 * targets whose test labels live in <domain>-eval/labelsTs, used here for
 * EVALUATION ONLY). The model is a source-only model in the registry.
 *
 * 1. Source fit (never target labels): every held-out CT case is scored as is
 *    and under `--shifts` random appearance shifts (imaging's randomAppearance in
 *    the model's normalised units, mapped back to raw units), the regions are
 *    marked wrong from the CT labels, and one small logistic model per error
 *    threshold is fitted on the normalised features.
 * 2. Target evaluation: each target test case is scored; a region is "wrong"
 *    when the fraction of its pixels whose pseudo-label differs from the label
 *    exceeds 5 % (resp. 20 %). AUROC of: 1 − max-probability, entropy,
 *    JS divergence (composition vs whole), 1 − Dice(composed, whole), 1 − the
 *    fixed score, and the source-fitted logistic model. Spearman ρ of the fixed
 *    and logistic scores with the region Dice (pseudo-label vs label, mean over
 *    the classes present in either within the region).
 * 3. Timing: one 128×128 slice and a 64×128×128 volume (target slices resized),
 *    median of 3 runs, with the service's split (segment / patches / features).
 *
 * The segmenter runs as its own process (from the sources, through tsx) unless
 * --segmenter names a running one; the reliability service runs in-process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { Interpolation, makeVolume, openDataset, percentiles, randomAppearance, readNifti, resampleVolume, Rng, type Volume } from '@purify/imaging';
import { BorderMode, DType, MapKind, Normalization_Kind, ReliabilityServiceClient, SegmenterServiceClient, type ModelInfo, type ModelRef, type ScoreRequest, type ScoreResponse, type ScoreResult } from '@purify/proto';
import { auroc, featureIndex, fitLogistic, logisticPredict, normalizeFeatures, NUM_FEATURES, spearman, type LogisticModel } from '@purify/reliability';
import { reliabilityService } from '@purify/reliability-service';
import { createClient, startInProcess, unaryCall, type ReadyMessage } from '@purify/runtime';

// ------------------------------------------------------------------ arguments

interface Args {
  data: string;
  model: ModelRef;
  artifactsDir: string;
  segmenter?: string;
  domains: string[];
  patchSize: number;
  stride: number;
  sourceCases: number;
  shifts: number;
  maxCases: number;
  views: boolean;
  timingOnly: boolean;
  out?: string;
}

function parseArgs(argv: readonly string[]): Args {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, fallback: number): number => {
    const raw = get(name);
    const v = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be an integer ≥ 0, got "${raw}"`);
    return v;
  };
  const data = get('data');
  const model = get('model');
  if (!data || !model) throw new Error('usage: reliability.ts --data DIR --model NAME[:VERSION] [options] (see the header of tools/bench/reliability.ts)');
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?::(\d+))?$/.exec(model);
  if (!m) throw new Error(`--model must be NAME[:VERSION], got "${model}"`);
  const segmenter = get('segmenter');
  const out = get('out');
  return {
    data: resolve(data),
    model: { name: m[1] as string, version: m[2] ? Number(m[2]) : 0 },
    artifactsDir: resolve(get('artifacts-dir') ?? 'artifacts'),
    ...(segmenter ? { segmenter } : {}),
    domains: (get('domains') ?? 'mr,cbct').split(','),
    patchSize: int('patch-size', 32),
    stride: int('stride', 16),
    sourceCases: int('source-cases', 8),
    shifts: int('shifts', 3),
    maxCases: int('max-cases', 0),
    views: argv.includes('--views'),
    timingOnly: argv.includes('--timing-only'),
    ...(out ? { out: resolve(out) } : {}),
  };
}

// ------------------------------------------------------------------ services

async function startSegmenter(artifactsDir: string): Promise<{ child: ChildProcess; address: string }> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const main = require.resolve('@purify/segmenter-service/main');
  const child = spawn(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', main, '--port', '0', '--artifacts-dir', artifactsDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((res, rej) => {
    child.on('message', (msg: ReadyMessage) => msg.type === 'purify.ready' && res({ child, address: msg.address }));
    child.on('exit', (code) => rej(new Error(`segmenter exited with code ${code}`)));
  });
}

interface Scored {
  readonly result: ScoreResult;
  readonly pseudo: Float32Array;
  readonly region: Float32Array;
  readonly wallMs: number;
}

function score(client: ReliabilityServiceClient, volume: Volume, args: Args, model: ModelRef): Promise<Scored> {
  const voxels = Float32Array.from(volume.data);
  const bytes = Buffer.from(voxels.buffer);
  const started = performance.now();
  return new Promise((res, rej) => {
    const call: ClientDuplexStream<ScoreRequest, ScoreResponse> = client.score({ deadline: Date.now() + 600_000 });
    let result: ScoreResult | undefined;
    const parts = new Map<MapKind, Buffer[]>();
    call.on('data', (msg: ScoreResponse) => {
      if (msg.payload?.$case === 'result') result = msg.payload.result;
      else if (msg.payload?.$case === 'map' && msg.payload.map.chunk) parts.set(msg.payload.map.kind, [...(parts.get(msg.payload.map.kind) ?? []), msg.payload.map.chunk.data]);
    });
    call.on('error', (err: ServiceError) => rej(new Error(err.details || err.message)));
    call.on('end', () => {
      if (!result) return rej(new Error('no result'));
      const map = (k: MapKind): Float32Array => {
        const b = Buffer.concat(parts.get(k) ?? []);
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      };
      res({ result, pseudo: map(MapKind.MAP_KIND_PSEUDO_LABEL), region: map(MapKind.MAP_KIND_REGION_INDEX), wallMs: performance.now() - started });
    });
    call.write({
      payload: {
        $case: 'setup',
        setup: {
          model,
          image: { shapeZyx: [...volume.shape], spacingXyzMm: [...volume.spacingXyzMm], originLpsMm: [...volume.originLpsMm], directionLps: [...volume.directionLps], dtype: DType.DTYPE_FLOAT32, modality: 0, caseId: 'bench' },
          config: { patchSize: args.patchSize, stride: args.stride, borderMode: BorderMode.BORDER_MODE_SHIFT, splitByClass: false, flipView: args.views, appearanceView: args.views, seed: 1, patchBatchSize: 0 },
          maps: [MapKind.MAP_KIND_PSEUDO_LABEL, MapKind.MAP_KIND_REGION_INDEX],
          round: 0,
        },
      },
    });
    for (let o = 0; o < bytes.length; o += 1 << 20) call.write({ payload: { $case: 'chunk', chunk: { byteOffset: o, data: bytes.subarray(o, o + (1 << 20)) } } });
    call.end();
  });
}

// ------------------------------------------------------------------ regions vs labels

interface RegionTruth {
  /** Fraction of the region's pixels whose pseudo-label differs from the label. */
  readonly errorRate: Float64Array;
  /** Dice of pseudo-label vs label within the region, mean over classes present in either. */
  readonly dice: Float64Array;
}

function regionTruth(s: Scored, label: ArrayLike<number>): RegionTruth {
  const rows = s.result.features?.numRows ?? 0;
  const wrong = new Float64Array(rows);
  const count = new Float64Array(rows);
  const per = new Map<number, Map<number, [number, number, number]>>(); // region → class → [pred, label, both]
  for (let i = 0; i < s.pseudo.length; i++) {
    const r = s.region[i] as number;
    const p = s.pseudo[i] as number;
    const g = Math.round(label[i] as number);
    count[r] = (count[r] as number) + 1;
    if (p !== g) wrong[r] = (wrong[r] as number) + 1;
    const m = per.get(r) ?? new Map<number, [number, number, number]>();
    per.set(r, m);
    const a = m.get(p) ?? [0, 0, 0];
    a[0]++;
    if (p === g) a[2]++;
    m.set(p, a);
    const b = m.get(g) ?? [0, 0, 0];
    b[1]++;
    m.set(g, b);
  }
  const dice = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const m = per.get(r);
    let sum = 0;
    let n = 0;
    for (const [pred, lab, both] of m?.values() ?? []) {
      sum += (2 * both) / (pred + lab);
      n++;
    }
    dice[r] = n > 0 ? sum / n : 1;
    wrong[r] = (wrong[r] as number) / Math.max(1, count[r] as number);
  }
  return { errorRate: wrong, dice };
}

// ------------------------------------------------------------------ appearance shifts on the source

/** Raw ↔ normalised maps for a model's normalisation (linear part only; values outside the window saturate). */
function rawRange(volume: Volume, info: ModelInfo): { low: number; high: number } {
  const n = info.normalization;
  if (n?.kind === Normalization_Kind.KIND_CT_WINDOW) return { low: n.windowLow, high: n.windowHigh };
  if (n?.kind === Normalization_Kind.KIND_PERCENTILE) {
    const [low, high] = percentiles(volume.data, [n.percentileLow, n.percentileHigh]) as [number, number];
    return { low, high };
  }
  const [low, high] = percentiles(volume.data, [0.5, 99.5]) as [number, number];
  return { low, high };
}

/** A simulated target appearance of a source image: randomAppearance in [0, 1] units, mapped back to raw units. */
function shifted(volume: Volume, info: ModelInfo, seed: number): Volume {
  const { low, high } = rawRange(volume, info);
  const unit = Float32Array.from(volume.data, (v) => Math.min(Math.max((v - low) / (high - low), 0), 1));
  const out = randomAppearance({ data: unit, shape: [...volume.shape] }, new Rng(seed), { pCurve: 0.8, pGamma: 0.5, pContrast: 0.5, pBias: 0.5, pBlur: 0.3, pNoise: 0.5 });
  return makeVolume(Float32Array.from(out.data, (v) => low + v * (high - low)), volume.shape, volume);
}

// ------------------------------------------------------------------ detectors

const DETECTORS = [
  { name: '1 − max-probability', f: (row: Float32Array) => 1 - (row[featureIndex('max_probability')] as number) },
  { name: 'entropy', f: (row: Float32Array) => row[featureIndex('entropy')] as number },
  { name: 'JS divergence (composition vs whole)', f: (row: Float32Array) => row[featureIndex('js_divergence')] as number },
  { name: '1 − Dice (composed vs whole argmax)', f: (row: Float32Array) => 1 - (row[featureIndex('dice_mean')] as number) },
  { name: '1 − fixed reliability score', f: (row: Float32Array) => 1 - (row[featureIndex('reliability')] as number) },
] as const;

interface Pool {
  features: number[];
  errorRate: number[];
  dice: number[];
}
const emptyPool = (): Pool => ({ features: [], errorRate: [], dice: [] });
function addToPool(pool: Pool, s: Scored, truth: RegionTruth): void {
  pool.features.push(...(s.result.features?.values ?? []));
  pool.errorRate.push(...truth.errorRate);
  pool.dice.push(...truth.dice);
}

const THRESHOLDS = [0.05, 0.2];
const fmt = (v: number): string => (Number.isNaN(v) ? 'n/a' : v.toFixed(3));

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const lines: string[] = [];
  const say = (line = ''): void => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  let segmenterChild: ChildProcess | undefined;
  let segAddress = args.segmenter;
  if (!segAddress) {
    const started = await startSegmenter(args.artifactsDir);
    segmenterChild = started.child;
    segAddress = started.address;
  }
  const server = await startInProcess(reliabilityService, ['--port', '0', '--segmenter-addresses', segAddress]);
  const client = createClient(ReliabilityServiceClient, 'reliability', { addresses: [server.address], defaultTimeoutMs: 600_000 });
  const segClient = createClient(SegmenterServiceClient, 'segmenter', { addresses: [segAddress], defaultTimeoutMs: 600_000 });
  try {
    const info = await unaryCall(segClient, 'loadModel', { ref: args.model });
    const model = info.ref ?? args.model;
    say(`# Reliability evidence — model ${model.name}:${model.version}`);
    say();
    say(`Command: \`npx tsx --conditions=@purify/source tools/bench/reliability.ts ${process.argv.slice(2).join(' ')}\``);
    say(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`);
    say(`Config: patch ${args.patchSize}, stride ${args.stride}, shift borders, views ${args.views ? 'flip + appearance' : 'off'}.`);
    say();

    if (!args.timingOnly) {
      // 1. Source fit with simulated appearance shifts (source labels only).
      const source = openDataset(join(args.data, 'ct'));
      const sourceCases = source.cases.filter((c) => c.split === 'test').slice(0, args.sourceCases || undefined);
      const src = emptyPool();
      for (const c of sourceCases) {
        const image = await c.loadImage();
        const label = await c.loadLabel();
        if (!label) throw new Error(`source case ${c.id} has no label`);
        for (let k = 0; k <= args.shifts; k++) {
          const s = await score(client, k === 0 ? image : shifted(image, info, 1000 * k + sourceCases.indexOf(c)), args, model);
          addToPool(src, s, regionTruth(s, label.data));
        }
        process.stderr.write(`source ${c.id}: ${src.errorRate.length} regions\n`);
      }
      const srcNorm = normalizeFeatures(Float32Array.from(src.features));
      const fitted = new Map<number, LogisticModel>();
      for (const t of THRESHOLDS) {
        const y = src.errorRate.map((e) => e > t);
        fitted.set(t, fitLogistic(srcNorm, y, NUM_FEATURES, { l2: 1 }));
      }
      say(`Source fit: ${sourceCases.length} held-out CT cases × (1 + ${args.shifts} appearance shifts), ${src.errorRate.length} regions; wrong regions ${THRESHOLDS.map((t) => `${(100 * t).toFixed(0)} %: ${src.errorRate.filter((e) => e > t).length}`).join(', ')}.`);
      say();

      // 2. Target evaluation (labels for evaluation only).
      for (const domain of args.domains) {
        const target = openDataset(join(args.data, domain));
        const cases = target.cases.filter((c) => c.split === 'test').slice(0, args.maxCases || undefined);
        const pool = emptyPool();
        for (const c of cases) {
          const image = await c.loadImage();
          const label = await readNifti(join(args.data, `${domain}-eval`, 'labelsTs', `${c.id}${target.fileEnding}`));
          const s = await score(client, image, args, model);
          addToPool(pool, s, regionTruth(s, label.data));
        }
        const rows = pool.errorRate.length;
        const feats = Float32Array.from(pool.features);
        const row = (i: number): Float32Array => feats.subarray(i * NUM_FEATURES, (i + 1) * NUM_FEATURES);
        const norm = normalizeFeatures(feats);
        say(`## CT → ${domain.toUpperCase()} (${cases.length} test cases, ${rows} regions)`);
        say();
        say(`| detector of wrong regions | AUROC, wrong = error > 5 % | AUROC, wrong = error > 20 % |`);
        say(`|---|---|---|`);
        const wrongAt = (t: number): boolean[] => pool.errorRate.map((e) => e > t);
        for (const d of DETECTORS) {
          const scores = Array.from({ length: rows }, (_, i) => d.f(row(i)));
          say(`| ${d.name} | ${THRESHOLDS.map((t) => fmt(auroc(scores, wrongAt(t)))).join(' | ')} |`);
        }
        const logistic = THRESHOLDS.map((t) => logisticPredict(fitted.get(t) as LogisticModel, norm));
        say(`| combined features (logistic, fitted on source + shifts) | ${THRESHOLDS.map((t, k) => fmt(auroc(logistic[k] as Float64Array, wrongAt(t)))).join(' | ')} |`);
        say(`| wrong regions (count) | ${THRESHOLDS.map((t) => String(wrongAt(t).filter(Boolean).length)).join(' | ')} |`);
        say();
        const fixed = Array.from({ length: rows }, (_, i) => row(i)[featureIndex('reliability')] as number);
        const maxProb = Array.from({ length: rows }, (_, i) => row(i)[featureIndex('max_probability')] as number);
        say(`Spearman ρ with region Dice: fixed score ${fmt(spearman(fixed, pool.dice))}, logistic (5 %) reliability ${fmt(spearman(Array.from(logistic[0] as Float64Array, (p) => 1 - p), pool.dice))}, max-probability ${fmt(spearman(maxProb, pool.dice))}.`);
        say();
      }
    }

    // 3. Timing.
    const firstDomain = args.domains[0] ?? 'mr';
    const target = openDataset(join(args.data, firstDomain));
    const base = await (target.cases[0] ?? (() => { throw new Error(`no cases in ${firstDomain}`); })()).loadImage();
    const resized = resampleVolume(base, { sizeXy: [128, 128] }, Interpolation.linear).volume;
    const spacing: [number, number, number] = info.spacingXyMm.length === 2 ? [info.spacingXyMm[0] as number, info.spacingXyMm[1] as number, resized.spacingXyzMm[2]] : [...resized.spacingXyzMm];
    // z slices taken cyclically from the middle of the resized case.
    const stack = (z: number): Volume => {
      const out = new Float32Array(z * 128 * 128);
      const nz = resized.shape[0];
      for (let s = 0; s < z; s++) {
        const from = (s + Math.floor(nz / 2)) % nz;
        out.set(resized.data.subarray(from * 16384, (from + 1) * 16384), s * 16384);
      }
      return makeVolume(out, [z, 128, 128], { ...resized, spacingXyzMm: spacing });
    };
    say(`## Speed (${firstDomain} slices resized to 128×128; median of 3 after a warm-up)`);
    say();
    say(`| input | anchor patches | wall ms | segment ms | patches ms | features ms |`);
    say(`|---|---|---|---|---|---|`);
    for (const z of [1, 64]) {
      const v = stack(z);
      await score(client, v, args, model);
      const runs: Scored[] = [];
      for (let k = 0; k < 3; k++) runs.push(await score(client, v, args, model));
      runs.sort((a, b) => a.wallMs - b.wallMs);
      const m = runs[1] as Scored;
      const perSlice = m.result.grid ? m.result.grid.anchorCentresYx.length / 2 : 0;
      say(`| ${z}×128×128 | ${z * perSlice} | ${m.wallMs.toFixed(0)} | ${m.result.segmentMs.toFixed(0)} | ${m.result.patchesMs.toFixed(0)} | ${m.result.featuresMs.toFixed(0)} |`);
    }
    say();
    say('segment = Segment calls (whole image and views), patches = all PredictPatches calls; both run concurrently, so wall ≈ max(segment, patches) + features + transfer.');
    if (args.out) writeFileSync(args.out, `${lines.join('\n')}\n`);
  } finally {
    client.close();
    segClient.close();
    await server.shutdown();
    if (segmenterChild && segmenterChild.exitCode === null) {
      const exited = new Promise((r) => segmenterChild?.once('exit', r));
      segmenterChild.kill('SIGTERM');
      await exited;
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`reliability bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
