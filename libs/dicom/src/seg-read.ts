/**
 * DICOM SEG → label map on a reference grid (for our round-trip tests and for
 * checking what a PACS holds). Reads BINARY segmentations (ours and other
 * tools'): for every frame, its segment (SegmentIdentificationSequence) and its
 * plane (PlanePositionSequence, PlaneOrientationSequence; per-frame or shared);
 * the frame's pixels are placed on the reference grid by mapping the frame's
 * position to a slice index — a frame whose plane does not coincide with a
 * slice of the grid (orientation, in-plane offset, spacing, off-slice position)
 * is an error, never resampled.
 */
import { makeVolume, worldLpsToIndex, type Grid, type Volume } from '@purify/imaging';
import { items, optNumber, optString, reqNumber, reqNumbers } from './dataset';
import { DicomError, DicomErrorKind } from './errors';
import { parseInstance, type DicomInstance } from './instance';
import { SopClass, type Code } from './sop';
import { column } from './vec';
import type { Naturalized } from './dcmjs';

export interface ReadSegment {
  readonly segmentNumber: number;
  readonly label: string;
  readonly category: Code | undefined;
  readonly type: Code | undefined;
  readonly algorithmType: string;
  readonly algorithmName: string | undefined;
}

export interface ReadSeg {
  readonly instance: DicomInstance;
  readonly segments: readonly ReadSegment[];
  /** uint8 `[z, y, x]` on the reference grid; value = SegmentNumber (0 = none). */
  readonly labels: Volume<Uint8Array>;
  /** SOPInstanceUIDs named by each frame's SourceImageSequence, per frame. */
  readonly frameSources: readonly (string | undefined)[];
  /** Slice index on the reference grid of each frame. */
  readonly frameSlices: readonly number[];
  /** SeriesInstanceUIDs in ReferencedSeriesSequence. */
  readonly referencedSeriesUids: readonly string[];
}

function codeOf(ds: Naturalized, keyword: string): Code | undefined {
  const it = items(ds, keyword)[0];
  if (!it) return undefined;
  return { value: optString(it, 'CodeValue') ?? '', scheme: optString(it, 'CodingSchemeDesignator') ?? '', meaning: optString(it, 'CodeMeaning') ?? '' };
}

/**
 * Reads a SEG (Part-10 bytes) onto `grid` (usually the source series' volume).
 * Where segments overlap, the higher segment number wins. Tolerances: direction
 * cosines 1e-4, positions 1e-2 mm in-plane and 1e-2 of a slice along the normal.
 */
