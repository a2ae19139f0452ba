/**
 * Label map → DICOM Segmentation (SEG) instance, BINARY, one segment per organ.
 *
 * Frames: one per (segment, source slice) where the segment has at least one
 * voxel in that slice — empty frames are left out (as highdicom and dcmqi do by
 * default); segments that are empty everywhere are left out of the SEG and
 * reported. Frames are ordered by segment, then by slice along the slice normal.
 *
 * Geometry: the frames lie on the source series' grid: Rows/Columns and the
 * shared PlaneOrientationSequence / PixelMeasuresSequence are the source's; the
 * per-frame PlanePositionSequence is the source slice's position (computed from
 * the volume geometry, which equals the source's ImagePositionPatient within the
 * tolerances `seriesToVolume` checked). Frame pixel (row r, column c) is voxel
 * [z = slice, y = r, x = c] of the label map.
 *
 * References: ReferencedSeriesSequence lists every source instance; each frame's
 * DerivationImageSequence/SourceImageSequence names its source slice.
 */
import { gridDifference, gridOf, type Grid, type Volume } from '@purify/imaging';
import { ARTIFICIAL_INTELLIGENCE, SEGMENTATION_DERIVATION, SOURCE_IMAGE_PURPOSE, rgbToDicomLab, type SegmentDefinition } from './codes';
import { encodePart10, dicomDateTime } from './encode';
import { DicomError, DicomErrorKind } from './errors';
import { SopClass, codeItem } from './sop';
import { derivedUid } from './uid';
import { add, column, ds, scale } from './vec';
import type { Naturalized } from './dcmjs';
import type { SliceSource } from './series';

/** The source series a SEG refers to (a `SeriesVolume` is one). */
export interface SegSource {
  /** Grid of the source volume; the label map must lie on it. */
  readonly volume: Grid;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly frameOfReferenceUid: string;
  /** Slice k of the grid ↔ slices[k]. */
  readonly slices: readonly SliceSource[];
  /** Patient and study attributes copied into the SEG. */
  readonly patientStudy: Naturalized;
}

export interface AlgorithmIdentification {
  /** SegmentAlgorithmName / AlgorithmName, e.g. "purify". */
  readonly name: string;
  /** AlgorithmVersion, e.g. "0.1.0 model abdomen-ct v3". */
  readonly version: string;
}

/** Marks every SEG we write; a viewer shows it in the series list. */
export const AI_DISCLAIMER = 'AI-generated — not for clinical use';
export const DEFAULT_SEG_DESCRIPTION = `purify segmentation — ${AI_DISCLAIMER}`;

export interface SegWriteOptions {
  readonly source: SegSource;
  /** uint8 `[z, y, x]` label map on the source grid; 0 = background. */
  readonly labels: Volume<Uint8Array>;
  readonly segments: readonly SegmentDefinition[];
  readonly algorithm: AlgorithmIdentification;
  /** Default {@link DEFAULT_SEG_DESCRIPTION}; always made to contain {@link AI_DISCLAIMER}. */
  readonly seriesDescription?: string;
  /** Default 9001. */
  readonly seriesNumber?: number;
  /**
   * What makes this SEG distinct; default `${algorithm.name} ${algorithm.version}`.
   * The SeriesInstanceUID and SOPInstanceUID are derived from the source series
   * UID and this key, so writing the same result twice gives the same UIDs.
   */
  readonly idempotencyKey?: string;
  /** ContentLabel (CS, ≤ 16 upper-case characters). Default "PURIFY". */
  readonly contentLabel?: string;
  readonly contentDescription?: string;
  /** Default now. */
  readonly date?: Date;
}

export interface WrittenSegment {
  readonly segmentNumber: number;
  readonly labelValue: number;
  readonly label: string;
  readonly frames: number;
  readonly voxels: number;
}

export interface WrittenSeg {
  readonly bytes: Uint8Array;
  readonly sopInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly segments: readonly WrittenSegment[];
  /** Label values of segments with no voxel (left out). */
  readonly emptyLabelValues: readonly number[];
  readonly frames: number;
}

/** Tags used as dimension index pointers (AT values). */
const Tag = {
  ReferencedSegmentNumber: 0x0062000b,
  SegmentIdentificationSequence: 0x0062000a,
  ImagePositionPatient: 0x00200032,
  PlanePositionSequence: 0x00209113,
} as const;

/** Series UID of the SEG of `sourceSeriesUid` under `key` (see `idempotencyKey`). */
export function segSeriesUid(sourceSeriesUid: string, key: string): string {
  return derivedUid('purify-seg-series', sourceSeriesUid, key);
}

/**
 * Writes the SEG. Refuses (DicomError kind `segmentation`) a label map off the
 * source grid, slices without a source instance, label values without a
 * segment definition, duplicate label values, and a result in which every
 * segment is empty (a SEG needs at least one frame).
 */
