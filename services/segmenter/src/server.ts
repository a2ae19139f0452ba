import { SegmenterServiceService, type SegmenterServiceServer } from '@purify/proto';
import { bidiStream, readSetup, notYetImplemented, opt, runService, serverSchema, unary, validate, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';

const ISSUE = 'issue #4 (segmentation model and segmenter service)';

const schema = {
  ...serverSchema('segmenter'),
  artifactsDir: opt.directory('Artifact store root; models live in <dir>/models/<name>/<version>', 'artifacts', 'write'),
  maxVolumeBytes: opt.int('Largest volume a Segment call accepts, bytes', 512 * 1024 * 1024, { min: 1, max: 2 ** 32 }),
};

export const segmenterService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'segmenter',
  schema,
  build: async (config) => ({
    definition: SegmenterServiceService,
    capabilities: () => ({ 'onnx.provider': 'cpu' }),
    implementation: (env): DomainHandlers<SegmenterServiceServer> => ({
      loadModel: unary(env, 'LoadModel', (req) => {
        validate.modelRef(req.ref, 'ref');
        throw notYetImplemented('SegmenterService', 'LoadModel', ISSUE);
      }),
      unloadModel: unary(env, 'UnloadModel', (req) => {
        validate.modelRef(req.ref, 'ref');
        throw notYetImplemented('SegmenterService', 'UnloadModel', ISSUE);
      }),
      listModels: unary(env, 'ListModels', () => {
        throw notYetImplemented('SegmenterService', 'ListModels', ISSUE);
      }),
      segment: bidiStream(env, 'Segment', async (requests, _send, ctx) => {
        const setup = await readSetup(requests, ctx);
        validate.modelRef(setup.model, 'setup.model');
        validate.volumeHeader(setup.volume, 'setup.volume', config.maxVolumeBytes);
        throw notYetImplemented('SegmenterService', 'Segment', ISSUE);
      }),
      predictPatches: unary(env, 'PredictPatches', (req) => {
        validate.modelRef(req.model, 'model');
        const patches = validate.required(req.patches, 'patches');
        if (patches.shape.length !== 4 || patches.shape.some((d) => d <= 0)) {
          throw validate.invalid('patches.shape', 'must be [n, c, y, x] with positive dims', patches.shape);
        }
        throw notYetImplemented('SegmenterService', 'PredictPatches', ISSUE);
      }),
    }),
  }),
};

export function main(argv: readonly string[]): void {
  runService(segmenterService, argv);
}
