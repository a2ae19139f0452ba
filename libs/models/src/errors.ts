/**
 * Error types of `@purify/models`. Each names the offending field or file, what
 * was expected and what was received; services map them to gRPC codes
 * (all are caller mistakes, i.e. INVALID_ARGUMENT / FAILED_PRECONDITION).
 */

/** A model configuration (U-Net options, optimiser, schedule, EMA) is invalid. */
export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
}

/** A tensor handed to a model, loss or training step has the wrong shape, dtype or values. */
export class ModelInputError extends Error {
  override readonly name = 'ModelInputError';
}

/** A checkpoint folder is missing, incomplete, corrupt or does not match the model. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** The network contains something the ONNX exporter cannot express. */
export class OnnxExportError extends Error {
  override readonly name = 'OnnxExportError';
}
