import { AgentServiceClient, ReliabilityServiceClient, SegmenterServiceClient, TrainerServiceService, type TrainerServiceServer } from '@purify/proto';
import { createClient, opt, runService, serverSchema, serverStream, unary, validate, type DomainHandlers, type ServiceDefinitionSpec } from '@purify/runtime';
import { METHODS } from '@purify/adaptation';
import { initTrainingBackend } from '@purify/training';
import { JobManager } from './jobs';

const schema = {
  ...serverSchema('trainer'),
  artifactsDir: opt.directory('Artifact store root (shared with the segmenter); jobs and checkpoints live in <dir>/jobs', 'artifacts', 'write'),
  segmenterAddresses: opt.addresses('Segmenter replicas to call (round-robin)', ['127.0.0.1:50151']),
  reliabilityAddresses: opt.addresses('Reliability replicas to call (round-robin)', ['127.0.0.1:50152']),
  agentAddresses: opt.addresses('Agent replicas to call (round-robin)', ['127.0.0.1:50153']),
  inference: opt.oneOf('Where round teachers predict and reliability is scored: remote = the segmenter and reliability services; local = in this process (TensorFlow.js; single node, tests)', ['remote', 'local'] as const, 'remote'),
  trainingWorkers: opt.int("Worker threads for a job's training steps (data-parallel, docs/parallel-training.md); 0 = automatic: 2 on wasm with ≥ 2 cores, else in process", 0, { min: 0, max: 64 }),
  callTimeoutMs: opt.int('Deadline of each call to another service, ms', 600_000, { min: 100, max: 86_400_000 }),
  callAttempts: opt.int('Attempts per call to another service when it is unreachable (UNAVAILABLE), before the job fails', 5, { min: 1, max: 100 }),
  callBackoffMs: opt.int('Backoff before the second attempt, ms (doubles each attempt)', 500, { min: 1, max: 600_000 }),
};

export const trainerService: ServiceDefinitionSpec<typeof schema> = {
  kind: 'trainer',
  schema,
  build: async (config, logger) => {
    // tensorflow(-gpu) → wasm with the purify training kernels → cpu, reported in GetInfo.
    const backend = await initTrainingBackend('auto');
    for (const note of backend.notes) logger.info('training backend', { note });
    const clientSettings = (addresses: readonly string[]) => ({ addresses, defaultTimeoutMs: config.callTimeoutMs, maxMessageBytes: Math.max(config.maxReceiveMessageBytes, config.maxSendMessageBytes) });
    const segmenter = createClient(SegmenterServiceClient, 'segmenter', clientSettings(config.segmenterAddresses));
    const reliability = createClient(ReliabilityServiceClient, 'reliability', clientSettings(config.reliabilityAddresses));
    const agent = createClient(AgentServiceClient, 'agent', clientSettings(config.agentAddresses));
    const jobs = new JobManager(
      {
        artifactsDir: config.artifactsDir,
        inference: config.inference,
        trainingWorkers: config.trainingWorkers === 0 ? undefined : config.trainingWorkers,
        segmenter,
        reliability,
        agent,
        addresses: { segmenter: config.segmenterAddresses, reliability: config.reliabilityAddresses, agent: config.agentAddresses },
        retry: { attempts: config.callAttempts, backoffMs: config.callBackoffMs, timeoutMs: config.callTimeoutMs },
      },
      logger,
    );
    jobs.open();
    return {
      definition: TrainerServiceService,
      capabilities: () => ({ 'tfjs.backend': backend.backend, 'tfjs.kernels': backend.wasmKernels, 'trainer.methods': METHODS.join(','), 'trainer.inference': config.inference }),
      onShutdown: async () => {
        await jobs.close();
        segmenter.close();
        reliability.close();
        agent.close();
      },
      implementation: (env): DomainHandlers<TrainerServiceServer> => ({
        startJob: unary(env, 'StartJob', (req) => {
          const spec = validate.required(req.spec, 'spec');
          if (spec.jobId !== '') validate.identifier(spec.jobId, 'spec.job_id');
          return jobs.start(spec);
        }),
        getJob: unary(env, 'GetJob', (req) => jobs.get(validate.identifier(req.jobId, 'job_id'))),
        listJobs: unary(env, 'ListJobs', (req) => ({ jobs: jobs.list(req.states) })),
        cancelJob: unary(env, 'CancelJob', (req) => jobs.cancel(validate.identifier(req.jobId, 'job_id'), req.reason)),
        watchJob: serverStream(env, 'WatchJob', async (req, send, ctx) => {
          validate.identifier(req.jobId, 'job_id');
          await jobs.watch(req.jobId, Number(req.fromSequence), send, ctx.signal);
        }),
      }),
    };
  },
};

export function main(argv: readonly string[]): void {
  runService(trainerService, argv);
}
