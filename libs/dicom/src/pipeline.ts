/**
 * The PACS pipeline: pull a study over DICOMweb, select its series, segment it,
 * push the SEG(s) back; and a watcher that does so for every new study.
 *
 * Idempotence: the SEG's SeriesInstanceUID is derived from the source series
 * UID and the algorithm identity (name + version, see `idempotencyKey`), so
 * before segmenting, runStudy looks for that series in the study (QIDO-RS) and
 * stops with outcome `already-done` when it is there. A re-run never
 * duplicates, and a crash between storing and recording is harmless. A new
 * model version makes a new SEG series (a different result), by design.
 *
 * Nothing half-stored: everything is built and checked in memory first; the
 * reliability SEG (when there is one) is stored before the main SEG, so the
 * main SEG — whose presence marks the study done — is stored last; a failure
 * in between leaves the study "not done" and a re-run stores both again (same
 * UIDs: the PACS keeps one copy).
 */
import { writeJsonAtomic } from '@purify/artifacts';
import { makeVolume, type Volume } from '@purify/imaging';
import { readFileSync } from 'node:fs';
import { PHANTOM_SEGMENTS, type SegmentDefinition } from './codes';
import { optNumber, optString, strings } from './dataset';
import { DicomWebClient, type DicomWebOptions } from './dicomweb';
import { DicomError, DicomErrorKind } from './errors';
import { parseInstance } from './instance';
import { AI_DISCLAIMER, segSeriesUid, writeSegmentation, type AlgorithmIdentification, type WrittenSeg } from './seg-write';
import { describeCandidates, ruleFailure, selectSeries, seriesToVolume, type SeriesGeometryOptions, type SeriesInfo, type SeriesSelection, type SeriesVolume } from './series';
import type { Naturalized } from './dcmjs';

export const PURIFY_DICOM_VERSION = '0.1.0';

/** What a segment function may return: the label map, optionally with per-voxel reliability. */
export interface SegmentationOutput {
  /** uint8 `[z, y, x]` on the input volume's grid. */
  readonly labels: Volume<Uint8Array>;
  /** float32 `[z, y, x]` in [0, 1] on the same grid (1 = reliable); optional. */
  readonly reliability?: Volume<Float32Array>;
}

/**
 * Segments a volume (`[z, y, x]`, HU for CT; geometry of the source series).
 * Returns the label map on the same grid, or a {@link SegmentationOutput}.
 */
export type SegmentFn = (volume: Volume, context: { readonly series: SeriesVolume; readonly signal?: AbortSignal }) => Promise<Volume<Uint8Array> | SegmentationOutput>;

export type PipelineLevel = 'info' | 'warn' | 'error';
/** One structured log record of the pipeline. */
export interface PipelineEvent {
  readonly level: PipelineLevel;
  readonly event: string;
  readonly message: string;
  readonly studyInstanceUid?: string;
  readonly [key: string]: unknown;
}
export type PipelineLog = (event: PipelineEvent) => void;

export interface RunStudyOptions {
  /** Series rules; default CT (see DEFAULT_SELECTION). */
  readonly selection?: SeriesSelection;
  readonly geometry?: SeriesGeometryOptions;
  /** Label value → coded segment; default PHANTOM_SEGMENTS (1 liver, 2 spleen, 3 right kidney, 4 left kidney). */
  readonly segments?: readonly SegmentDefinition[];
  /** Default {name: 'purify', version: PURIFY_DICOM_VERSION}. */
  readonly algorithm?: AlgorithmIdentification;
  /** Default `${algorithm.name} ${algorithm.version}`; see the file comment. */
  readonly idempotencyKey?: string;
  /** Voxels of a segment with reliability below this go into the low-reliability SEG. Default 0.5. */
  readonly reliabilityThreshold?: number;
  /** Segment and store even when our SEG is already there (same UIDs: the PACS decides). */
  readonly force?: boolean;
  /** WADO-RS transfer syntax to ask for: '*' (default, as stored) or a UID to have the server transcode. */
  readonly transferSyntax?: string;
  readonly client?: DicomWebOptions;
  /** Timeout of the series retrieval (default 5 minutes). */
  readonly retrieveTimeoutMs?: number;
  readonly log?: PipelineLog;
  readonly signal?: AbortSignal;
}

