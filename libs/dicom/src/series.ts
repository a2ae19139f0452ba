/**
 * DICOM instances → series → one Volume.
 *
 * Geometry (PS3.3 C.7.6.2): ImageOrientationPatient holds the row cosine (the
 * LPS direction of increasing column index, our x) and the column cosine
 * (increasing row index, our y); DICOM patient coordinates are LPS, like ours.
 * The slice axis is n = row × column; slices are sorted by ImagePositionPatient·n
 * (ascending), so the volume's direction columns are (row, column, n), always
 * right-handed, and the origin is the position of the first sorted slice.
 * Slice spacing comes from the positions, never from SliceThickness (which is the
 * reconstructed thickness and may differ, e.g. overlapping slices).
 */
import { makeVolume, type Volume } from '@purify/imaging';
import { optNumber, optString, reqNumbers } from './dataset';
import { DicomError, DicomErrorKind } from './errors';
import { decodeStoredValues, pixelFormatOf, type DicomInstance, type PixelFormat } from './instance';
import { cross, dot, norm, scale, sub, type V3 } from './vec';
import type { Naturalized } from './dcmjs';

/** What series selection looks at (from the instances, or from QIDO-RS answers). */
export interface SeriesInfo {
  readonly seriesInstanceUid: string;
  readonly studyInstanceUid: string;
  /** Upper case. */
  readonly modality: string;
  readonly seriesDescription: string;
  readonly seriesNumber: number | undefined;
  /** ImageType of the first instance (upper case). */
  readonly imageType: readonly string[];
  readonly numberOfInstances: number;
}

/** The instances of one SeriesInstanceUID. */
export interface DicomSeries extends SeriesInfo {
  readonly instances: readonly DicomInstance[];
}

/** Groups instances by SeriesInstanceUID, in order of first appearance. */
export function groupSeries(instances: readonly DicomInstance[]): DicomSeries[] {
  const groups = new Map<string, DicomInstance[]>();
  for (const inst of instances) {
    const list = groups.get(inst.seriesInstanceUid);
    if (list) list.push(inst);
    else groups.set(inst.seriesInstanceUid, [inst]);
  }
  return [...groups.values()].map((list) => {
    const head = list[0] as DicomInstance;
    return {
      seriesInstanceUid: head.seriesInstanceUid,
      studyInstanceUid: head.studyInstanceUid,
      modality: head.modality,
      seriesDescription: head.seriesDescription,
      seriesNumber: head.seriesNumber,
      imageType: head.imageType,
      numberOfInstances: list.length,
      instances: list,
    };
  });
}

/** Series selection rules; every given rule must hold. */
export interface SeriesSelection {
  /** Accepted modalities (upper case). Default ['CT']. */
  readonly modalities?: readonly string[];
  /** SeriesDescription must match (e.g. /abdomen|venous/i). */
  readonly descriptionPattern?: RegExp;
  /** SeriesDescription must not match (e.g. /scout|topogram|localizer/i). */
  readonly excludeDescriptionPattern?: RegExp;
  /** ImageType must contain all of these (e.g. ['ORIGINAL', 'PRIMARY']). Default none. */
  readonly requiredImageType?: readonly string[];
  /** Fewest slices a series must have. Default 1. */
  readonly minSlices?: number;
}

/** Defaults of the selection rules. */
export const DEFAULT_SELECTION: Required<Pick<SeriesSelection, 'modalities' | 'minSlices'>> = { modalities: ['CT'], minSlices: 1 };

export interface SeriesCandidate<T extends SeriesInfo = SeriesInfo> {
  readonly series: T;
  /** Why it was not chosen; undefined for the chosen one. */
  readonly rejected: string | undefined;
}

export interface SelectionResult<T extends SeriesInfo = SeriesInfo> {
  /** The chosen series, or undefined when none passes the rules. */
  readonly selected: T | undefined;
  /** Every series with its verdict (chosen first). */
  readonly candidates: readonly SeriesCandidate<T>[];
}

/** Instances that never make a volume, whatever the rules. */
const NON_IMAGE_MODALITIES = new Set(['SEG', 'SR', 'RTSTRUCT', 'RTPLAN', 'RTDOSE', 'RTRECORD', 'KO', 'PR', 'DOC', 'REG', 'ECG', 'AU', 'PLAN']);

