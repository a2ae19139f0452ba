/**
 * The PACS pipeline against a real Orthanc (see orthanc.ts for the network
 * namespace and the bridge). Seeds: a CT series written from the built-in
 * phantom on an oblique grid (instances stored in shuffled order), and Debian
 * python3-pydicom's CT_small.dcm and MR_small.dcm (real scanner files).
 * The segmenter is a deterministic fake (HU thresholds), so the expected masks
 * are known without it.
 *
 * Checks, each against something computed independently of the code under test:
 *   - the SEG fetched back from Orthanc, decoded by pydicom + numpy and placed
 *     on the source slices by their own ImagePositionPatient, equals the fake
 *     segmenter's output voxel for voxel;
 *   - the same SEG read by our reader and mapped through world coordinates onto
 *     dcm2niix's independent conversion of the source series equals the fake
 *     segmenter applied to dcm2niix's voxels (orientation, flips, slice order);
 *   - our volume equals dcm2niix's voxel for voxel through world coordinates;
 *   - dciodvfy reports no error on either SEG;
 *   - re-runs do not duplicate; the watcher handles each study once, logs and
 *     skips bad studies, and resumes from its cursor.
 */
import { makeVolume, readNifti, Rng, worldLpsToIndex, type Volume } from '@purify/imaging';
import { renderCase, sampleAnatomy } from '@purify/phantoms';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DicomError,
  DicomWebClient,
  PHANTOM_SEGMENTS,
  readSegmentation,
  runStudy,
  segSeriesUid,
  parseInstance,
  watch,
  writeSeries,
  type PipelineEvent,
  type SegmentFn,
  type SeriesVolume,
} from '../src';
import { dciodvfyErrors, dcm2niix, PYDICOM_SEG_ORACLE, runPythonJson } from './oracles';
import { pydicomFile, startOrthanc, type OrthancHandle } from './orthanc';

/** The fake segmenter's rule, per voxel from its HU value only (so it applies to any grid). */
function labelOfHu(hu: number): number {
  if (hu > 600) return 4; // bone-like: "left kidney" segment, just to have four segments
  if (hu > 150) return 3;
  if (hu > 90) return 1;
  if (hu > 40) return 2;
  return 0;
}

/** Fake segment function: labels by HU; reliability 0.2 on voxels with (x + y) % 3 == 0, else 0.9. */
const fakeSegment: SegmentFn = async (volume) => {
  const [nz, ny, nx] = volume.shape;
  const labels = new Uint8Array(volume.data.length);
  const reliability = new Float32Array(volume.data.length);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = (z * ny + y) * nx + x;
        labels[i] = labelOfHu(volume.data[i] as number);
        reliability[i] = (x + y) % 3 === 0 ? 0.2 : 0.9;
      }
    }
  }
  return { labels: makeVolume(labels, volume.shape, volume), reliability: makeVolume(reliability, volume.shape, volume) };
};

/** Rotation (proper, det +1) about an axis by an angle, row-major. */
function rotation(axis: [number, number, number], angle: number): number[] {
  const n = Math.hypot(...axis);
  const [x, y, z] = axis.map((v) => v / n) as [number, number, number];
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const t = 1 - c;
  return [t * x * x + c, t * x * y - s * z, t * x * z + s * y, t * x * y + s * z, t * y * y + c, t * y * z - s * x, t * x * z - s * y, t * y * z + s * x, t * z * z + c];
}

