/**
 * Evidence for the reliability features (issue #5): do they detect wrong
 * pseudo-label regions better than confidence alone? Why (not)? And how fast is scoring?
 *
 *   npx tsx --conditions=@purify/source tools/bench/reliability.ts --data DIR --model NAME[:VERSION] \
 *     [--artifacts-dir artifacts | --segmenter HOST:PORT] [--domains mr,cbct] [--patch-size 32] [--stride 16] \
 *     [--configs 16/4,16/8,32/8,32/16,48/12,48/24] [--source-cases 8] [--shifts 3] [--shift-fits bench,0.5,1] \
 *     [--max-cases 0] [--views] [--diagnostics] [--figures DIR] [--timing-only] [--no-timing] [--out FILE.md]
 *
 * DIR is the output of `purify data generate` (ct = labelled source; mr, cbct =
 * targets whose test labels live in <domain>-eval/labelsTs, used here for
 * EVALUATION ONLY). The model is a source-only model in the registry.
 *
 * 1. Source fit (never target labels): every held-out CT case is scored as is
 *    and under `--shifts` random appearance shifts per entry of `--shift-fits`
 *    (`bench`: imaging's randomAppearance with this script's probabilities, on
 *    the whole volume; a number s in [0, 1]: @purify/adaptation's
 *    `simulatedShift(s)`, one chain per volume applied slice by slice, as the
 *    adaptation loop's pseudo-targets), in the model's normalised units mapped
 *    back to raw units. Regions are marked wrong from the CT labels, and one
 *    small logistic model per error threshold and shift entry is fitted on the
 *    normalised features (clean + shifted regions).
 * 2. Target evaluation: each target test case is scored; a region is "wrong"
 *    when the fraction of its pixels whose pseudo-label differs from the label
 *    exceeds 5 % (resp. 20 %). AUROC of: 1 − max-probability, entropy,
 *    JS divergence (composition vs whole), 1 − Dice(composed, whole), 1 − the
 *    fixed score, and the source-fitted logistic models. Spearman ρ of the fixed
 *    and logistic scores with the region Dice (pseudo-label vs label, mean over
 *    the classes present in either within the region).
 *    `--diagnostics` adds, per domain: single-feature AUROCs on the source fit
 *    set vs the target, the standardised logistic coefficients, the feature means
 *    of wrong / right regions, logistic fits on feature subsets, and a logistic
 *    fitted on the TARGET labels with leave-one-case-out (an evaluation-only
 *    upper bound: what the features could do with the right weights).
 * 3. `--configs P/S,...` (study): steps 1–2 for every patch size P / stride S,
 *    one summary table per domain (AUROC of JS and of the combined score at
 *    > 5 %, also on a FIXED 16-pixel evaluation grid so that region size does
 *    not change the task, and the scoring wall time per volume).
 * 4. Timing: one 128×128 slice and a 64×128×128 volume (target slices resized),
 *    median of 3 runs, with the service's split (segment / patches / features).
 * `--figures DIR` writes ROC curves (and, with `--configs`, AUROC vs patch size) as PNG.
 *
 * The segmenter runs as its own process (from the sources, through tsx) unless
 * --segmenter names a running one; the reliability service runs in-process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { simulatedShift } from '@purify/adaptation';
import { writeFileAtomic } from '@purify/artifacts';
import { Interpolation, makeVolume, openDataset, percentiles, randomAppearance, readNifti, resampleVolume, Rng, type AppearanceOptions, type Volume } from '@purify/imaging';
import { BorderMode, DType, MapKind, Normalization_Kind, ReliabilityServiceClient, SegmenterServiceClient, type ModelInfo, type ModelRef, type ScoreRequest, type ScoreResponse, type ScoreResult } from '@purify/proto';
import { auroc, FEATURE_SCHEMA, featureIndex, fitLogistic, logisticPredict, normalizeFeatures, NUM_FEATURES, spearman, type LogisticModel } from '@purify/reliability';
import { reliabilityService } from '@purify/reliability-service';
import { lineChart, svgToPng, type Series } from '@purify/report';
import { createClient, startInProcess, unaryCall, type ReadyMessage } from '@purify/runtime';

// ------------------------------------------------------------------ arguments

interface PatchConfig {
  readonly patchSize: number;
  readonly stride: number;
}

interface Args {
  data: string;
  model: ModelRef;
  artifactsDir: string;
  segmenter?: string;
  domains: string[];
  configs: PatchConfig[];
  sourceCases: number;
  shifts: number;
  /** 'bench' or a simulatedShift severity in [0, 1]. */
  shiftFits: ('bench' | number)[];
  maxCases: number;
  views: boolean;
  diagnostics: boolean;
  figures?: string;
  timingOnly: boolean;
  timing: boolean;
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
  const configsRaw = get('configs');
  const configs = configsRaw
    ? configsRaw.split(',').map((c) => {
        const pm = /^(\d+)\/(\d+)$/.exec(c.trim());
        const patchSize = Number(pm?.[1]);
        const stride = Number(pm?.[2]);
        if (!pm || patchSize < 1 || stride < 1 || stride > patchSize) throw new Error(`--configs must be a comma-separated list of PATCH/STRIDE with 1 ≤ STRIDE ≤ PATCH, got "${c}"`);
        return { patchSize, stride };
      })
    : [{ patchSize: int('patch-size', 32), stride: int('stride', 16) }];
  const shiftFits = (get('shift-fits') ?? 'bench').split(',').map((f) => {
    if (f === 'bench') return 'bench' as const;
    const s = Number(f);
    if (!(s >= 0 && s <= 1)) throw new Error(`--shift-fits entries must be "bench" or a severity in [0, 1], got "${f}"`);
    return s;
  });
  const segmenter = get('segmenter');
  const out = get('out');
  const figures = get('figures');
  return {
    data: resolve(data),
    model: { name: m[1] as string, version: m[2] ? Number(m[2]) : 0 },
    artifactsDir: resolve(get('artifacts-dir') ?? 'artifacts'),
    ...(segmenter ? { segmenter } : {}),
    domains: (get('domains') ?? 'mr,cbct').split(','),
    configs,
    sourceCases: int('source-cases', 8),
    shifts: int('shifts', 3),
    shiftFits,
    maxCases: int('max-cases', 0),
    views: argv.includes('--views'),
    diagnostics: argv.includes('--diagnostics'),
    ...(figures ? { figures: resolve(figures) } : {}),
    timingOnly: argv.includes('--timing-only'),
    timing: !argv.includes('--no-timing'),
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

/** One scored volume; maps are float32 `[z, y, x]` on the input grid. */
interface Scored {
  readonly result: ScoreResult;
  readonly shape: readonly [number, number, number];
  readonly pseudo: Float32Array;
  readonly region: Float32Array;
  /** Per-pixel JS(p_full, p_comp) in bits. */
  readonly js: Float32Array;
  /** Per-pixel fixed reliability r in [0, 1]. */
  readonly reliability: Float32Array;
  readonly wallMs: number;
}

function score(client: ReliabilityServiceClient, volume: Volume, config: PatchConfig, views: boolean, model: ModelRef): Promise<Scored> {
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
      res({
        result,
        shape: volume.shape,
        pseudo: map(MapKind.MAP_KIND_PSEUDO_LABEL),
        region: map(MapKind.MAP_KIND_REGION_INDEX),
        js: map(MapKind.MAP_KIND_JS_DIVERGENCE),
        reliability: map(MapKind.MAP_KIND_RELIABILITY),
        wallMs: performance.now() - started,
      });
    });
    call.write({
      payload: {
        $case: 'setup',
        setup: {
          model,
          image: { shapeZyx: [...volume.shape], spacingXyzMm: [...volume.spacingXyzMm], originLpsMm: [...volume.originLpsMm], directionLps: [...volume.directionLps], dtype: DType.DTYPE_FLOAT32, modality: 0, caseId: 'bench' },
          config: { patchSize: config.patchSize, stride: config.stride, borderMode: BorderMode.BORDER_MODE_SHIFT, splitByClass: false, flipView: views, appearanceView: views, seed: 1, patchBatchSize: 0 },
          maps: [MapKind.MAP_KIND_PSEUDO_LABEL, MapKind.MAP_KIND_REGION_INDEX, MapKind.MAP_KIND_JS_DIVERGENCE, MapKind.MAP_KIND_RELIABILITY],
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

/** Side of the fixed evaluation cells (pixels): the same regions for every patch size and stride. */
const FIXED_CELL = 16;

/**
 * Means of the JS and reliability maps and the pseudo-label error rate over fixed
 * FIXED_CELL × FIXED_CELL cells of every slice (ragged last row/column), whatever
 * the scoring stride was.
 */
function fixedGrid(s: Scored, label: ArrayLike<number>): { js: number[]; unreliability: number[]; errorRate: number[] } {
  const [nz, ny, nx] = s.shape;
  const cy = Math.ceil(ny / FIXED_CELL);
  const cx = Math.ceil(nx / FIXED_CELL);
  const cells = nz * cy * cx;
  const js = new Float64Array(cells);
  const rel = new Float64Array(cells);
  const wrong = new Float64Array(cells);
  const count = new Float64Array(cells);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = (z * ny + y) * nx + x;
        const c = (z * cy + Math.floor(y / FIXED_CELL)) * cx + Math.floor(x / FIXED_CELL);
        js[c] = (js[c] as number) + (s.js[i] as number);
        rel[c] = (rel[c] as number) + (s.reliability[i] as number);
        if ((s.pseudo[i] as number) !== Math.round(label[i] as number)) wrong[c] = (wrong[c] as number) + 1;
        count[c] = (count[c] as number) + 1;
      }
    }
  }
  const per = (a: Float64Array): number[] => Array.from(a, (v, c) => v / (count[c] as number));
  return { js: per(js), unreliability: per(rel).map((r) => 1 - r), errorRate: per(wrong) };
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

const BENCH_SHIFT: AppearanceOptions = { pCurve: 0.8, pGamma: 0.5, pContrast: 0.5, pBias: 0.5, pBlur: 0.3, pNoise: 0.5 };

/**
 * A simulated target appearance of a source image, in [0, 1] units mapped back to raw units:
 * `bench` = randomAppearance(BENCH_SHIFT) on the whole `[z, y, x]` volume;
 * a severity = simulatedShift(severity), one chain per volume applied to every axial slice.
 */
function shifted(volume: Volume, info: ModelInfo, seed: number, kind: 'bench' | number): Volume {
  const { low, high } = rawRange(volume, info);
  const unit = Float32Array.from(volume.data, (v) => Math.min(Math.max((v - low) / (high - low), 0), 1));
  let out: Float32Array;
  if (kind === 'bench') out = Float32Array.from(randomAppearance({ data: unit, shape: [...volume.shape] }, new Rng(seed), BENCH_SHIFT).data);
  else {
    const [nz, ny, nx] = volume.shape;
    const options = simulatedShift(kind);
    out = new Float32Array(unit.length);
    for (let z = 0; z < nz; z++) {
      // The same seed for every slice: one curve, gamma and contrast for the whole volume.
      out.set(randomAppearance({ data: unit.subarray(z * ny * nx, (z + 1) * ny * nx), shape: [ny, nx] }, new Rng(seed), options).data, z * ny * nx);
    }
  }
  return makeVolume(Float32Array.from(out, (v) => low + v * (high - low)), volume.shape, volume);
}

const shiftName = (kind: 'bench' | number): string => (kind === 'bench' ? 'bench shifts' : `simulatedShift(${kind})`);

// ------------------------------------------------------------------ detectors and pools

const DETECTORS = [
  { name: '1 − max-probability', short: '1 − max-prob', f: (row: Float32Array) => 1 - (row[featureIndex('max_probability')] as number) },
  { name: 'entropy', short: 'entropy', f: (row: Float32Array) => row[featureIndex('entropy')] as number },
  { name: 'JS divergence (composition vs whole)', short: 'JS', f: (row: Float32Array) => row[featureIndex('js_divergence')] as number },
  { name: '1 − Dice (composed vs whole argmax)', short: '1 − Dice c/w', f: (row: Float32Array) => 1 - (row[featureIndex('dice_mean')] as number) },
  { name: '1 − fixed reliability score', short: '1 − fixed', f: (row: Float32Array) => 1 - (row[featureIndex('reliability')] as number) },
] as const;

/** Regions of several volumes: raw features row-major `[rows, NUM_FEATURES]` and their truth. */
interface Pool {
  features: number[];
  errorRate: number[];
  dice: number[];
  /** Index of the volume each row came from (leave-one-case-out folds). */
  caseIndex: number[];
  fixedJs: number[];
  fixedUnreliability: number[];
  fixedErrorRate: number[];
  wallMs: number[];
}
const emptyPool = (): Pool => ({ features: [], errorRate: [], dice: [], caseIndex: [], fixedJs: [], fixedUnreliability: [], fixedErrorRate: [], wallMs: [] });
function addToPool(pool: Pool, s: Scored, label: ArrayLike<number>, caseIndex: number): void {
  const truth = regionTruth(s, label);
  const values = s.result.features?.values ?? [];
  for (const v of values) pool.features.push(v);
  for (let i = 0; i < truth.errorRate.length; i++) {
    pool.errorRate.push(truth.errorRate[i] as number);
    pool.dice.push(truth.dice[i] as number);
    pool.caseIndex.push(caseIndex);
  }
  const fixed = fixedGrid(s, label);
  for (let i = 0; i < fixed.js.length; i++) {
    pool.fixedJs.push(fixed.js[i] as number);
    pool.fixedUnreliability.push(fixed.unreliability[i] as number);
    pool.fixedErrorRate.push(fixed.errorRate[i] as number);
  }
  pool.wallMs.push(s.wallMs);
}
function concatPools(pools: readonly Pool[]): Pool {
  const out = emptyPool();
  let offset = 0;
  for (const p of pools) {
    for (const k of ['features', 'errorRate', 'dice', 'fixedJs', 'fixedUnreliability', 'fixedErrorRate', 'wallMs'] as const) for (const v of p[k]) out[k].push(v);
    for (const c of p.caseIndex) out.caseIndex.push(c + offset);
    offset += Math.max(0, ...p.caseIndex) + 1;
  }
  return out;
}

const THRESHOLDS = [0.05, 0.2];
const fmt = (v: number): string => (Number.isNaN(v) ? 'n/a' : v.toFixed(3));

/** Columns `cols` of a row-major `[n, NUM_FEATURES]` matrix. */
function columns(x: ArrayLike<number>, cols: readonly number[]): Float64Array {
  const n = x.length / NUM_FEATURES;
  const out = new Float64Array(n * cols.length);
  for (let i = 0; i < n; i++) cols.forEach((c, j) => (out[i * cols.length + j] = x[i * NUM_FEATURES + c] as number));
  return out;
}
const ALL_COLUMNS = Array.from({ length: NUM_FEATURES }, (_, i) => i);

/** ROC curve points (FPR, TPR) of `scores` for `positives`, thresholds from high to low, at most ~`maxPoints`. */
function rocCurve(scores: ArrayLike<number>, positives: readonly boolean[], maxPoints = 300): (readonly [number, number])[] {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  const nPos = positives.filter(Boolean).length;
  const nNeg = positives.length - nPos;
  const points: (readonly [number, number])[] = [[0, 0]];
  let tp = 0;
  let fp = 0;
  const every = Math.max(1, Math.floor(order.length / maxPoints));
  for (let k = 0; k < order.length; k++) {
    const i = order[k] as number;
    if (positives[i]) tp++;
    else fp++;
    const next = order[k + 1];
    const tieBreak = next !== undefined && scores[next] === scores[i];
    if (!tieBreak && (k % every === 0 || k === order.length - 1)) points.push([fp / Math.max(1, nNeg), tp / Math.max(1, nPos)]);
  }
  points.push([1, 1]);
  return points;
}

function writeFigure(dir: string, file: string, svg: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileAtomic(path, svgToPng(svg));
  return path;
}

// ------------------------------------------------------------------ main

interface Context {
  client: ReliabilityServiceClient;
  info: ModelInfo;
  model: ModelRef;
  args: Args;
  say: (line?: string) => void;
}

/** Scores the source cases (clean, then `--shifts` shifts per shift-fit entry). */
async function collectSource(ctx: Context, config: PatchConfig): Promise<{ clean: Pool; shifted: Map<'bench' | number, Pool>; cases: number }> {
  const { args } = ctx;
  const source = openDataset(join(args.data, 'ct'));
  const sourceCases = source.cases.filter((c) => c.split === 'test').slice(0, args.sourceCases || undefined);
  const clean = emptyPool();
  const shiftedPools = new Map<'bench' | number, Pool>(args.shiftFits.map((k) => [k, emptyPool()]));
  for (const [ci, c] of sourceCases.entries()) {
    const image = await c.loadImage();
    const label = await c.loadLabel();
    if (!label) throw new Error(`source case ${c.id} has no label`);
    addToPool(clean, await score(ctx.client, image, config, args.views, ctx.model), label.data, ci);
    for (const kind of args.shiftFits) {
      for (let k = 1; k <= args.shifts; k++) {
        const s = await score(ctx.client, shifted(image, ctx.info, 1000 * k + ci, kind), config, args.views, ctx.model);
        addToPool(shiftedPools.get(kind) as Pool, s, label.data, ci);
      }
    }
    process.stderr.write(`P${config.patchSize}/s${config.stride} source ${c.id}: ${clean.errorRate.length} clean regions\n`);
  }
  return { clean, shifted: shiftedPools, cases: sourceCases.length };
}

async function collectTarget(ctx: Context, config: PatchConfig, domain: string): Promise<{ pool: Pool; cases: number }> {
  const { args } = ctx;
  const target = openDataset(join(args.data, domain));
  const cases = target.cases.filter((c) => c.split === 'test').slice(0, args.maxCases || undefined);
  const pool = emptyPool();
  for (const [ci, c] of cases.entries()) {
    const image = await c.loadImage();
    const label = await readNifti(join(args.data, `${domain}-eval`, 'labelsTs', `${c.id}${target.fileEnding}`));
    addToPool(pool, await score(ctx.client, image, config, args.views, ctx.model), label.data, ci);
  }
  process.stderr.write(`P${config.patchSize}/s${config.stride} ${domain}: ${pool.errorRate.length} regions\n`);
  return { pool, cases: cases.length };
}

/**
 * Feature preparation for the logistic models. `plain`: the schema's
 * normalisation (every column in [0, 1]) as the agent sees it. `standardised`:
 * additionally log10(x + 1e-4) of the divergence/variance columns (in practice
 * they live in [0, 0.05], so an L2-penalised weight on the raw column cannot
 * grow large enough to matter), then z-scores with the FIT set's mean and SD.
 */
type Preparation = 'plain' | 'standardised';
const LOG_COLUMNS = new Set(['js_divergence', 'patch_variance', 'flip_js', 'appearance_js'].map(featureIndex));

interface Standardizer {
  readonly cols: readonly number[];
  readonly mean: Float64Array;
  readonly sd: Float64Array;
}

/** Normalised (and for `standardised` log-transformed) columns `cols` of raw feature rows, row-major `[n, cols.length]`. */
function prepared(raw: ArrayLike<number>, cols: readonly number[], prep: Preparation): Float64Array {
  const x = columns(normalizeFeatures(Float32Array.from(raw)), cols);
  if (prep === 'plain') return x;
  const d = cols.length;
  cols.forEach((c, j) => {
    if (LOG_COLUMNS.has(c)) for (let i = j; i < x.length; i += d) x[i] = Math.log10((x[i] as number) + 1e-4);
  });
  return x;
}

function fitStandardizer(x: Float64Array, cols: readonly number[]): Standardizer {
  const d = cols.length;
  const n = x.length / d;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let i = 0; i < x.length; i++) mean[i % d] = (mean[i % d] as number) + (x[i] as number) / n;
  for (let i = 0; i < x.length; i++) sd[i % d] = (sd[i % d] as number) + ((x[i] as number) - (mean[i % d] as number)) ** 2 / n;
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j] as number);
  return { cols, mean, sd };
}

