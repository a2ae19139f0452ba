/**
 * `purify reliability`: scores the pseudo-labels of a model on one NIfTI image
 * through a running reliability service and writes what a person needs to judge
 * them: the maps as NIfTI and PNG figures of a few slices.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { writeJsonAtomic } from '@purify/artifacts';
import { enlargeImage, makeVolume, overlayImage, percentiles, readNifti, tileHorizontally, writeNifti, writePng, type Volume } from '@purify/imaging';
import {
  BorderMode,
  DType,
  MapKind,
  Modality,
  ReliabilityServiceClient,
  type ModelRef,
  type ScoreRequest,
  type ScoreResponse,
  type ScoreResult,
} from '@purify/proto';
import { createClient } from '@purify/runtime';
import { CliError, intArg, output, table } from '../cli-util';
import { Progress } from '../progress';
import { serviceAddress } from '../services-file';
import { OutputPolicy } from '../write-safety';

/** The maps the command asks for, and the NIfTI file each becomes. */
const MAP_FILES: readonly { kind: MapKind; file: string; labels: boolean }[] = [
  { kind: MapKind.MAP_KIND_RELIABILITY, file: 'reliability.nii.gz', labels: false },
  { kind: MapKind.MAP_KIND_PSEUDO_LABEL, file: 'pseudo-label.nii.gz', labels: true },
  { kind: MapKind.MAP_KIND_COMPOSED_LABEL, file: 'composed-label.nii.gz', labels: true },
  { kind: MapKind.MAP_KIND_PATCH_VARIANCE, file: 'patch-variance.nii.gz', labels: false },
  { kind: MapKind.MAP_KIND_JS_DIVERGENCE, file: 'js-divergence.nii.gz', labels: false },
];

/** `NAME[:VERSION]` → ModelRef (no version = 0, the latest). */
export function parseModelRef(raw: string): ModelRef {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127})(?::(\d+))?$/.exec(raw);
  if (!m) throw new InvalidArgumentError(`must be NAME[:VERSION] (e.g. source or source:3), got "${raw}"`);
  return { name: m[1] as string, version: m[2] === undefined ? 0 : Number(m[2]) };
}

const MODALITIES: Record<string, Modality> = { ct: Modality.MODALITY_CT, mr: Modality.MODALITY_MR, cbct: Modality.MODALITY_CBCT };

interface Opts {
  model: ModelRef;
  input: string;
  out: string;
  reliability?: string;
  runDir: string;
  patchSize: number;
  stride: number;
  border: 'shift' | 'pad';
  splitByClass: boolean;
  flip: boolean;
  appearance: boolean;
  seed: number;
  round: number;
  modality?: string;
  figures: number;
  overwrite: boolean;
  timeoutMs: number;
  json: boolean;
}

function addressOf(opts: Opts): string {
  return serviceAddress('reliability', opts.reliability, resolve(opts.runDir)).address;
}

interface Scored {
  readonly result: ScoreResult;
  readonly maps: Map<MapKind, Float32Array>;
}