export function writeSegmentation(options: SegWriteOptions): WrittenSeg {
  const { source, labels, segments, algorithm } = options;
  const fail = (message: string): never => {
    throw new DicomError(DicomErrorKind.Segmentation, `SEG for series ${source.seriesInstanceUid}: ${message}`);
  };
  const mismatch = gridDifference(gridOf(source.volume), gridOf(labels));
  if (mismatch !== undefined) fail(`the label map is not on the source grid: ${mismatch}`);
  const [nz, ny, nx] = labels.shape;
  if (source.slices.length !== nz) fail(`the source has ${source.slices.length} slice references for ${nz} slices`);
  const defined = new Map<number, SegmentDefinition>();
  for (const s of segments) {
    if (!Number.isInteger(s.labelValue) || s.labelValue < 1 || s.labelValue > 255) fail(`segment "${s.label}" has label value ${s.labelValue}; must be an integer in [1, 255]`);
    if (defined.has(s.labelValue)) fail(`label value ${s.labelValue} is defined twice`);
    defined.set(s.labelValue, s);
  }

  // Voxel counts per label and slice.
  const perSlice = nx * ny;
  const counts = new Map<number, Uint32Array>();
  for (let k = 0; k < nz; k++) {
    for (let i = k * perSlice; i < (k + 1) * perSlice; i++) {
      const v = labels.data[i] as number;
      if (v === 0) continue;
      let c = counts.get(v);
      if (!c) {
        if (!defined.has(v)) fail(`label value ${v} (first at [z, y, x] = [${k}, ${Math.floor((i % perSlice) / nx)}, ${i % nx}]) has no segment definition; defined: ${[...defined.keys()].join(', ') || 'none'}`);
        c = new Uint32Array(nz);
        counts.set(v, c);
      }
      c[k] = (c[k] as number) + 1;
    }
  }
  const present = segments.filter((s) => counts.has(s.labelValue));
  const emptyLabelValues = segments.filter((s) => !counts.has(s.labelValue)).map((s) => s.labelValue);
  if (present.length === 0) fail(`every segment is empty (label values ${segments.map((s) => s.labelValue).join(', ')}); nothing to write`);

  // Frames.
  interface Frame { segmentNumber: number; labelValue: number; slice: number }
  const frames: Frame[] = [];
  const written: WrittenSegment[] = [];
  present.forEach((s, i) => {
    const c = counts.get(s.labelValue) as Uint32Array;
    let n = 0;
    let voxels = 0;
    for (let k = 0; k < nz; k++) {
      if ((c[k] as number) > 0) {
        frames.push({ segmentNumber: i + 1, labelValue: s.labelValue, slice: k });
        n++;
        voxels += c[k] as number;
      }
    }
    written.push({ segmentNumber: i + 1, labelValue: s.labelValue, label: s.label, frames: n, voxels });
  });

  // Bit-packed pixel data: frames back to back, pixel i of the whole stream in
  // bit (i mod 8) of byte floor(i / 8), least significant bit first (PS3.5 §8.1.1);
  // the total is padded to an even number of bytes.
  const bitsTotal = frames.length * perSlice;
  const packed = new Uint8Array(Math.ceil(bitsTotal / 8 / 2) * 2);
  frames.forEach((f, fi) => {
    const base = f.slice * perSlice;
    const bitBase = fi * perSlice;
    for (let i = 0; i < perSlice; i++) {
      if (labels.data[base + i] === f.labelValue) {
        const bit = bitBase + i;
        packed[bit >> 3] = (packed[bit >> 3] as number) | (1 << (bit & 7));
      }
    }
  });

  const key = options.idempotencyKey ?? `${algorithm.name} ${algorithm.version}`;
  const seriesInstanceUid = segSeriesUid(source.seriesInstanceUid, key);
  const sopInstanceUid = derivedUid('purify-seg-instance', seriesInstanceUid);
  const dimensionOrganizationUid = derivedUid('purify-seg-dimensions', seriesInstanceUid);
  const { date, time } = dicomDateTime(options.date ?? new Date());
  const d = labels.directionLps;
  const normal = column(d, 2);
  const [sx, sy, sz] = labels.spacingXyzMm;
  let description = options.seriesDescription ?? DEFAULT_SEG_DESCRIPTION;
  if (!description.includes(AI_DISCLAIMER)) description = `${description} — ${AI_DISCLAIMER}`;
  if (description.length > 64) fail(`SeriesDescription must be ≤ 64 characters, got ${description.length}: "${description}"`);
  const contentDescription = options.contentDescription ?? `${algorithm.name} segmentation, ${AI_DISCLAIMER}`.slice(0, 64);
  if (contentDescription.length > 64) fail(`ContentDescription must be ≤ 64 characters, got ${contentDescription.length}`);
  const contentLabel = options.contentLabel ?? 'PURIFY';
  if (!/^[A-Z0-9_ ]{1,16}$/.test(contentLabel)) fail(`ContentLabel must be 1–16 upper-case letters, digits, spaces or underscores (CS), got "${contentLabel}"`);

  const sourceFor = (slice: number): SliceSource => source.slices[slice] as SliceSource;
  const dataset: Naturalized = {
    SpecificCharacterSet: 'ISO_IR 192',
    ImageType: ['DERIVED', 'PRIMARY'],
    SOPClassUID: SopClass.Segmentation,
    SOPInstanceUID: sopInstanceUid,
    SeriesDate: date,
    ContentDate: date,
    SeriesTime: time,
    ContentTime: time,
    Modality: 'SEG',
    Manufacturer: 'purify',
    ManufacturerModelName: algorithm.name,
    DeviceSerialNumber: '1',
    SoftwareVersions: algorithm.version,
    SeriesDescription: description,
    ReferringPhysicianName: '',
    StudyDate: '',
    StudyTime: '',
    StudyID: '',
    AccessionNumber: '',
    PatientName: '',
    PatientID: '',
    PatientBirthDate: '',
    PatientSex: '',
    ...source.patientStudy,
    StudyInstanceUID: source.studyInstanceUid,
    SeriesInstanceUID: seriesInstanceUid,
    SeriesNumber: options.seriesNumber ?? 9001,
    InstanceNumber: 1,
    FrameOfReferenceUID: source.frameOfReferenceUid,
    PositionReferenceIndicator: '',
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: source.seriesInstanceUid,
        ReferencedInstanceSequence: source.slices.map((s) => ({ ReferencedSOPClassUID: s.sopClassUid, ReferencedSOPInstanceUID: s.sopInstanceUid })),
      },
    ],
    ContentLabel: contentLabel,
    ContentDescription: contentDescription,
    ContentCreatorName: '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: ny,
    Columns: nx,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: 'BINARY',
    SegmentSequence: present.map((s, i) => ({
      SegmentNumber: i + 1,
      SegmentLabel: s.label,
      ...(s.description === undefined ? {} : { SegmentDescription: s.description }),
      SegmentAlgorithmType: 'AUTOMATIC',
      SegmentAlgorithmName: algorithm.name,
      SegmentationAlgorithmIdentificationSequence: [
        { AlgorithmFamilyCodeSequence: [codeItem(ARTIFICIAL_INTELLIGENCE)], AlgorithmName: algorithm.name, AlgorithmVersion: algorithm.version },
      ],
      SegmentedPropertyCategoryCodeSequence: [codeItem(s.category)],
      SegmentedPropertyTypeCodeSequence: [codeItem(s.type)],
      ...(s.rgb === undefined ? {} : { RecommendedDisplayCIELabValue: rgbToDicomLab(s.rgb) }),
    })),
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionOrganizationType: '3D',
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: Tag.ReferencedSegmentNumber,
        FunctionalGroupPointer: Tag.SegmentIdentificationSequence,
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: Tag.ImagePositionPatient,
        FunctionalGroupPointer: Tag.PlanePositionSequence,
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    NumberOfFrames: frames.length,
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: [...column(d, 0), ...column(d, 1)].map(ds) }],
        PixelMeasuresSequence: [{ PixelSpacing: [ds(sy), ds(sx)], SliceThickness: ds(sz), SpacingBetweenSlices: ds(sz) }],
      },
    ],
    PerFrameFunctionalGroupsSequence: frames.map((f) => {
      const src = sourceFor(f.slice);
      return {
        DerivationImageSequence: [
          {
            SourceImageSequence: [
              { ReferencedSOPClassUID: src.sopClassUid, ReferencedSOPInstanceUID: src.sopInstanceUid, PurposeOfReferenceCodeSequence: [codeItem(SOURCE_IMAGE_PURPOSE)] },
            ],
            DerivationCodeSequence: [codeItem(SEGMENTATION_DERIVATION)],
          },
        ],
        FrameContentSequence: [{ DimensionIndexValues: [f.segmentNumber, f.slice + 1] }],
        PlanePositionSequence: [{ ImagePositionPatient: add(labels.originLpsMm, scale(normal, f.slice * sz)).map(ds) }],
        SegmentIdentificationSequence: [{ ReferencedSegmentNumber: f.segmentNumber }],
      };
    }),
    PixelData: [packed.buffer],
    _vrMap: { PixelData: 'OB' },
  };
  return {
    bytes: encodePart10(dataset, `SEG for series ${source.seriesInstanceUid}`),
    sopInstanceUid,
    seriesInstanceUid,
    segments: written,
    emptyLabelValues,
    frames: frames.length,
  };
}
