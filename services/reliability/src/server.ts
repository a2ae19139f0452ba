import { ReliabilityServiceService, type ReliabilityServiceServer } from '@purify/proto';
import { bidiStream, readSetup, notYetImplemented, opt, runService, serverSchema, unary, validate, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';

const ISSUE = 'issue #5 (reliability service)';

const schema = {
  ...serverSchema('reliability'),
  segmenterAddresses: opt.addresses('Segmenter replicas to call (round-robin)', ['127.0.0.1:50151']),
  maxVolumeBytes: opt.int('Largest image a Score call accepts, bytes', 256 * 1024 * 1024, { min: 1, max: 2 ** 32 }),
};

export const reliabilityService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'reliability',
  schema,
  build: async (config) => ({
    definition: ReliabilityServiceService,
    implementation: (env): DomainHandlers<ReliabilityServiceServer> => ({
      getFeatureSchema: unary(env, 'GetFeatureSchema', () => {
        throw notYetImplemented('ReliabilityService', 'GetFeatureSchema', ISSUE);
      }),
      score: bidiStream(env, 'Score', async (requests, _send, ctx) => {
        const setup = await readSetup(requests, ctx);
        validate.modelRef(setup.model, 'setup.model');
        validate.volumeHeader(setup.image, 'setup.image', config.maxVolumeBytes);
        const cfg = validate.required(setup.config, 'setup.config');
        if (cfg.stride <= 0) throw validate.invalid('setup.config.stride', 'must be > 0', cfg.stride);
        if (cfg.patchSize <= 0) throw validate.invalid('setup.config.patch_size', 'must be > 0', cfg.patchSize);
        throw notYetImplemented('ReliabilityService', 'Score', ISSUE);
      }),
    }),
  }),
};

export function main(argv: readonly string[]): void {
  runService(reliabilityService, argv);
}
