/** Test helper: synthetic single-frame slices with chosen geometry, encoded and parsed back. */
import { encodePart10 } from '../src/encode';
import { parseInstance, type DicomInstance } from '../src/instance';
import type { Naturalized } from '../src/dcmjs';

export interface SliceSpec {
  readonly seriesUid?: string;
  readonly studyUid?: string;
  readonly sopUid: string;
  readonly position: readonly number[];
  readonly orientation?: readonly number[];
  readonly rows?: number;
  readonly columns?: number;
  readonly pixelSpacing?: readonly number[];
  readonly modality?: string;
  readonly imageType?: readonly string[];
  readonly description?: string;
  readonly seriesNumber?: number;
  /** Stored int16 values, rows × columns; default all = `fill`. */
  readonly values?: Int16Array;
  readonly fill?: number;
  readonly slope?: number;
  readonly intercept?: number;
  readonly sliceThickness?: number;
  /** Extra/overriding attributes. */
  readonly extra?: Naturalized;
}

export function slice(spec: SliceSpec): DicomInstance {
  const rows = spec.rows ?? 2;
  const columns = spec.columns ?? 3;
  const values = spec.values ?? new Int16Array(rows * columns).fill(spec.fill ?? 0);
  const dataset: Naturalized = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    SOPInstanceUID: spec.sopUid,
    StudyInstanceUID: spec.studyUid ?? '1.2.3',
    SeriesInstanceUID: spec.seriesUid ?? '1.2.3.4',
    FrameOfReferenceUID: '1.2.3.9',
    Modality: spec.modality ?? 'CT',
    ImageType: [...(spec.imageType ?? ['ORIGINAL', 'PRIMARY', 'AXIAL'])],
    SeriesDescription: spec.description ?? 'test',
    SeriesNumber: spec.seriesNumber ?? 1,
    ImagePositionPatient: [...spec.position],
    ImageOrientationPatient: [...(spec.orientation ?? [1, 0, 0, 0, 1, 0])],
    PixelSpacing: [...(spec.pixelSpacing ?? [0.5, 0.7])],
    SliceThickness: spec.sliceThickness ?? 2,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 1,
    RescaleSlope: spec.slope ?? 1,
    RescaleIntercept: spec.intercept ?? 0,
    PixelData: [values.slice().buffer],
    _vrMap: { PixelData: 'OW' },
    ...spec.extra,
  };
  return parseInstance(encodePart10(dataset, spec.sopUid), spec.sopUid);
}

/** Slices k = 0 … n−1 at origin + k·gap·normal (normal = row × column cosine). */
export function stack(n: number, options: { gap?: number; origin?: readonly number[]; orientation?: readonly number[]; seriesUid?: string; positions?: readonly (readonly number[])[] } & Omit<SliceSpec, 'sopUid' | 'position'> = {}): DicomInstance[] {
  const o = options.orientation ?? [1, 0, 0, 0, 1, 0];
  const normal = [o[1]! * o[5]! - o[2]! * o[4]!, o[2]! * o[3]! - o[0]! * o[5]!, o[0]! * o[4]! - o[1]! * o[3]!];
  const origin = options.origin ?? [0, 0, 0];
  const gap = options.gap ?? 2;
  return Array.from({ length: n }, (_, k) =>
    slice({
      ...options,
      sopUid: `1.2.3.4.${k + 1}`,
      orientation: o,
      position: options.positions?.[k] ?? origin.map((v, i) => v + k * gap * normal[i]!),
      fill: k,
    }),
  );
}