/** z-scores in place; constant columns become 0. */
function standardize(x: Float64Array, st: Standardizer): Float64Array {
  const d = st.cols.length;
  for (let i = 0; i < x.length; i++) {
    const sd = st.sd[i % d] as number;
    x[i] = sd > 0 ? ((x[i] as number) - (st.mean[i % d] as number)) / sd : 0;
  }
  return x;
}

/** A fitted combined score: p(wrong) per region from raw feature rows, one logistic model per threshold. */
interface Combined {
  readonly name: string;
  readonly prep: Preparation;
  readonly cols: readonly number[];
  readonly models: Map<number, LogisticModel>;
  readonly standardizer?: Standardizer;
  predict(raw: ArrayLike<number>, t: number): Float64Array;
}

function fitCombined(name: string, raw: ArrayLike<number>, errorRate: readonly number[], cols: readonly number[], prep: Preparation): Combined {
  const x = prepared(raw, cols, prep);
  const st = prep === 'standardised' ? fitStandardizer(x, cols) : undefined;
  if (st) standardize(x, st);
  const models = new Map(THRESHOLDS.map((t) => [t, fitLogistic(x, errorRate.map((e) => e > t), cols.length, { l2: 1 })]));
  return {
    name,
    prep,
    cols,
    models,
    ...(st ? { standardizer: st } : {}),
    predict(rows: ArrayLike<number>, t: number): Float64Array {
      const z = prepared(rows, cols, prep);
      return logisticPredict(models.get(t) as LogisticModel, st ? standardize(z, st) : z);
    },
  };
}

