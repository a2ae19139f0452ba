/**
 * A policy that persists across jobs (#21 item 4), through real gRPC on port
 * 0, always shut down: the agent as its own process (services never import
 * each other), the trainer in process with `--inference local`. Job A trains the default policy in its
 * simulated-shift episodes and promotes the version it ends with; job B
 * (`freeze_policy`) loads exactly that version and acts with it unchanged;
 * job C (the default, continue training) starts its updates from it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AgentServiceClient, JobSpec, JobState, Method, PolicyStage, TrainerServiceClient, type Job, type JobEvent, type PolicyVersion } from '@purify/proto';
import { createClient, serviceMain, startInProcess, startServiceProcess, unaryCall, type RunningServer, type ServiceProcess } from '@purify/runtime';
import { trainerService } from '../src';
import { DEFAULT_POLICY } from '../src/remote-ports';
import { watch, writeData } from './fixtures';

let data: string;
let dir: string;
let agentProcess: ServiceProcess | undefined;
let trainerServer: RunningServer;
let agent: AgentServiceClient;
let trainer: TrainerServiceClient;

beforeAll(async () => {
  data = writeData();
  dir = mkdtempSync(join(tmpdir(), 'trainer-handoff-'));
  agentProcess = await startServiceProcess(serviceMain(resolve(__dirname, '../../..'), 'agent'), ['--port', '0', '--artifacts-dir', join(dir, 'agent-store'), '--log-level', 'warn']);
  const agentAddress = agentProcess.address;
  trainerServer = await startInProcess(trainerService, [
    '--port', '0', '--inference', 'local', '--artifacts-dir', join(dir, 'trainer'), '--agent-addresses', agentAddress,
    '--call-attempts', '2', '--call-backoff-ms', '10', '--call-timeout-ms', '20000', '--shutdown-grace-ms', '200',
  ]);
  agent = createClient(AgentServiceClient, 'agent', { addresses: [agentAddress], defaultTimeoutMs: 20_000 });
  trainer = createClient(TrainerServiceClient, 'trainer', { addresses: [trainerServer.address], defaultTimeoutMs: 20_000 });
});
afterAll(async () => {
  agent?.close();
  trainer?.close();
  await trainerServer?.shutdown();
  await agentProcess?.stop();
  rmSync(data, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

function rlSpec(jobId: string, over: Partial<JobSpec> = {}): JobSpec {
  return JobSpec.fromPartial({
    jobId,
    method: Method.METHOD_RL,
    source: { path: join(data, 'ct'), modality: 1, caseIds: [] },
    target: { path: join(data, 'mr'), modality: 2, caseIds: [] },
    hyperparameters: { rounds: 1, stepsPerRound: 1, batchSize: 2, imageSizeYx: [16, 16] },
    seed: 5,
    simulatedShiftPretraining: true,
    ...over,
  });
}

async function run(spec: JobSpec): Promise<{ job: Job; events: JobEvent[] }> {
  await unaryCall(trainer, 'startJob', { spec });
  const events = await watch(trainer, spec.jobId);
  const job = await unaryCall(trainer, 'getJob', { jobId: spec.jobId });
  if (job.state !== JobState.JOB_STATE_SUCCEEDED) throw new Error(`job ${spec.jobId} ended ${JobState[job.state]}: ${job.message}`);
  return { job, events };
}

const versions = async (): Promise<PolicyVersion[]> => (await unaryCall(agent, 'listPolicies', { name: DEFAULT_POLICY, includeArchived: false })).policies;

describe('trainer + agent: a promoted policy is the one the next job loads', () => {
  it('job A promotes the version it ends with; B acts with it frozen; C continues training from it', async () => {
    const a = await run(rlSpec('handoff-a', { promotePolicy: true }));
    const trained = a.job.policy!;
    // A's episodes updated the default policy (v1, registered on first use) at least once.
    expect(trained.name).toBe(DEFAULT_POLICY);
    expect(trained.version).toBeGreaterThan(1);
    const promoted = await unaryCall(agent, 'getPolicy', { ref: { name: DEFAULT_POLICY, version: 0 } });
    expect(promoted.ref).toEqual(trained);
    expect(promoted.stage).toBe(PolicyStage.POLICY_STAGE_PROMOTED);
    // Provenance: which job, method, data and phase trained it.
    expect(promoted.provenance).toMatchObject({ job: 'handoff-a', method: 'rl', target: join(data, 'mr'), seed: '5', phase: 'episodes', round: '1', trigger: 'update' });
    expect(a.events.some((e) => e.event?.$case === 'log' && e.event.log.startsWith(`policy ${DEFAULT_POLICY}:${trained.version} promoted`))).toBe(true);
    const afterA = (await versions()).length;

    const b = await run(rlSpec('handoff-b', { freezePolicy: true, simulatedShiftPretraining: false }));
    expect(b.job.policy).toEqual(trained);
    // Frozen: B made no version.
    expect((await versions()).length).toBe(afterA);

    const c = await run(rlSpec('handoff-c'));
    const made = (await versions()).filter((v) => v.provenance['job'] === 'handoff-c').sort((x, y) => x.ref!.version - y.ref!.version);
    expect(made.length).toBeGreaterThan(0);
    // C's first update starts from A's promoted version; its last is the job's policy. Nothing of C is promoted.
    expect(made[0]!.provenance['parent']).toBe(`${trained.name}:${trained.version}`);
    expect(c.job.policy).toEqual(made[made.length - 1]!.ref);
    expect((await unaryCall(agent, 'getPolicy', { ref: { name: DEFAULT_POLICY, version: 0 } })).ref).toEqual(trained);
  }, 240_000);
});
