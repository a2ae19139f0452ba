import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobSpec, JobState, Method, RlAblation, TargetLoss, TrainerServiceClient, TrainingHyperparameters, type Job, type JobEvent } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import { ModelRegistry } from '@purify/artifacts';
import { nativeAddon } from '@purify/models';
import type { ServiceError } from '@grpc/grpc-js';
import { trainerService } from '../src';
import { stateOf, watch, writeData } from './fixtures';

/**
 * The trainer through real gRPC (in-process servers on port 0, always shut
 * down), with `--inference local` so the teacher and reliability run inside the
 * trainer; the agent is never reachable here (127.0.0.1:1).
 */

let data: string;
let artifacts: string;
let server: RunningServer;
let client: TrainerServiceClient;

const FLAGS = ['--port', '0', '--inference', 'local', '--agent-addresses', '127.0.0.1:1', '--call-attempts', '2', '--call-backoff-ms', '10', '--call-timeout-ms', '2000', '--shutdown-grace-ms', '200'];

async function start(dir: string, extra: string[] = []): Promise<{ server: RunningServer; client: TrainerServiceClient }> {
  const s = await startInProcess(trainerService, [...FLAGS, '--artifacts-dir', dir, ...extra]);
  return { server: s, client: createClient(TrainerServiceClient, 'trainer', { addresses: [s.address], defaultTimeoutMs: 10_000 }) };
}

function spec(jobId: string, method: Method, over: Partial<JobSpec> = {}): JobSpec {
  return JobSpec.fromPartial({
    jobId,
    method,
    source: { path: join(data, 'ct'), modality: 1, caseIds: [] },
    target: { path: join(data, 'mr'), modality: 2, caseIds: [] },
    hyperparameters: { rounds: 2, stepsPerRound: 2, batchSize: 2, imageSizeYx: [16, 16] },
    seed: 3,
    ...over,
  });
}

async function finished(c: TrainerServiceClient, id: string): Promise<{ job: Job; events: JobEvent[] }> {
  const events = await watch(c, id);
  return { job: await unaryCall(c, 'getJob', { jobId: id }), events };
}

beforeAll(async () => {
  data = writeData();
  artifacts = mkdtempSync(join(tmpdir(), 'trainer-artifacts-'));
  ({ server, client } = await start(artifacts));
});
afterAll(async () => {
  client.close();
  await server.shutdown();
  rmSync(data, { recursive: true, force: true });
  rmSync(artifacts, { recursive: true, force: true });
});

