// Errors.
export { DicomError, DicomErrorKind } from './errors';

// Parsing, series and volumes.
export { DECODABLE_TRANSFER_SYNTAXES, TransferSyntax, transferSyntaxName } from './transfer-syntax';
export { decodeStoredValues, parseInstance, pixelFormatOf } from './instance';
export type { DicomInstance, PixelFormat } from './instance';
export { DEFAULT_SELECTION, describeCandidates, groupSeries, ruleFailure, selectSeries, seriesToVolume } from './series';
export type { DicomSeries, SelectionResult, SeriesCandidate, SeriesGeometryOptions, SeriesInfo, SeriesSelection, SeriesVolume, SliceSource } from './series';
export { writeSeries } from './write-series';
export type { WriteSeriesOptions, WrittenInstance, WrittenSeries } from './write-series';

// Segmentations.
export { ANATOMICAL_STRUCTURE, ARTIFICIAL_INTELLIGENCE, OrganCode, PHANTOM_SEGMENTS, rgbToDicomLab, segmentsForLabels } from './codes';
export type { OrganName, SegmentDefinition } from './codes';
export { SopClass } from './sop';
export type { Code } from './sop';
export { AI_DISCLAIMER, DEFAULT_SEG_DESCRIPTION, segSeriesUid, writeSegmentation } from './seg-write';
export type { AlgorithmIdentification, SegSource, SegWriteOptions, WrittenSeg, WrittenSegment } from './seg-write';
export { readSegmentation } from './seg-read';
export type { ReadSeg, ReadSegment } from './seg-read';
export { derivedUid, isValidUid, randomUid } from './uid';

// DICOMweb and the pipeline.
export { DEFAULT_DICOMWEB_TIMEOUT_MS, DicomWebClient, naturalizeJson } from './dicomweb';
export type { DicomWebOptions, StoreResult } from './dicomweb';
export { buildMultipart, parseMultipart } from './multipart';
export { PURIFY_DICOM_VERSION, runStudy, watch } from './pipeline';
export type { PipelineEvent, PipelineLevel, PipelineLog, RunStudyOptions, RunStudyResult, SegmentFn, SegmentationOutput, StoredSeg, WatchCursor, WatchOptions, WatchSummary } from './pipeline';
