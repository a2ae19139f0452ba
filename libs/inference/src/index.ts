// Errors.
export { InferenceError, InferenceErrorKind } from './errors';

// Sessions and loaded models.
export { DEFAULT_SESSION_CONFIG, GraphOptimization, ProviderPreference, createSession, providerAvailability } from './execution';
export type { CreatedSession, ExecutionProvider, ProviderAvailability, SessionConfig } from './execution';
export { LoadedModel, MAX_CLASSES } from './model';
export type { LoadedModelInfo, ModelKey, Nchw } from './model';
export { ModelPool, fromRegistryError } from './model-pool';
export type { LoadOutcome, ModelLease } from './model-pool';
export { OnnxFormatError, readOnnxHeader } from './onnx-metadata';
export type { OnnxModelHeader } from './onnx-metadata';

// Segmentation.
export { normalizeVolume } from './normalize';
export { DEFAULT_SIGMA_SCALE, flipNchw, gaussianImportance, planTiles, predictWithFlips, slidingWindowPredict, tileStarts } from './sliding-window';
export type { BatchPredictor, SlidingWindowOptions, TilePlan } from './sliding-window';
export { DEFAULT_SEGMENT_OPTIONS, modelGridFor, predictPatches, segmentMemoryBytes, segmentVolume, windowOf } from './segment';
export { resampleSlicesBilinear } from './resample-inplane';
export type { PredictPatchesResult, SegmentTimings, SegmentVolumeOptions, SegmentVolumeResult, SegmentationModel } from './segment';
export { encodeProbabilitiesNifti, writeProbabilitiesNifti } from './probabilities-nifti';

// The wire format and the Segment client.
export { ChunkAssembler, arrayFromBytes, bytesOfArray, chunksOf, dtypeOfArray, gridOfHeader, volumeFromHeader, volumeHeaderOf } from './wire';
export { DEFAULT_SEGMENT_TIMEOUT_MS, ensureModelLoaded, segmentRemote } from './segment-client';
export type { RemoteSegmentOptions, RemoteSegmentResult } from './segment-client';
