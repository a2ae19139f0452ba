import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SegmenterServiceClient, type ModelRef } from '@purify/proto';
import { createClient, DEFAULT_PORTS, ErrorCode, PurifyError } from '@purify/runtime';
import { readNifti, writeNifti, type Volume } from '@purify/imaging';
import { DEFAULT_SEGMENT_TIMEOUT_MS, ensureModelLoaded, segmentRemote, writeProbabilitiesNifti } from '@purify/inference';
import { CliError, intArg, opaqueCaseId, output, table } from '../cli-util';
import { serviceAddress } from '../services-file';
import { OutputPolicy } from '../write-safety';

const NIFTI = /\.nii(\.gz)?$/i;

/** `NAME` (version 0 = whatever serves, else the latest) or `NAME:VERSION`. */
function modelArg(raw: string): ModelRef {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127}?)(?::([1-9]\d{0,8}))?$/.exec(raw.trim());
  if (!m || (m[1] as string).includes('..')) throw new InvalidArgumentError(`must be NAME or NAME:VERSION (letters, digits, . _ -; version ≥ 1), got "${raw}"`);
  return { name: m[1] as string, version: m[2] === undefined ? 0 : Number(m[2]) };
}

function overlapArg(raw: string): number {
  const v = raw.trim() === '' ? Number.NaN : Number(raw);
  if (!(Number.isFinite(v) && v >= 0 && v < 1)) throw new InvalidArgumentError(`must be a number in [0, 1), got "${raw}"`);
  return v;
}

/** The segmenter address: the flag, else what `purify up` recorded in the run dir, else the default port on loopback. */
export function segmenterAddress(flag: string | undefined, runDir: string): { address: string; source: string } {
  return serviceAddress('segmenter', flag, runDir);
}

function niftiPath(raw: string, flag: string): string {
  if (!NIFTI.test(raw)) throw new CliError(`--${flag}: ${raw} must end in .nii or .nii.gz`, 2);
  return resolve(raw);
}