export interface StoredSeg {
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly frames: number;
  readonly segments: WrittenSeg['segments'];
}

export interface RunStudyResult {
  readonly studyInstanceUid: string;
  /** stored: SEG(s) pushed; already-done: our SEG was there; empty: the segmentation found nothing (nothing stored). */
  readonly outcome: 'stored' | 'already-done' | 'empty';
  readonly sourceSeriesInstanceUid: string;
  readonly segSeriesInstanceUid: string;
  readonly seg?: StoredSeg;
  readonly reliabilitySeg?: StoredSeg;
  readonly warnings: readonly string[];
}

const RELIABILITY_DESCRIPTION = `purify low reliability — ${AI_DISCLAIMER}`;

function seriesInfoFromQido(ds: Naturalized, studyUid: string, imageType: readonly string[]): SeriesInfo {
  return {
    seriesInstanceUid: optString(ds, 'SeriesInstanceUID') ?? '',
    studyInstanceUid: studyUid,
    modality: (optString(ds, 'Modality') ?? '').toUpperCase(),
    seriesDescription: optString(ds, 'SeriesDescription') ?? '',
    seriesNumber: optNumber(ds, 'SeriesNumber', 'QIDO answer'),
    imageType,
    numberOfInstances: optNumber(ds, 'NumberOfSeriesRelatedInstances', 'QIDO answer') ?? 0,
  };
}

/** ImageType of a series' first instance: from QIDO includefield, else its WADO-RS metadata. */
async function imageTypeOf(client: DicomWebClient, studyUid: string, seriesUid: string, signal?: AbortSignal): Promise<string[]> {
  const first = (await client.searchInstances(studyUid, seriesUid, { limit: 1, includefield: '00080008' }, signal))[0];
  if (!first) return [];
  const fromQido = strings(first, 'ImageType');
  if (fromQido.length > 0) return fromQido;
  const sop = optString(first, 'SOPInstanceUID');
  if (sop === undefined) return [];
  return strings(await client.instanceMetadata(studyUid, seriesUid, sop, signal), 'ImageType');
}

function isOutput(x: Volume<Uint8Array> | SegmentationOutput): x is SegmentationOutput {
  return (x as SegmentationOutput).labels !== undefined && (x as Volume).data === undefined;
}

/**
 * Runs the pipeline on one study (see the file comment). Rejects with a
 * DicomError when the study has no usable series (kind `no-series`, listing
 * every series and why it was rejected), the series is bad (missing slices,
 * tilt, compression …), the segment function fails or returns a label map
 * off the source grid, or the PACS fails (kind `http`).
 */
