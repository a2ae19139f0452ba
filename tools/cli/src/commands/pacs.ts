/**
 * `purify pacs …`: the PACS integration (libs/dicom, docs/pacs.md).
 *   run            one study: pull over DICOMweb, segment through the segmenter service, push the SEG back
 *   watch          every new study (Orthanc's change feed, else QIDO-RS polling), with a persisted cursor
 *   export-phantom a CT DICOM series of the built-in phantom (files, and optionally STOW-RS to a PACS)
 */
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SegmenterServiceClient, type ModelRef } from '@purify/proto';
import { createClient, ErrorCode, PurifyError, unaryCall } from '@purify/runtime';
import { Rng, type Volume } from '@purify/imaging';
import { renderCase, sampleAnatomy } from '@purify/phantoms';
import { writeFileAtomic } from '@purify/artifacts';
import {
  DicomError,
  DicomWebClient,
  derivedUid,
  PHANTOM_SEGMENTS,
  PURIFY_DICOM_VERSION,
  runStudy,
  segmentsForLabels,
  TransferSyntax,
  watch,
  writeSeries,
  type PipelineEvent,
  type RunStudyOptions,
  type SegmentDefinition,
  type SegmentFn,
} from '@purify/dicom';
import { DEFAULT_SEGMENT_TIMEOUT_MS, ensureModelLoaded, segmentRemote } from '@purify/inference';
import { CliError, intArg, opaqueCaseId, output } from '../cli-util';
import { OutputPolicy } from '../write-safety';
import { segmenterAddress } from './segment';

import { version as CLI_VERSION } from '../../package.json';

/** `NAME` or `NAME:VERSION` (version 0 = whatever serves). */
function modelArg(raw: string): ModelRef {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127}?)(?::([1-9]\d{0,8}))?$/.exec(raw.trim());
  if (!m || (m[1] as string).includes('..')) throw new InvalidArgumentError(`must be NAME or NAME:VERSION (letters, digits, . _ -; version ≥ 1), got "${raw}"`);
  return { name: m[1] as string, version: m[2] === undefined ? 0 : Number(m[2]) };
}

function urlArg(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.protocol === 'http:' || u.protocol === 'https:') return raw;
  } catch {
    // fall through
  }
  throw new InvalidArgumentError(`must be the http(s) URL of a DICOMweb root, e.g. http://pacs:8042/dicom-web, got "${raw}"`);
}

function regexArg(raw: string): RegExp {
  try {
    return new RegExp(raw, 'i');
  } catch (err) {
    throw new InvalidArgumentError(`must be a regular expression: ${(err as Error).message}`);
  }
}

function listArg(raw: string): string[] {
  return raw.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
}

/**
 * The case id the segmenter gets for a series: `pacs-` and the first 16 hex
 * digits of SHA-256(SeriesInstanceUID). A DICOM UID is an identifier
 * (de-identification profiles replace it), so none leaves the bridge.
 */
export function pacsCaseId(seriesInstanceUid: string): string {
  return opaqueCaseId('pacs', seriesInstanceUid);
}

interface SegmenterOpts {
  model?: ModelRef;
  segmenter?: string;
  runDir: string;
  segmentTimeoutMs: number;
}

interface SelectionOpts {
  modality: string[];
  description?: RegExp;
  exclude?: RegExp;
  imageType?: string[];
  transcode: boolean;
  force: boolean;
  timeoutMs: number;
}

/**
 * The segment function for the pipeline, wired to the segmenter service through
 * @purify/inference's Segment client, and the segment definitions from the
 * model's class names (liver, spleen, right_kidney, left_kidney → SNOMED CT).
 */
