import { ReliabilityServiceService, SegmenterServiceClient, type ReliabilityServiceServer } from '@purify/proto';
import { bidiStream, createClient, opt, runService, serverSchema, unary, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';
import { featureSchemaToProto, runScore } from './score';

const schema = {
  ...serverSchema('reliability'),
  segmenterAddresses: opt.addresses('Segmenter replicas to call (round-robin)', ['127.0.0.1:50151']),
  maxVolumeBytes: opt.int('Largest image a Score call accepts, bytes', 256 * 1024 * 1024, { min: 1, max: 2 ** 32 }),
  segmenterTimeoutMs: opt.int("Upper bound of each segmenter call, ms (the caller's own deadline wins when sooner)", 600_000, { min: 100, max: 86_400_000 }),
  patchBatchSize: opt.int('Anchor patches per PredictPatches call when the request says 0', 64, { min: 1, max: 4096 }),
  patchConcurrency: opt.int('PredictPatches calls in flight per Score call', 2, { min: 1, max: 64 }),
  mapChunkBytes: opt.int('Bytes per streamed map chunk', 1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
};

export const reliabilityService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'reliability',
  schema,
  build: async (config) => {
    const segmenter = createClient(SegmenterServiceClient, 'segmenter', {
      addresses: config.segmenterAddresses,
      defaultTimeoutMs: config.segmenterTimeoutMs,
      maxMessageBytes: Math.max(config.maxReceiveMessageBytes, config.maxSendMessageBytes),
    });
    return {
      definition: ReliabilityServiceService,
      capabilities: () => ({ 'reliability.feature_schema': featureSchemaToProto().version, 'reliability.segmenter': config.segmenterAddresses.join(',') }),
      onShutdown: () => segmenter.close(),
      implementation: (env): DomainHandlers<ReliabilityServiceServer> => ({
        getFeatureSchema: unary(env, 'GetFeatureSchema', () => featureSchemaToProto()),
        score: bidiStream(env, 'Score', (requests, send, ctx) => runScore(requests, send, ctx, { segmenter, ...config })),
      }),
    };
  },
};

export function main(argv: readonly string[]): void {
  runService(reliabilityService, argv);
}
