import { Method, TrainerServiceService, type TrainerServiceServer } from '@purify/proto';
import { notYetImplemented, opt, runService, serverSchema, serverStream, unary, validate, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';

const ISSUE = 'issue #7 (trainer service and adaptation loop)';

const schema = {
  ...serverSchema('trainer'),
  artifactsDir: opt.directory('Artifact store root; jobs and checkpoints live in <dir>/jobs', 'artifacts', 'write'),
  segmenterAddresses: opt.addresses('Segmenter replicas to call (round-robin)', ['127.0.0.1:50151']),
  reliabilityAddresses: opt.addresses('Reliability replicas to call (round-robin)', ['127.0.0.1:50152']),
  agentAddresses: opt.addresses('Agent replicas to call (round-robin)', ['127.0.0.1:50153']),
};

export const trainerService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'trainer',
  schema,
  build: async () => ({
    definition: TrainerServiceService,
    implementation: (env): DomainHandlers<TrainerServiceServer> => ({
      startJob: unary(env, 'StartJob', (req) => {
        const spec = validate.required(req.spec, 'spec');
        if (spec.method === Method.METHOD_UNSPECIFIED || Method[spec.method] === undefined) {
          throw validate.invalid('spec.method', `must be one of ${Object.keys(Method).filter((k) => k.startsWith('METHOD_') && k !== 'METHOD_UNSPECIFIED').join(', ')}`, spec.method);
        }
        validate.nonEmptyString(validate.required(spec.source, 'spec.source').path, 'spec.source.path', 4096);
        throw notYetImplemented('TrainerService', 'StartJob', ISSUE);
      }),
      getJob: unary(env, 'GetJob', (req) => {
        validate.identifier(req.jobId, 'job_id');
        throw notYetImplemented('TrainerService', 'GetJob', ISSUE);
      }),
      listJobs: unary(env, 'ListJobs', () => {
        throw notYetImplemented('TrainerService', 'ListJobs', ISSUE);
      }),
      cancelJob: unary(env, 'CancelJob', (req) => {
        validate.identifier(req.jobId, 'job_id');
        throw notYetImplemented('TrainerService', 'CancelJob', ISSUE);
      }),
      watchJob: serverStream(env, 'WatchJob', async (req) => {
        validate.identifier(req.jobId, 'job_id');
        throw notYetImplemented('TrainerService', 'WatchJob', ISSUE);
      }),
    }),
  }),
};

export function main(argv: readonly string[]): void {
  runService(trainerService, argv);
}