export function ruleFailure(series: SeriesInfo, rules: SeriesSelection): string | undefined {
  const modalities = rules.modalities ?? DEFAULT_SELECTION.modalities;
  if (NON_IMAGE_MODALITIES.has(series.modality)) return `modality ${series.modality} is not an image series`;
  if (!modalities.includes(series.modality)) return `modality ${series.modality || '(none)'} is not one of ${modalities.join(', ')}`;
  // The description is free text a site may have typed patient details into: the reason names the rule, never the text.
  if (rules.descriptionPattern && !rules.descriptionPattern.test(series.seriesDescription)) return `SeriesDescription does not match ${String(rules.descriptionPattern)}`;
  if (rules.excludeDescriptionPattern?.test(series.seriesDescription)) return `SeriesDescription matches the exclusion ${String(rules.excludeDescriptionPattern)}`;
  const missing = (rules.requiredImageType ?? []).filter((t) => !series.imageType.includes(t.toUpperCase()));
  if (missing.length > 0) return `ImageType [${series.imageType.join('\\')}] lacks ${missing.join(', ')}`;
  if (series.imageType.includes('LOCALIZER')) return 'ImageType marks it a LOCALIZER';
  const minSlices = rules.minSlices ?? DEFAULT_SELECTION.minSlices;
  if (series.numberOfInstances < minSlices) return `${series.numberOfInstances} instance(s), fewer than ${minSlices}`;
  return undefined;
}

/** Higher is better: ORIGINAL, PRIMARY, AXIAL each count; then more slices. */
function preference(series: SeriesInfo): [number, number] {
  const t = series.imageType;
  return [(t.includes('ORIGINAL') ? 4 : 0) + (t.includes('PRIMARY') ? 2 : 0) + (t.includes('AXIAL') ? 1 : 0), series.numberOfInstances];
}

/**
 * Applies the rules; among the series that pass, prefers ImageType ORIGINAL,
 * then PRIMARY, then AXIAL, then the most instances, then the lowest
 * SeriesNumber, then the smallest UID (so the choice is deterministic).
 */
export function selectSeries<T extends SeriesInfo>(series: readonly T[], rules: SeriesSelection = {}): SelectionResult<T> {
  const verdicts = series.map((s) => ({ series: s, failure: ruleFailure(s, rules) }));
  const passing = verdicts.filter((v) => v.failure === undefined).map((v) => v.series);
  passing.sort((a, b) => {
    const [pa, na] = preference(a);
    const [pb, nb] = preference(b);
    if (pa !== pb) return pb - pa;
    if (na !== nb) return nb - na;
    const sa = a.seriesNumber ?? Infinity;
    const sb = b.seriesNumber ?? Infinity;
    if (sa !== sb) return sa - sb;
    return a.seriesInstanceUid < b.seriesInstanceUid ? -1 : 1;
  });
  const selected = passing[0];
  const candidates: SeriesCandidate<T>[] = [];
  if (selected) candidates.push({ series: selected, rejected: undefined });
  for (const v of verdicts) {
    if (v.series === selected) continue;
    candidates.push({ series: v.series, rejected: v.failure ?? `another series was preferred (${selected?.seriesInstanceUid ?? ''})` });
  }
  return { selected, candidates };
}

/** One line per series: why none was chosen (for NoSeries errors and logs; never the free-text SeriesDescription). */
export function describeCandidates(candidates: readonly SeriesCandidate[]): string {
  return candidates.map((c) => `${c.series.seriesInstanceUid} (${c.series.modality || '?'}, ${c.series.numberOfInstances} instance(s)): ${c.rejected ?? 'selected'}`).join('; ');
}

/** What a slice of the volume came from (index k of the volume = slices[k]). */
export interface SliceSource {
  readonly sopInstanceUid: string;
  readonly sopClassUid: string;
  readonly instanceNumber: number | undefined;
  /** ImagePositionPatient (LPS mm). */
  readonly positionLpsMm: V3;
}