async function segmenterPipeline(opts: SegmenterOpts): Promise<{ segment: SegmentFn; segments: SegmentDefinition[]; algorithmVersion: string; close: () => void; address: string }> {
  const { address, source } = segmenterAddress(opts.segmenter, resolve(opts.runDir));
  const client = createClient(SegmenterServiceClient, 'segmenter', { addresses: [address], defaultTimeoutMs: 120_000 });
  const unreachable = (err: unknown): never => {
    client.close();
    if (err instanceof PurifyError && err.code === ErrorCode.Unavailable) {
      throw new CliError(`cannot reach the segmenter at ${address} (from ${source}); start it with \`purify up\` or pass --segmenter HOST:PORT`);
    }
    throw err;
  };
  let ref = opts.model;
  if (!ref) {
    const listed = await unaryCall(client, 'listModels', { includeRegistry: false, name: '' }).catch(unreachable);
    const loaded = listed.models.filter((m) => m.loaded && m.ref);
    const only = loaded[0]?.ref;
    if (loaded.length !== 1 || !only) {
      client.close();
      throw new CliError(`--model is needed: the segmenter at ${address} serves ${loaded.length === 0 ? 'no model' : `${loaded.length} models (${loaded.map((m) => `${m.ref?.name}:${m.ref?.version}`).join(', ')})`}`, 2);
    }
    ref = only;
  }
  const info = await ensureModelLoaded(client, ref).catch(unreachable);
  const served: ModelRef = info.ref ?? ref;
  let segments: SegmentDefinition[];
  try {
    segments = info.classes.length > 0 ? segmentsForLabels(Object.fromEntries(info.classes.map((c) => [c.index, c.name]))) : [...PHANTOM_SEGMENTS];
  } catch (err) {
    client.close();
    throw new CliError(`model ${served.name}:${served.version}: ${(err as Error).message}`);
  }
  const segment: SegmentFn = async (volume: Volume, context) => {
    const res = await segmentRemote(client, volume, {
      model: served,
      timeoutMs: opts.segmentTimeoutMs,
      caseId: pacsCaseId(context.series.seriesInstanceUid),
      ...(context.signal ? { signal: context.signal } : {}),
    });
    return res.labels;
  };
  return { segment, segments, algorithmVersion: `${CLI_VERSION} ${served.name}:${served.version}`, close: () => client.close(), address };
}

function pipelineOptions(opts: SelectionOpts, segments: SegmentDefinition[], algorithmVersion: string, log: (e: PipelineEvent) => void): RunStudyOptions {
  return {
    selection: {
      modalities: opts.modality,
      ...(opts.description ? { descriptionPattern: opts.description } : {}),
      ...(opts.exclude ? { excludeDescriptionPattern: opts.exclude } : {}),
      ...(opts.imageType ? { requiredImageType: opts.imageType } : {}),
    },
    segments,
    algorithm: { name: 'purify', version: algorithmVersion },
    transferSyntax: opts.transcode ? TransferSyntax.ExplicitLittleEndian : '*',
    force: opts.force,
    client: { timeoutMs: opts.timeoutMs },
    log,
  };
}

/** Prints pipeline events: JSON lines with --json, else one readable line each (errors on stderr). */
function eventPrinter(json: boolean): (e: PipelineEvent) => void {
  return (e) => {
    if (json) {
      process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
      return;
    }
    const line = `${new Date().toISOString()} ${e.level.padEnd(5)} ${e.event}${e.studyInstanceUid ? ` ${e.studyInstanceUid}` : ''}: ${e.message}\n`;
    (e.level === 'error' ? process.stderr : process.stdout).write(line);
  };
}

function withPipelineOptions(cmd: Command): Command {
  return cmd
    .option('--model <name[:version]>', 'registry model (default: the one model the segmenter serves)', modelArg)
    .option('--segmenter <host:port>', 'segmenter address (default: from <run-dir>/services.json, else the default port on loopback)')
    .option('--run-dir <dir>', 'where `purify up` wrote services.json', '.purify')
    .option('--modality <list>', 'accepted modalities, comma-separated', listArg, ['CT'])
    .option('--description <regex>', 'SeriesDescription must match (case-insensitive)', regexArg)
    .option('--exclude <regex>', 'SeriesDescription must not match (case-insensitive)', regexArg)
    .option('--image-type <list>', 'ImageType must contain these values, e.g. ORIGINAL,PRIMARY', listArg)
    .option('--transcode', 'ask the PACS to transcode to Explicit VR Little Endian (for compressed series)', false)
    .option('--force', 'segment and store even when our SEG is already in the study', false)
    .option('--timeout-ms <ms>', 'timeout of each DICOMweb request', intArg(1, 86_400_000), 30_000)
    .option('--segment-timeout-ms <ms>', 'deadline of each Segment call', intArg(1, 86_400_000), DEFAULT_SEGMENT_TIMEOUT_MS)
    .option('--json', 'machine-readable output (JSON; watch: JSON lines)', false);
}

