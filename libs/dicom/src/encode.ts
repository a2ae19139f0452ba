/** Naturalized dataset → DICOM Part-10 bytes (Explicit VR Little Endian), via dcmjs. */
import { dcmjs, type Naturalized } from './dcmjs';
import { DicomError, DicomErrorKind } from './errors';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './sop';
import { TransferSyntax } from './transfer-syntax';

/**
 * Encodes `dataset` (keyword → value; sequences as arrays of datasets) as a
 * Part-10 file with file meta information. `what` names it in errors.
 */
export function encodePart10(dataset: Naturalized, what: string): Uint8Array {
  const sopClassUid = dataset.SOPClassUID;
  const sopInstanceUid = dataset.SOPInstanceUID;
  if (typeof sopClassUid !== 'string' || typeof sopInstanceUid !== 'string') {
    throw new DicomError(DicomErrorKind.BadAttribute, `${what}: SOPClassUID and SOPInstanceUID must be set before encoding`);
  }
  const meta: Naturalized = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: TransferSyntax.ExplicitLittleEndian,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  };
  try {
    const file = new dcmjs.data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(meta));
    file.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(dataset);
    return new Uint8Array(file.write());
  } catch (err) {
    throw new DicomError(DicomErrorKind.BadAttribute, `${what}: cannot encode DICOM: ${(err as Error).message}`, { cause: err });
  }
}

/** DICOM DA (YYYYMMDD) and TM (HHMMSS) of a date, in UTC. */
export function dicomDateTime(date: Date): { date: string; time: string } {
  const iso = date.toISOString(); // 2026-11-26T17:14:05.123Z
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') };
}
