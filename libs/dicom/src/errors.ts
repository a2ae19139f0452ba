/**
 * The one error type of @purify/dicom. `kind` says which rule was broken, so a
 * caller (the watcher, the CLI) can decide without parsing the message; the
 * message names the file, series or URL, what was expected and what was received.
 */
export const DicomErrorKind = {
  /** Not a DICOM Part-10 file, or a truncated one. */
  NotDicom: 'not-dicom',
  /** A required attribute is missing or has a value we cannot use. */
  BadAttribute: 'bad-attribute',
  /** Pixel data in a transfer syntax we cannot decode (compressed, encapsulated). */
  UnsupportedTransferSyntax: 'unsupported-transfer-syntax',
  /** Not an image we can turn into a volume (SR, RTSTRUCT, SEG, colour, multi-frame …). */
  NotAnImage: 'not-an-image',
  /** No series matches the selection rules. */
  NoSeries: 'no-series',
  /** More than one series where one was expected. */
  MixedSeries: 'mixed-series',
  /** Slices of a series disagree on orientation. */
  InconsistentOrientation: 'inconsistent-orientation',
  /** Slices of a series disagree on rows/columns/pixel spacing/pixel format. */
  MixedSizes: 'mixed-sizes',
  /** Gaps between slice positions that are multiples of the regular spacing. */
  MissingSlices: 'missing-slices',
  /** Slice positions that are not evenly spaced (and not just missing slices). */
  IrregularSpacing: 'irregular-spacing',
  /** Two slices at the same position. */
  DuplicateSlices: 'duplicate-slices',
  /** Slice positions not along the slice normal (gantry tilt, sheared stack). */
  GantryTilt: 'gantry-tilt',
  /** A segmentation or geometry that cannot be written or read. */
  Segmentation: 'segmentation',
  /** An HTTP failure of a DICOMweb or Orthanc call (status, timeout, unreachable). */
  Http: 'http',
  /** A well-formed HTTP answer whose content is not what DICOMweb specifies. */
  Protocol: 'protocol',
} as const;
export type DicomErrorKind = (typeof DicomErrorKind)[keyof typeof DicomErrorKind];

export class DicomError extends Error {
  override readonly name = 'DicomError';
  constructor(
    readonly kind: DicomErrorKind,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
  }

  /** HTTP status of an `http` error answered by the server; undefined otherwise. */
  readonly status: number | undefined;
}
