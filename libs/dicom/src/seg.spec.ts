import { makeVolume, Rng, type Volume } from '@purify/imaging';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PHANTOM_SEGMENTS } from './codes';
import { DicomError } from './errors';
import { parseInstance } from './instance';
import { readSegmentation } from './seg-read';
import { writeSegmentation } from './seg-write';
import { seriesToVolume, type SeriesVolume } from './series';
import { writeSeries } from './write-series';
import { dciodvfyErrors, PYDICOM_SEG_ORACLE, runPythonJson } from '../test/oracles';

/** Row-major rotation about `axis` by `angle` (radians). */
function rotation(axis: [number, number, number], angle: number): number[] {
  const n = Math.hypot(...axis);
  const [x, y, z] = axis.map((v) => v / n) as [number, number, number];
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const t = 1 - c;
  return [t * x * x + c, t * x * y - s * z, t * x * z + s * y, t * x * y + s * z, t * y * y + c, t * y * z - s * x, t * x * z - s * y, t * y * z + s * x, t * z * z + c];
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'purify-seg-spec-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A source series on `direction` (shape [4, 3, 5]: 15-pixel frames, so frames straddle bytes), written and read back. */
function source(name: string, direction: readonly number[]): { series: SeriesVolume; dir: string } {
  const shape = [4, 3, 5] as const;
  const image = makeVolume(new Int16Array(60).map((_, i) => i * 3 - 20), shape, { spacingXyzMm: [0.8, 1.1, 2.5], originLpsMm: [12, -7, 30], directionLps: direction });
  const written = writeSeries(image, { studyInstanceUid: '1.2.826.0.1.3680043.1', seriesNumber: 3 });
  const dir = join(work, name);
  mkdirSync(dir);
  written.instances.forEach((inst, k) => writeFileSync(join(dir, `${k}.dcm`), inst.bytes));
  return { series: seriesToVolume(written.instances.map((i) => parseInstance(i.bytes, name))), dir };
}

/** Random labels 0–4 on the series grid (about half background). */
function randomLabels(series: SeriesVolume, seed: number): Volume<Uint8Array> {
  const rng = new Rng(seed);
  const data = new Uint8Array(series.volume.data.length).map(() => (rng.bool(0.5) ? 0 : 1 + Math.floor(rng.uniform(0, 4))));
  return makeVolume(data, series.volume.shape, series.volume);
}

describe('SEG write → read round trips', () => {
  it.each([
    // Each: 4 slices of 3×5; labels random; expected = the labels themselves (segment number n ↔ label value n when all four are present).
    ['axial identity', [1, 0, 0, 0, 1, 0, 0, 0, 1]],
    ['rotated 30° about z', rotation([0, 0, 1], Math.PI / 6)],
    ['double oblique', rotation([0.4, -0.7, 0.6], 0.9)],
    // Columns: x → anterior (−y), y → inferior (−z), z → left (+x): a sagittal stack.
    ['sagittal', [0, 0, 1, -1, 0, 0, 0, -1, 0]],
    // Improper (det −1): seriesToVolume re-sorts along row × column, so the source grid differs from the written one.
    ['left-handed (flipped z)', [1, 0, 0, 0, 1, 0, 0, 0, -1]],
  ])('%s: our reader and pydicom both recover the labels voxel for voxel; dciodvfy finds no error', (name, direction) => {
    const { series, dir } = source(name.replace(/\W+/g, '-'), direction);
    const labels = randomLabels(series, 5);
    const seg = writeSegmentation({ source: series, labels, segments: PHANTOM_SEGMENTS, algorithm: { name: 'purify', version: 'test' } });
    expect(seg.segments.map((s) => s.labelValue)).toEqual([1, 2, 3, 4]);
    // Ours.
    const back = readSegmentation(seg.bytes, series.volume);
    expect(Buffer.from(back.labels.data).equals(Buffer.from(labels.data))).toBe(true);
    expect(back.frameSources).toEqual(back.frameSlices.map((k) => series.slices[k]?.sopInstanceUid));
    // pydicom: bit unpacking, frame placement by its own position matching.
    const segPath = join(dir, 'seg.bin');
    writeFileSync(segPath, seg.bytes);
    const raw = join(dir, 'labels.raw');
    const report = runPythonJson<{ iopMaxDiff: number; maxFrameOffsetMm: number; sourceRefsMatchPositions: boolean; referencedInstances: string[]; sourceInstances: string[] }>(PYDICOM_SEG_ORACLE, [segPath, dir, raw]);
    expect(Buffer.from(readFileSync(raw)).equals(Buffer.from(labels.data))).toBe(true);
    expect(report.iopMaxDiff).toBeLessThan(1e-9);
    expect(report.maxFrameOffsetMm).toBeLessThan(1e-6);
    expect(report.sourceRefsMatchPositions).toBe(true);
    expect(report.referencedInstances).toEqual(report.sourceInstances);
    const check = join(dir, 'seg.dcm');
    writeFileSync(check, seg.bytes);
    expect(dciodvfyErrors(check).errors).toEqual([]);
  });

  it('leaves out empty frames and empty segments, and says which', () => {
    const { series } = source('sparse', [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    // Label 2 only at [z, y, x] = [1, 0, 0] and [3, 2, 4]; label 4 only at [2, 1, 1]; labels 1 and 3 absent.
    const data = new Uint8Array(60);
    data[15] = 2;
    data[59] = 2;
    data[37] = 4;
    const seg = writeSegmentation({ source: series, labels: makeVolume(data, series.volume.shape, series.volume), segments: PHANTOM_SEGMENTS, algorithm: { name: 'purify', version: 'test' } });
    expect(seg.segments).toEqual([
      { segmentNumber: 1, labelValue: 2, label: 'Spleen', frames: 2, voxels: 2 },
      { segmentNumber: 2, labelValue: 4, label: 'Left kidney', frames: 1, voxels: 1 },
    ]);
    expect(seg.emptyLabelValues).toEqual([1, 3]);
    expect(seg.frames).toBe(3);
    const back = readSegmentation(seg.bytes, series.volume);
    expect(back.frameSlices).toEqual([1, 3, 2]);
    expect([back.labels.data[15], back.labels.data[59], back.labels.data[37], back.labels.data.reduce((a, b) => a + b, 0)]).toEqual([1, 1, 2, 4]);
  });

  it('is deterministic: the same input gives the same UIDs', () => {
    const { series } = source('determinism', [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const labels = randomLabels(series, 9);
    const date = new Date('2024-05-06T07:08:09Z');
    const a = writeSegmentation({ source: series, labels, segments: PHANTOM_SEGMENTS, algorithm: { name: 'purify', version: '1' }, date });
    const b = writeSegmentation({ source: series, labels, segments: PHANTOM_SEGMENTS, algorithm: { name: 'purify', version: '1' }, date });
    const c = writeSegmentation({ source: series, labels, segments: PHANTOM_SEGMENTS, algorithm: { name: 'purify', version: '2' }, date });
    expect([a.sopInstanceUid === b.sopInstanceUid, Buffer.from(a.bytes).equals(Buffer.from(b.bytes)), a.seriesInstanceUid === c.seriesInstanceUid]).toEqual([true, true, false]);
  });
});

describe('SEG bad input', () => {
  const { series } = (() => {
    const shape = [2, 2, 2] as const;
    const image = makeVolume(new Int16Array(8), shape, { spacingXyzMm: [1, 1, 2] });
    const written = writeSeries(image, { studyInstanceUid: '1.2.3' });
    return { series: seriesToVolume(written.instances.map((i) => parseInstance(i.bytes, 'x'))) };
  })();
  const uid = series.seriesInstanceUid;
  const labels = (data: number[], geometry: Partial<Volume> = series.volume): Volume<Uint8Array> => makeVolume(Uint8Array.from(data), [2, 2, 2], geometry);
  const write = (l: Volume<Uint8Array>, segments = PHANTOM_SEGMENTS): unknown => writeSegmentation({ source: series, labels: l, segments, algorithm: { name: 'purify', version: 'test' } });

  it.each([
    ['label map off the source grid', () => write(labels([1, 0, 0, 0, 0, 0, 0, 0], { ...series.volume, originLpsMm: [0, 0, 1] })), `SEG for series ${uid}: the label map is not on the source grid: origin (LPS) [0, 0, 1] mm differs from [0, 0, 0] mm`],
    ['undefined label value', () => write(labels([0, 0, 0, 9, 0, 0, 0, 0])), `SEG for series ${uid}: label value 9 (first at [z, y, x] = [0, 1, 1]) has no segment definition; defined: 1, 2, 3, 4`],
    ['every segment empty', () => write(labels([0, 0, 0, 0, 0, 0, 0, 0])), `SEG for series ${uid}: every segment is empty (label values 1, 2, 3, 4); nothing to write`],
    ['label value defined twice', () => write(labels([1, 0, 0, 0, 0, 0, 0, 0]), [PHANTOM_SEGMENTS[0]!, { ...PHANTOM_SEGMENTS[1]!, labelValue: 1 }]), `SEG for series ${uid}: label value 1 is defined twice`],
  ])('%s', (_name, run, message) => {
    expect(run).toThrow(new DicomError('segmentation', message));
  });

  it('reading onto a grid the frames do not lie on is an error, never a resampling', () => {
    const seg = writeSegmentation({ source: series, labels: labels([1, 0, 0, 0, 0, 0, 0, 1]), segments: PHANTOM_SEGMENTS, algorithm: { name: 'purify', version: 'test' } });
    // Shifted by half a voxel along x: frame 1's first pixel lands at continuous index x = −0.5.
    const shifted = { ...series.volume, originLpsMm: [0.5, 0, 0] as const };
    expect(() => readSegmentation(seg.bytes, shifted, 'seg.dcm')).toThrow(
      new DicomError('segmentation', 'seg.dcm: frame 1 at ImagePositionPatient [0, 0, 0] is not a slice of the grid (continuous index [x, y, z] = [-0.5, 0, 0])'),
    );
  });
});