export async function runStudy(url: string | DicomWebClient, studyUid: string, segment: SegmentFn, options: RunStudyOptions = {}): Promise<RunStudyResult> {
  const client = typeof url === 'string' ? new DicomWebClient(url, options.client) : url;
  const log: PipelineLog = options.log ?? (() => undefined);
  const algorithm = options.algorithm ?? { name: 'purify', version: PURIFY_DICOM_VERSION };
  const key = options.idempotencyKey ?? `${algorithm.name} ${algorithm.version}`;
  const signal = options.signal;

  // 1. What the study holds (QIDO-RS), and the series selection on metadata only.
  const listed = await client.searchSeries(studyUid, { includefield: ['0008103E', '00200011', '00201209'] }, signal);
  if (listed.length === 0) throw new DicomError(DicomErrorKind.NoSeries, `study ${studyUid}: not found on the PACS or has no series`);
  const seriesUids = new Set(listed.map((s) => optString(s, 'SeriesInstanceUID') ?? ''));
  const infos: SeriesInfo[] = [];
  for (const s of listed) {
    const info = seriesInfoFromQido(s, studyUid, []);
    // ImageType costs one request per series; only ask for series that pass the other rules.
    const needsImageType = ruleFailure(info, { ...options.selection, requiredImageType: [] }) === undefined;
    infos.push(needsImageType ? { ...info, imageType: await imageTypeOf(client, studyUid, info.seriesInstanceUid, signal) } : info);
  }
  const selection = selectSeries(infos, options.selection);
  const chosen = selection.selected;
  if (!chosen) throw new DicomError(DicomErrorKind.NoSeries, `study ${studyUid}: no series matches the selection rules: ${describeCandidates(selection.candidates)}`);
  log({ level: 'info', event: 'series-selected', studyInstanceUid: studyUid, message: `selected ${chosen.seriesInstanceUid} (${chosen.modality}, ${chosen.numberOfInstances} instances)`, seriesInstanceUid: chosen.seriesInstanceUid, candidates: selection.candidates.map((c) => ({ seriesInstanceUid: c.series.seriesInstanceUid, rejected: c.rejected })) });

  // 2. Already done?
  const segUid = segSeriesUid(chosen.seriesInstanceUid, key);
  if (!options.force && seriesUids.has(segUid)) {
    log({ level: 'info', event: 'already-done', studyInstanceUid: studyUid, message: `SEG series ${segUid} of ${chosen.seriesInstanceUid} by "${key}" is already in the study`, segSeriesInstanceUid: segUid });
    return { studyInstanceUid: studyUid, outcome: 'already-done', sourceSeriesInstanceUid: chosen.seriesInstanceUid, segSeriesInstanceUid: segUid, warnings: [] };
  }

  // 3. Pull and convert.
  const files = await client.retrieve(studyUid, chosen.seriesInstanceUid, { transferSyntax: options.transferSyntax ?? '*', timeoutMs: options.retrieveTimeoutMs ?? 300_000, ...(signal ? { signal } : {}) });
  if (files.length === 0) throw new DicomError(DicomErrorKind.NoSeries, `study ${studyUid}: series ${chosen.seriesInstanceUid} returned no instances`);
  const instances = files.map((bytes, i) => parseInstance(bytes, `${client.baseUrl}/studies/${studyUid}/series/${chosen.seriesInstanceUid} instance ${i + 1}`));
  const series = seriesToVolume(instances, options.geometry);
  for (const w of series.warnings) log({ level: 'warn', event: 'series-warning', studyInstanceUid: studyUid, message: w });

  // 4. Segment.
  const raw = await segment(series.volume, { series, ...(signal ? { signal } : {}) });
  const output: SegmentationOutput = isOutput(raw) ? raw : { labels: raw };
  const segments = options.segments ?? PHANTOM_SEGMENTS;

  // 5. Build everything before storing anything.
  let main: WrittenSeg;
  try {
    main = writeSegmentation({ source: series, labels: output.labels, segments, algorithm, idempotencyKey: key });
  } catch (err) {
    if (err instanceof DicomError && /every segment is empty/.test(err.message)) {
      log({ level: 'warn', event: 'empty', studyInstanceUid: studyUid, message: `the segmentation of ${series.seriesInstanceUid} is empty; nothing stored` });
      return { studyInstanceUid: studyUid, outcome: 'empty', sourceSeriesInstanceUid: series.seriesInstanceUid, segSeriesInstanceUid: segUid, warnings: series.warnings };
    }
    throw err;
  }
  let reliability: WrittenSeg | undefined;
  if (output.reliability) {
    const threshold = options.reliabilityThreshold ?? 0.5;
    const rel = output.reliability;
    if (rel.data.length !== output.labels.data.length) {
      throw new DicomError(DicomErrorKind.Segmentation, `study ${studyUid}: the reliability map has ${rel.data.length} voxels, the label map ${output.labels.data.length}`);
    }
    const low = new Uint8Array(output.labels.data.length);
    for (let i = 0; i < low.length; i++) if ((rel.data[i] as number) < threshold) low[i] = output.labels.data[i] as number;
    if (low.some((v) => v !== 0)) {
      reliability = writeSegmentation({
        source: series,
        labels: makeVolume(low, output.labels.shape, output.labels),
        segments: segments.map((s) => ({ ...s, label: `${s.label} low reliability`.slice(0, 64), description: `voxels of this segment with reliability < ${threshold}` })),
        algorithm,
        idempotencyKey: `${key} low-reliability`,
        seriesDescription: RELIABILITY_DESCRIPTION,
        seriesNumber: 9002,
        contentLabel: 'PURIFY_LOWREL',
      });
    }
  }

  // 6. Store: the reliability SEG first, the main SEG (the "done" marker) last.
  if (reliability) await client.store([reliability.bytes], studyUid, signal);
  await client.store([main.bytes], studyUid, signal);
  const summary = (w: WrittenSeg): StoredSeg => ({ seriesInstanceUid: w.seriesInstanceUid, sopInstanceUid: w.sopInstanceUid, frames: w.frames, segments: w.segments });
  log({ level: 'info', event: 'stored', studyInstanceUid: studyUid, message: `stored SEG ${main.sopInstanceUid} (${main.frames} frames, segments ${main.segments.map((s) => s.label).join(', ')})${reliability ? ` and the low-reliability SEG ${reliability.sopInstanceUid}` : ''}` });
  return {
    studyInstanceUid: studyUid,
    outcome: 'stored',
    sourceSeriesInstanceUid: series.seriesInstanceUid,
    segSeriesInstanceUid: main.seriesInstanceUid,
    seg: summary(main),
    ...(reliability ? { reliabilitySeg: summary(reliability) } : {}),
    warnings: series.warnings,
  };
}