/** Voxel count per label value. */
function labelCounts(labels: Volume<Uint8Array>): Map<number, number> {
  const counts = new Map<number, number>();
  for (const v of labels.data) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

interface SegmentOpts {
  model: ModelRef;
  input: string;
  out: string;
  segmenter?: string;
  runDir: string;
  probabilities?: string;
  volumeIndex?: number;
  overwrite: boolean;
  tta: boolean;
  overlap: number;
  wholeSlice: boolean;
  batchSize: number;
  timeoutMs: number;
  json: boolean;
}

export function segmentCommand(): Command {
  return new Command('segment')
    .description('Segment a NIfTI volume through the segmenter service; the label map is written on the input\'s own grid')
    .requiredOption('--model <name[:version]>', 'registry model; without a version the serving one (or the latest, loaded first)', modelArg)
    .requiredOption('--input <file>', 'image to segment (.nii or .nii.gz)')
    .requiredOption('--out <file>', 'label map to write (.nii or .nii.gz, uint8)')
    .option('--segmenter <host:port>', `segmenter address (default: from <run-dir>/services.json, else 127.0.0.1:${DEFAULT_PORTS.segmenter})`)
    .option('--run-dir <dir>', 'where `purify up` wrote services.json', '.purify')
    .option('--probabilities <file>', 'also write class probabilities as a 4D NIfTI (x, y, z, class), float32')
    .option('--volume-index <n>', 'which volume of a 4D --input to segment, 0-based (a 4D input without it is refused)', intArg(0, 1_000_000))
    .option('--overwrite', 'replace --out / --probabilities when they exist (never the input, never inside a dataset\'s images*/labels* folder)', false)
    .option('--tta', 'average over x/y/xy flips (4× the inference)', false)
    .option('--overlap <fraction>', 'sliding-window overlap for slices larger than the model tile, [0, 1)', overlapArg, 0.5)
    .option('--whole-slice', 'one window per slice instead of overlapping tiles of the model size (about 2x faster; probabilities differ slightly near tile borders)', false)
    .option('--batch-size <n>', 'tiles per inference call; 0 = the server default', intArg(0, 4096), 0)
    .option('--timeout-ms <ms>', 'deadline of the whole call', intArg(1, 86_400_000), DEFAULT_SEGMENT_TIMEOUT_MS)
    .option('--json', 'machine-readable output', false)
    .action(async (opts: SegmentOpts) => {
      const input = niftiPath(opts.input, 'input');
      // Every output is checked before anything is read or sent (tools/cli/src/write-safety.ts).
      const policy = new OutputPolicy({ inputs: [{ path: input, what: 'the --input image' }], overwrite: opts.overwrite });
      const out = policy.file(niftiPath(opts.out, 'out'), '--out');
      const probabilitiesPath = opts.probabilities === undefined ? undefined : policy.file(niftiPath(opts.probabilities, 'probabilities'), '--probabilities');
      const { address, source } = segmenterAddress(opts.segmenter, resolve(opts.runDir));
      let volume: Volume;
      try {
        volume = await readNifti(input, opts.volumeIndex === undefined ? {} : { volumeIndex: opts.volumeIndex });
      } catch (err) {
        throw new CliError(`--input: ${(err as Error).message}`, 2);
      }
      const started = Date.now();
      const client = createClient(SegmenterServiceClient, 'segmenter', { addresses: [address], defaultTimeoutMs: 120_000 });
      try {
        const model = await ensureModelLoaded(client, opts.model).catch((err: unknown) => {
          if (err instanceof PurifyError && err.code === ErrorCode.Unavailable) {
            throw new CliError(`cannot reach the segmenter at ${address} (from ${source}); start it with \`purify up\` or pass --segmenter HOST:PORT`);
          }
          throw err;
        });
        const res = await segmentRemote(client, volume, {
          model: opts.model,
          overlap: opts.overlap,
          flipTta: opts.tta,
          wholeSlice: opts.wholeSlice,
          batchSize: opts.batchSize,
          returnProbabilities: probabilitiesPath !== undefined,
          timeoutMs: opts.timeoutMs,
          // The file name may name the patient: the segmenter gets a pseudonym of it.
          caseId: opaqueCaseId('file', input.replace(/^.*[\\/]/, '').replace(NIFTI, '')),
        });
        writeNifti(out, res.labels, { description: `purify segment ${res.result.model?.name}:${res.result.model?.version}` });
        if (probabilitiesPath && res.probabilities) writeProbabilitiesNifti(probabilitiesPath, res.probabilities.data, res.probabilities.shape, res.labels);
        const names = new Map(res.result.classes.map((c) => [c.index, c.name]));
        const counts = [...labelCounts(res.labels)].sort((a, b) => a[0] - b[0]);
        const summary = {
          segmenter: address,
          segmenterSource: source,
          model: res.result.model,
          executionProvider: model.executionProvider,
          input,
          volumeIndex: opts.volumeIndex ?? null,
          out,
          probabilities: probabilitiesPath ?? null,
          shapeZyx: [...volume.shape],
          spacingXyzMm: [...volume.spacingXyzMm],
          inferenceMs: Math.round(res.result.inferenceMs),
          wallMs: Date.now() - started,
          labels: counts.map(([index, voxels]) => ({ index, name: names.get(index) ?? '', voxels })),
        };
        output(opts.json, summary, () =>
          [
            `segmented ${input} with ${res.result.model?.name}:${res.result.model?.version} (${model.executionProvider}) on ${address} in ${(summary.wallMs / 1000).toFixed(1)}s (inference ${(summary.inferenceMs / 1000).toFixed(1)}s)`,
            `wrote ${out}${probabilitiesPath ? ` and ${probabilitiesPath}` : ''}`,
            table(['LABEL', 'NAME', 'VOXELS'], summary.labels.map((l) => [String(l.index), l.name, String(l.voxels)])),
          ].join('\n'),
        );
      } finally {
        client.close();
      }
    });
}
