import { PassThrough } from 'node:stream';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { DataChunk } from '@purify/proto';
import { decoded, UndecodableRequest, withSafeDecoding } from './decoding';
import { ErrorCode, PurifyError } from './errors';
import { MessageReader } from './handlers';

const definition = {
  put: {
    path: '/t.T/Put',
    requestStream: true,
    responseStream: false,
    requestSerialize: (m: DataChunk) => Buffer.from(DataChunk.encode(m).finish()),
    requestDeserialize: (b: Buffer) => DataChunk.decode(b),
    responseSerialize: (m: unknown) => Buffer.from(String(m)),
    responseDeserialize: (b: Buffer) => b,
  },
} as unknown as ServiceDefinition;

describe('withSafeDecoding', () => {
  const decode = withSafeDecoding(definition)['put']!.requestDeserialize;

  it('decodes what the original decoder decodes, unchanged', () => {
    const bytes = Buffer.from(DataChunk.encode({ byteOffset: 4096, data: Buffer.from([1, 2, 3]) }).finish());
    expect(decode(bytes)).toEqual(DataChunk.decode(bytes));
  });

  it.each([
    ['a truncated varint', Buffer.from([0x08, 0xff])],
    ['byte_offset = 2^60', Buffer.from(DataChunk.encode({ byteOffset: 2 ** 60, data: Buffer.alloc(0) }).finish())],
  ])('returns an UndecodableRequest instead of throwing for %s', (_case, bytes) => {
    expect(() => definition['put']!.requestDeserialize(bytes) as unknown).toThrow();
    expect(decode(bytes)).toBeInstanceOf(UndecodableRequest);
  });
});

describe('decoded', () => {
  it.each([
    ['Value is larger than Number.MAX_SAFE_INTEGER', 'a 64-bit integer field exceeds 2^53 - 1'],
    ['index out of range: 3 + 10 > 4', 'not a valid protobuf encoding'],
  ])('turns "%s" into INVALID_ARGUMENT naming the cause', (reason, named) => {
    let thrown: unknown;
    try {
      decoded(new UndecodableRequest(reason), '/t.T/Put');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PurifyError);
    expect((thrown as PurifyError).code).toBe(ErrorCode.InvalidArgument);
    expect((thrown as PurifyError).message).toContain(named);
    expect((thrown as PurifyError).message).toContain('/t.T/Put');
  });

  it('passes a decoded request through', () => {
    const req = { jobId: 'j' };
    expect(decoded(req, 'm')).toBe(req);
  });
});

describe('MessageReader', () => {
  it('refuses a streamed message that did not decode, after the ones that did', async () => {
    const stream = new PassThrough({ objectMode: true });
    const reader = new MessageReader<object>(stream, 16, '/t.T/Put');
    stream.write({ byteOffset: 0 });
    stream.write(new UndecodableRequest('Value is larger than Number.MAX_SAFE_INTEGER'));
    await expect(reader.next()).resolves.toEqual({ byteOffset: 0 });
    await expect(reader.next()).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
  });
});