// ---------------------------------------------------------------------------
// The watcher.

/** The persisted cursor (JSON, written atomically after every study). */
export type WatchCursor =
  | { readonly version: 1; readonly mode: 'orthanc-changes'; readonly since: number }
  | { readonly version: 1; readonly mode: 'qido'; readonly seen: Readonly<Record<string, string>> };

export interface WatchOptions extends RunStudyOptions {
  /** Pause between polls when there is nothing new (default 5000 ms). */
  readonly pollIntervalMs?: number;
  /** Return once the feed has nothing new (for tests and cron-style runs). Default false: run until aborted. */
  readonly stopWhenIdle?: boolean;
  /**
   * 'orthanc' follows Orthanc's /changes feed; 'qido' polls QIDO-RS /studies;
   * 'auto' (default) uses Orthanc's feed when the server answers /system as Orthanc.
   */
  readonly mode?: 'auto' | 'orthanc' | 'qido';
  /** Orthanc's REST root; default: the DICOMweb URL without its last path segment (…/dicom-web → …). */
  readonly orthancUrl?: string;
  /** QIDO mode: studies with StudyDate within this many days are polled (default 2). */
  readonly lookbackDays?: number;
  /**
   * Without a cursor file: 'now' (default) handles only studies that arrive from
   * now on; 'beginning' also handles every study the feed still lists.
   */
  readonly startAt?: 'now' | 'beginning';
}

export interface WatchSummary {
  readonly mode: 'orthanc-changes' | 'qido';
  readonly results: readonly RunStudyResult[];
  readonly failures: readonly { readonly studyInstanceUid: string; readonly kind: string; readonly reason: string }[];
}