export function readSegmentation(bytes: Uint8Array, grid: Grid, source = 'SEG'): ReadSeg {
  const instance = parseInstance(bytes, source);
  const ds = instance.dataset;
  const fail = (message: string): never => {
    throw new DicomError(DicomErrorKind.Segmentation, `${source}: ${message}`);
  };
  if (instance.sopClassUid !== SopClass.Segmentation) fail(`SOP class ${instance.sopClassUid} is not Segmentation Storage (${SopClass.Segmentation})`);
  const type = optString(ds, 'SegmentationType');
  if (type !== 'BINARY') fail(`SegmentationType ${type ?? '(none)'} is not supported; only BINARY`);
  const rows = reqNumber(ds, 'Rows', source);
  const columns = reqNumber(ds, 'Columns', source);
  const [nz, ny, nx] = grid.shape;
  if (rows !== ny || columns !== nx) fail(`frames are ${rows}×${columns} (rows×columns) but the grid's slices are ${ny}×${nx}`);
  const nFrames = optNumber(ds, 'NumberOfFrames', source) ?? 1;

  const segments: ReadSegment[] = items(ds, 'SegmentSequence').map((s) => ({
    segmentNumber: reqNumber(s, 'SegmentNumber', source),
    label: optString(s, 'SegmentLabel') ?? '',
    category: codeOf(s, 'SegmentedPropertyCategoryCodeSequence'),
    type: codeOf(s, 'SegmentedPropertyTypeCodeSequence'),
    algorithmType: optString(s, 'SegmentAlgorithmType') ?? '',
    algorithmName: optString(s, 'SegmentAlgorithmName'),
  }));
  const shared = items(ds, 'SharedFunctionalGroupsSequence')[0] ?? {};
  const perFrame = items(ds, 'PerFrameFunctionalGroupsSequence');
  if (perFrame.length !== nFrames) fail(`PerFrameFunctionalGroupsSequence has ${perFrame.length} items for ${nFrames} frames`);

  const pd = ds.PixelData;
  const first = (Array.isArray(pd) ? (pd as unknown[])[0] : pd) as ArrayBuffer | undefined;
  if (!(first instanceof ArrayBuffer)) fail('PixelData is missing');
  const bits = new Uint8Array(first as ArrayBuffer);
  const perSlice = rows * columns;
  if (bits.length * 8 < nFrames * perSlice) fail(`PixelData has ${bits.length} bytes, fewer than ${nFrames} frames × ${perSlice} pixels / 8`);

  const toIndex = worldLpsToIndex(grid);
  const d = grid.directionLps;
  const out = new Uint8Array(nz * ny * nx);
  const frameSources: (string | undefined)[] = [];
  const frameSlices: number[] = [];
  const group = (frame: Naturalized, keyword: string): Naturalized | undefined => items(frame, keyword)[0] ?? items(shared, keyword)[0];
  for (let f = 0; f < nFrames; f++) {
    const frame = perFrame[f] as Naturalized;
    const segItem = group(frame, 'SegmentIdentificationSequence');
    if (!segItem) fail(`frame ${f + 1} has no SegmentIdentificationSequence`);
    const segmentNumber = reqNumber(segItem as Naturalized, 'ReferencedSegmentNumber', `${source} frame ${f + 1}`);
    if (!segments.some((s) => s.segmentNumber === segmentNumber)) fail(`frame ${f + 1} refers to segment ${segmentNumber}, which SegmentSequence does not define`);
    const orientationItem = group(frame, 'PlaneOrientationSequence');
    const positionItem = group(frame, 'PlanePositionSequence');
    if (!orientationItem || !positionItem) fail(`frame ${f + 1} has no PlaneOrientationSequence/PlanePositionSequence`);
    const iop = reqNumbers(orientationItem as Naturalized, 'ImageOrientationPatient', 6, `${source} frame ${f + 1}`);
    const ipp = reqNumbers(positionItem as Naturalized, 'ImagePositionPatient', 3, `${source} frame ${f + 1}`);
    const row = column(d, 0);
    const col = column(d, 1);
    if (iop.slice(0, 3).some((v, i) => Math.abs(v - (row[i] as number)) > 1e-4) || iop.slice(3).some((v, i) => Math.abs(v - (col[i] as number)) > 1e-4)) {
      fail(`frame ${f + 1} has ImageOrientationPatient [${iop.join(', ')}] but the grid's row/column directions are [${[...row, ...col].map((v) => Number(v.toFixed(6))).join(', ')}]`);
    }
    // Continuous index of the frame's first pixel on the grid.
    const p = [0, 1, 2].map((r) => (toIndex[r * 4] as number) * (ipp[0] as number) + (toIndex[r * 4 + 1] as number) * (ipp[1] as number) + (toIndex[r * 4 + 2] as number) * (ipp[2] as number) + (toIndex[r * 4 + 3] as number));
    const k = Math.round(p[2] as number);
    const [sx, sy] = grid.spacingXyzMm;
    if (Math.abs(p[0] as number) * sx > 1e-2 || Math.abs(p[1] as number) * sy > 1e-2 || Math.abs((p[2] as number) - k) > 1e-2 || k < 0 || k >= nz) {
      fail(`frame ${f + 1} at ImagePositionPatient [${ipp.join(', ')}] is not a slice of the grid (continuous index [x, y, z] = [${p.map((v) => Number(v.toFixed(4))).join(', ')}])`);
    }
    const measures = group(frame, 'PixelMeasuresSequence');
    if (measures) {
      const spacing = reqNumbers(measures, 'PixelSpacing', 2, `${source} frame ${f + 1}`);
      if (Math.abs((spacing[0] as number) - sy) > 1e-4 * sy || Math.abs((spacing[1] as number) - sx) > 1e-4 * sx) {
        fail(`frame ${f + 1} has PixelSpacing [${spacing.join(', ')}] but the grid's (y, x) spacing is [${sy}, ${sx}]`);
      }
    }
    const derivation = group(frame, 'DerivationImageSequence');
    const src = derivation ? items(derivation, 'SourceImageSequence')[0] : undefined;
    frameSources.push(src ? optString(src, 'ReferencedSOPInstanceUID') : undefined);
    frameSlices.push(k);
    const base = k * perSlice;
    const bitBase = f * perSlice;
    for (let i = 0; i < perSlice; i++) {
      const bit = bitBase + i;
      if (((bits[bit >> 3] as number) >> (bit & 7)) & 1) {
        if ((out[base + i] as number) < segmentNumber) out[base + i] = segmentNumber;
      }
    }
  }
  const referencedSeriesUids = items(ds, 'ReferencedSeriesSequence').map((s) => optString(s, 'SeriesInstanceUID') ?? '');
  return {
    instance,
    segments,
    labels: makeVolume(out, grid.shape, { spacingXyzMm: grid.spacingXyzMm, originLpsMm: grid.originLpsMm, directionLps: grid.directionLps }, source),
    frameSources,
    frameSlices,
    referencedSeriesUids,
  };
}