/** The phantom CT (small grid) with an oblique direction and an offset origin. */
function phantomCt(seed: number): Volume<Int16Array> {
  const rng = new Rng(seed);
  const rendered = renderCase(sampleAnatomy(rng), 'ct', { size: 40, slices: 10, fovMm: 384, sliceMm: 6 }, rng);
  return makeVolume(rendered.image.data, rendered.image.shape, { spacingXyzMm: rendered.image.spacingXyzMm, originLpsMm: [-180, -150, -40], directionLps: rotation([0.3, -0.2, 1], 0.35) });
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rng = new Rng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform(0, i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Writes Part-10 files to a fresh folder. */
function writeFolder(dir: string, files: readonly Uint8Array[]): string {
  mkdirSync(dir, { recursive: true });
  files.forEach((f, i) => writeFileSync(join(dir, `${String(i).padStart(4, '0')}.dcm`), f));
  return dir;
}

/** Count of voxels where `a` (on gridA) and `b` (on gridB) disagree after mapping each voxel of `a` through world coordinates; -1 if a voxel does not land on a voxel centre. */
function compareThroughWorld(a: Volume, aValue: (i: number) => number, b: Volume, bValue: (i: number) => number): { mismatches: number; offGrid: number } {
  const [nz, ny, nx] = a.shape;
  const [bz, by, bx] = b.shape;
  const toB = worldLpsToIndex(b);
  const d = a.directionLps;
  const s = a.spacingXyzMm;
  const o = a.originLpsMm;
  let mismatches = 0;
  let offGrid = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const w = [0, 1, 2].map((r) => (o[r] as number) + (d[r * 3] as number) * s[0] * x + (d[r * 3 + 1] as number) * s[1] * y + (d[r * 3 + 2] as number) * s[2] * z);
        const p = [0, 1, 2].map((r) => (toB[r * 4] as number) * (w[0] as number) + (toB[r * 4 + 1] as number) * (w[1] as number) + (toB[r * 4 + 2] as number) * (w[2] as number) + (toB[r * 4 + 3] as number));
        const q = p.map(Math.round) as [number, number, number];
        if (p.some((v, i) => Math.abs(v - (q[i] as number)) > 1e-2) || q[0] < 0 || q[1] < 0 || q[2] < 0 || q[0] >= bx || q[1] >= by || q[2] >= bz) {
          offGrid++;
          continue;
        }
        if (aValue((z * ny + y) * nx + x) !== bValue((q[2] * by + q[1]) * bx + q[0])) mismatches++;
      }
    }
  }
  return { mismatches, offGrid };
}