function readCursor(path: string): WatchCursor | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DicomError(DicomErrorKind.BadAttribute, `cursor ${path}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DicomError(DicomErrorKind.BadAttribute, `cursor ${path}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  const c = parsed as Partial<Record<string, unknown>>;
  if (c.version === 1 && c.mode === 'orthanc-changes' && Number.isInteger(c.since) && (c.since as number) >= 0) return parsed as WatchCursor;
  if (c.version === 1 && c.mode === 'qido' && typeof c.seen === 'object' && c.seen !== null) return parsed as WatchCursor;
  throw new DicomError(DicomErrorKind.BadAttribute, `cursor ${path}: expected {"version": 1, "mode": "orthanc-changes", "since": <integer ≥ 0>} or {"version": 1, "mode": "qido", "seen": {…}}, got ${text.trim().slice(0, 200)}`);
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

interface OrthancChange {
  ChangeType: string;
  ID: string;
  ResourceType: string;
  Seq: number;
}

/** A minimal client of Orthanc's own REST API (the /changes feed and study lookup). */
class OrthancRest {
  private readonly rest: DicomWebClient;

  constructor(readonly root: string, options: DicomWebOptions) {
    this.rest = new DicomWebClient(root, options);
  }

  private async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    const { body } = await this.rest.request('GET', path, { accept: 'application/json', ...(signal ? { signal } : {}) });
    try {
      return JSON.parse(Buffer.from(body).toString('utf8')) as T;
    } catch (err) {
      throw new DicomError(DicomErrorKind.Protocol, `GET ${this.root}${path}: answer is not JSON`, { cause: err });
    }
  }

  async isOrthanc(signal?: AbortSignal): Promise<boolean> {
    try {
      const system = await this.get<{ Version?: unknown; ApiVersion?: unknown }>('/system', signal);
      return typeof system.Version === 'string' && system.ApiVersion !== undefined;
    } catch {
      return false;
    }
  }

  changes(since: number, signal?: AbortSignal): Promise<{ Changes: OrthancChange[]; Done: boolean; Last: number }> {
    return this.get(`/changes?since=${since}&limit=100`, signal);
  }

  async studyUid(id: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const study = await this.get<{ MainDicomTags?: { StudyInstanceUID?: string } }>(`/studies/${encodeURIComponent(id)}`, signal);
      return study.MainDicomTags?.StudyInstanceUID;
    } catch (err) {
      if (err instanceof DicomError && err.status === 404) return undefined; // deleted since
      throw err;
    }
  }

  /** The Seq of the newest change (GET /changes?last). */
  async last(signal?: AbortSignal): Promise<number> {
    return (await this.get<{ Last: number }>('/changes?last', signal)).Last;
  }
}

/**
 * Follows new studies and runs the pipeline on each.
 *
 * Orthanc (`mode` 'orthanc' or detected): reads GET /changes?since=N and
 * handles every `StableStudy` change (Orthanc emits it once a study has
 * received nothing new for its StableAge), in order; after each change the
 * cursor (`since` = that change's Seq) is written atomically, so a restart
 * resumes after the last handled change. Orthanc emits StableStudy again when
 * a study changes (our own SEG does that); runStudy then answers
 * `already-done` from QIDO without pulling pixels.
 *
 * Other PACS ('qido'): polls QIDO-RS /studies for StudyDate within
 * `lookbackDays` and handles every study not yet in the cursor's `seen` map
 * (StudyInstanceUID → StudyDate; entries older than the lookback are pruned).
 * StudyDate is the acquisition date, not the arrival time, so a study that
 * arrives later than `lookbackDays` after it was acquired is missed.
 *
 * Exactly once: a study is marked handled (cursor written) only after
 * runStudy finished — stored, already done, empty, or failed with a reason
 * logged (level error, event `study-failed`); the watcher then goes on with the
 * next study. A crash mid-study re-runs that study on restart, which the
 * idempotence of runStudy makes harmless. Failures of the feed itself (PACS
 * down) are logged and retried after `pollIntervalMs`.
 */
