import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DType, SegmenterServiceClient, type SegmentRequest, type SegmentResponse } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { segmenterService } from '../src';

let server: RunningServer;
let client: SegmenterServiceClient;

beforeAll(async () => {
  server = await startInProcess(segmenterService, ['--port', '0', '--artifacts-dir', mkdtempSync(join(tmpdir(), 'seg-'))]);
  client = createClient(SegmenterServiceClient, 'segmenter', { addresses: [server.address], defaultTimeoutMs: 5000 });
});
afterAll(async () => {
  client.close();
  await server.shutdown();
});

const volume = {
  shapeZyx: [2, 16, 16],
  spacingXyzMm: [1, 1, 3],
  originLpsMm: [0, 0, 0],
  directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  dtype: DType.DTYPE_INT16,
  modality: 1,
  caseId: 'c',
};

/** Sends `messages` on a Segment stream and resolves with the status it ends with. */
function segment(messages: SegmentRequest[]): Promise<ServiceError | null> {
  return new Promise((resolve) => {
    const call: ClientDuplexStream<SegmentRequest, SegmentResponse> = client.segment({ deadline: Date.now() + 5000 });
    call.on('data', () => undefined);
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => resolve(null));
    messages.forEach((m) => call.write(m));
    call.end();
  });
}

describe('segmenter service', () => {
  it('lists its service through reflection', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.SegmenterService');
  });

  it.each([
    // [case, stream messages, grpc status, exact details]
    ['volume with a zero dim', [{ payload: { $case: 'setup', setup: { model: { name: 'm', version: 1 }, volume: { ...volume, shapeZyx: [0, 128, 128] } } } }], 3, '`setup.volume.shape_zyx` must have 3 positive dims [z, y, x], got [0, 128, 128]'],
    ['chunk before setup', [{ payload: { $case: 'chunk', chunk: { byteOffset: 0, data: Buffer.alloc(4) } } }], 3, '`payload` must start with a `setup` message before any `chunk`, got "chunk"'],
    ['no model', [{ payload: { $case: 'setup', setup: { volume } } }], 3, '`setup.model` is required, got nothing'],
    ['a well-formed request', [{ payload: { $case: 'setup', setup: { model: { name: 'm', version: 1 }, volume } } }], 12, 'SegmenterService.Segment is not implemented yet; it arrives with issue #4 (segmentation model and segmenter service)'],
  ] as [string, SegmentRequest[], number, string][])('Segment: %s', async (_name, messages, code, details) => {
    const err = await segment(messages);
    expect(err?.code).toBe(code);
    expect(err?.details).toBe(details);
  });

  it.each([
    // [case, request, error code, exact message]
    ['path-like model name', { ref: { name: '../etc', version: 1 } }, 'INVALID_ARGUMENT', 'loadModel failed: `ref.name` must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "../etc"'],
    ['well-formed', { ref: { name: 'source-ct', version: 1 } }, 'UNIMPLEMENTED', 'loadModel failed: SegmenterService.LoadModel is not implemented yet; it arrives with issue #4 (segmentation model and segmenter service)'],
  ])('LoadModel: %s', async (_name, request, code, message) => {
    await expect(unaryCall(client, 'loadModel', request)).rejects.toMatchObject({ code, message });
  });
});
