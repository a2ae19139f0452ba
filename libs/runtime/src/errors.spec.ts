import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, PurifyError, errorCodeOf, toGrpcError } from './errors';

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new Metadata() });
}

describe('PurifyError', () => {
  it.each([
    // [what was caught, expected code, expected grpc status, expected message]
    [PurifyError.invalidArgument('`x` bad'), ErrorCode.InvalidArgument, status.INVALID_ARGUMENT, '`x` bad'],
    [PurifyError.notFound('no model m:3'), ErrorCode.NotFound, status.NOT_FOUND, 'no model m:3'],
    [serviceError(status.UNAVAILABLE, 'connection refused'), ErrorCode.Unavailable, status.UNAVAILABLE, 'connection refused'],
    [serviceError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ErrorCode.DeadlineExceeded, status.DEADLINE_EXCEEDED, 'Deadline exceeded'],
    [serviceError(status.UNKNOWN, 'weird'), ErrorCode.Internal, status.INTERNAL, 'weird'],
    [new TypeError('x is undefined'), ErrorCode.Internal, status.INTERNAL, 'x is undefined'],
    ['a string', ErrorCode.Internal, status.INTERNAL, 'a string'],
  ])('wraps %p', (caught, code, grpcStatus, message) => {
    const wrapped = PurifyError.wrap(caught);
    expect(wrapped.code).toBe(code);
    expect(wrapped.grpcStatus).toBe(grpcStatus);
    expect(wrapped.message).toBe(message);
  });

  it('keeps the cause and prefixes context', () => {
    const cause = new Error('disk full');
    const wrapped = PurifyError.wrap(cause, 'saving checkpoint');
    expect(wrapped.message).toBe('saving checkpoint: disk full');
    expect(wrapped.cause).toBe(cause);
  });

  it('never puts a stack trace on the wire', () => {
    const grpcError = toGrpcError(PurifyError.wrap(new Error('boom')));
    expect(grpcError.details).toBe('boom');
    expect(JSON.stringify(grpcError)).not.toContain('at ');
  });

  it('maps every status back and forth', () => {
    for (const code of Object.values(ErrorCode)) {
      expect(errorCodeOf(new PurifyError(code, '').grpcStatus)).toBe(code);
    }
  });
});