function scoreRemote(client: ReliabilityServiceClient, volume: Volume, opts: Opts, onBytes: (sent: number, total: number) => void): Promise<Scored> {
  const voxels = Float32Array.from(volume.data);
  const bytes = Buffer.from(voxels.buffer);
  return new Promise((resolvePromise, reject) => {
    const call: ClientDuplexStream<ScoreRequest, ScoreResponse> = client.score({ deadline: Date.now() + opts.timeoutMs });
    let result: ScoreResult | undefined;
    const parts = new Map<MapKind, Buffer[]>();
    call.on('data', (msg: ScoreResponse) => {
      const p = msg.payload;
      if (p?.$case === 'result') result = p.result;
      else if (p?.$case === 'map' && p.map.chunk) parts.set(p.map.kind, [...(parts.get(p.map.kind) ?? []), p.map.chunk.data]);
    });
    call.on('error', (err: ServiceError) => reject(new CliError(`reliability service at ${addressOf(opts)}: ${err.details || err.message}`)));
    call.on('end', () => {
      if (!result) return reject(new CliError('the reliability service ended the call without a result'));
      const maps = new Map<MapKind, Float32Array>();
      for (const [kind, list] of parts) {
        const b = Buffer.concat(list);
        if (b.length !== voxels.length * 4) return reject(new CliError(`map ${MapKind[kind]} has ${b.length} bytes, expected ${voxels.length * 4}`));
        maps.set(kind, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
      }
      resolvePromise({ result, maps });
    });
    const write = (msg: ScoreRequest): Promise<void> => (call.write(msg) ? Promise.resolve() : new Promise<void>((r) => call.once('drain', () => r())));
    const send = async (): Promise<void> => {
      await write({
        payload: {
          $case: 'setup',
          setup: {
            model: opts.model,
            image: {
              shapeZyx: [...volume.shape],
              spacingXyzMm: [...volume.spacingXyzMm],
              originLpsMm: [...volume.originLpsMm],
              directionLps: [...volume.directionLps],
              dtype: DType.DTYPE_FLOAT32,
              modality: opts.modality ? (MODALITIES[opts.modality] as Modality) : Modality.MODALITY_UNSPECIFIED,
              caseId: 'cli',
            },
            config: {
              patchSize: opts.patchSize,
              stride: opts.stride,
              borderMode: opts.border === 'pad' ? BorderMode.BORDER_MODE_PAD : BorderMode.BORDER_MODE_SHIFT,
              splitByClass: opts.splitByClass,
              flipView: opts.flip,
              appearanceView: opts.appearance,
              seed: opts.seed,
              patchBatchSize: 0,
            },
            maps: [...MAP_FILES.map((m) => m.kind), MapKind.MAP_KIND_REGION_INDEX],
            round: opts.round,
          },
        },
      });
      const chunk = 1 << 20;
      for (let o = 0; o < bytes.length; o += chunk) {
        await write({ payload: { $case: 'chunk', chunk: { byteOffset: o, data: bytes.subarray(o, o + chunk) } } });
        onBytes(Math.min(o + chunk, bytes.length), bytes.length);
      }
      call.end();
    };
    send().catch((err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
  });
}

/** Slices to draw: the `count` with the most pseudo-label foreground (ties: lower index), in slice order. */
function figureSlices(pseudo: Float32Array, shape: readonly [number, number, number], count: number): number[] {
  const [z, h, w] = shape;
  const fg = Array.from({ length: z }, (_, s) => {
    let n = 0;
    for (let i = s * h * w; i < (s + 1) * h * w; i++) if ((pseudo[i] as number) !== 0) n++;
    return { s, n };
  });
  return fg
    .sort((a, b) => b.n - a.n || a.s - b.s)
    .slice(0, Math.min(count, z))
    .map((e) => e.s)
    .sort((a, b) => a - b);
}

/**
 * One figure per slice, panels left to right: image; pseudo-label (whole-image
 * argmax); composed prediction (stitched anchor patches); reliability heat map
 * (blue 0 → red 1); the region grid over the reliability heat map.
 */
function writeFigures(dir: string, volume: Volume, maps: Map<MapKind, Float32Array>, stride: number, slices: readonly number[]): string[] {
  const [, h, w] = volume.shape;
  const [lo, hi] = percentiles(volume.data, [1, 99]) as [number, number];
  const range = { min: lo, max: hi > lo ? hi : lo + 1 };
  const files: string[] = [];
  // Panels at least ~256 pixels across.
  const k = Math.max(1, Math.ceil(256 / Math.max(h, w)));
  const sliceOf = (a: ArrayLike<number>, s: number): Float32Array => Float32Array.from({ length: h * w }, (_, i) => a[s * h * w + i] as number);
  for (const s of slices) {
    const image = { data: sliceOf(volume.data, s), shape: [h, w] as [number, number] };
    const rel = sliceOf(maps.get(MapKind.MAP_KIND_RELIABILITY) as Float32Array, s);
    const panel = tileHorizontally(
      [
        overlayImage(image, range),
        overlayImage(image, { ...range, labels: sliceOf(maps.get(MapKind.MAP_KIND_PSEUDO_LABEL) as Float32Array, s) }),
        overlayImage(image, { ...range, labels: sliceOf(maps.get(MapKind.MAP_KIND_COMPOSED_LABEL) as Float32Array, s) }),
        overlayImage(image, { ...range, heat: rel, heatAlpha: 0.6 }),
        overlayImage(image, { ...range, heat: rel, heatAlpha: 0.6, gridStep: stride }),
      ].map((p) => enlargeImage(p, k)),
      { gap: 6 },
    );
    const file = join(dir, `slice-${String(s).padStart(3, '0')}.png`);
    writePng(file, panel);
    files.push(file);
  }
  return files;
}

const mean = (v: readonly number[]): number => (v.length === 0 ? Number.NaN : v.reduce((a, b) => a + b, 0) / v.length);

export function reliabilityCommand(): Command {
  return new Command('reliability')
    .description('Region-wise reliability of a model\'s pseudo-labels on one image (anchor-patch decomposition/composition); writes maps as NIfTI and PNG figures')
    .requiredOption('--model <NAME[:VERSION]>', 'model in the segmenter\'s registry (no version = latest)', parseModelRef)
    .requiredOption('--input <file>', 'image (.nii/.nii.gz), raw intensities (the model normalises)')
    .requiredOption('--out <dir>', 'output folder (created)')
    .option('--reliability <host:port>', 'reliability service (default: from <run-dir>/services.json, else 127.0.0.1:50152)')
    .option('--run-dir <dir>', 'where `purify up` wrote services.json', '.purify')
    .option('--patch-size <px>', 'anchor patch side (a multiple of the model\'s size multiple, e.g. 4)', intArg(1, 4096), 32)
    .option('--stride <px>', 'anchor grid stride = region side, ≤ patch size', intArg(1, 4096), 16)
    .option('--border <mode>', 'edge anchors: shift (inward) or pad (zero-pad)', (raw: string) => {
      if (raw !== 'shift' && raw !== 'pad') throw new InvalidArgumentError(`must be shift or pad, got "${raw}"`);
      return raw;
    }, 'shift')
    .option('--split-by-class', 'one region per predicted class within each grid cell', false)
    .option('--flip', 'also predict the horizontally flipped image (flip agreement feature)', false)
    .option('--appearance', 'also predict a gamma/contrast-perturbed image (appearance agreement feature)', false)
    .option('--seed <n>', 'seed of the appearance perturbation', intArg(0, 2 ** 32 - 1), 0)
    .option('--round <n>', 'adaptation round (context feature)', intArg(0, 2 ** 32 - 1), 0)
    .option('--modality <ct|mr|cbct>', 'modality recorded in the request')
    .option('--figures <n>', 'PNG figures for the n slices with the most predicted foreground', intArg(0, 1000), 3)
    .option('--overwrite', 'replace the files of an earlier run in --out', false)
    .option('--timeout-ms <ms>', 'deadline of the whole call', intArg(1, 86_400_000), 600_000)
    .option('--json', 'machine-readable summary on stdout', false)
    .action(async (opts: Opts) => {
      if (opts.modality !== undefined && MODALITIES[opts.modality] === undefined) throw new CliError(`--modality must be ct, mr or cbct, got "${opts.modality}"`, 2);
      const input = resolve(opts.input);
      // The files this command writes into --out, checked before anything is read or sent (tools/cli/src/write-safety.ts).
      const out = new OutputPolicy({ inputs: [{ path: input, what: 'the --input image' }], overwrite: opts.overwrite }).filesIn(opts.out, '--out', {
        names: [...MAP_FILES.map((m) => m.file), 'region-index.nii.gz', 'result.json'],
        pattern: /^slice-\d{3,}\.png$/,
      });
      const volume = await readNifti(input).catch((err: unknown) => {
        throw new CliError(`--input: ${(err as Error).message}`, 2);
      });
      mkdirSync(out, { recursive: true });
      const address = addressOf(opts);
      const client = createClient(ReliabilityServiceClient, 'reliability', { addresses: [address], defaultTimeoutMs: opts.timeoutMs, maxAttempts: 1 });
      const bar = new Progress('sending', 1, opts.json);
      let scored: Scored;
      const started = performance.now();
      try {
        scored = await scoreRemote(client, volume, opts, (sent, total) => bar.update(sent / total, `${(sent / 2 ** 20).toFixed(1)} MiB`));
      } finally {
        client.close();
      }
      const elapsedMs = performance.now() - started;
      const { result, maps } = scored;
      const files: string[] = [];
      for (const m of MAP_FILES) {
        const data = maps.get(m.kind) as Float32Array;
        const file = join(out, m.file);
        writeNifti(file, makeVolume(m.labels ? Uint8Array.from(data) : data, volume.shape, volume, file), { description: `purify reliability ${MapKind[m.kind]}` });
        files.push(file);
      }
      const regionFile = join(out, 'region-index.nii.gz');
      writeNifti(regionFile, makeVolume(Int32Array.from(maps.get(MapKind.MAP_KIND_REGION_INDEX) as Float32Array), volume.shape, volume, regionFile));
      files.push(regionFile);
      const slices = figureSlices(maps.get(MapKind.MAP_KIND_PSEUDO_LABEL) as Float32Array, volume.shape, opts.figures);
      files.push(...writeFigures(out, volume, maps, opts.stride, slices));
      const summary = {
        input,
        model: result.model,
        reliability: address,
        grid: { imageShapeZyx: result.grid?.imageShapeZyx, patchSize: result.grid?.patchSize, stride: result.grid?.stride, regions: result.grid?.regions.length ?? 0 },
        meanRegionScore: mean(result.scores),
        sliceScores: result.sliceScores,
        timingsMs: { segment: result.segmentMs, patches: result.patchesMs, features: result.featuresMs, total: elapsedMs },
        figures: slices,
        files,
      };
      const resultFile = join(out, 'result.json');
      writeJsonAtomic(resultFile, { ...summary, featureSchemaVersion: result.features?.schemaVersion, features: result.features, scores: result.scores, regions: result.grid?.regions, anchorCentresYx: result.grid?.anchorCentresYx });
      output(opts.json, { ...summary, files: [...files, resultFile] }, () =>
        [
          `model ${result.model?.name}:${result.model?.version} on ${input}`,
          `${summary.grid.regions} regions (patch ${opts.patchSize}, stride ${opts.stride}, ${opts.border}${opts.splitByClass ? ', split by class' : ''}); mean region reliability ${summary.meanRegionScore.toFixed(3)}`,
          '',
          table(['TIME', 'ms'], [
            ['segment (whole image + views)', result.segmentMs.toFixed(0)],
            ['anchor patches', result.patchesMs.toFixed(0)],
            ['features', result.featuresMs.toFixed(0)],
            ['total (incl. transfer)', elapsedMs.toFixed(0)],
          ]),
          '',
          `figures (image | pseudo-label | composed | reliability | regions) for slices ${slices.join(', ') || '-'}`,
          `wrote ${files.length + 1} files to ${out}`,
        ].join('\n'),
      );
    });
}