/** A series turned into a volume, with what a derived object (SEG) must reference. */
export interface SeriesVolume {
  /** Rescaled values (HU for CT): Int16Array when every value is an integer in int16 range, else Float32Array. `[z, y, x]`. */
  readonly volume: Volume<Int16Array | Float32Array>;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly frameOfReferenceUid: string;
  readonly modality: string;
  readonly seriesDescription: string;
  /** Per slice k, the instance it came from. */
  readonly slices: readonly SliceSource[];
  /** Patient and study attributes of the first instance (copied into SEGs). */
  readonly patientStudy: Naturalized;
  /** Conditions that did not stop conversion (single slice spacing, SliceThickness ≠ spacing …). */
  readonly warnings: readonly string[];
}

/** Tolerances of `seriesToVolume`. */
export interface SeriesGeometryOptions {
  /** Largest difference between direction cosines of two slices. Default 1e-4. */
  readonly orientationTolerance?: number;
  /** Largest relative deviation of a slice gap from the mean gap. Default 0.01 (1 %). */
  readonly spacingTolerance?: number;
  /** Largest angle (degrees) between the slice stack axis and the slice normal. Default 0.02°. */
  readonly tiltToleranceDeg?: number;
}

const PATIENT_STUDY_KEYWORDS = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'PatientAge',
  'StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber', 'StudyDescription',
] as const;

const fmtV = (v: readonly number[]): string => `[${v.map((x) => Number(x.toFixed(6))).join(', ')}]`;

interface SliceInfo {
  readonly instance: DicomInstance;
  readonly format: PixelFormat;
  readonly orientation: number[];
  readonly position: V3;
  readonly pixelSpacing: number[];
}

/**
 * Converts the instances of one series into a Volume (see the file comment for
 * the geometry). Refuses, with the instances and values involved: instances of
 * more than one series, non-image or undecodable instances, differing
 * orientation, differing rows/columns/pixel spacing/pixel format, two slices at
 * one position, positions off the slice normal (gantry tilt), missing slices and
 * irregular spacing. A single slice gets SpacingBetweenSlices, else
 * SliceThickness, else 1 mm, with a warning.
 */
