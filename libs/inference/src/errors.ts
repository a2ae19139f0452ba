/**
 * Errors of the inference library. `kind` says which gRPC status a service
 * answers with, without this library depending on the service runtime:
 *   - `not-found`           → NOT_FOUND (unknown model or version),
 *   - `invalid-argument`    → INVALID_ARGUMENT (the caller's input is wrong),
 *   - `failed-precondition` → FAILED_PRECONDITION (the model on disk is unusable,
 *     or the model asked for is not loaded).
 */
export const InferenceErrorKind = {
  NotFound: 'not-found',
  InvalidArgument: 'invalid-argument',
  FailedPrecondition: 'failed-precondition',
} as const;
export type InferenceErrorKind = (typeof InferenceErrorKind)[keyof typeof InferenceErrorKind];

export class InferenceError extends Error {
  override readonly name = 'InferenceError';

  constructor(
    readonly kind: InferenceErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static notFound(message: string): InferenceError {
    return new InferenceError(InferenceErrorKind.NotFound, message);
  }

  static invalidArgument(message: string): InferenceError {
    return new InferenceError(InferenceErrorKind.InvalidArgument, message);
  }

  static failedPrecondition(message: string, cause?: unknown): InferenceError {
    return new InferenceError(InferenceErrorKind.FailedPrecondition, message, cause === undefined ? undefined : { cause });
  }
}
