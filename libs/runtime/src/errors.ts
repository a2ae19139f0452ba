import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

/**
 * Error kinds of purify, one per gRPC status code we answer with. This is the
 * only place where they meet `grpc.status`.
 */
export const ErrorCode = {
  InvalidArgument: 'INVALID_ARGUMENT',
  NotFound: 'NOT_FOUND',
  AlreadyExists: 'ALREADY_EXISTS',
  FailedPrecondition: 'FAILED_PRECONDITION',
  DeadlineExceeded: 'DEADLINE_EXCEEDED',
  Cancelled: 'CANCELLED',
  ResourceExhausted: 'RESOURCE_EXHAUSTED',
  Unimplemented: 'UNIMPLEMENTED',
  Unavailable: 'UNAVAILABLE',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const GRPC_STATUS: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  UNIMPLEMENTED: status.UNIMPLEMENTED,
  UNAVAILABLE: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
};

const FROM_GRPC_STATUS = new Map<number, ErrorCode>(
  Object.entries(GRPC_STATUS).map(([code, grpcStatus]) => [grpcStatus, code as ErrorCode]),
);

/**
 * The one error type of the codebase. Handlers throw it (or anything else, which
 * becomes INTERNAL); the runtime turns it into a gRPC status without leaking a
 * stack trace. `cause` keeps whatever was caught, for the logs.
 */
export class PurifyError extends Error {
  override readonly name = 'PurifyError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get grpcStatus(): status {
    return GRPC_STATUS[this.code];
  }

  static invalidArgument(message: string): PurifyError {
    return new PurifyError(ErrorCode.InvalidArgument, message);
  }

  static notFound(message: string): PurifyError {
    return new PurifyError(ErrorCode.NotFound, message);
  }

  static failedPrecondition(message: string): PurifyError {
    return new PurifyError(ErrorCode.FailedPrecondition, message);
  }

  static unimplemented(message: string): PurifyError {
    return new PurifyError(ErrorCode.Unimplemented, message);
  }

  /**
   * Wraps anything caught into a PurifyError: PurifyErrors pass through, gRPC
   * errors from a downstream call keep their code, everything else is INTERNAL.
   */
  static wrap(err: unknown, context?: string): PurifyError {
    if (err instanceof PurifyError) return err;
    const prefix = context ? `${context}: ` : '';
    if (isServiceError(err)) {
      const code = FROM_GRPC_STATUS.get(err.code) ?? ErrorCode.Internal;
      return new PurifyError(code, `${prefix}${err.details || err.message}`, { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new PurifyError(ErrorCode.Internal, `${prefix}${message}`, { cause: err });
  }
}

/** True for the error objects grpc-js hands to client callbacks. */
export function isServiceError(err: unknown): err is ServiceError {
  return (
    err instanceof Error &&
    typeof (err as Partial<ServiceError>).code === 'number' &&
    'metadata' in err
  );
}

/** The error object grpc-js expects in a handler callback / stream `destroy`. */
export function toGrpcError(err: PurifyError): Partial<ServiceError> {
  return {
    name: err.name,
    code: err.grpcStatus,
    // INTERNAL errors say what failed, never how (no stack over the wire).
    details: err.message,
    message: err.message,
    metadata: new Metadata(),
  };
}

/** Maps a grpc-js status number to our ErrorCode (UNKNOWN and the rest become Internal). */
export function errorCodeOf(grpcStatus: number): ErrorCode {
  return FROM_GRPC_STATUS.get(grpcStatus) ?? ErrorCode.Internal;
}