export async function watch(url: string, cursorFile: string, segment: SegmentFn, options: WatchOptions = {}): Promise<WatchSummary> {
  const client = new DicomWebClient(url, options.client);
  const log: PipelineLog = options.log ?? (() => undefined);
  const pollMs = options.pollIntervalMs ?? 5000;
  const signal = options.signal;
  const results: RunStudyResult[] = [];
  const failures: { studyInstanceUid: string; kind: string; reason: string }[] = [];
  const orthanc = new OrthancRest((options.orthancUrl ?? client.baseUrl.replace(/\/[^/]*$/, '')).replace(/\/+$/, ''), options.client ?? {});

  let cursor = readCursor(cursorFile);
  let mode: 'orthanc-changes' | 'qido';
  if (cursor) mode = cursor.mode;
  else if (options.mode === 'orthanc') mode = 'orthanc-changes';
  else if (options.mode === 'qido') mode = 'qido';
  else mode = (await orthanc.isOrthanc(signal)) ? 'orthanc-changes' : 'qido';
  if (options.mode === 'orthanc' && mode !== 'orthanc-changes') throw new DicomError(DicomErrorKind.BadAttribute, `cursor ${cursorFile}: holds a ${mode} cursor but mode 'orthanc' was asked`);
  if (options.mode === 'qido' && mode !== 'qido') throw new DicomError(DicomErrorKind.BadAttribute, `cursor ${cursorFile}: holds a ${mode} cursor but mode 'qido' was asked`);
  if (!cursor) {
    const fromStart = options.startAt === 'beginning';
    if (mode === 'orthanc-changes') {
      cursor = { version: 1, mode, since: fromStart ? 0 : await orthanc.last(signal) };
    } else {
      const seen: Record<string, string> = {};
      if (!fromStart) for (const s of await client.searchStudies({ includefield: '00080020' }, signal)) seen[optString(s, 'StudyInstanceUID') ?? ''] = optString(s, 'StudyDate') ?? '';
      cursor = { version: 1, mode, seen };
    }
    writeJsonAtomic(cursorFile, cursor);
  }
  log({ level: 'info', event: 'watch-start', message: `watching ${url} (${mode === 'orthanc-changes' ? `Orthanc change feed at ${orthanc.root}` : 'QIDO-RS polling'}), cursor ${cursorFile}`, mode });

  const handle = async (studyUid: string): Promise<void> => {
    try {
      const result = await runStudy(client, studyUid, segment, options);
      results.push(result);
      log({ level: 'info', event: 'study-done', studyInstanceUid: studyUid, message: `study ${studyUid}: ${result.outcome}`, outcome: result.outcome });
    } catch (err) {
      const kind = err instanceof DicomError ? err.kind : 'internal';
      const reason = (err as Error).message;
      failures.push({ studyInstanceUid: studyUid, kind, reason });
      log({ level: 'error', event: 'study-failed', studyInstanceUid: studyUid, message: reason, kind });
    }
  };

  while (!signal?.aborted) {
    let idle: boolean;
    try {
      if (cursor.mode === 'orthanc-changes') {
        const page = await orthanc.changes(cursor.since, signal);
        // A study that became stable several times within one page is handled once, at its last change.
        const lastStable = new Map<string, number>();
        for (const change of page.Changes) if (change.ChangeType === 'StableStudy') lastStable.set(change.ID, change.Seq);
        for (const change of page.Changes) {
          if (signal?.aborted) break;
          if (change.ChangeType === 'StableStudy' && lastStable.get(change.ID) === change.Seq) {
            const studyUid = await orthanc.studyUid(change.ID, signal);
            if (studyUid === undefined) log({ level: 'warn', event: 'study-gone', message: `Orthanc study ${change.ID} (change ${change.Seq}) no longer exists` });
            else await handle(studyUid);
          }
          cursor = { version: 1, mode: 'orthanc-changes', since: change.Seq };
          writeJsonAtomic(cursorFile, cursor);
        }
        if (!signal?.aborted && page.Last > cursor.since) {
          cursor = { version: 1, mode: 'orthanc-changes', since: page.Last };
          writeJsonAtomic(cursorFile, cursor);
        }
        idle = page.Done;
      } else {
        const lookback = options.lookbackDays ?? 2;
        const from = new Date(Date.now() - lookback * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
        const studies = await client.searchStudies({ StudyDate: `${from}-`, includefield: '00080020' }, signal);
        const seen: Record<string, string> = Object.fromEntries(Object.entries(cursor.seen).filter(([, date]) => date === '' || date >= from));
        let handled = 0;
        for (const s of studies) {
          if (signal?.aborted) break;
          const uid = optString(s, 'StudyInstanceUID');
          if (uid === undefined || seen[uid] !== undefined) continue;
          await handle(uid);
          handled++;
          seen[uid] = optString(s, 'StudyDate') ?? '';
          cursor = { version: 1, mode: 'qido', seen: { ...seen } };
          writeJsonAtomic(cursorFile, cursor);
        }
        idle = handled === 0;
      }
    } catch (err) {
      if (signal?.aborted) break;
      log({ level: 'error', event: 'feed-failed', message: `${(err as Error).message}; retrying in ${pollMs} ms`, kind: err instanceof DicomError ? err.kind : 'internal' });
      if (options.stopWhenIdle) throw err;
      idle = true;
    }
    if (idle) {
      if (options.stopWhenIdle) break;
      await sleep(pollMs, signal);
    }
  }
  return { mode, results, failures };
}
