/**
 * One DICOM Part-10 instance, parsed with dcmjs, with the attributes series
 * building needs pulled out and typed. Pixel decoding is separate
 * (`decodeFrame`), so grouping and selection never touch voxels.
 */
import { dcmjs, toArrayBuffer, type Naturalized } from './dcmjs';
import { optNumber, optString, reqString, strings } from './dataset';
import { DicomError, DicomErrorKind } from './errors';
import { DECODABLE_TRANSFER_SYNTAXES, TransferSyntax, transferSyntaxName } from './transfer-syntax';

export interface DicomInstance {
  /** Where the bytes came from (file path or URL), for messages. */
  readonly source: string;
  readonly transferSyntaxUid: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  /** Upper case, e.g. CT, MR, SEG, SR; '' when absent. */
  readonly modality: string;
  readonly seriesDescription: string;
  readonly seriesNumber: number | undefined;
  readonly instanceNumber: number | undefined;
  /** ImageType values, upper case (e.g. ORIGINAL, PRIMARY, AXIAL). */
  readonly imageType: readonly string[];
  /** The whole dataset in dcmjs's naturalized form (keyword → value). */
  readonly dataset: Naturalized;
}

/**
 * Parses a DICOM Part-10 file (128-byte preamble + "DICM"). Files without the
 * preamble (raw datasets) are refused: every PACS and DICOMweb answer carries it.
 */
export function parseInstance(bytes: Uint8Array, source: string): DicomInstance {
  if (bytes.length < 132 || bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    throw new DicomError(DicomErrorKind.NotDicom, `${source}: not a DICOM Part-10 file (no "DICM" marker at byte 128; ${bytes.length} bytes)`);
  }
  let dataset: Naturalized;
  let meta: Naturalized;
  try {
    const dict = dcmjs.data.DicomMessage.readFile(toArrayBuffer(bytes));
    dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
    meta = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.meta);
  } catch (err) {
    throw new DicomError(DicomErrorKind.NotDicom, `${source}: cannot parse DICOM: ${(err as Error).message}`, { cause: err });
  }
  const transferSyntaxUid = optString(meta, 'TransferSyntaxUID');
  if (transferSyntaxUid === undefined) throw new DicomError(DicomErrorKind.NotDicom, `${source}: file meta information has no TransferSyntaxUID`);
  return {
    source,
    transferSyntaxUid,
    sopClassUid: optString(dataset, 'SOPClassUID') ?? optString(meta, 'MediaStorageSOPClassUID') ?? reqString(dataset, 'SOPClassUID', source),
    sopInstanceUid: optString(dataset, 'SOPInstanceUID') ?? reqString(meta, 'MediaStorageSOPInstanceUID', source),
    studyInstanceUid: reqString(dataset, 'StudyInstanceUID', source),
    seriesInstanceUid: reqString(dataset, 'SeriesInstanceUID', source),
    modality: (optString(dataset, 'Modality') ?? '').toUpperCase(),
    seriesDescription: optString(dataset, 'SeriesDescription') ?? '',
    seriesNumber: optNumber(dataset, 'SeriesNumber', source),
    instanceNumber: optNumber(dataset, 'InstanceNumber', source),
    imageType: strings(dataset, 'ImageType'),
    dataset,
  };
}

/** Pixel format of a single-frame grayscale image. */
export interface PixelFormat {
  readonly rows: number;
  readonly columns: number;
  /** 8, 16 or 32. */
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  /** 0 unsigned, 1 two's complement. */
  readonly pixelRepresentation: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
}

function intAttr(ds: Naturalized, keyword: string, source: string): number {
  const v = optNumber(ds, keyword, source);
  if (v === undefined || !Number.isInteger(v)) {
    throw new DicomError(DicomErrorKind.BadAttribute, `${source}: ${keyword} must be an integer, got ${v === undefined ? 'nothing' : String(v)}`);
  }
  return v;
}

/**
 * Checks that `instance` is a single-frame grayscale image whose pixels we can
 * decode, and returns its pixel format. Refuses (with the reason): no pixel data
 * (SR, RTSTRUCT, KO …), encapsulated/compressed transfer syntaxes, colour,
 * multi-frame, bit depths other than 8/16/32.
 */
