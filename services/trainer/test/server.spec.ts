import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobSpec, Method, TrainerServiceClient, type JobEvent } from '@purify/proto';
import { createClient, listServices, startInProcess, unaryCall, type RunningServer } from '@purify/runtime';
import type { ServiceError } from '@grpc/grpc-js';
import { trainerService } from '../src';

let server: RunningServer;
let client: TrainerServiceClient;

beforeAll(async () => {
  server = await startInProcess(trainerService, ['--port', '0', '--artifacts-dir', mkdtempSync(join(tmpdir(), 'trainer-'))]);
  client = createClient(TrainerServiceClient, 'trainer', { addresses: [server.address], defaultTimeoutMs: 5000 });
});
afterAll(async () => {
  client.close();
  await server.shutdown();
});

describe('trainer service', () => {
  it('lists its service through reflection', async () => {
    expect(await listServices(server.address)).toContain('purify.v1.TrainerService');
  });

  it.each([
    // [case, job spec, code, exact message]
    ['no spec', undefined, 'INVALID_ARGUMENT', 'startJob failed: `spec` is required, got nothing'],
    ['unset method', { method: Method.METHOD_UNSPECIFIED }, 'INVALID_ARGUMENT', 'startJob failed: `spec.method` must be one of METHOD_SOURCE_ONLY, METHOD_NAIVE, METHOD_CONFIDENCE, METHOD_ENTROPY, METHOD_CONSENSUS, METHOD_RULE, METHOD_RL, METHOD_ORACLE, got 0'],
    ['no source dataset', { method: Method.METHOD_RL }, 'INVALID_ARGUMENT', 'startJob failed: `spec.source` is required, got nothing'],
    ['well-formed', { method: Method.METHOD_RL, source: { path: '/data/ct', modality: 1, caseIds: [] } }, 'UNIMPLEMENTED', 'startJob failed: TrainerService.StartJob is not implemented yet; it arrives with issue #7 (trainer service and adaptation loop)'],
  ])('StartJob: %s', async (_name, spec, code, message) => {
    await expect(unaryCall(client, 'startJob', { spec: spec && JobSpec.fromPartial(spec) })).rejects.toMatchObject({ code, message });
  });

  it('WatchJob refuses a malformed job id on the stream', async () => {
    const err = await new Promise<ServiceError>((resolve) => {
      const call = client.watchJob({ jobId: 'a/b', fromSequence: 0 }, { deadline: Date.now() + 5000 });
      call.on('data', (_e: JobEvent) => undefined);
      call.on('error', resolve);
    });
    expect(err.code).toBe(3);
    expect(err.details).toBe('`job_id` must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got "a/b"');
  });
});
