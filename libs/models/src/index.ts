export { Backend, BACKEND_PREFERENCE, BackendUnavailableError, isBackend, selectBackend } from './backend';
export type { BackendChoice, PackageLoader } from './backend';

export { CheckpointError, ModelConfigError, ModelInputError, OnnxExportError } from './errors';
export { Rng } from './rng';

// The U-Net and its wrapper.
export { levelWidth, Norm, REFERENCE_UNET, resolveUNetConfig, Upsampling } from './config';
export type { UNetConfig } from './config';
export { BATCH_NORM_MOMENTUM, buildUNet, NORM_EPSILON } from './unet';
export type { BuildOptions } from './unet';
export { SegModel } from './seg-model';
export type { SegNetworks, WeightSnapshot } from './seg-model';
export { BilinearUpsampling2D, InstanceNormalization, SeededDropout } from './layers';
export { reestimateBatchNorm } from './adabn';
export type { BatchNormStatistics } from './adabn';

// Training.
export { DICE_SMOOTH, segmentationLoss, softDiceLoss, weightedCrossEntropy, WEIGHT_SUM_EPSILON } from './losses';
export type { DiceOptions, SegLoss, SegLossOptions, SegTarget } from './losses';
export { learningRateAt, LrDecay, resolveLrSchedule } from './schedule';
export type { LrSchedule } from './schedule';
export { Adam, clipByGlobalNorm, globalNorm, resolveAdamConfig } from './optimizer';
export type { AdamConfig, AdamState, ResolvedAdamConfig } from './optimizer';
export { EmaTeacher, emaAlpha } from './ema';
export type { EmaOptions } from './ema';
export { createAdam, trainStep } from './train';
export type { TrainBatch, TrainStepOptions, TrainStepResult } from './train';
export { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, loadCheckpoint, MANIFEST_FILE, saveCheckpoint } from './checkpoint';
export type { CheckpointManifest, LoadCheckpointOptions, LoadedCheckpoint, TrainingState } from './checkpoint';

// ONNX export.
export { exportLayersModel, exportOnnx, ONNX_INPUT_NAME, ONNX_IR_VERSION, ONNX_OPSET, ONNX_OUTPUT_NAME } from './onnx/export';
export type { OnnxExportOptions } from './onnx/export';

// Fast, correct TensorFlow.js-wasm training kernels (docs/kernels.md).
export { NATIVE_ADDON_PATH, WASM_TRAINING_KERNELS, nativeAddon, registerWasmTrainingKernels, type NativeStatus, type RegisterOptions } from './kernels';

// Data-parallel training across worker_threads (docs/parallel-training.md).
export { DataParallelTrainer, DEFAULT_PARALLEL_WORKERS, ParallelWorkerError, UpdateMode, splitBatch, crossEntropyNormaliser, diceTotalsGradient } from './parallel';
export type { DataParallelOptions, HostBatch, TensorBatch, ParallelStepOptions, ParallelStepResult, ParallelGradients, ParallelLossOptions, Shard, WorkerTimings } from './parallel';
