/**
 * Errors of the policy registry. Their codes are the gRPC status names the
 * agent service answers with, so the service maps them one to one without the
 * registry depending on the transport.
 */
export const RegistryErrorCode = {
  InvalidArgument: 'INVALID_ARGUMENT',
  NotFound: 'NOT_FOUND',
  AlreadyExists: 'ALREADY_EXISTS',
  FailedPrecondition: 'FAILED_PRECONDITION',
} as const;
export type RegistryErrorCode = (typeof RegistryErrorCode)[keyof typeof RegistryErrorCode];

export class RegistryError extends Error {
  override readonly name = 'RegistryError';

  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `[${value.join(', ')}]`;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

/** INVALID_ARGUMENT in the house format: "`field` expected, got received". */
export function invalid(field: string, expected: string, received: unknown): RegistryError {
  return new RegistryError(RegistryErrorCode.InvalidArgument, `\`${field}\` ${expected}, got ${show(received)}`);
}

export function notFound(message: string): RegistryError {
  return new RegistryError(RegistryErrorCode.NotFound, message);
}

export function failedPrecondition(message: string): RegistryError {
  return new RegistryError(RegistryErrorCode.FailedPrecondition, message);
}

export function alreadyExists(message: string): RegistryError {
  return new RegistryError(RegistryErrorCode.AlreadyExists, message);
}