/** Combined scores per shift-fit entry (plain and standardised), fitted on the clean + shifted source regions. */
function fitSource(clean: Pool, shiftedPools: Map<'bench' | number, Pool>, cols: readonly number[] = ALL_COLUMNS): Combined[] {
  const out: Combined[] = [];
  for (const [kind, pool] of shiftedPools) {
    const fit = concatPools([clean, pool]);
    for (const prep of ['plain', 'standardised'] as const) out.push(fitCombined(`${shiftName(kind)}${prep === 'standardised' ? ', standardised' : ''}`, fit.features, fit.errorRate, cols, prep));
  }
  return out;
}

interface TargetFigures {
  readonly native: Map<string, number>;
  readonly fixedJs: number;
  readonly fixedUnreliability: number;
  readonly baseRate: number;
}

/** The AUROC table of one domain and config; returns the figures at > 5 % for the study summary. */
function evaluate(ctx: Context, domain: string, config: PatchConfig, pool: Pool, cases: number, fits: readonly Combined[], full: boolean): TargetFigures {
  const { say } = ctx;
  const rows = pool.errorRate.length;
  const feats = Float32Array.from(pool.features);
  const row = (i: number): Float32Array => feats.subarray(i * NUM_FEATURES, (i + 1) * NUM_FEATURES);
  const wrongAt = (t: number): boolean[] => pool.errorRate.map((e) => e > t);
  const native = new Map<string, number>();
  const detectorScores = DETECTORS.map((d) => ({ name: d.name, short: d.short, scores: Array.from({ length: rows }, (_, i) => d.f(row(i))) }));
  const logistic = fits.map((c) => ({ name: c.name, preds: THRESHOLDS.map((t) => c.predict(feats, t)) }));
  for (const d of detectorScores) native.set(d.short, auroc(d.scores, wrongAt(0.05)));
  for (const l of logistic) native.set(`combined (${l.name})`, auroc(l.preds[0] as Float64Array, wrongAt(0.05)));
  const fixedWrong = pool.fixedErrorRate.map((e) => e > 0.05);
  const figures: TargetFigures = {
    native,
    fixedJs: auroc(pool.fixedJs, fixedWrong),
    fixedUnreliability: auroc(pool.fixedUnreliability, fixedWrong),
    baseRate: wrongAt(0.05).filter(Boolean).length / rows,
  };
  if (!full) return figures;

  say(`## CT → ${domain.toUpperCase()} (${cases} test cases, ${rows} regions; patch ${config.patchSize}, stride ${config.stride})`);
  say();
  say(`| detector of wrong regions | AUROC, wrong = error > 5 % | AUROC, wrong = error > 20 % |`);
  say(`|---|---|---|`);
  for (const d of detectorScores) say(`| ${d.name} | ${THRESHOLDS.map((t) => fmt(auroc(d.scores, wrongAt(t)))).join(' | ')} |`);
  for (const l of logistic) say(`| combined features (logistic, fitted on source + ${l.name}) | ${THRESHOLDS.map((t, k) => fmt(auroc(l.preds[k] as Float64Array, wrongAt(t)))).join(' | ')} |`);
  say(`| wrong regions (count) | ${THRESHOLDS.map((t) => String(wrongAt(t).filter(Boolean).length)).join(' | ')} |`);
  say();
  const fixed = Array.from({ length: rows }, (_, i) => row(i)[featureIndex('reliability')] as number);
  const maxProb = Array.from({ length: rows }, (_, i) => row(i)[featureIndex('max_probability')] as number);
  const js = Array.from({ length: rows }, (_, i) => -(row(i)[featureIndex('js_divergence')] as number));
  say(
    `Spearman ρ with region Dice: fixed score ${fmt(spearman(fixed, pool.dice))}, ` +
      logistic.map((l) => `logistic (5 %, ${l.name}) reliability ${fmt(spearman(Array.from(l.preds[0] as Float64Array, (p) => 1 - p), pool.dice))}`).join(', ') +
      `, max-probability ${fmt(spearman(maxProb, pool.dice))}, −JS ${fmt(spearman(js, pool.dice))}.`,
  );
  say(`Fixed ${FIXED_CELL}-pixel evaluation grid (${pool.fixedJs.length} cells, ${fixedWrong.filter(Boolean).length} wrong at > 5 %): AUROC of mean JS ${fmt(figures.fixedJs)}, of 1 − mean reliability ${fmt(figures.fixedUnreliability)}. Scoring wall time per volume ${median(pool.wallMs).toFixed(0)} ms (median).`);
  say();

  if (ctx.args.figures) {
    const positives = wrongAt(0.05);
    const series: Series[] = [
      ...detectorScores.map((d) => ({ name: `${d.short} ${fmt(auroc(d.scores, positives))}`, points: rocCurve(d.scores, positives) })),
      ...logistic.slice(0, 2).map((l) => ({ name: `comb.${l.name.includes('standardised') ? 'std' : ''} ${fmt(auroc(l.preds[0] as Float64Array, positives))}`, points: rocCurve(l.preds[0] as Float64Array, positives) })),
      { name: 'chance', points: [[0, 0] as const, [1, 1] as const] },
    ];
    const file = `reliability-roc-ct-${domain}.png`;
    writeFigure(ctx.args.figures, file, lineChart({ title: `CT → ${domain.toUpperCase()}: wrong regions (> 5 %), patch ${config.patchSize} stride ${config.stride}`, xLabel: 'false-positive rate', yLabel: 'true-positive rate', yRange: [0, 1], width: 700, height: 420 }, series));
    say(`Figure: \`${file}\` (ROC at > 5 %; the legend gives each AUROC).`);
    say();
  }
  return figures;
}

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : ((s[Math.floor((s.length - 1) / 2)] as number) + (s[Math.ceil((s.length - 1) / 2)] as number)) / 2;
};

