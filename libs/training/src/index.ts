// Errors.
export { TrainingConfigError, TrainingDataError } from './errors';

// Slice data pipeline.
export { CT_NORMALIZATION, PERCENTILE_NORMALIZATION, defaultNormalization, normalizeVolume, resolveNormalization } from './normalization';
export { datasetClasses, labelledCases, loadSliceVolume, spacingForSize, workingGridOf } from './slice-data';
export type { LoadSliceVolumeOptions, SliceVolume } from './slice-data';
export { AUGMENT_PRESETS, AugmentLevel, augmentPresetId, augmentSample, parseAugmentLevel, resolveAugment } from './augmentation';
export type { AugmentConfig, AugmentPreset, Sample2D } from './augmentation';
export { BatchSampler, batchTensors, largestRemainder, slicesOf, stepSeed } from './sampler';
export type { SamplerOptions, SliceBatch, SlicePool, TrainingSlice } from './sampler';

// Prediction and validation.
export { predictLabelVolume, predictSlices, validate } from './predict';
export type { ValidationResult } from './predict';

// Target statistics (AdaBN).
export { adaptBatchNorm } from './adabn';
export type { AdaBnOptions } from './adabn';

// Training.
export { initTrainingBackend } from './backend';
export type { TrainingBackend, TrainingBackendOptions } from './backend';
export { defaultTrainingWorkers, StopReason, trainSegmentation } from './trainer';
export type { StepEvent, TrainCallbacks, TrainResult, TrainSegmentationOptions, ValidationEvent, ValidationRecord } from './trainer';

// Publishing and weights files.
export { checkRegistryClasses, gitCommit, publishSegmentationModel } from './publish';
export type { PublishModelOptions } from './publish';
export { decodeWeights, encodeWeights, encodeWeightSnapshot, modelFromWeights, WEIGHTS_FORMAT, WEIGHTS_VERSION } from './weights';

// Stage A end to end.
export { openLabelledDataset, SOURCE_SCHEDULE, trainSourceModel } from './source';
export type { TrainSourceCallbacks, TrainSourceOptions, TrainSourceResult } from './source';