type RunOpts = SegmenterOpts & SelectionOpts & { url: string; study: string; json: boolean };
type WatchOpts = SegmenterOpts & SelectionOpts & { url: string; cursor: string; json: boolean; pollMs: number; mode: 'auto' | 'orthanc' | 'qido'; fromStart: boolean; once: boolean; lookbackDays: number };

function runCommand(): Command {
  return withPipelineOptions(
    new Command('run')
      .description('Segment one study: pull it over DICOMweb, select the series, segment it through the segmenter service, push a DICOM SEG back (a re-run does not duplicate)')
      .requiredOption('--url <url>', 'DICOMweb root, e.g. http://pacs:8042/dicom-web', urlArg)
      .requiredOption('--study <uid>', 'StudyInstanceUID'),
  ).action(async (opts: RunOpts) => {
    const pipe = await segmenterPipeline(opts);
    try {
      const log = eventPrinter(false);
      const result = await runStudy(opts.url, opts.study, pipe.segment, pipelineOptions(opts, pipe.segments, pipe.algorithmVersion, opts.json ? () => undefined : log));
      output(opts.json, result, () =>
        result.outcome === 'stored'
          ? `stored SEG series ${result.segSeriesInstanceUid} for series ${result.sourceSeriesInstanceUid} (${result.seg?.frames} frames: ${result.seg?.segments.map((s) => `${s.label} ${s.voxels} voxels`).join(', ')})`
          : result.outcome === 'already-done'
            ? `already done: SEG series ${result.segSeriesInstanceUid} is in the study (use --force to store again)`
            : `the segmentation of ${result.sourceSeriesInstanceUid} is empty; nothing stored`,
      );
    } catch (err) {
      if (err instanceof DicomError) throw new CliError(err.message);
      throw err;
    } finally {
      pipe.close();
    }
  });
}

function watchCommand(): Command {
  return withPipelineOptions(
    new Command('watch')
      .description('Segment every new study: follows Orthanc\'s change feed (else polls QIDO-RS), handles each study once, survives restarts (cursor file), logs and skips bad studies')
      .requiredOption('--url <url>', 'DICOMweb root, e.g. http://pacs:8042/dicom-web', urlArg)
      .option('--cursor <file>', 'where the position in the feed is kept (written atomically)', join('.purify', 'pacs-cursor.json'))
      .option('--poll-ms <ms>', 'pause between polls when nothing is new', intArg(100, 3_600_000), 5000)
      .option('--mode <mode>', 'auto (Orthanc feed when the server is Orthanc), orthanc, or qido', (raw: string) => {
        if (raw !== 'auto' && raw !== 'orthanc' && raw !== 'qido') throw new InvalidArgumentError(`must be auto, orthanc or qido, got "${raw}"`);
        return raw;
      }, 'auto')
      .option('--lookback-days <n>', 'qido mode: poll studies with StudyDate within this many days', intArg(1, 3650), 2)
      .option('--from-start', 'without a cursor: also handle the studies already on the PACS (default: only new ones)', false)
      .option('--once', 'stop when nothing is new instead of waiting', false),
  ).action(async (opts: WatchOpts) => {
    const cursorDir = new OutputPolicy().folder(dirname(resolve(opts.cursor)), '--cursor');
    const pipe = await segmenterPipeline(opts);
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const log = eventPrinter(opts.json);
    try {
      mkdirSync(cursorDir, { recursive: true });
      const summary = await watch(opts.url, resolve(opts.cursor), pipe.segment, {
        ...pipelineOptions(opts, pipe.segments, pipe.algorithmVersion, log),
        pollIntervalMs: opts.pollMs,
        mode: opts.mode,
        lookbackDays: opts.lookbackDays,
        startAt: opts.fromStart ? 'beginning' : 'now',
        stopWhenIdle: opts.once,
        signal: controller.signal,
      });
      log({ level: 'info', event: 'watch-stopped', message: `${summary.results.length} studies handled, ${summary.failures.length} failed` });
    } catch (err) {
      if (err instanceof DicomError) throw new CliError(err.message);
      throw err;
    } finally {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      pipe.close();
    }
  });
}

