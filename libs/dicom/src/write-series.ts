/**
 * Volume → a DICOM image series (one single-frame instance per slice), e.g. to
 * export the built-in phantom to a PACS. Slice k of the volume becomes the
 * instance with ImagePositionPatient = origin + k·spacing_z·(direction column 2),
 * ImageOrientationPatient = direction columns 0 (row cosine, x) and 1 (column
 * cosine, y), PixelSpacing = (spacing y, spacing x), rows = y, columns = x.
 */
import { type Volume } from '@purify/imaging';
import { encodePart10, dicomDateTime } from './encode';
import { DicomError, DicomErrorKind } from './errors';
import { SopClass } from './sop';
import { derivedUid, randomUid } from './uid';
import { add, column, ds, scale } from './vec';
import type { Naturalized } from './dcmjs';

export interface WriteSeriesOptions {
  /** CT (default) or MR; decides the SOP class. */
  readonly modality?: 'CT' | 'MR';
  readonly patientName?: string;
  readonly patientId?: string;
  /** PatientBirthDate, `YYYYMMDD`; default empty. */
  readonly patientBirthDate?: string;
  /** Default empty. */
  readonly accessionNumber?: string;
  /** Default empty. */
  readonly referringPhysicianName?: string;
  /** InstitutionName; default absent. */
  readonly institutionName?: string;
  readonly studyInstanceUid?: string;
  /** Default: derived from studyInstanceUid and seriesNumber, so re-exports are identical. */
  readonly seriesInstanceUid?: string;
  readonly frameOfReferenceUid?: string;
  readonly seriesNumber?: number;
  readonly seriesDescription?: string;
  readonly studyDescription?: string;
  /** Default ['DERIVED', 'SECONDARY', 'AXIAL'] (a synthetic image is not an original acquisition). */
  readonly imageType?: readonly string[];
  /** Stored value = voxel − intercept (slope 1); must fit int16. Default 0. */
  readonly rescaleIntercept?: number;
  /** Study/series/content date. Default now. */
  readonly date?: Date;
}

export interface WrittenInstance {
  readonly sopInstanceUid: string;
  /** Part-10 bytes. */
  readonly bytes: Uint8Array;
}

export interface WrittenSeries {
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly frameOfReferenceUid: string;
  /** In slice order k = 0 … nz−1. */
  readonly instances: readonly WrittenInstance[];
}

/**
 * Writes `volume` (`[z, y, x]`, integer values, HU for CT) as a series.
 * Values must be integers and, after subtracting `rescaleIntercept`, fit int16;
 * anything else is refused naming the first bad voxel.
 */
export function writeSeries(volume: Volume, options: WriteSeriesOptions = {}): WrittenSeries {
  const modality = options.modality ?? 'CT';
  const intercept = options.rescaleIntercept ?? 0;
  if (modality === 'MR' && intercept !== 0) throw new DicomError(DicomErrorKind.BadAttribute, `writeSeries: MR images have no RescaleIntercept; got ${intercept}`);
  const [nz, ny, nx] = volume.shape;
  const perSlice = nx * ny;
  const stored = new Int16Array(volume.data.length);
  for (let i = 0; i < volume.data.length; i++) {
    const v = (volume.data[i] as number) - intercept;
    if (!Number.isInteger(v) || v < -32768 || v > 32767) {
      const z = Math.floor(i / perSlice);
      const y = Math.floor((i % perSlice) / nx);
      throw new DicomError(
        DicomErrorKind.BadAttribute,
        `writeSeries: voxel [z, y, x] = [${z}, ${y}, ${i % nx}] = ${volume.data[i] as number} minus RescaleIntercept ${intercept} is not an int16 integer`,
      );
    }
    stored[i] = v;
  }
  const studyInstanceUid = options.studyInstanceUid ?? randomUid();
  const seriesNumber = options.seriesNumber ?? 1;
  const seriesInstanceUid = options.seriesInstanceUid ?? derivedUid('series', studyInstanceUid, String(seriesNumber));
  const frameOfReferenceUid = options.frameOfReferenceUid ?? derivedUid('frame-of-reference', seriesInstanceUid);
  const { date, time } = dicomDateTime(options.date ?? new Date());
  const d = volume.directionLps;
  const orientation = [...column(d, 0), ...column(d, 1)].map(ds);
  const normal = column(d, 2);
  const [sx, sy, sz] = volume.spacingXyzMm;
  let min = Infinity;
  let max = -Infinity;
  for (const v of stored) {
    if (v < min) min = v;
    if (v > max) max = v;
  }

  const instances: WrittenInstance[] = [];
  for (let k = 0; k < nz; k++) {
    const sopInstanceUid = derivedUid('instance', seriesInstanceUid, String(k));
    const position = add(volume.originLpsMm, scale(normal, k * sz)).map(ds);
    const pixels = stored.slice(k * perSlice, (k + 1) * perSlice);
    const dataset: Naturalized = {
      SpecificCharacterSet: 'ISO_IR 192',
      ImageType: [...(options.imageType ?? ['DERIVED', 'SECONDARY', 'AXIAL'])],
      SOPClassUID: modality === 'CT' ? SopClass.CTImage : SopClass.MRImage,
      SOPInstanceUID: sopInstanceUid,
      StudyDate: date,
      SeriesDate: date,
      ContentDate: date,
      StudyTime: time,
      SeriesTime: time,
      ContentTime: time,
      AccessionNumber: options.accessionNumber ?? '',
      Modality: modality,
      Manufacturer: 'purify',
      ...(options.institutionName === undefined ? {} : { InstitutionName: options.institutionName }),
      ReferringPhysicianName: options.referringPhysicianName ?? '',
      StudyDescription: options.studyDescription ?? 'purify phantom',
      SeriesDescription: options.seriesDescription ?? `purify phantom ${modality}`,
      ManufacturerModelName: 'purify phantom',
      PatientName: options.patientName ?? 'PHANTOM^PURIFY',
      PatientID: options.patientId ?? 'PURIFY-PHANTOM',
      PatientBirthDate: options.patientBirthDate ?? '',
      PatientSex: 'O',
      SliceThickness: ds(sz),
      ...(modality === 'CT' ? { KVP: '' } : { ScanningSequence: 'RM', SequenceVariant: 'NONE', ScanOptions: '', MRAcquisitionType: '2D', EchoTime: '', EchoTrainLength: '', RepetitionTime: '' }),
      PatientPosition: 'HFS',
      Laterality: '',
      StudyInstanceUID: studyInstanceUid,
      SeriesInstanceUID: seriesInstanceUid,
      StudyID: '1',
      SeriesNumber: seriesNumber,
      AcquisitionNumber: 1,
      InstanceNumber: k + 1,
      ImagePositionPatient: position,
      ImageOrientationPatient: orientation,
      FrameOfReferenceUID: frameOfReferenceUid,
      PositionReferenceIndicator: '',
      SliceLocation: ds(position[2] as number),
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: ny,
      Columns: nx,
      PixelSpacing: [ds(sy), ds(sx)],
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 1,
      ...(modality === 'CT' ? { RescaleIntercept: intercept, RescaleSlope: 1, RescaleType: 'HU' } : {}),
      WindowCenter: ds((min + max) / 2 + intercept),
      WindowWidth: ds(Math.max(1, max - min)),
      PixelData: [pixels.buffer],
      _vrMap: { PixelData: 'OW' },
    };
    instances.push({ sopInstanceUid, bytes: encodePart10(dataset, `slice ${k} of series ${seriesInstanceUid}`) });
  }
  return { studyInstanceUid, seriesInstanceUid, frameOfReferenceUid, instances };
}