describe('trainer service: job specs', () => {
  it('lists its service through reflection', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.TrainerService');
  });

  it('reports its training backend and which kernels it trains with (native where the addon is built)', async () => {
    const info = await unaryCall(client, 'getInfo', {});
    const native = nativeAddon().status.loaded;
    // wasm here (the native tfjs-node packages cannot install on this machine); elsewhere the purify kernels are not used.
    const wasm = info.capabilities['tfjs.backend'] === 'wasm';
    expect(info.capabilities['tfjs.kernels']).toBe(wasm ? (native ? 'purify-native' : 'purify') : 'n/a');
  });

  it.each([
    // [case, spec change (undefined = no spec), exact message]
    ['no spec', undefined, 'startJob failed: `spec` is required, got nothing'],
    ['unset method', { method: Method.METHOD_UNSPECIFIED }, 'startJob failed: `spec.method` must be one of METHOD_SOURCE_ONLY, METHOD_NAIVE, METHOD_CONFIDENCE, METHOD_ENTROPY, METHOD_CONSENSUS, METHOD_RULE, METHOD_RL, METHOD_ORACLE, METHOD_CBST, got 0'],
    ['no source dataset', { source: undefined }, 'startJob failed: `spec.source` is required, got nothing'],
    ['a missing source dataset', { source: { path: '/nonexistent/ct', modality: 1, caseIds: [] } }, 'startJob failed: `spec.source.path` must name an existing dataset folder, got "/nonexistent/ct"'],
    ['no target dataset', { target: undefined }, 'startJob failed: `spec.target` is required, got nothing'],
    ['target classes that differ from the source', { target: { path: 'MR_LIVER', modality: 2, caseIds: [] } }, "startJob failed: `spec.target` must declare the source's classes [0:background, 1:organ] (or none), got \"[0:background, 1:liver]\""],
    ['oracle labels for a non-oracle method', { oracleLabels: { path: 'ORACLE', modality: 2, caseIds: [] } }, 'startJob failed: `spec.oracle_labels` may only be given for METHOD_ORACLE (target labels never reach the other methods); method is METHOD_NAIVE, got "ORACLE"'],
    ['an EMA decay of 1.5', { hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 1, stepsPerRound: 1, batchSize: 2, learningRate: 0, targetWeight: 0, emaDecay: 1.5, imageSizeYx: [], threshold: 0, pixelGate: 0 }) }, 'startJob failed: `spec.hyperparameters.ema_decay` must be a number in [0, 1), got 1.5'],
    ['a batch of one for two domains', { hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 1, stepsPerRound: 1, batchSize: 1, learningRate: 0, targetWeight: 0, emaDecay: 0, imageSizeYx: [], threshold: 0, pixelGate: 0 }) }, 'startJob failed: `spec.hyperparameters.batch_size` must be an integer in [2, 1024] (a batch holds source and target slices), got 1'],
    ['an image size that is no multiple of 8', { hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 1, stepsPerRound: 1, batchSize: 2, learningRate: 0, targetWeight: 0, emaDecay: 0, imageSizeYx: [20, 16], threshold: 0, pixelGate: 0 }) }, 'startJob failed: `spec.hyperparameters.image_size_yx` must be empty or two multiples of 8 in [8, 4096] ([y, x] pixels), got [20, 16]'],
    ['an unknown reliability setting', { reliability: { patch: '8' } }, 'startJob failed: `spec.reliability["patch"]` must be one of patch_size, stride, border_mode, split_by_class, flip_view, appearance_view, seed, patch_batch_size, got "patch"'],
    ['an unknown starting model', { initModel: { name: 'nope', version: 0 } }, /^startJob failed: `spec.init_model` must name a model version in the registry \(.*nope.*\), got "nope:0"$/],
    ['a policy for a baseline', { agentTarget: { $case: 'policy' as const, policy: { name: 'p', version: 1 } } }, 'startJob failed: `spec.policy` is only used by METHOD_RL, got "naive"'],
    ['an rl ablation for a baseline', { rlAblation: RlAblation.RL_ABLATION_RANDOM_POLICY }, 'startJob failed: `spec.rl_ablation` is only used by METHOD_RL, got "RL_ABLATION_RANDOM_POLICY"'],
    ['an unknown rl ablation', { rlAblation: 7 as RlAblation }, 'startJob failed: `spec.rl_ablation` must be one of RL_ABLATION_NONE, RL_ABLATION_UNTRAINED_POLICY, RL_ABLATION_RANDOM_POLICY, RL_ABLATION_CONFIDENCE_FEATURES, got 7'],
    ['the uniform target loss for naive', { hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 1, stepsPerRound: 1, batchSize: 2, targetLoss: TargetLoss.TARGET_LOSS_UNIFORM }) }, 'startJob failed: `spec.hyperparameters.target_loss` is only used by METHOD_CBST, METHOD_RULE and METHOD_RL (the others weigh every pixel alike), got "TARGET_LOSS_UNIFORM"'],
    ['an unknown target loss', { method: Method.METHOD_CBST, hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 1, stepsPerRound: 1, batchSize: 2, targetLoss: 9 as TargetLoss }) }, 'startJob failed: `spec.hyperparameters.target_loss` must be one of TARGET_LOSS_CLASS_BALANCED, TARGET_LOSS_UNIFORM, TARGET_LOSS_CLASS_MASS, got 9'],
    ['promote_policy for a baseline', { promotePolicy: true }, 'startJob failed: `spec.promote_policy` is only used by METHOD_RL, got "naive"'],
    ['promoting under the random-policy ablation', { method: Method.METHOD_RL, promotePolicy: true, rlAblation: RlAblation.RL_ABLATION_RANDOM_POLICY }, 'startJob failed: `spec.promote_policy` needs a policy to promote; RL_ABLATION_RANDOM_POLICY asks no policy, got "RL_ABLATION_RANDOM_POLICY"'],
    ['a frozen policy that is also trained', { method: Method.METHOD_RL, freezePolicy: true, simulatedShiftPretraining: true, onlineFinetuning: true }, 'startJob failed: `spec.freeze_policy` acts with the policy as it is and cannot be combined with training it or with an ablation, got "simulated_shift_pretraining, online_finetuning"'],
    ['a malformed job id', { jobId: 'a/b' }, 'startJob failed: `spec.job_id` must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "a/b"'],
  ])('StartJob refuses %s with INVALID_ARGUMENT', async (_name, change, message) => {
    const fixed = change && {
      ...change,
      ...('target' in change && change.target ? { target: { ...change.target, path: change.target.path.replace('MR_LIVER', join(data, 'mr-liver')) } } : {}),
      ...('oracleLabels' in change && change.oracleLabels ? { oracleLabels: { ...change.oracleLabels, path: join(data, 'mr-oracle', 'labelsTr') } } : {}),
    };
    const s = fixed === undefined ? undefined : { ...spec('bad', Method.METHOD_NAIVE), ...fixed };
    const err = await unaryCall(client, 'startJob', { spec: s }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
    if (typeof message === 'string') expect((err as Error).message).toBe(message.replace('"ORACLE"', JSON.stringify(join(data, 'mr-oracle', 'labelsTr'))));
    else expect((err as Error).message).toMatch(message);
  });

  it('GetJob and CancelJob of an unknown job are NOT_FOUND; WatchJob refuses a malformed id on the stream', async () => {
    await expect(unaryCall(client, 'getJob', { jobId: 'missing' })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'getJob failed: job "missing" does not exist' });
    await expect(unaryCall(client, 'cancelJob', { jobId: 'missing', reason: '' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const err = await new Promise<ServiceError>((resolve) => {
      const call = client.watchJob({ jobId: 'a/b', fromSequence: 0 }, { deadline: Date.now() + 5000 });
      call.on('data', () => undefined);
      call.on('error', resolve);
    });
    expect(err.code).toBe(3);
    expect(err.details).toBe('`job_id` must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "a/b"');
  });
});

describe('trainer service: jobs', () => {
  it('runs a naive job to completion: events, persistence, idempotent StartJob, published model with provenance', async () => {
    const job = await unaryCall(client, 'startJob', { spec: spec('naive-1', Method.METHOD_NAIVE) });
    expect(job).toMatchObject({ jobId: 'naive-1', progress: { rounds: 2, steps: 2 } });
    const { job: done, events } = await finished(client, 'naive-1');
    expect(done.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    // Sequences 1, 2, … without gaps; states PENDING → RUNNING → SUCCEEDED.
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.map(stateOf).filter((s) => s !== undefined)).toEqual([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED]);
    // Every state event carries the job in that state; the terminal one the outcome GetJob reports.
    const stateEvents = events.filter((e) => e.event?.$case === 'state');
    expect(stateEvents.map((e) => e.job?.state)).toEqual([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED]);
    expect(stateEvents[2]!.job).toMatchObject({ jobId: 'naive-1', resultModel: done.resultModel, message: done.message });
    expect(events.filter((e) => e.event?.$case !== 'state').every((e) => e.job === undefined)).toBe(true);
    const steps = events.flatMap((e) => (e.event?.$case === 'step' ? [`${e.event.step.round}.${e.event.step.step}`] : []));
    expect(steps).toEqual(['1.1', '1.2', '2.1', '2.2']);
    const weights = events.flatMap((e) => (e.event?.$case === 'weights' ? [e.event.weights] : []));
    // Naive: every target pixel at weight 1 (2 volumes × 2 slices × 16 × 16 pixels → histogram's last bin).
    expect(weights.map((w) => [w.round, w.mean, w.zeroFraction, Number(w.histogram[9])])).toEqual([
      [1, 1, 0, 1024],
      [2, 1, 0, 1024],
    ]);
    const rounds = events.flatMap((e) => (e.event?.$case === 'round' ? [e.event.round] : []));
    expect(rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(Object.keys(rounds[0]!.timingsMs)).toEqual(expect.arrayContaining(['export', 'teacher', 'training', 'metrics']));
    expect(rounds[0]!.metrics.map((m) => m.name)).toEqual(expect.arrayContaining(['source_val_dice', 'teacher_student_agreement', 'mean_weight']));
    // The log warns that the target's own labels are ignored.
    expect(events.some((e) => e.event?.$case === 'log' && e.event.log.includes('they are ignored — adaptation never reads target labels'))).toBe(true);

    // Published with provenance.
    expect(done.resultModel).toEqual({ name: 'adapted-naive-1', version: 1 });
    const { meta } = new ModelRegistry(artifacts).get('adapted-naive-1', 1);
    expect(meta.provenance).toMatchObject({ job: 'naive-1', method: 'naive', seed: '3', source: join(data, 'ct'), target: join(data, 'mr'), inference: 'local' });
    expect(meta.normalization).toEqual({ kind: 'percentile', low: 0.5, high: 99.5 });

    // Persisted: job.json and the events log.
    const stored = JSON.parse(readFileSync(join(artifacts, 'jobs', 'naive-1', 'job.json'), 'utf8')) as { state: string };
    expect(stored.state).toBe('JOB_STATE_SUCCEEDED');
    expect(readFileSync(join(artifacts, 'jobs', 'naive-1', 'events.log'), 'utf8').trim().split('\n').length).toBe(events.length);
    expect(existsSync(join(artifacts, 'jobs', 'naive-1', 'checkpoints', 'last', 'manifest.json'))).toBe(true);

    // Idempotent: the same spec returns the job; another spec under the id is refused.
    expect(await unaryCall(client, 'startJob', { spec: spec('naive-1', Method.METHOD_NAIVE) })).toMatchObject({ jobId: 'naive-1', state: JobState.JOB_STATE_SUCCEEDED });
    await expect(unaryCall(client, 'startJob', { spec: spec('naive-1', Method.METHOD_ENTROPY) })).rejects.toMatchObject({
      code: 'ALREADY_EXISTS',
      message: 'startJob failed: job "naive-1" already exists with a different spec; choose another job_id',
    });
    // WatchJob from a sequence replays the rest only; ListJobs filters by state.
    const tail = await watch(client, 'naive-1', events.length - 1);
    expect(tail.map((e) => e.sequence)).toEqual([events.length - 1, events.length]);
    const { jobs } = await unaryCall(client, 'listJobs', { states: [JobState.JOB_STATE_SUCCEEDED] });
    expect(jobs.map((j) => j.jobId)).toContain('naive-1');
  });

  it('cancels a running job at the next safe point, leaving its state consistent', async () => {
    await unaryCall(client, 'startJob', { spec: spec('cancel-1', Method.METHOD_SOURCE_ONLY, { hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 50, stepsPerRound: 2, batchSize: 2, imageSizeYx: [16, 16], learningRate: 0, targetWeight: 0, emaDecay: 0, threshold: 0, pixelGate: 0 }) }) });
    await watch(client, 'cancel-1', 0, (e) => e.event?.$case === 'round');
    const res = await unaryCall(client, 'cancelJob', { jobId: 'cancel-1', reason: 'test cancel' });
    expect(res.jobId).toBe('cancel-1');
    const { job } = await finished(client, 'cancel-1');
    expect(job.state).toBe(JobState.JOB_STATE_CANCELLED);
    expect(job.message).toMatch(/^test cancel \(after \d+ completed rounds; the round checkpoint is consistent\)$/);
    expect(existsSync(join(artifacts, 'jobs', 'cancel-1', 'checkpoints', 'last', 'manifest.json'))).toBe(true);
    // Cancelling again changes nothing.
    expect((await unaryCall(client, 'cancelJob', { jobId: 'cancel-1', reason: 'again' })).state).toBe(JobState.JOB_STATE_CANCELLED);
  });

  it('fails an rl job whose agent is unreachable with a clear, resumable reason', async () => {
    await unaryCall(client, 'startJob', { spec: spec('rl-down', Method.METHOD_RL) });
    const { job } = await finished(client, 'rl-down');
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.message).toMatch(/^agent at 127\.0\.0\.1:1 unreachable: ListPolicies failed 2 times \(last: UNAVAILABLE .*\) — resume with StartJob and the same job_id and spec once the cause is fixed$/);
  });

  it('resumes a job after the server stops mid-job: a new server continues it from the last round checkpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-resume-'));
    const a = await start(dir);
    const s = spec('resume-1', Method.METHOD_ENTROPY, { hyperparameters: TrainingHyperparameters.fromPartial({ rounds: 6, stepsPerRound: 2, batchSize: 2, imageSizeYx: [16, 16], learningRate: 0, targetWeight: 0, emaDecay: 0, threshold: 0, pixelGate: 0 }) });
    try {
      await unaryCall(a.client, 'startJob', { spec: s });
      await watch(a.client, 'resume-1', 0, (e) => e.event?.$case === 'round' && e.event.round.round === 1);
    } finally {
      a.client.close();
      await a.server.shutdown();
    }
    const stopped = JSON.parse(readFileSync(join(dir, 'jobs', 'resume-1', 'job.json'), 'utf8')) as { state: string };
    // Stopped mid-job: still RUNNING on disk, which is what makes the next server resume it.
    expect(stopped.state).toBe('JOB_STATE_RUNNING');
    const b = await start(dir);
    try {
      const { job, events } = await finished(b.client, 'resume-1');
      expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
      const rounds = events.flatMap((e) => (e.event?.$case === 'round' ? [e.event.round.round] : []));
      // Rounds before the stop were checkpointed and are not redone; the unfinished one is, so every round appears once.
      expect(rounds).toEqual([1, 2, 3, 4, 5, 6]);
      expect(job.resumes).toBe(1);
      expect(events.some((e) => e.event?.$case === 'log' && /^resumed from the checkpoint after round [1-5]$/.test(e.event.log))).toBe(true);
      expect(job.resultModel?.name).toBe('adapted-resume-1');
    } finally {
      b.client.close();
      await b.server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('trainer service: remote inference', () => {
  it('fails a job whose segmenter is unreachable, naming the service and address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-remote-'));
    const r = await start(dir, ['--inference', 'remote', '--segmenter-addresses', '127.0.0.1:1']);
    try {
      await unaryCall(r.client, 'startJob', { spec: spec('seg-down', Method.METHOD_NAIVE) });
      const { job } = await finished(r.client, 'seg-down');
      expect(job.state).toBe(JobState.JOB_STATE_FAILED);
      expect(job.message).toMatch(/^segmenter at 127\.0\.0\.1:1 unreachable: LoadModel failed 2 times \(last: UNAVAILABLE .*\) — resume with StartJob/);
      // Resumable: StartJob with the same id and spec queues it again (it fails again here, the segmenter is still down).
      const again = await unaryCall(r.client, 'startJob', { spec: spec('seg-down', Method.METHOD_NAIVE) });
      expect(again.resumes).toBe(1);
      expect((await finished(r.client, 'seg-down')).job.state).toBe(JobState.JOB_STATE_FAILED);
    } finally {
      r.client.close();
      await r.server.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
