import type { ServiceDefinition } from '@grpc/grpc-js';
import { PurifyError } from './errors';

/**
 * grpc-js answers INTERNAL when a request fails to decode (malformed protobuf,
 * a uint64 above 2^53 − 1 that ts-proto cannot hold in a number). That is the
 * client's mistake, so the server should say INVALID_ARGUMENT and why. Decoding
 * therefore never throws here: a failure becomes an {@link UndecodableRequest}
 * that the handler wrappers turn into INVALID_ARGUMENT before any domain code runs.
 */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** A copy of `definition` whose request decoders return {@link UndecodableRequest} instead of throwing. */
export function withSafeDecoding(definition: ServiceDefinition): ServiceDefinition {
  const safe: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    safe[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return decode(bytes) as unknown;
        } catch (err) {
          return new UndecodableRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return safe as ServiceDefinition;
}

/** Throws INVALID_ARGUMENT if `request` could not be decoded; returns it otherwise. */
export function decoded<T>(request: T, method: string): T {
  if (request instanceof UndecodableRequest) {
    const hint = /MAX_SAFE_INTEGER/.test(request.reason)
      ? 'a 64-bit integer field exceeds 2^53 - 1, the largest value this service accepts'
      : 'the bytes are not a valid protobuf encoding of the request message';
    throw PurifyError.invalidArgument(`${method}: the request could not be decoded: ${hint} (${request.reason})`);
  }
  return request;
}