describe('PACS pipeline against Orthanc in its own network namespace', () => {
  let orthanc: OrthancHandle;
  let client: DicomWebClient;
  let work: string;
  const phantom = phantomCt(7);
  const phantomSeries = writeSeries(phantom, { rescaleIntercept: -1024, seriesDescription: 'phantom abdomen CT', imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'] });
  // A scout-like second series in the same study, which selection must not pick.
  const scout = writeSeries(makeVolume(new Int16Array(40 * 40 * 2), [2, 40, 40], { spacingXyzMm: [2, 2, 5] }), {
    studyInstanceUid: phantomSeries.studyInstanceUid,
    seriesNumber: 2,
    seriesDescription: 'localizer',
    imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'],
  });
  const ctSmall = pydicomFile('CT_small.dcm');
  const mrSmall = pydicomFile('MR_small.dcm');
  const ctSmallStudy = parseInstance(ctSmall, 'CT_small.dcm').studyInstanceUid;
  const mrSmallStudy = parseInstance(mrSmall, 'MR_small.dcm').studyInstanceUid;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'purify-pacs-test-'));
    orthanc = await startOrthanc();
    client = new DicomWebClient(orthanc.dicomWebUrl);
    await client.store(shuffled(phantomSeries.instances.map((i) => i.bytes), 3));
    await client.store(scout.instances.map((i) => i.bytes));
    await client.store([ctSmall, mrSmall]);
    // Generous: on a loaded 2-core machine Orthanc's start and the first stores take tens of seconds.
  }, 180_000);

  afterAll(async () => {
    await orthanc?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 30_000);

  let phantomResult: Awaited<ReturnType<typeof runStudy>>;
  let source: SeriesVolume;
  let expected: { labels: Volume<Uint8Array>; reliability: Volume<Float32Array> };
  const events: PipelineEvent[] = [];

  it('runs the pipeline on the phantom study: selects the CT series, stores a SEG and a low-reliability SEG', async () => {
    const segment: SegmentFn = async (volume, ctx) => {
      source = ctx.series;
      const out = await fakeSegment(volume, ctx);
      expected = out as typeof expected;
      return out;
    };
    phantomResult = await runStudy(orthanc.dicomWebUrl, phantomSeries.studyInstanceUid, segment, { log: (e) => events.push(e) });
    expect(phantomResult.outcome).toBe('stored');
    expect(phantomResult.sourceSeriesInstanceUid).toBe(phantomSeries.seriesInstanceUid);
    expect(events.find((e) => e.event === 'series-selected')?.candidates).toEqual([
      { seriesInstanceUid: phantomSeries.seriesInstanceUid, rejected: undefined },
      { seriesInstanceUid: scout.seriesInstanceUid, rejected: 'ImageType marks it a LOCALIZER' },
    ]);
    // Orthanc now lists the two SEG series in the study.
    const modalities = (await client.searchSeries(phantomSeries.studyInstanceUid)).map((s) => `${String(s.Modality)} ${String(s.SeriesInstanceUID)}`).sort();
    expect(modalities).toEqual(
      [`CT ${phantomSeries.seriesInstanceUid}`, `CT ${scout.seriesInstanceUid}`, `SEG ${phantomResult.seg?.seriesInstanceUid ?? ''}`, `SEG ${phantomResult.reliabilitySeg?.seriesInstanceUid ?? ''}`].sort(),
    );
  });

  it('the SEG fetched back equals the segmenter output voxel for voxel (pydicom oracle on the source slices)', async () => {
    const srcDir = writeFolder(join(work, 'phantom-src'), await client.retrieve(phantomSeries.studyInstanceUid, phantomSeries.seriesInstanceUid));
    const [segBytes] = await client.retrieve(phantomSeries.studyInstanceUid, phantomResult.seg?.seriesInstanceUid);
    const segPath = join(work, 'phantom-seg.dcm');
    writeFileSync(segPath, segBytes as Uint8Array);
    const outPath = join(work, 'phantom-seg.raw');
    const report = runPythonJson<{
      iopMaxDiff: number;
      maxFrameOffsetMm: number;
      sourceRefsMatchPositions: boolean;
      referencedSeriesUid: string;
      referencedInstances: string[];
      sourceInstances: string[];
      seriesDescription: string;
      frameOfReferenceMatches: boolean;
      studyMatches: boolean;
      segments: Record<string, { label: string; algorithmType: string; algorithmName: string; category: [string, string]; type: [string, string] }>;
    }>(PYDICOM_SEG_ORACLE, [segPath, srcDir, outPath]);
    const oracle = new Uint8Array(readFileSync(outPath));
    // Segment number → label value, from what pydicom read (label names are ours, codes are SNOMED CT).
    const byType = new Map(PHANTOM_SEGMENTS.map((s) => [s.type.value, s.labelValue]));
    const numberToLabel = new Map(Object.entries(report.segments).map(([n, s]) => [Number(n), byType.get(s.type[1]) ?? -1]));
    let mismatches = 0;
    for (let i = 0; i < oracle.length; i++) if ((oracle[i] === 0 ? 0 : numberToLabel.get(oracle[i] as number)) !== expected.labels.data[i]) mismatches++;
    expect(oracle.length).toBe(expected.labels.data.length);
    expect(mismatches).toBe(0);
    expect(report.iopMaxDiff).toBeLessThan(1e-6);
    expect(report.maxFrameOffsetMm).toBeLessThan(1e-3);
    expect(report.sourceRefsMatchPositions).toBe(true);
    expect(report.referencedSeriesUid).toBe(phantomSeries.seriesInstanceUid);
    expect(report.referencedInstances).toEqual(report.sourceInstances);
    expect(report.seriesDescription).toBe('purify segmentation — AI-generated — not for clinical use');
    expect(report.frameOfReferenceMatches && report.studyMatches).toBe(true);
    expect(Object.values(report.segments).map((s) => [s.label, s.algorithmType, s.algorithmName, s.category.join(':'), s.type.join(':')])).toEqual(
      // Every segment has voxels in this phantom, in label order.
      [
        ['Liver', 'AUTOMATIC', 'purify', 'SCT:123037004', 'SCT:10200004'],
        ['Spleen', 'AUTOMATIC', 'purify', 'SCT:123037004', 'SCT:78961009'],
        ['Right kidney', 'AUTOMATIC', 'purify', 'SCT:123037004', 'SCT:9846003'],
        ['Left kidney', 'AUTOMATIC', 'purify', 'SCT:123037004', 'SCT:18639004'],
      ],
    );
  });

  it('orientation: our volume and our SEG agree with dcm2niix’s independent conversion through world coordinates', async () => {
    const srcDir = join(work, 'phantom-src');
    mkdirSync(join(work, 'phantom-nii'));
    const nii = await readNifti(dcm2niix(srcDir, join(work, 'phantom-nii')));
    // Voxels: our HU volume vs dcm2niix's (it stores int16 + scl_inter −1024; readNifti applies it).
    const voxels = compareThroughWorld(source.volume, (i) => source.volume.data[i] as number, nii, (i) => nii.data[i] as number);
    expect(voxels).toEqual({ mismatches: 0, offGrid: 0 });
    // The SEG, read by our reader onto our grid, mapped onto dcm2niix's grid, equals the fake rule applied to dcm2niix's voxels.
    const [segBytes] = await client.retrieve(phantomSeries.studyInstanceUid, phantomResult.seg?.seriesInstanceUid);
    const seg = readSegmentation(segBytes as Uint8Array, source.volume);
    const numberToLabel = new Map(phantomResult.seg?.segments.map((s) => [s.segmentNumber, s.labelValue]));
    const masks = compareThroughWorld(seg.labels, (i) => (seg.labels.data[i] === 0 ? 0 : (numberToLabel.get(seg.labels.data[i] as number) ?? -1)), nii, (i) => labelOfHu(nii.data[i] as number));
    expect(masks).toEqual({ mismatches: 0, offGrid: 0 });
  });

  it('the low-reliability SEG holds exactly the labelled voxels with reliability < 0.5', async () => {
    const [bytes] = await client.retrieve(phantomSeries.studyInstanceUid, phantomResult.reliabilitySeg?.seriesInstanceUid);
    const seg = readSegmentation(bytes as Uint8Array, source.volume);
    const numberToLabel = new Map(phantomResult.reliabilitySeg?.segments.map((s) => [s.segmentNumber, s.labelValue]));
    let mismatches = 0;
    for (let i = 0; i < seg.labels.data.length; i++) {
      const want = (expected.reliability.data[i] as number) < 0.5 ? (expected.labels.data[i] as number) : 0;
      const got = seg.labels.data[i] === 0 ? 0 : (numberToLabel.get(seg.labels.data[i] as number) ?? -1);
      if (got !== want) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect(seg.instance.seriesDescription).toBe('purify low reliability — AI-generated — not for clinical use');
    expect(seg.segments.map((s) => s.label)).toEqual(['Liver low reliability', 'Spleen low reliability', 'Right kidney low reliability', 'Left kidney low reliability']);
  });

  it('dciodvfy reports no errors on either SEG', async () => {
    for (const uid of [phantomResult.seg?.seriesInstanceUid, phantomResult.reliabilitySeg?.seriesInstanceUid]) {
      const [bytes] = await client.retrieve(phantomSeries.studyInstanceUid, uid);
      const path = join(work, `validate-${uid ?? ''}.dcm`);
      writeFileSync(path, bytes as Uint8Array);
      const { errors, output } = dciodvfyErrors(path);
      expect({ errors, iod: output.split('\n')[0] }).toEqual({ errors: [], iod: 'Segmentation' });
    }
  });

  it('a re-run does not duplicate: outcome already-done, without calling the segmenter', async () => {
    const segment = jest.fn(fakeSegment);
    const again = await runStudy(orthanc.dicomWebUrl, phantomSeries.studyInstanceUid, segment);
    expect(again.outcome).toBe('already-done');
    expect(again.segSeriesInstanceUid).toBe(segSeriesUid(phantomSeries.seriesInstanceUid, 'purify 0.1.0'));
    expect(segment).not.toHaveBeenCalled();
    const segs = (await client.searchSeries(phantomSeries.studyInstanceUid, { Modality: 'SEG' })).length;
    expect(segs).toBe(2);
  });

  it('a real scanner slice (pydicom CT_small.dcm): SEG valid, geometry equal to dcm2niix, masks equal through world coordinates', async () => {
    let input: SeriesVolume | undefined;
    const result = await runStudy(orthanc.dicomWebUrl, ctSmallStudy, async (v, ctx) => {
      input = ctx.series;
      return fakeSegment(v, ctx).then((o) => (o as { labels: Volume<Uint8Array> }).labels);
    });
    expect(result.outcome).toBe('stored');
    expect(result.reliabilitySeg).toBeUndefined();
    const [bytes] = await client.retrieve(ctSmallStudy, result.seg?.seriesInstanceUid);
    const path = join(work, 'ct-small-seg.dcm');
    writeFileSync(path, bytes as Uint8Array);
    expect(dciodvfyErrors(path).errors).toEqual([]);
    const srcDir = writeFolder(join(work, 'ct-small-src'), [ctSmall]);
    mkdirSync(join(work, 'ct-small-nii'));
    const nii = await readNifti(dcm2niix(srcDir, join(work, 'ct-small-nii')));
    const vol = input?.volume as Volume;
    expect(compareThroughWorld(vol, (i) => vol.data[i] as number, nii, (i) => nii.data[i] as number)).toEqual({ mismatches: 0, offGrid: 0 });
    const seg = readSegmentation(bytes as Uint8Array, vol);
    const numberToLabel = new Map(result.seg?.segments.map((s) => [s.segmentNumber, s.labelValue]));
    expect(compareThroughWorld(seg.labels, (i) => (seg.labels.data[i] === 0 ? 0 : (numberToLabel.get(seg.labels.data[i] as number) ?? -1)), nii, (i) => labelOfHu(nii.data[i] as number))).toEqual({ mismatches: 0, offGrid: 0 });
  });

  it('an MR-only study with the default CT rules: no-series error naming why each series was rejected', async () => {
    await expect(runStudy(orthanc.dicomWebUrl, mrSmallStudy, fakeSegment)).rejects.toThrow(
      new DicomError(
        'no-series',
        `study ${mrSmallStudy}: no series matches the selection rules: 1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457 (MR, 1 instance(s)): modality MR is not one of CT`,
      ),
    );
  });

  it('the watcher handles each stable study once, logs a bad study and goes on, and resumes from its cursor', async () => {
    const cursor = join(work, 'watch', 'cursor.json');
    // A bad study: a phantom series with its 5th slice missing.
    const bad = writeSeries(phantomCt(11), { rescaleIntercept: -1024, seriesDescription: 'gap' });
    await client.store(bad.instances.filter((_, k) => k !== 4).map((i) => i.bytes));
    const log: PipelineEvent[] = [];
    const segment = jest.fn(fakeSegment);
    const runWatch = (): ReturnType<typeof watch> => watch(orthanc.dicomWebUrl, cursor, segment, { stopWhenIdle: true, startAt: 'beginning', log: (e) => log.push(e) });
    // Orthanc reports a study stable 1 s (StableAge) after its last change: poll until the bad one is handled.
    // A study that changed after it was stable (our SEG was added) becomes stable again and may be handled again;
    // that must only ever answer already-done, never segment or store twice.
    const outcomes = new Map<string, Set<string>>();
    const note = (uid: string, outcome: string): void => void outcomes.set(uid, (outcomes.get(uid) ?? new Set()).add(outcome));
    const deadline = Date.now() + 20_000;
    while (!outcomes.has(bad.studyInstanceUid) && Date.now() < deadline) {
      const summary = await runWatch();
      expect(summary.mode).toBe('orthanc-changes');
      for (const r of summary.results) note(r.studyInstanceUid, r.outcome);
      for (const f of summary.failures) note(f.studyInstanceUid, `failed: ${f.kind}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(Object.fromEntries([...outcomes].map(([k, v]) => [k, [...v]]))).toEqual({
      [phantomSeries.studyInstanceUid]: ['already-done'],
      [ctSmallStudy]: ['already-done'],
      [mrSmallStudy]: ['failed: no-series'],
      [bad.studyInstanceUid]: ['failed: missing-slices'],
    });
    expect(segment).not.toHaveBeenCalled();
    const failed = log.find((e) => e.event === 'study-failed' && e.studyInstanceUid === bad.studyInstanceUid);
    expect(failed?.message).toMatch(new RegExp(`^series ${bad.seriesInstanceUid.replace(/\./g, '\\.')}: missing slices: the regular spacing is 6\\.000 mm but 1 slice\\(s\\) missing between .+ \\(gap 12\\.000 mm\\)$`));
    // The cursor is on disk; a restart handles nothing already handled.
    const saved = JSON.parse(readFileSync(cursor, 'utf8')) as { mode: string; since: number };
    expect(saved.mode).toBe('orthanc-changes');
    expect(saved.since).toBeGreaterThan(0);
    const restart = await runWatch();
    expect(restart.results.concat().map((r) => r.studyInstanceUid)).toEqual([]);
    expect(restart.failures).toEqual([]);
  });
});