const DIAGNOSTIC_FEATURES = ['max_probability', 'entropy', 'js_divergence', 'argmax_agreement', 'dice_mean', 'patch_variance', 'foreground_fraction', 'boundary_density', 'class_fraction_0', 'class_fraction_1', 'class_fraction_2', 'class_fraction_3', 'class_fraction_4', 'slice_reliability', 'reliability'];

/** Why the combined score does (not) transfer: single-feature AUROCs, coefficients, feature means, subsets, target-fitted upper bound. */
function diagnostics(ctx: Context, domain: string, source: { clean: Pool; shifted: Map<'bench' | number, Pool> }, target: Pool): void {
  const { say } = ctx;
  const t = 0.05;
  const sets = [
    { name: 'CT clean', pool: source.clean },
    ...[...source.shifted].map(([kind, pool]) => ({ name: `CT ${shiftName(kind)}`, pool })),
    { name: `${domain.toUpperCase()} (target)`, pool: target },
  ];
  say(`### Diagnostics, CT → ${domain.toUpperCase()} (wrong = error > 5 %)`);
  say();
  say(`Wrong-region rate: ${sets.map((s) => `${s.name} ${((100 * s.pool.errorRate.filter((e) => e > t).length) / s.pool.errorRate.length).toFixed(1)} %`).join(', ')}.`);
  say();
  say(`Single-feature AUROC (feature value as the score; < 0.5 = lower values mark wrong regions), and mean value in wrong / right regions:`);
  say();
  say(`| feature | ${sets.map((s) => s.name).join(' | ')} | ${sets.map((s) => `${s.name} wrong / right`).join(' | ')} |`);
  say(`|---|${sets.map(() => '---|').join('')}${sets.map(() => '---|').join('')}`);
  for (const name of DIAGNOSTIC_FEATURES) {
    const j = featureIndex(name);
    const cells = sets.map((s) => {
      const v = s.pool.features.filter((_, i) => i % NUM_FEATURES === j);
      return fmt(auroc(v, s.pool.errorRate.map((e) => e > t)));
    });
    const means = sets.map((s) => {
      const v = s.pool.features.filter((_, i) => i % NUM_FEATURES === j);
      const mean = (pick: boolean): number => {
        const sel = v.filter((_, i) => (s.pool.errorRate[i] as number) > t === pick);
        return sel.reduce((a, b) => a + b, 0) / Math.max(1, sel.length);
      };
      return `${mean(true).toFixed(3)} / ${mean(false).toFixed(3)}`;
    });
    say(`| ${name} | ${cells.join(' | ')} | ${means.join(' | ')} |`);
  }
  say();

  // Coefficients (per SD of each prepared feature on the fit set): plain and standardised, every shift entry.
  for (const [kind, shiftedPool] of source.shifted) {
    const fit = concatPools([source.clean, shiftedPool]);
    for (const prep of ['plain', 'standardised'] as const) {
      const c = fitCombined(shiftName(kind), fit.features, fit.errorRate, ALL_COLUMNS, prep);
      const sd = fitStandardizer(prepared(fit.features, ALL_COLUMNS, prep), ALL_COLUMNS).sd;
      const weights = (c.models.get(t) as LogisticModel).weights;
      const coef = FEATURE_SCHEMA.features.map((f, j) => ({ name: f.name, w: (weights[j] as number) * (prep === 'plain' ? (sd[j] as number) : 1) }));
      coef.sort((x, y) => Math.abs(y.w) - Math.abs(x.w));
      say(`Logistic, ${prep} features (source + ${shiftName(kind)}), coefficient per feature SD on the fit set, largest first (positive = more likely wrong): ${coef.slice(0, 10).map((x) => `${x.name} ${x.w >= 0 ? '+' : ''}${x.w.toFixed(2)}`).join(', ')}.`);
      say();
    }
  }

  // Feature subsets fitted on the source, and a target-fitted leave-one-case-out upper bound.
  const subsets: { name: string; cols: number[] }[] = [
    { name: 'all 24 features', cols: ALL_COLUMNS },
    { name: 'max-prob + JS', cols: [featureIndex('max_probability'), featureIndex('js_divergence')] },
    { name: 'max-prob + entropy + JS + Dice c/w + patch variance', cols: ['max_probability', 'entropy', 'js_divergence', 'dice_mean', 'patch_variance'].map(featureIndex) },
    { name: 'all but class fractions / foreground', cols: ALL_COLUMNS.filter((j) => !/^class_fraction|^foreground/.test((FEATURE_SCHEMA.features[j] as { name: string }).name)) },
  ];
  const wrong = target.errorRate.map((e) => e > t);
  const folds = Math.max(...target.caseIndex) + 1;
  const rowsOf = (pick: (c: number) => boolean): number[] => target.caseIndex.flatMap((c, i) => (pick(c) ? [i] : []));
  const rawRows = (idx: readonly number[]): Float32Array => {
    const out = new Float32Array(idx.length * NUM_FEATURES);
    idx.forEach((r, k) => {
      for (let j = 0; j < NUM_FEATURES; j++) out[k * NUM_FEATURES + j] = target.features[r * NUM_FEATURES + j] as number;
    });
    return out;
  };
  const kinds = [...source.shifted.keys()].map(shiftName).join(' / ');
  say(`| logistic on | features | fitted on source + ${kinds} | fitted on target labels, leave-one-case-out (${folds} folds; upper bound, not a detector) |`);
  say(`|---|---|---|---|`);
  for (const sub of subsets) {
    const fits = fitSource(source.clean, source.shifted, sub.cols);
    for (const prep of ['plain', 'standardised'] as const) {
      const src = fits.filter((c) => c.prep === prep).map((c) => fmt(auroc(c.predict(target.features, t), wrong))).join(' / ');
      const preds = new Float64Array(wrong.length);
      for (let f = 0; f < folds; f++) {
        const trainRows = rowsOf((c) => c !== f);
        const testRows = rowsOf((c) => c === f);
        const m = fitCombined('target', rawRows(trainRows), trainRows.map((r) => target.errorRate[r] as number), sub.cols, prep);
        const p = m.predict(rawRows(testRows), t);
        testRows.forEach((r, k) => (preds[r] = p[k] as number));
      }
      say(`| ${sub.name} | ${prep} | ${src} | ${fmt(auroc(preds, wrong))} |`);
    }
  }
  say();
}

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
    const ctx: Context = { client, info, model, args, say };
    const study = args.configs.length > 1;
    say(`# Reliability evidence — model ${model.name}:${model.version}`);
    say();
    say(`Command: \`npx tsx --conditions=@purify/source tools/bench/reliability.ts ${process.argv.slice(2).join(' ')}\``);
    say(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`);
    say(`Config: ${args.configs.map((c) => `patch ${c.patchSize} stride ${c.stride}`).join('; ')}, shift borders, views ${args.views ? 'flip + appearance' : 'off'}.`);
    say();

    if (!args.timingOnly) {
      const summary = new Map<string, { config: PatchConfig; figures: TargetFigures; msPerVolume: number }[]>(args.domains.map((d) => [d, []]));
      for (const config of args.configs) {
        // 1. Source fit with simulated appearance shifts (source labels only).
        const source = await collectSource(ctx, config);
        const fits = fitSource(source.clean, source.shifted);
        const fitRows = source.clean.errorRate.length + [...source.shifted.values()].reduce((a, p) => a + p.errorRate.length, 0);
        if (!study || config === args.configs[0]) {
          say(`Source fit (patch ${config.patchSize}, stride ${config.stride}): ${source.cases} held-out CT cases × (1 + ${args.shifts} shifts of each of ${args.shiftFits.map(shiftName).join(', ')}), ${fitRows} regions.`);
          say();
        }
        // 2. Target evaluation (labels for evaluation only).
        for (const domain of args.domains) {
          const { pool, cases } = await collectTarget(ctx, config, domain);
          const figures = evaluate(ctx, domain, config, pool, cases, fits, !study);
          summary.get(domain)?.push({ config, figures, msPerVolume: median(pool.wallMs) });
          if (args.diagnostics && !study) diagnostics(ctx, domain, source, pool);
        }
      }
      if (study) studySummary(ctx, summary);
    }

    if (args.timing) await timing(ctx);
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

/** The patch-size / stride study: one table per domain and the AUROC-vs-patch-size figure. */
function studySummary(ctx: Context, summary: Map<string, { config: PatchConfig; figures: TargetFigures; msPerVolume: number }[]>): void {
  const { say, args } = ctx;
  const combinedKey = `combined (${shiftName(args.shiftFits[0] ?? 'bench')})`;
  const stdKey = `combined (${shiftName(args.shiftFits[0] ?? 'bench')}, standardised)`;
  for (const [domain, entries] of summary) {
    const volumes = args.maxCases || 'all';
    say(`## Patch size / stride, CT → ${domain.toUpperCase()} (${volumes} test cases; wrong = error > 5 %)`);
    say();
    say(`| patch | stride | regions wrong | AUROC 1 − max-prob | AUROC JS | AUROC 1 − Dice c/w | AUROC combined | AUROC combined, standardised | fixed ${FIXED_CELL}-px grid: AUROC JS | fixed grid: AUROC 1 − fixed score | ms per volume |`);
    say(`|---|---|---|---|---|---|---|---|---|---|---|`);
    for (const e of entries) {
      const f = e.figures;
      say(`| ${e.config.patchSize} | ${e.config.stride} | ${(100 * f.baseRate).toFixed(1)} % | ${fmt(f.native.get('1 − max-prob') ?? Number.NaN)} | ${fmt(f.native.get('JS') ?? Number.NaN)} | ${fmt(f.native.get('1 − Dice c/w') ?? Number.NaN)} | ${fmt(f.native.get(combinedKey) ?? Number.NaN)} | ${fmt(f.native.get(stdKey) ?? Number.NaN)} | ${fmt(f.fixedJs)} | ${fmt(f.fixedUnreliability)} | ${e.msPerVolume.toFixed(0)} |`);
    }
    say();
    if (args.figures) {
      const ratios = [...new Set(entries.map((e) => e.config.patchSize / e.config.stride))].sort((a, b) => a - b);
      const series: Series[] = [];
      for (const r of ratios) {
        const sel = entries.filter((e) => e.config.patchSize / e.config.stride === r).sort((a, b) => a.config.patchSize - b.config.patchSize);
        series.push({ name: `JS s=P/${r}`, points: sel.map((e) => [e.config.patchSize, e.figures.native.get('JS') ?? Number.NaN] as const) });
        series.push({ name: `JS@16px s=P/${r}`, points: sel.map((e) => [e.config.patchSize, e.figures.fixedJs] as const) });
        series.push({ name: `comb.std s=P/${r}`, points: sel.map((e) => [e.config.patchSize, e.figures.native.get(stdKey) ?? Number.NaN] as const) });
      }
      const ref = entries.filter((e) => e.config.stride === FIXED_CELL);
      const maxProb = ref[0]?.figures.native.get('1 − max-prob');
      if (maxProb !== undefined) {
        const xs = entries.map((e) => e.config.patchSize);
        series.push({ name: '1 − max-prob', points: [[Math.min(...xs), maxProb] as const, [Math.max(...xs), maxProb] as const] });
      }
      const file = `reliability-auroc-vs-patch-ct-${domain}.png`;
      writeFigure(args.figures, file, lineChart({ title: `CT → ${domain.toUpperCase()}: AUROC (> 5 %) vs patch size`, xLabel: 'patch size P (pixels)', yLabel: 'AUROC', yRange: [0.4, 1], width: 720, height: 400 }, series));
      say(`Figure: \`${file}\`.`);
      say();
    }
  }
}