export function seriesToVolume(instances: readonly DicomInstance[], options: SeriesGeometryOptions = {}): SeriesVolume {
  const orientationTolerance = options.orientationTolerance ?? 1e-4;
  const spacingTolerance = options.spacingTolerance ?? 0.01;
  const tiltToleranceDeg = options.tiltToleranceDeg ?? 0.02;
  const head = instances[0];
  if (head === undefined) throw new DicomError(DicomErrorKind.NoSeries, 'seriesToVolume: no instances');
  const bySeries = groupSeries(instances);
  if (bySeries.length > 1) {
    throw new DicomError(
      DicomErrorKind.MixedSeries,
      `instances belong to ${bySeries.length} series (${bySeries.map((s) => `${s.seriesInstanceUid}: ${s.instances.length} instance(s)`).join(', ')}); select one series first`,
    );
  }
  const seriesUid = head.seriesInstanceUid;
  const warnings: string[] = [];

  // Per-slice checks.
  const infos: SliceInfo[] = instances.map((instance) => {
    if (NON_IMAGE_MODALITIES.has(instance.modality)) {
      throw new DicomError(DicomErrorKind.NotAnImage, `${instance.source}: modality ${instance.modality} (SOP class ${instance.sopClassUid}) is not an image; cannot build a volume from it`);
    }
    const format = pixelFormatOf(instance);
    const orientation = reqNumbers(instance.dataset, 'ImageOrientationPatient', 6, instance.source);
    const position = reqNumbers(instance.dataset, 'ImagePositionPatient', 3, instance.source) as V3;
    const pixelSpacing = reqNumbers(instance.dataset, 'PixelSpacing', 2, instance.source);
    if (pixelSpacing.some((s) => s <= 0)) throw new DicomError(DicomErrorKind.BadAttribute, `${instance.source}: PixelSpacing must be positive, got ${fmtV(pixelSpacing)}`);
    const row = orientation.slice(0, 3);
    const col = orientation.slice(3, 6);
    if (Math.abs(norm(row) - 1) > 1e-3 || Math.abs(norm(col) - 1) > 1e-3 || Math.abs(dot(row, col)) > 1e-3) {
      throw new DicomError(DicomErrorKind.BadAttribute, `${instance.source}: ImageOrientationPatient ${fmtV(orientation)} is not two orthogonal unit vectors`);
    }
    return { instance, format, orientation, position, pixelSpacing };
  });

  const ref = infos[0] as SliceInfo;
  for (const s of infos) {
    if (s.orientation.some((v, i) => Math.abs(v - (ref.orientation[i] as number)) > orientationTolerance)) {
      throw new DicomError(
        DicomErrorKind.InconsistentOrientation,
        `series ${seriesUid}: inconsistent orientation within the series: ${s.instance.source} has ImageOrientationPatient ${fmtV(s.orientation)} but ${ref.instance.source} has ${fmtV(ref.orientation)}`,
      );
    }
    const a = s.format;
    const b = ref.format;
    const differs: string[] = [];
    if (a.rows !== b.rows || a.columns !== b.columns) differs.push(`size ${a.rows}×${a.columns} vs ${b.rows}×${b.columns}`);
    if (Math.abs((s.pixelSpacing[0] as number) - (ref.pixelSpacing[0] as number)) > 1e-4 || Math.abs((s.pixelSpacing[1] as number) - (ref.pixelSpacing[1] as number)) > 1e-4) {
      differs.push(`PixelSpacing ${fmtV(s.pixelSpacing)} vs ${fmtV(ref.pixelSpacing)}`);
    }
    if (a.bitsAllocated !== b.bitsAllocated || a.pixelRepresentation !== b.pixelRepresentation) differs.push(`pixel format ${a.bitsAllocated} bits/${a.pixelRepresentation ? 'signed' : 'unsigned'} vs ${b.bitsAllocated} bits/${b.pixelRepresentation ? 'signed' : 'unsigned'}`);
    if (differs.length > 0) {
      throw new DicomError(DicomErrorKind.MixedSizes, `series ${seriesUid}: mixed image sizes within the series: ${s.instance.source} differs from ${ref.instance.source}: ${differs.join('; ')}`);
    }
  }

  // Sort along the slice normal.
  const rowDir = ref.orientation.slice(0, 3);
  const colDir = ref.orientation.slice(3, 6);
  const normal = cross(rowDir, colDir);
  const n = scale(normal, 1 / norm(normal));
  const sorted = infos.map((s) => ({ s, d: dot(s.position, n) })).sort((p, q) => p.d - q.d);
  for (let k = 1; k < sorted.length; k++) {
    const p = sorted[k - 1] as { s: SliceInfo; d: number };
    const q = sorted[k] as { s: SliceInfo; d: number };
    if (q.d - p.d < 1e-3) {
      throw new DicomError(
        DicomErrorKind.DuplicateSlices,
        `series ${seriesUid}: ${p.s.instance.source} and ${q.s.instance.source} are both at ${q.d.toFixed(3)} mm along the slice normal ${fmtV(n)} (two acquisitions or duplicated instances in one series)`,
      );
    }
  }

  let sliceSpacing: number;
  const firstPos = (sorted[0] as { s: SliceInfo }).s.position;
  if (sorted.length === 1) {
    const between = optNumber(head.dataset, 'SpacingBetweenSlices', head.source);
    const thickness = optNumber(head.dataset, 'SliceThickness', head.source);
    sliceSpacing = between !== undefined && between > 0 ? between : thickness !== undefined && thickness > 0 ? thickness : 1;
    warnings.push(
      `series ${seriesUid}: a single slice; slice spacing ${sliceSpacing} mm taken from ${between !== undefined && between > 0 ? 'SpacingBetweenSlices' : thickness !== undefined && thickness > 0 ? 'SliceThickness' : 'nothing (default 1 mm)'}`,
    );
  } else {
    const last = sorted[sorted.length - 1] as { s: SliceInfo; d: number };
    const span = sub(last.s.position, firstPos);
    const along = dot(span, n);
    const across = norm(sub(span, scale(n, along)));
    const tiltDeg = (Math.atan2(across, along) * 180) / Math.PI;
    if (tiltDeg > tiltToleranceDeg) {
      throw new DicomError(
        DicomErrorKind.GantryTilt,
        `series ${seriesUid}: slice positions run ${tiltDeg.toFixed(3)}° off the slice normal (gantry tilt or sheared stack; ${across.toFixed(3)} mm sideways over ${along.toFixed(3)} mm); a volume needs positions along the normal (tolerance ${tiltToleranceDeg}°)`,
      );
    }
    const gaps = sorted.slice(1).map((q, k) => q.d - (sorted[k] as { d: number }).d);
    const sortedGaps = [...gaps].sort((a, b) => a - b);
    const median = sortedGaps[Math.floor((sortedGaps.length - 1) / 2)] as number;
    const missing: string[] = [];
    const irregular: string[] = [];
    gaps.forEach((g, k) => {
      if (Math.abs(g - median) <= spacingTolerance * median) return;
      const ratio = g / median;
      const m = Math.round(ratio);
      const between = `${(sorted[k] as { s: SliceInfo }).s.instance.source} and ${(sorted[k + 1] as { s: SliceInfo }).s.instance.source}`;
      if (m >= 2 && Math.abs(ratio - m) <= spacingTolerance * m) missing.push(`${m - 1} slice(s) missing between ${between} (gap ${g.toFixed(3)} mm)`);
      else irregular.push(`gap ${g.toFixed(3)} mm between ${between}`);
    });
    if (missing.length > 0 && irregular.length === 0) {
      throw new DicomError(DicomErrorKind.MissingSlices, `series ${seriesUid}: missing slices: the regular spacing is ${median.toFixed(3)} mm but ${missing.join('; ')}`);
    }
    if (missing.length + irregular.length > 0) {
      throw new DicomError(DicomErrorKind.IrregularSpacing, `series ${seriesUid}: irregular slice spacing: the median gap is ${median.toFixed(3)} mm but ${[...missing, ...irregular].join('; ')} (tolerance ${spacingTolerance * 100} %)`);
    }
    sliceSpacing = along / (sorted.length - 1);
    const thickness = optNumber(head.dataset, 'SliceThickness', head.source);
    if (thickness !== undefined && Math.abs(thickness - sliceSpacing) > 0.01 * sliceSpacing) {
      warnings.push(`series ${seriesUid}: SliceThickness ${thickness} mm differs from the spacing of the positions, ${Number(sliceSpacing.toFixed(4))} mm (the positions are used)`);
    }
  }

  // Voxels: rescale, then pick int16 when every value is an integer in its range.
  const { rows, columns } = ref.format;
  const perSlice = rows * columns;
  const values = new Float32Array(perSlice * sorted.length);
  let integral = true;
  sorted.forEach(({ s }, k) => {
    const stored = decodeStoredValues(s.instance, s.format);
    const { rescaleSlope: slope, rescaleIntercept: intercept } = s.format;
    const base = k * perSlice;
    for (let i = 0; i < perSlice; i++) {
      const v = (stored[i] as number) * slope + intercept;
      values[base + i] = v;
      if (integral && (!Number.isInteger(v) || v < -32768 || v > 32767)) integral = false;
    }
  });
  const data = integral ? Int16Array.from(values) : values;
  const directionLps = [rowDir[0], colDir[0], n[0], rowDir[1], colDir[1], n[1], rowDir[2], colDir[2], n[2]] as number[];
  // PixelSpacing is (row spacing = between rows = y, column spacing = x).
  const volume = makeVolume<Int16Array | Float32Array>(
    data,
    [sorted.length, rows, columns],
    { spacingXyzMm: [ref.pixelSpacing[1] as number, ref.pixelSpacing[0] as number, sliceSpacing], originLpsMm: firstPos, directionLps },
    `series ${seriesUid}`,
  );

  const patientStudy: Naturalized = {};
  for (const key of PATIENT_STUDY_KEYWORDS) if (head.dataset[key] !== undefined) patientStudy[key] = head.dataset[key];
  const frameOfReferenceUid = optString(head.dataset, 'FrameOfReferenceUID');
  if (frameOfReferenceUid === undefined) throw new DicomError(DicomErrorKind.BadAttribute, `${head.source}: FrameOfReferenceUID is missing (an image with a patient position must have one)`);
  return {
    volume,
    studyInstanceUid: head.studyInstanceUid,
    seriesInstanceUid: seriesUid,
    frameOfReferenceUid,
    modality: head.modality,
    seriesDescription: head.seriesDescription,
    slices: sorted.map(({ s }) => ({ sopInstanceUid: s.instance.sopInstanceUid, sopClassUid: s.instance.sopClassUid, instanceNumber: s.instance.instanceNumber, positionLpsMm: s.position })),
    patientStudy,
    warnings,
  };
}
