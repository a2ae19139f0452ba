import { DType, ReliabilityServiceClient, type ScoreRequest, type ScoreResponse } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { reliabilityService } from '../src';

let server: RunningServer;
let client: ReliabilityServiceClient;

beforeAll(async () => {
  server = await startInProcess(reliabilityService, ['--port', '0']);
  client = createClient(ReliabilityServiceClient, 'reliability', { addresses: [server.address], defaultTimeoutMs: 5000 });
});
afterAll(async () => {
  client.close();
  await server.shutdown();
});

const image = {
  shapeZyx: [1, 64, 64],
  spacingXyzMm: [1, 1, 1],
  originLpsMm: [0, 0, 0],
  directionLps: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  dtype: DType.DTYPE_FLOAT32,
  modality: 2,
  caseId: 'c',
};
const model = { name: 'source', version: 1 };
const config = { patchSize: 32, stride: 16, borderMode: 1, splitByClass: false, flipView: false, appearanceView: false, seed: 0, patchBatchSize: 0 };

function score(messages: ScoreRequest[]): Promise<ServiceError | null> {
  return new Promise((resolve) => {
    const call: ClientDuplexStream<ScoreRequest, ScoreResponse> = client.score({ deadline: Date.now() + 5000 });
    call.on('data', () => undefined);
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => resolve(null));
    messages.forEach((m) => call.write(m));
    call.end();
  });
}

const setup = (override: object): ScoreRequest => ({ payload: { $case: 'setup', setup: { model, image, config, maps: [], round: 0, ...override } } });

describe('reliability service', () => {
  it('lists its service through reflection', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.ReliabilityService');
  });

  it.each([
    // [case, setup override, grpc status, exact details]
    ['stride 0', { config: { ...config, stride: 0 } }, 3, '`setup.config.stride` must be > 0, got 0'],
    ['no config', { config: undefined }, 3, '`setup.config` is required, got nothing'],
    ['float image with 2 dims', { image: { ...image, shapeZyx: [64, 64] } }, 3, '`setup.image.shape_zyx` must have 3 positive dims [z, y, x], got [64, 64]'],
    ['well-formed', {}, 12, 'ReliabilityService.Score is not implemented yet; it arrives with issue #5 (reliability service)'],
  ])('Score: %s', async (_name, override, code, details) => {
    const err = await score([setup(override)]);
    expect(err?.code).toBe(code);
    expect(err?.details).toBe(details);
  });

  it('refuses an empty stream', async () => {
    const err = await score([]);
    expect(err?.details).toBe('`payload` must contain a `setup` message, got "an empty stream"');
  });

  it('GetFeatureSchema names the issue that brings it', async () => {
    await expect(unaryCall(client, 'getFeatureSchema', {})).rejects.toMatchObject({ code: 'UNIMPLEMENTED' });
  });
});
