// The trainer's own metrics on its Prometheus endpoint (--metrics-port), after
// real jobs over gRPC (--inference local, tiny [2, 16, 16] datasets): one
// training-step sample per step under the job's model name, and the number of
// jobs waiting in the queue.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobSpec, JobState, Method, TrainerServiceClient, type JobEvent } from '@purify/proto';
import { createClient, freeLoopbackPort, scrape, scrapeText, startInProcess, unaryCall, valuesOf, type RunningServer, type Sample } from '@purify/runtime';
import { trainerService } from '../src';
import { watch, writeData } from './fixtures';

let data: string;
let artifacts: string;
let server: RunningServer;
let client: TrainerServiceClient;

beforeAll(async () => {
  data = writeData();
  artifacts = mkdtempSync(join(tmpdir(), 'trainer-metrics-'));
  server = await startInProcess(trainerService, [
    '--port', '0',
    '--metrics-port', String(await freeLoopbackPort()),
    '--artifacts-dir', artifacts,
    '--inference', 'local',
    '--agent-addresses', '127.0.0.1:1',
    '--shutdown-grace-ms', '200',
  ]);
  client = createClient(TrainerServiceClient, 'trainer', { addresses: [server.address], defaultTimeoutMs: 10_000 });
});
afterAll(async () => {
  client?.close();
  await server?.shutdown();
  rmSync(data, { recursive: true, force: true });
  rmSync(artifacts, { recursive: true, force: true });
});

/** A naive job of `rounds` × `steps` steps on the fixture datasets. */
function spec(jobId: string, rounds: number, steps: number, over: Partial<JobSpec> = {}): JobSpec {
  return JobSpec.fromPartial({
    jobId,
    method: Method.METHOD_NAIVE,
    source: { path: join(data, 'ct'), modality: 1, caseIds: [] },
    target: { path: join(data, 'mr'), modality: 2, caseIds: [] },
    hyperparameters: { rounds, stepsPerRound: steps, batchSize: 2, imageSizeYx: [16, 16] },
    seed: 5,
    ...over,
  });
}

/** Every event of a job, once it ended, and its state. */
async function run(jobId: string): Promise<{ state: JobState; steps: number[] }> {
  const events = await watch(client, jobId);
  const job = await unaryCall(client, 'getJob', { jobId });
  return { state: job.state, steps: stepMsOf(events) };
}

const stepMsOf = (events: readonly JobEvent[]): number[] => events.flatMap((e) => (e.event?.$case === 'step' ? [e.event.step.stepMs] : []));
const queueDepth = (all: readonly Sample[]): number[] => valuesOf(all, 'purify_queue_depth', { purify_queue: 'jobs' });

/** `[count, sum]` of the training-step histogram by `purify_model_name` ('' = unlabelled). */
function stepSeries(all: readonly Sample[]): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const s of all) {
    const series = (): [number, number] => (out[s.labels['purify_model_name'] ?? ''] ??= [0, 0]);
    if (s.name === 'purify_training_step_duration_count') series()[0] = s.value;
    if (s.name === 'purify_training_step_duration_sum') series()[1] = s.value;
  }
  return out;
}

const seconds = (ms: readonly number[]): number => ms.reduce((a, b) => a + b, 0) / 1000;

describe('trainer metrics', () => {
  it('reports an empty job queue from the start', async () => {
    expect(queueDepth(await scrape(server.metricsAddress as string))).toEqual([0]);
  });

  it('records one training step per step under the output (else the starting) model name, and the jobs waiting', async () => {
    // A: output "metrics-a", 1 round × 3 steps.
    await unaryCall(client, 'startJob', { spec: spec('mjob-a', 1, 3, { outputModel: 'metrics-a' }) });
    const a = await run('mjob-a');
    expect([a.state, a.steps.length]).toEqual([JobState.JOB_STATE_SUCCEEDED, 3]);

    // L: starts from metrics-a:1 (no output name) and would run 1000 rounds (minutes); it holds the worker while B and C wait.
    await unaryCall(client, 'startJob', { spec: spec('mjob-long', 1000, 1, { initModel: { name: 'metrics-a', version: 1 } }) });
    const long = watch(client, 'mjob-long');
    await watch(client, 'mjob-long', 0, (e) => e.event?.$case === 'step');
    // B: output "metrics-b", 2 rounds × 1 step; C: no names at all (its default output name holds the job id), 1 round × 2 steps.
    await unaryCall(client, 'startJob', { spec: spec('mjob-b', 2, 1, { outputModel: 'metrics-b' }) });
    await unaryCall(client, 'startJob', { spec: spec('mjob-c', 1, 2) });
    // L runs, B and C wait.
    expect(queueDepth(await scrape(server.metricsAddress as string))).toEqual([2]);

    await unaryCall(client, 'cancelJob', { jobId: 'mjob-long', reason: 'metrics test' });
    const l = stepMsOf(await long);
    const b = await run('mjob-b');
    const c = await run('mjob-c');
    expect([b.state, b.steps.length, c.state, c.steps.length]).toEqual([JobState.JOB_STATE_SUCCEEDED, 2, JobState.JOB_STATE_SUCCEEDED, 2]);

    const all = await scrape(server.metricsAddress as string);
    expect(queueDepth(all)).toEqual([0]);
    // [count, sum in s] per model name, from the step events each job streamed (stepMs).
    const expected: Record<string, [number, number]> = {
      'metrics-a': [a.steps.length + l.length, seconds([...a.steps, ...l])],
      'metrics-b': [2, seconds(b.steps)],
      '': [2, seconds(c.steps)],
    };
    const got = stepSeries(all);
    expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, [count, sum]] of Object.entries(expected)) {
      expect([name, got[name]?.[0]]).toEqual([name, count]);
      expect(got[name]?.[1]).toBeCloseTo(sum, 6);
    }
    // No label holds a job id (nor C's default output name, adapted-mjob-c).
    expect((await scrapeText(server.metricsAddress as string)).includes('mjob')).toBe(false);
  });
});