export function pixelFormatOf(instance: DicomInstance): PixelFormat {
  const { dataset: ds, source } = instance;
  if (ds.PixelData === undefined) {
    throw new DicomError(DicomErrorKind.NotAnImage, `${source}: ${instance.modality || 'unknown'} instance (SOP class ${instance.sopClassUid}) has no pixel data; not an image`);
  }
  if (!DECODABLE_TRANSFER_SYNTAXES.includes(instance.transferSyntaxUid)) {
    throw new DicomError(
      DicomErrorKind.UnsupportedTransferSyntax,
      `${source}: pixel data is encoded as ${transferSyntaxName(instance.transferSyntaxUid)}, which we cannot decode; supported: ${DECODABLE_TRANSFER_SYNTAXES.map(transferSyntaxName).join(', ')}`,
    );
  }
  const frames = optNumber(ds, 'NumberOfFrames', source) ?? 1;
  if (frames !== 1) throw new DicomError(DicomErrorKind.NotAnImage, `${source}: multi-frame image (NumberOfFrames ${frames}); only single-frame slices are supported`);
  const samples = optNumber(ds, 'SamplesPerPixel', source) ?? 1;
  const photometric = optString(ds, 'PhotometricInterpretation') ?? 'MONOCHROME2';
  if (samples !== 1 || !photometric.startsWith('MONOCHROME')) {
    throw new DicomError(DicomErrorKind.NotAnImage, `${source}: colour image (SamplesPerPixel ${samples}, PhotometricInterpretation ${photometric}); only grayscale is supported`);
  }
  const rows = intAttr(ds, 'Rows', source);
  const columns = intAttr(ds, 'Columns', source);
  const bitsAllocated = intAttr(ds, 'BitsAllocated', source);
  if (![8, 16, 32].includes(bitsAllocated)) throw new DicomError(DicomErrorKind.NotAnImage, `${source}: BitsAllocated must be 8, 16 or 32 for an image slice, got ${bitsAllocated}`);
  const bitsStored = optNumber(ds, 'BitsStored', source) ?? bitsAllocated;
  if (!Number.isInteger(bitsStored) || bitsStored < 1 || bitsStored > bitsAllocated) {
    throw new DicomError(DicomErrorKind.BadAttribute, `${source}: BitsStored must be an integer in [1, ${bitsAllocated}], got ${bitsStored}`);
  }
  const pixelRepresentation = optNumber(ds, 'PixelRepresentation', source) ?? 0;
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) throw new DicomError(DicomErrorKind.BadAttribute, `${source}: PixelRepresentation must be 0 or 1, got ${pixelRepresentation}`);
  const rescaleSlope = optNumber(ds, 'RescaleSlope', source) ?? 1;
  const rescaleIntercept = optNumber(ds, 'RescaleIntercept', source) ?? 0;
  if (rescaleSlope === 0) throw new DicomError(DicomErrorKind.BadAttribute, `${source}: RescaleSlope must not be 0`);
  return { rows, columns, bitsAllocated, bitsStored, pixelRepresentation, rescaleSlope, rescaleIntercept };
}

/** The raw bytes of the (single) frame, little-endian. */
function frameBytes(instance: DicomInstance, format: PixelFormat): Uint8Array {
  const pd = instance.dataset.PixelData;
  const parts = (Array.isArray(pd) ? pd : [pd]) as unknown[];
  const buffers = parts.map((p) => (p instanceof ArrayBuffer ? new Uint8Array(p) : ArrayBuffer.isView(p) ? new Uint8Array(p.buffer, p.byteOffset, p.byteLength) : undefined));
  if (buffers.some((b) => b === undefined)) throw new DicomError(DicomErrorKind.BadAttribute, `${instance.source}: PixelData has an unexpected form`);
  const total = buffers.reduce((n, b) => n + (b as Uint8Array).length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const b of buffers as Uint8Array[]) {
    bytes.set(b, at);
    at += b.length;
  }
  const needed = format.rows * format.columns * (format.bitsAllocated / 8);
  if (bytes.length < needed) {
    throw new DicomError(DicomErrorKind.BadAttribute, `${instance.source}: PixelData has ${bytes.length} bytes but ${format.rows}×${format.columns}×${format.bitsAllocated / 8} = ${needed} are needed`);
  }
  if (instance.transferSyntaxUid === TransferSyntax.ExplicitBigEndian && format.bitsAllocated > 8) {
    const width = format.bitsAllocated / 8;
    for (let i = 0; i < needed; i += width) {
      for (let a = 0, b = width - 1; a < b; a++, b--) {
        const t = bytes[i + a] as number;
        bytes[i + a] = bytes[i + b] as number;
        bytes[i + b] = t;
      }
    }
  }
  return bytes.subarray(0, needed);
}

/**
 * Decodes the frame into stored values (before rescale), row by row: `[y, x]`,
 * x (column index) fastest. Bits above BitsStored are masked off and signed
 * values are sign-extended from BitsStored, as PS3.5 §8.1.1 says.
 */
export function decodeStoredValues(instance: DicomInstance, format: PixelFormat): Float64Array {
  const bytes = frameBytes(instance, format);
  const n = format.rows * format.columns;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(n);
  const width = format.bitsAllocated / 8;
  const bits = format.bitsStored;
  const signed = format.pixelRepresentation === 1;
  for (let i = 0; i < n; i++) {
    let raw = width === 1 ? view.getUint8(i) : width === 2 ? view.getUint16(i * 2, true) : view.getUint32(i * 4, true);
    if (bits < 32) {
      raw = raw % 2 ** bits; // mask the high bits (works beyond 31 bits, unlike &)
      if (signed && raw >= 2 ** (bits - 1)) raw -= 2 ** bits;
    } else if (signed && raw >= 2 ** 31) {
      raw -= 2 ** 32;
    }
    out[i] = raw;
  }
  return out;
}