/** 3. Timing on 128×128 slices. */
async function timing(ctx: Context): Promise<void> {
  const { args, say, info, model, client } = ctx;
  const config = args.configs[0] as PatchConfig;
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
  say(`## Speed (${firstDomain} slices resized to 128×128; patch ${config.patchSize}, stride ${config.stride}; median of 3 after a warm-up)`);
  say();
  say(`| input | anchor patches | wall ms | segment ms | patches ms | features ms |`);
  say(`|---|---|---|---|---|---|`);
  for (const z of [1, 64]) {
    const v = stack(z);
    await score(client, v, config, args.views, model);
    const runs: Scored[] = [];
    for (let k = 0; k < 3; k++) runs.push(await score(client, v, config, args.views, model));
    runs.sort((a, b) => a.wallMs - b.wallMs);
    const m = runs[1] as Scored;
    const perSlice = m.result.grid ? m.result.grid.anchorCentresYx.length / 2 : 0;
    say(`| ${z}×128×128 | ${z * perSlice} | ${m.wallMs.toFixed(0)} | ${m.result.segmentMs.toFixed(0)} | ${m.result.patchesMs.toFixed(0)} | ${m.result.featuresMs.toFixed(0)} |`);
  }
  say();
  say('segment = Segment calls (whole image and views), patches = all PredictPatches calls; both run concurrently, so wall ≈ max(segment, patches) + features + transfer.');
}

main().catch((err: unknown) => {
  process.stderr.write(`reliability bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
