/**
 * Data-parallel training over worker threads (issue #10; docs/parallel-training.md).
 */
export { DataParallelTrainer, DEFAULT_PARALLEL_WORKERS, ParallelWorkerError } from './trainer';
export type { DataParallelOptions, HostBatch, ParallelGradients, ParallelStepOptions, ParallelStepResult, TensorBatch } from './trainer';
export { crossEntropyNormaliser, diceTotalsGradient, splitBatch, UpdateMode } from './shared';
export type { ParallelLossOptions, Shard, WorkerTimings } from './shared';