function exportPhantomCommand(): Command {
  return new Command('export-phantom')
    .description('Write a CT DICOM series of a built-in phantom case (one file per slice), and optionally store it on a PACS (STOW-RS)')
    .requiredOption('--out <dir>', 'output folder (files 0001.dcm, 0002.dcm, … in slice order)')
    .option('--seed <n>', 'phantom case seed (same seed → same anatomy and UIDs)', intArg(0, 2 ** 31 - 1), 1)
    .option('--size <px>', 'in-plane size in pixels', intArg(16, 1024), 96)
    .option('--slices <n>', 'axial slices', intArg(1, 1024), 32)
    .option('--url <url>', 'also store the series on this DICOMweb root', urlArg)
    .option('--timeout-ms <ms>', 'STOW-RS timeout', intArg(1, 86_400_000), 60_000)
    .option('--overwrite', 'replace the NNNN.dcm files of an earlier export in --out', false)
    .option('--json', 'machine-readable output', false)
    .action(async (opts: { out: string; seed: number; size: number; slices: number; url?: string; timeoutMs: number; overwrite: boolean; json: boolean }) => {
      // Checked first (tools/cli/src/write-safety.ts): a folder holding another series' slices is not silently mixed with this one.
      const out = new OutputPolicy({ overwrite: opts.overwrite }).filesIn(opts.out, '--out', { pattern: /^\d{4,}\.dcm$/ });
      const rng = new Rng(opts.seed);
      // The benchmark's field of view and slab (384 mm, 32 × 6 mm), whatever the pixel counts.
      const rendered = renderCase(sampleAnatomy(rng), 'ct', { size: opts.size, slices: opts.slices, fovMm: 384, sliceMm: (32 * 6) / opts.slices }, rng);
      const studyInstanceUid = derivedUid('purify-phantom-study', String(opts.seed), String(opts.size), String(opts.slices));
      const series = writeSeries(rendered.image, {
        studyInstanceUid,
        rescaleIntercept: -1024,
        patientId: `PHANTOM-${opts.seed}`,
        seriesDescription: `purify phantom CT seed ${opts.seed}`,
        imageType: ['DERIVED', 'SECONDARY', 'AXIAL'],
      });
      mkdirSync(out, { recursive: true });
      series.instances.forEach((inst, k) => writeFileAtomic(join(out, `${String(k + 1).padStart(4, '0')}.dcm`), inst.bytes));
      let stored = 0;
      if (opts.url) {
        try {
          stored = (await new DicomWebClient(opts.url, { timeoutMs: opts.timeoutMs }).store(series.instances.map((i) => i.bytes))).stored.length;
        } catch (err) {
          if (err instanceof DicomError) throw new CliError(err.message);
          throw err;
        }
      }
      const summary = { out, studyInstanceUid, seriesInstanceUid: series.seriesInstanceUid, instances: series.instances.length, shapeZyx: [...rendered.image.shape], spacingXyzMm: [...rendered.image.spacingXyzMm], storedTo: opts.url ?? null, stored, dicomLibraryVersion: PURIFY_DICOM_VERSION };
      output(opts.json, summary, () =>
        [
          `wrote ${summary.instances} CT slices to ${out}`,
          `StudyInstanceUID ${studyInstanceUid}`,
          `SeriesInstanceUID ${series.seriesInstanceUid}`,
          ...(opts.url ? [`stored ${stored} instances on ${opts.url}`] : []),
        ].join('\n'),
      );
    });
}

export function pacsCommand(): Command {
  return new Command('pacs')
    .description('PACS integration: DICOM series in, DICOM SEG out, over DICOMweb (see docs/pacs.md)')
    .addCommand(runCommand())
    .addCommand(watchCommand())
    .addCommand(exportPhantomCommand());
}
